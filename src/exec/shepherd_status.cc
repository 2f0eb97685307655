// The shepherd's status file: creating it, writing a job's end, reading it back.
#include "exec/shepherd_status.h"

#include <fcntl.h>
#include <unistd.h>

#include <utility>

#include "wire/codec.h"

namespace queue::exec {

namespace {

constexpr uint32_t kStatusMagic = 0x51535331;  // "QSS1"
constexpr size_t kHeaderBytes = 8;
// A header, an event's fixed fields and the longest message, with room to spare.
constexpr size_t kMaxStatusFileBytes = kHeaderBytes + 64 + kMaxStatusMessageBytes;

std::string Encode(const wire::ShepherdEvent& event) {
  std::string payload = wire::EncodePayload(event);
  wire::Writer w;
  w.u32(kStatusMagic);
  w.u32(static_cast<uint32_t>(payload.size()));
  return w.take() + payload;
}

// At most limit bytes of the file; one more than limit says it is too large.
Result<std::string> ReadBounded(const std::string& path, size_t limit) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Fail("cannot open the status file " + path + ": " + ErrnoText(errno));
  std::string contents(limit + 1, '\0');
  size_t have = 0;
  while (have < contents.size()) {
    ssize_t n = read(fd, contents.data() + have, contents.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return Fail("cannot read the status file " + path + ": " + ErrnoText(err));
    }
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  close(fd);
  contents.resize(have);
  return contents;
}

}  // namespace

Result<ShepherdStatusFile> ShepherdStatusFile::Create(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Fail("cannot create the status file " + path + ": " + ErrnoText(errno));
  // Its blocks now, the file still empty (FALLOC_FL_KEEP_SIZE): the end is
  // written when the job's output may have filled the spool, and a daemon
  // restarted meanwhile learns the end from this file alone. A file system
  // that cannot allocate ahead (EOPNOTSUPP) is written as it can be.
  if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(kMaxStatusFileBytes)) != 0 && errno != EOPNOTSUPP) {
    int err = errno;
    close(fd);
    return Fail("cannot keep room for the status file " + path + ": " + ErrnoText(err));
  }
  // The directory entry is not fsynced: the file matters to a daemon restarted
  // while this shepherd lives, and a crash of the host ends the shepherd too.
  return ShepherdStatusFile(fd);
}

ShepherdStatusFile::ShepherdStatusFile(ShepherdStatusFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)) {}

ShepherdStatusFile& ShepherdStatusFile::operator=(ShepherdStatusFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

ShepherdStatusFile::~ShepherdStatusFile() {
  if (fd_ >= 0) close(fd_);
}

Status ShepherdStatusFile::Write(const wire::ShepherdEvent& event) {
  if (fd_ < 0) return Fail("the status file is not open");
  if (event.kind == wire::ShepherdEventKind::kStarted) return Fail("a status file records only a job's end");
  if (event.message.size() > kMaxStatusMessageBytes)
    return Fail("a status message of " + std::to_string(event.message.size()) + " bytes is too long");
  std::string record = Encode(event);
  // One write at offset 0: a reader sees the whole record, nothing, or (after a
  // crash mid-write) a torn record that fails to decode.
  ssize_t n;
  do {
    n = pwrite(fd_, record.data(), record.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Fail("cannot write the status file: " + ErrnoText(errno));
  if (static_cast<size_t>(n) != record.size()) return Fail("short write to the status file");
  if (fsync(fd_) != 0) return Fail("cannot fsync the status file: " + ErrnoText(errno));
  return Status::Ok();
}

Result<std::optional<wire::ShepherdEvent>> ReadShepherdStatus(const std::string& path) {
  auto contents = ReadBounded(path, kMaxStatusFileBytes);
  if (!contents.ok()) return contents.error();
  if (contents->empty()) return std::optional<wire::ShepherdEvent>();
  auto corrupt = [&path](const std::string& why) { return Fail("the status file " + path + " " + why); };
  if (contents->size() > kMaxStatusFileBytes) return corrupt("is too large");
  if (contents->size() < kHeaderBytes) return corrupt("is truncated");
  wire::Reader header(std::string_view(*contents).substr(0, kHeaderBytes));
  uint32_t magic = header.u32();
  uint32_t length = header.u32();
  if (magic != kStatusMagic) return corrupt("is not a status file");
  if (length != contents->size() - kHeaderBytes) return corrupt("has a torn record");
  auto event = wire::DecodePayload<wire::ShepherdEvent>(std::string_view(*contents).substr(kHeaderBytes));
  if (!event.ok()) return corrupt("does not decode: " + event.message());
  if (event->kind == wire::ShepherdEventKind::kStarted) return corrupt("records no end");
  return std::optional<wire::ShepherdEvent>(std::move(event.value()));
}

}  // namespace queue::exec
