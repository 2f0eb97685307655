// Files in chunks between daemons: paced reading, and in-order writing.
#include "daemon/bundle_sender.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

namespace queue::daemon {

namespace {

// Past this much unsent data the sender waits: large enough to keep a fast
// link busy between two looks, small enough to bound memory per link.
constexpr size_t kLinkHighWater = 8 << 20;
constexpr auto kPaceInterval = std::chrono::milliseconds(1);
constexpr size_t kMaxOpenIncoming = 32;
// Read, hashed, framed and encrypted while it is still in the CPU's cache:
// measured here, 1 MiB pieces moved a restart file slower than 64 KiB ones.
constexpr size_t kReadChunk = 64 * 1024;

// The SHA-256 of no bytes: what a sender reports for an empty file.
const std::string& EmptyDigest() {
  static const std::string digest = Sha256().Final();
  return digest;
}

struct BundleStream : std::enable_shared_from_this<BundleStream> {
  BundleStream(asio::io_context& io, std::shared_ptr<PeerLink> peer)
      : timer(io), link(std::move(peer)), watch(kTransferStallAfter, StallWatch::Clock::now()) {}
  ~BundleStream() {
    if (file.fd >= 0) close(file.fd);
  }

  void Continue() {
    if (!link->connected()) return done(Fail("the link to " + link->peer().entry + " dropped"));
    auto send = [this](uint64_t offset, std::string bytes) {
      link->SendBundleChunk(wire::BundleChunk{origin_host, origin_id, attempt, offset, std::move(bytes)});
    };
    ChunkPace pace = SendChunks(file, *link, send);
    // Bytes out of the link's queue: while the peer reads nothing, neither
    // the file's offset nor this moves.
    uint64_t moved = file.offset - std::min<uint64_t>(file.offset, link->pending_bytes());
    if (auto change = watch.Observe(moved, StallWatch::Clock::now()); change != StallWatch::Change::kNone && on_stall)
      on_stall(BundleProgress{change, moved, size});
    if (on_progress && moved != reported) on_progress(BundleProgress{StallWatch::Change::kNone, reported = moved, size});
    switch (pace) {
      case ChunkPace::kEnd: return done(SentBundle{file.offset, file.digest.Final()});
      case ChunkPace::kReadError: return done(Fail("cannot read the restart bundle: " + ErrnoText(errno)));
      case ChunkPace::kLinkFull:
        timer.expires_after(kPaceInterval);
        timer.async_wait([self = shared_from_this()](const asio::error_code& ec) {
          if (!ec) self->Continue();
        });
        return;
    }
  }

