// Reading a SQLite write-ahead log (sqlite.org/fileformat2.html#walformat): a
// 32-byte header, then frames of a 24-byte header and one page each. A frame
// carries the header's two salts and a running checksum over the log header
// and every frame before it; SQLite reads a frame when its salts match and its
// checksum follows on from the frame before.
#include "spool/wal_check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace queue::spool {

namespace {

// The magic says in which byte order the checksums read the data's words.
constexpr uint32_t kMagicLittleEndian = 0x377f0682;
constexpr uint32_t kMagicBigEndian = 0x377f0683;
constexpr uint32_t kFormatVersion = 3007000;
constexpr size_t kHeaderBytes = 32;
constexpr size_t kFrameHeaderBytes = 24;

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

uint32_t LittleEndian32(const unsigned char* p) {
  return (uint32_t{p[3]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[1]} << 8) | uint32_t{p[0]};
}

struct Checksum {
  uint32_t s0 = 0, s1 = 0;
  bool operator==(const Checksum&) const = default;
};

// SQLite's running checksum (walChecksumBytes), over `size` bytes, a multiple of 8.
Checksum Extend(Checksum sum, const unsigned char* bytes, size_t size, bool big_endian) {
  for (size_t i = 0; i + 8 <= size; i += 8) {
    sum.s0 += (big_endian ? BigEndian32(bytes + i) : LittleEndian32(bytes + i)) + sum.s1;
    sum.s1 += (big_endian ? BigEndian32(bytes + i + 4) : LittleEndian32(bytes + i + 4)) + sum.s0;
  }
  return sum;
}

// Checksums are stored big-endian, whatever the magic.
Checksum StoredChecksum(const unsigned char* p) { return {BigEndian32(p), BigEndian32(p + 4)}; }

struct WalHeader {
  bool big_endian = false;
  size_t page_size = 0;
  uint32_t salt1 = 0, salt2 = 0;
  Checksum stored;     // where frame 1's checksum starts from
  bool sound = false;  // its own checksum matches: SQLite reads the log at all
};

// nullopt for no log header at all: another magic, version or page size.
std::optional<WalHeader> ParseHeader(const unsigned char* h) {
  uint32_t magic = BigEndian32(h);
  uint32_t page_size = BigEndian32(h + 8);
  if ((magic != kMagicLittleEndian && magic != kMagicBigEndian) || BigEndian32(h + 4) != kFormatVersion) {
    return std::nullopt;
  }
  if (page_size < 512 || page_size > 65536 || (page_size & (page_size - 1)) != 0) return std::nullopt;
  WalHeader header;
  header.big_endian = magic == kMagicBigEndian;
  header.page_size = page_size;
  header.salt1 = BigEndian32(h + 16);
  header.salt2 = BigEndian32(h + 20);
  header.stored = StoredChecksum(h + 24);
  header.sound = Extend({}, h, 24, header.big_endian) == header.stored;
  return header;
}

// Whether SQLite would read `frame` (its header, then its page) after a frame
// whose stored checksum is `before`: it names a page, carries this log's
// salts, and its checksum follows on.
bool Follows(const WalHeader& header, const unsigned char* frame, Checksum before) {
  if (BigEndian32(frame) == 0) return false;
  if (BigEndian32(frame + 8) != header.salt1 || BigEndian32(frame + 12) != header.salt2) return false;
  Checksum sum = Extend(before, frame, 8, header.big_endian);
  sum = Extend(sum, frame + kFrameHeaderBytes, header.page_size, header.big_endian);
  return sum == StoredChecksum(frame + 16);
}

// The last frame of a transaction records the database's size after it.
bool IsCommit(const unsigned char* frame) { return BigEndian32(frame + 4) != 0; }

class WalReader {
 public:
  WalReader(int fd, const WalHeader& header) : fd_(fd), frame_(kFrameHeaderBytes + header.page_size) {}

  // Frame `index` (from 1) into frame(), or why it cannot be read.
  Status Read(uint64_t index, const std::string& path) {
    off_t at = static_cast<off_t>(kHeaderBytes + (index - 1) * frame_.size());
    for (size_t done = 0; done < frame_.size();) {
      ssize_t n = pread(fd_, frame_.data() + done, frame_.size() - done, at + static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Fail("cannot read " + path + ": " + (n < 0 ? ErrnoText(errno) : "it shrank"));
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }
  const unsigned char* frame() const { return frame_.data(); }
  size_t frame_size() const { return frame_.size(); }

 private:
  int fd_;
  std::vector<unsigned char> frame_;
};

// Where SQLite's recovery stops reading the log.
struct Stop {
  uint64_t frame;   // the first frame it does not read (0: the header, frames + 1: none)
  Checksum stored;  // that frame's stored checksum, which the next one follows on from
};

Result<Stop> FindStop(WalReader& reader, const WalHeader& header, uint64_t frames, const std::string& path) {
  if (!header.sound) return Stop{0, header.stored};
  Checksum chain = header.stored;
  for (uint64_t i = 1; i <= frames; ++i) {
    if (auto read = reader.Read(i, path); !read.ok()) return Fail(read.message());
    bool follows = Follows(header, reader.frame(), chain);
    chain = StoredChecksum(reader.frame() + 16);
    if (!follows) return Stop{i, chain};
  }
  return Stop{frames + 1, chain};
}

Result<std::optional<WalDamage>> Scan(int fd, const std::string& path) {
  struct stat info{};
  if (fstat(fd, &info) != 0) return Fail("cannot read " + path + ": " + ErrnoText(errno));
  unsigned char bytes[kHeaderBytes];
  bool whole = static_cast<size_t>(info.st_size) >= kHeaderBytes &&
               pread(fd, bytes, kHeaderBytes, 0) == static_cast<ssize_t>(kHeaderBytes);
  if (!whole) return std::optional<WalDamage>();
  std::optional<WalHeader> header = ParseHeader(bytes);
  if (!header) return std::optional<WalDamage>();
  WalReader reader(fd, *header);
  uint64_t frames = (static_cast<uint64_t>(info.st_size) - kHeaderBytes) / reader.frame_size();
  Result<Stop> stop = FindStop(reader, *header, frames, path);
  if (!stop.ok()) return Fail(stop.message());
  WalDamage damage{stop->frame, frames, 0};
  // Commits past it that are sound in themselves: committed, and then dropped.
  Checksum before = stop->stored;
  for (uint64_t i = stop->frame + 1; i <= frames; ++i) {
    if (auto read = reader.Read(i, path); !read.ok()) return Fail(read.message());
    if (Follows(*header, reader.frame(), before) && IsCommit(reader.frame())) ++damage.lost_commits;
    before = StoredChecksum(reader.frame() + 16);
  }
  // One may be the last transaction, torn by a power cut before its commit was synced.
  if (damage.lost_commits < 2) return std::optional<WalDamage>();
  return std::optional<WalDamage>(damage);
}

}  // namespace

Result<std::optional<WalDamage>> FindWalDamage(const std::string& wal_path) {
  int fd = open(wal_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return std::optional<WalDamage>();
  if (fd < 0) return Fail("cannot read " + wal_path + ": " + ErrnoText(errno));
  auto damage = Scan(fd, wal_path);
  close(fd);
  return damage;
}

}  // namespace queue::spool
