// Encoding and validating restart bundles. One scanner serves bundles in memory
// and in files: it reads each entry's header through wire::Reader, checks it
// against the bytes that are left, and steps over the content without reading it.
#include "migrate/restart_bundle_format.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "wire/codec.h"

namespace queue::migrate {

namespace {

constexpr size_t kLengthBytes = 4;          // u32 path length
constexpr size_t kModeAndSizeBytes = 4 + 8;  // u32 mode, u64 size
constexpr size_t kMaxPrintedPathBytes = 300;

// Where the scanner reads from: `size` bytes, read in pieces that are in range.
class BundleBytes {
 public:
  virtual ~BundleBytes() = default;
  virtual uint64_t size() const = 0;
  // Reads `length` bytes at `offset` into `out`. REQUIRES: offset + length <= size().
  virtual Status Read(uint64_t offset, size_t length, std::string& out) const = 0;
};

class MemoryBytes final : public BundleBytes {
 public:
  explicit MemoryBytes(std::string_view bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  Status Read(uint64_t offset, size_t length, std::string& out) const override {
    out.assign(bytes_.substr(offset, length));
    return Status::Ok();
  }

 private:
  std::string_view bytes_;
};

class FileBytes final : public BundleBytes {
 public:
  FileBytes(int fd, uint64_t size) : fd_(fd), size_(size) {}
  uint64_t size() const override { return size_; }
  Status Read(uint64_t offset, size_t length, std::string& out) const override {
    out.resize(length);
    size_t have = 0;
    while (have < length) {
      ssize_t got = pread(fd_, out.data() + have, length - have, static_cast<off_t>(offset + have));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return Fail("cannot read the restart bundle: " + ErrnoText(errno));
      if (got == 0) return Fail("the restart bundle shrank while it was being read");
      have += static_cast<size_t>(got);
    }
    return Status::Ok();
  }