  asio::steady_timer timer;
  std::shared_ptr<PeerLink> link;
  std::string origin_host;
  uint64_t origin_id = 0;
  uint32_t attempt = 0;
  OutgoingFile file;
  uint64_t size = 0;
  StallWatch watch;
  std::function<void(Result<SentBundle>)> done;
  std::function<void(const BundleProgress&)> on_stall;
  std::function<void(const BundleProgress&)> on_progress;
  uint64_t reported = 0;  // bytes on_progress heard of last
};

}  // namespace

StallWatch::Change StallWatch::Observe(uint64_t bytes_moved, Clock::time_point now) {
  if (bytes_moved > bytes_) {
    bytes_ = bytes_moved;
    moved_at_ = now;
    return std::exchange(stalled_, false) ? Change::kResumed : Change::kNone;
  }
  if (stalled_ || now - moved_at_ < stall_after_) return Change::kNone;
  stalled_ = true;
  return Change::kStalled;
}

ChunkPace SendChunks(OutgoingFile& file, const PeerLink& link,
                     const std::function<void(uint64_t offset, std::string bytes)>& send) {
  for (;;) {
    if (link.pending_bytes() > kLinkHighWater) return ChunkPace::kLinkFull;
    std::string chunk(kReadChunk, '\0');
    ssize_t n = pread(file.fd, chunk.data(), chunk.size(), static_cast<off_t>(file.offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ChunkPace::kReadError;
    if (n == 0) return ChunkPace::kEnd;
    chunk.resize(static_cast<size_t>(n));
    file.digest.Update(chunk);
    uint64_t at = file.offset;
    file.offset += static_cast<uint64_t>(n);
    send(at, std::move(chunk));
  }
}

void SendBundle(asio::io_context& io, std::shared_ptr<PeerLink> link, std::string origin_host, uint64_t origin_id,
                uint32_t attempt, const std::string& path, std::function<void(Result<SentBundle>)> done,
                std::function<void(const BundleProgress&)> on_stall,
                std::function<void(const BundleProgress&)> on_progress) {
  auto stream = std::make_shared<BundleStream>(io, std::move(link));
  stream->on_stall = std::move(on_stall);
  stream->on_progress = std::move(on_progress);
  stream->origin_host = std::move(origin_host);
  stream->origin_id = origin_id;
  stream->attempt = attempt;
  stream->done = std::move(done);
  stream->file.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (stream->file.fd < 0)
    return stream->done(Fail("cannot open the restart bundle " + path + ": " + ErrnoText(errno)));
  struct stat info{};
  if (fstat(stream->file.fd, &info) == 0) stream->size = static_cast<uint64_t>(info.st_size);
  stream->Continue();
}

IncomingFiles::~IncomingFiles() {
  for (auto& [path, file] : arriving_) close(file.fd);
}

void IncomingFiles::Close(std::map<std::string, Arriving>::iterator it) {
  close(it->second.fd);
  arriving_.erase(it);
}

void IncomingFiles::CloseIdlest() {
  auto idlest = arriving_.begin();
  for (auto it = arriving_.begin(); it != arriving_.end(); ++it)
    if (it->second.touched < idlest->second.touched) idlest = it;
  if (idlest != arriving_.end()) Close(idlest);
}

Status IncomingFiles::Store(const std::string& path, uint64_t offset, std::string_view bytes) {
  auto it = arriving_.find(path);
  if (offset == 0 && it != arriving_.end()) {
    Close(it);
    it = arriving_.end();
  }
  if (it == arriving_.end()) {
    if (arriving_.size() >= kMaxOpenIncoming) CloseIdlest();
    int flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW | (offset == 0 ? O_CREAT | O_TRUNC : 0);
    int fd = open(path.c_str(), flags, 0600);
    if (fd < 0) return Fail("cannot open " + path + ": " + ErrnoText(errno));
    struct stat info{};
    if (fstat(fd, &info) != 0) {
      std::string why = ErrnoText(errno);
      close(fd);
      return Fail("cannot read " + path + ": " + why);
    }
    Arriving file;
    file.fd = fd;
    file.size = static_cast<uint64_t>(info.st_size);
    file.hashed = file.size == 0;
    it = arriving_.emplace(path, std::move(file)).first;
  }
  Arriving& file = it->second;
  file.touched = std::chrono::steady_clock::now();
  if (file.size != offset) return Status::Ok();  // stale: not where the file ends
  ssize_t written = pwrite(file.fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
  if (written != static_cast<ssize_t>(bytes.size())) {
    std::string why = written < 0 ? ErrnoText(errno) : "short write";
    Close(it);
    return Fail("cannot write " + path + ": " + why);
  }
  file.size += bytes.size();
  if (file.hashed) file.digest.Update(bytes);
  return Status::Ok();
}

// The sender read no bytes, so it sent no chunk: nothing here was written for
// this file, and what a cut-off transfer (an earlier run's) left is not it.
bool IncomingFiles::MakeEmpty(const std::string& path) {
  if (auto it = arriving_.find(path); it != arriving_.end()) Close(it);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return false;
  close(fd);
  return true;
}

bool IncomingFiles::Matches(const std::string& path, uint64_t size, const std::string& sha256) {
  if (size == 0 && !sha256.empty() && sha256 == EmptyDigest()) return MakeEmpty(path);
  if (auto it = arriving_.find(path); it != arriving_.end()) {
    struct stat info{};
    // Unlinked meanwhile (the job's files were discarded): what it held is gone.
    bool gone = fstat(it->second.fd, &info) != 0 || info.st_nlink == 0;
    bool known = it->second.hashed && !gone;
    bool matches = known && it->second.size == size && it->second.digest.Final() == sha256;
    Close(it);
    if (known) return matches;
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  struct stat info{};
  auto digest = Sha256OfFile(fd);
  bool ok = fstat(fd, &info) == 0 && static_cast<uint64_t>(info.st_size) == size && digest.ok() && *digest == sha256;
  close(fd);
  return ok;
}

}  // namespace queue::daemon
