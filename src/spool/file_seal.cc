// Seals of kept files: writing, reading, moving and checking them.
#include "spool/file_seal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <sstream>

#include "util/sha256.h"

namespace queue::spool {

namespace {

// A seal is one line, "<size> <sha256 in hex>\n": small enough to read in
// one go, and readable by an operator with cat and sha256sum.
constexpr size_t kMaxSealBytes = 128;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The raw bytes of lowercase hex `text`, or "" when it is not that.
std::string FromHex(const std::string& text) {
  if (text.size() % 2 != 0) return "";
  std::string bytes;
  for (size_t i = 0; i < text.size(); i += 2) {
    int high = HexValue(text[i]), low = HexValue(text[i + 1]);
    if (high < 0 || low < 0) return "";
    bytes.push_back(static_cast<char>(high << 4 | low));
  }
  return bytes;
}

Status WriteAll(int fd, const std::string& text) {
  for (size_t done = 0; done < text.size();) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrnoText(errno));
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

void SyncPath(const std::string& path, int flags) {
  if (int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | flags); fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

// Whether the file open at `fd` is exactly what `seal` says.
SealCheck Compare(int fd, const FileSeal& seal) {
  struct stat info{};
  if (fstat(fd, &info) != 0) return {SealVerdict::kDamaged, "it cannot be read: " + ErrnoText(errno)};
  if (static_cast<uint64_t>(info.st_size) != seal.size)
    return {SealVerdict::kDamaged, "it is " + std::to_string(info.st_size) + " bytes, not the " +
                                       std::to_string(seal.size) + " it was kept with"};
  auto digest = Sha256OfFile(fd);
  if (!digest.ok()) return {SealVerdict::kDamaged, "it cannot be read: " + digest.message()};
  if (*digest != seal.sha256) return {SealVerdict::kDamaged, "its SHA-256 is not the one it was kept with"};
  return {SealVerdict::kGood, ""};
}

}  // namespace

std::string SealPath(const std::string& path) { return path + ".sha256"; }

Status WriteSeal(const std::string& path, const FileSeal& seal) {
  const std::string final_path = SealPath(path), temp = final_path + ".tmp";
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Fail("cannot write " + temp + ": " + ErrnoText(errno));
  Status written = WriteAll(fd, std::to_string(seal.size) + " " + ToHex(seal.sha256) + "\n");
  if (close(fd) != 0 && written.ok()) written = Fail(ErrnoText(errno));
  if (written.ok() && ::rename(temp.c_str(), final_path.c_str()) != 0) written = Fail(ErrnoText(errno));
  if (written.ok()) return Status::Ok();
  ::unlink(temp.c_str());
  return Fail("cannot write " + final_path + ": " + written.message());
}

Result<FileSeal> SealFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Fail("cannot read " + path + ": " + ErrnoText(errno));
  struct stat info{};
  auto digest = Sha256OfFile(fd);
  bool sized = fstat(fd, &info) == 0;
  std::string why = ErrnoText(errno);
  close(fd);
  if (!digest.ok()) return Fail("cannot read " + path + ": " + digest.message());
  if (!sized) return Fail("cannot read " + path + ": " + why);
  FileSeal seal{static_cast<uint64_t>(info.st_size), std::move(*digest)};
  if (Status written = WriteSeal(path, seal); !written.ok()) return Fail(written.message());
  return seal;
}

Result<FileSeal> ReadSeal(const std::string& path) {
  const std::string seal_path = SealPath(path);
  int fd = open(seal_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Fail("cannot read " + seal_path + ": " + ErrnoText(errno));
  std::string text(kMaxSealBytes, '\0');
  ssize_t n = pread(fd, text.data(), text.size(), 0);
  close(fd);
  if (n < 0) return Fail("cannot read " + seal_path + ": " + ErrnoText(errno));
  text.resize(static_cast<size_t>(n));
  std::istringstream line(text);
  FileSeal seal;
  std::string hex, rest;
  if (!(line >> seal.size >> hex) || (line >> rest) || (seal.sha256 = FromHex(hex)).size() != 32)
    return Fail(seal_path + " is not a seal");
  return seal;
}

Status RenameSealed(const std::string& from, const std::string& to) {
  if (::rename(SealPath(from).c_str(), SealPath(to).c_str()) != 0) {
    if (errno != ENOENT) return Fail("cannot move " + SealPath(from) + ": " + ErrnoText(errno));
    // An unsealed file: a seal left at `to` would describe another file.
    if (::unlink(SealPath(to).c_str()) != 0 && errno != ENOENT)
      return Fail("cannot remove " + SealPath(to) + ": " + ErrnoText(errno));
  }
  if (::rename(from.c_str(), to.c_str()) != 0) return Fail("cannot move " + from + ": " + ErrnoText(errno));
  return Status::Ok();
}

void RemoveSealed(const std::string& path) {
  ::unlink(path.c_str());
  ::unlink(SealPath(path).c_str());
}

void SyncSealed(const std::string& path) {
  SyncPath(path, O_NOFOLLOW);
  SyncPath(SealPath(path), O_NOFOLLOW);
  SyncPath(std::filesystem::path(path).parent_path(), O_DIRECTORY);
}

SealCheck CheckSeal(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  const int open_error = errno;
  const bool sealed = ::access(SealPath(path).c_str(), F_OK) == 0;
  if (fd < 0 && open_error == ENOENT)
    return sealed ? SealCheck{SealVerdict::kMissing, "it is gone from the spool (deleted since it was kept)"}
                  : SealCheck{SealVerdict::kAbsent, ""};
  if (fd < 0) return {SealVerdict::kDamaged, "it cannot be opened: " + ErrnoText(open_error)};
  SealCheck check{SealVerdict::kUnsealed, ""};
  if (sealed) {
    auto seal = ReadSeal(path);
    check = seal.ok() ? Compare(fd, *seal) : SealCheck{SealVerdict::kDamaged, seal.message()};
  }
  close(fd);
  return check;
}

}  // namespace queue::spool