 private:
  int fd_;
  uint64_t size_;
};

std::string EntryName(size_t number, std::string_view path) {
  std::string name = "restart bundle entry " + std::to_string(number);
  if (!path.empty()) name += " (" + PrintablePath(path) + ")";
  return name;
}

Error Truncated(size_t number, std::string_view path = {}) {
  std::string message = "restart bundle truncated at entry " + std::to_string(number);
  if (!path.empty()) message += " (" + PrintablePath(path) + ")";
  return Fail(message);
}

std::string OctalMode(uint32_t mode) {
  char text[16];
  std::snprintf(text, sizeof text, "0%o", mode);
  return text;
}

// Paths ordered component by component ('/' sorts before every other byte), so
// that "a/..." always follows "a" directly, before "a-b" or "a.c".
bool ComponentOrder(std::string_view a, std::string_view b) {
  auto rank = [](char c) { return c == '/' ? 0 : static_cast<unsigned char>(c) + 1; };
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [&](char x, char y) { return rank(x) < rank(y); });
}

// Refuses a path given twice, or given as a file and as a directory of another
// file: unpacking either would fail half-way, after other files were written.
Status CheckNoClash(const std::vector<BundleEntry>& entries) {
  std::vector<std::string_view> paths;
  paths.reserve(entries.size());
  for (const BundleEntry& entry : entries) paths.push_back(entry.path);
  std::sort(paths.begin(), paths.end(), ComponentOrder);
  for (size_t i = 1; i < paths.size(); ++i) {
    std::string_view before = paths[i - 1], path = paths[i];
    if (path == before) return Fail("restart bundle holds " + PrintablePath(path) + " twice");
    if (path.size() > before.size() && path.starts_with(before) && path[before.size()] == '/') {
      return Fail("restart bundle holds " + PrintablePath(before) +
                  " both as a file and as a directory");
    }
  }
  return Status::Ok();
}

// Reads one entry's header at `pos` (past its length field, already read as
// `path_length`) and checks it; moves `pos` past the entry's content.
Result<BundleEntry> ReadEntry(const BundleBytes& bytes, size_t number, uint32_t path_length,
                              uint64_t& pos) {
  if (path_length > kMaxBundlePathBytes) {
    return Fail(EntryName(number, {}) + ": its path of " + std::to_string(path_length) +
                " bytes is longer than " + std::to_string(kMaxBundlePathBytes));
  }
  uint64_t left = bytes.size() - pos;
  if (left < path_length + kModeAndSizeBytes) return Truncated(number);
  std::string header;
  if (Status read = bytes.Read(pos, path_length + kModeAndSizeBytes, header); !read.ok()) {
    return Error{read.message()};
  }
  pos += header.size();
  BundleEntry entry;
  entry.path = header.substr(0, path_length);
  wire::Reader fields(std::string_view(header).substr(path_length));
  entry.mode = fields.u32();
  entry.size = fields.u64();
  if (!fields.ok() || !fields.at_end()) return Truncated(number, entry.path);
  if (Status path_ok = CheckBundlePath(entry.path); !path_ok.ok()) {
    return Fail(EntryName(number, entry.path) + ": " + path_ok.message());
  }
  if ((entry.mode & ~kBundleModeBits) != 0) {
    return Fail(EntryName(number, entry.path) + ": mode " + OctalMode(entry.mode) +
                " is more than permission bits");
  }
  if (entry.size > bytes.size() - pos) return Truncated(number, entry.path);
  entry.data_offset = pos;
  pos += entry.size;
  return entry;
}

Result<std::vector<BundleEntry>> Scan(const BundleBytes& bytes, BundleKind* kind) {
  std::string field;
  if (bytes.size() < kBundleMagic.size()) {
    return Fail("not a restart bundle: it is shorter than its QRB1 header");
  }
  if (Status read = bytes.Read(0, kBundleMagic.size(), field); !read.ok()) return Error{read.message()};
  if (field != kBundleMagic && field != kImageBundleMagic)
    return Fail("not a restart bundle: it does not start with QRB1 or QRI1");
  if (kind != nullptr) *kind = field == kImageBundleMagic ? BundleKind::kCriuImage : BundleKind::kRestartFiles;
  uint64_t pos = kBundleMagic.size();
  std::vector<BundleEntry> entries;
  for (size_t number = 1;; ++number) {
    if (bytes.size() - pos < kLengthBytes) return Truncated(number);
    if (Status read = bytes.Read(pos, kLengthBytes, field); !read.ok()) return Error{read.message()};
    pos += kLengthBytes;
    uint32_t path_length = wire::Reader(field).u32();
    if (path_length == 0) break;
    if (number > kMaxBundleEntries) {
      return Fail("restart bundle holds more than " + std::to_string(kMaxBundleEntries) + " files");
    }
    Result<BundleEntry> entry = ReadEntry(bytes, number, path_length, pos);
    if (!entry) return entry.error();
    entries.push_back(std::move(*entry));
  }
  if (pos != bytes.size()) {
    return Fail("restart bundle has " + std::to_string(bytes.size() - pos) +
                " bytes after its end entry");
  }
  if (Status clash = CheckNoClash(entries); !clash.ok()) return Error{clash.message()};
  return entries;
}

}  // namespace

Status CheckBundlePath(std::string_view path) {
  if (path.empty()) return Fail("the path is empty");
  if (path.size() > kMaxBundlePathBytes) {
    return Fail("the path is longer than " + std::to_string(kMaxBundlePathBytes) + " bytes");
  }
  if (path.find('\0') != std::string_view::npos) return Fail("the path contains a NUL byte");
  if (path.front() == '/') return Fail("the path is absolute");
  size_t start = 0;
  for (;;) {
    size_t slash = path.find('/', start);
    std::string_view component = path.substr(start, slash - start);
    if (component.empty()) return Fail("the path has an empty component");
    if (component == "..") return Fail("the path leaves the job's directory");
    if (component == ".") return Fail("the path is not normalised (it has a '.' component)");
    if (slash == std::string_view::npos) return Status::Ok();
    start = slash + 1;
  }
}

std::string PrintablePath(std::string_view path) {
  std::string printable;
  for (char c : path.substr(0, kMaxPrintedPathBytes)) {
    auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte != 0x7f) {
      printable += c;
      continue;
    }
    char escaped[8];
    std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
    printable += escaped;
  }
  if (path.size() > kMaxPrintedPathBytes) printable += "...";
  return printable;
}

std::string EncodeEntryHeader(std::string_view path, uint32_t mode, uint64_t size) {
  wire::Writer out;
  out.str(path);
  out.u32(mode);
  out.u64(size);
  return out.take();
}

std::string EncodeBundleEnd() {
  wire::Writer out;
  out.u32(0);
  return out.take();
}

Result<std::vector<BundleEntry>> ParseBundle(std::string_view bytes, BundleKind* kind) {
  return Scan(MemoryBytes(bytes), kind);
}

Result<std::vector<BundleEntry>> ScanBundle(int fd, BundleKind* kind) {
  struct stat info {};
  if (fstat(fd, &info) != 0) return Fail("cannot read the restart bundle: " + ErrnoText(errno));
  if (!S_ISREG(info.st_mode)) return Fail("the restart bundle is not a regular file");
  return Scan(FileBytes(fd, static_cast<uint64_t>(info.st_size)), kind);
}

}  // namespace queue::migrate
