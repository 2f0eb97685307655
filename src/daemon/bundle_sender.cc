// Paced streaming of a restart-file bundle to a peer.
#include "daemon/bundle_sender.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/sha256.h"

namespace queue::daemon {

namespace {

constexpr size_t kLinkHighWater = 4 << 20;

struct BundleStream : std::enable_shared_from_this<BundleStream> {
  BundleStream(asio::io_context& io, std::shared_ptr<PeerLink> peer) : timer(io), link(std::move(peer)) {}
  ~BundleStream() {
    if (fd >= 0) close(fd);
  }

  void Continue() {
    std::string chunk(wire::kMaxStreamChunk, '\0');
    for (;;) {
      if (!link->connected()) return done(Fail("the link to " + link->peer().entry + " dropped"));
      if (link->pending_bytes() > kLinkHighWater) {
        timer.expires_after(std::chrono::milliseconds(2));
        timer.async_wait([self = shared_from_this()](const asio::error_code& ec) {
          if (!ec) self->Continue();
        });
        return;
      }
      ssize_t n = pread(fd, chunk.data(), chunk.size(), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return done(Fail("cannot read the restart bundle: " + ErrnoText(errno)));
      if (n == 0) return done(SentBundle{offset, digest.Final()});
      std::string_view bytes(chunk.data(), static_cast<size_t>(n));
      digest.Update(bytes);
      link->SendBundleChunk(wire::BundleChunk{origin_host, origin_id, attempt, offset, std::string(bytes)});
      offset += static_cast<uint64_t>(n);
    }
  }

  asio::steady_timer timer;
  std::shared_ptr<PeerLink> link;
  std::string origin_host;
  uint64_t origin_id = 0;
  uint32_t attempt = 0;
  int fd = -1;
  uint64_t offset = 0;
  Sha256 digest;
  std::function<void(Result<SentBundle>)> done;
};

}  // namespace

void SendBundle(asio::io_context& io, std::shared_ptr<PeerLink> link, std::string origin_host, uint64_t origin_id,
                uint32_t attempt, const std::string& path, std::function<void(Result<SentBundle>)> done) {
  auto stream = std::make_shared<BundleStream>(io, std::move(link));
  stream->origin_host = std::move(origin_host);
  stream->origin_id = origin_id;
  stream->attempt = attempt;
  stream->done = std::move(done);
  stream->fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (stream->fd < 0) return stream->done(Fail("cannot open the restart bundle " + path + ": " + ErrnoText(errno)));
  stream->Continue();
}

bool FileMatches(const std::string& path, uint64_t size, const std::string& sha256) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  struct stat info{};
  auto digest = Sha256OfFile(fd);
  bool ok = fstat(fd, &info) == 0 && static_cast<uint64_t>(info.st_size) == size && digest.ok() && *digest == sha256;
  close(fd);
  return ok;
}

Status StoreChunk(const std::string& path, uint64_t offset, std::string_view bytes) {
  int flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW | (offset == 0 ? O_CREAT | O_TRUNC : 0);
  int fd = open(path.c_str(), flags, 0600);
  if (fd < 0) return Fail("cannot open " + path + ": " + ErrnoText(errno));
  struct stat info{};
  Status stored = Status::Ok();
  if (fstat(fd, &info) == 0 && static_cast<uint64_t>(info.st_size) == offset) {
    ssize_t written = pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (written != static_cast<ssize_t>(bytes.size())) stored = Fail("cannot write " + path + ": " + ErrnoText(errno));
  }
  close(fd);
  return stored;
}

}  // namespace queue::daemon
