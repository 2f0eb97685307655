// Creating, checking and reading the cluster key file; see cluster_key.h.
#include "auth/cluster_key.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace queue::auth {
namespace {

constexpr std::size_t kHexDigits = 2 * kKeyBytes;
// Room for the digits of two keys and generous trailing whitespace; anything
// longer is not a key file, and reading it whole would let a wrong path cost
// unbounded memory.
constexpr std::size_t kMaxFileBytes = 512;

// Owns a file descriptor, so every early return closes it.
class OpenFile {
 public:
  explicit OpenFile(int fd) : fd_(fd) {}
  ~OpenFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;

  int fd() const { return fd_; }
  // Closes now and returns the errno of close(), or 0: a failed close can mean
  // the data never reached the disk.
  int Close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

// Overwrites a secret held in a string before its memory is released.
class SecretWiper {
 public:
  explicit SecretWiper(std::string& secret) : secret_(secret) {}
  ~SecretWiper() { OPENSSL_cleanse(secret_.data(), secret_.size()); }
  SecretWiper(const SecretWiper&) = delete;
  SecretWiper& operator=(const SecretWiper&) = delete;

 private:
  std::string& secret_;
};

std::string ToHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * bytes.size());
  for (unsigned char b : bytes) {
    hex.push_back(kDigits[b >> 4]);
    hex.push_back(kDigits[b & 0x0f]);
  }
  return hex;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Returns 0 or the errno of the failed write.
int WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

// Writes `text` to the new file and makes it durable. Returns 0 or an errno.
int FillNewFile(OpenFile& file, std::string_view text) {
  // The mode given to open() is reduced by the umask; state it exactly.
  if (::fchmod(file.fd(), 0600) != 0) return errno;
  if (int err = WriteAll(file.fd(), text); err != 0) return err;
  if (::fsync(file.fd()) != 0) return errno;
  return file.Close();
}

// Makes the new directory entry durable too. Best effort: the key itself is
// already on disk, and a directory we cannot open for this is not an error.
void SyncParentDirectory(const std::string& path) {
  std::size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string OctalMode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

Status CheckAttributes(const std::string& path, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) {
    return Fail("The cluster key file " + path + " is not a regular file; point to the file made by `queued --keygen`.");
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    return Fail("The cluster key file " + path + " is owned by uid " + std::to_string(st.st_uid) +
                ", not by this user (uid " + std::to_string(::geteuid()) +
                ") or root; refusing a key that another user could replace.");
  }
  if ((st.st_mode & 077) != 0) {
    return Fail("The cluster key file " + path + " has mode " + OctalMode(st.st_mode) +
                ", so group or others can access it; run `chmod 600 " + path +
                "` (and consider making a new key if others may have read it).");
  }
  return Status::Ok();
}

// Reads at most kMaxFileBytes + 1 bytes: enough to tell that a file is too long.
Result<std::string> ReadBounded(const std::string& path, int fd) {
  std::string text(kMaxFileBytes + 1, '\0');
  std::size_t used = 0;
  while (used < text.size()) {
    ssize_t n = ::read(fd, text.data() + used, text.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      return Fail("Cannot read the cluster key file " + path + ": " + ErrnoText(err) + ".");
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  if (used > kMaxFileBytes) {
    return Fail("The cluster key file " + path + " is larger than " + std::to_string(kMaxFileBytes) +
                " bytes, so it is not a key file made by `queued --keygen`.");
  }
  text.resize(used);
  return text;
}

// One line: exactly kHexDigits hex digits, then optional whitespace.
bool DecodeKeyLine(std::string_view line, std::string& key) {
  std::size_t end = line.find_last_not_of(" \t\r");
  line = line.substr(0, end == std::string_view::npos ? 0 : end + 1);
  if (line.size() != kHexDigits) return false;
  for (std::size_t i = 0; i < kHexDigits; i += 2) {
    int high = HexValue(line[i]);
    int low = HexValue(line[i + 1]);
    if (high < 0 || low < 0) return false;
    key.push_back(static_cast<char>(high << 4 | low));
  }
  return true;
}

void WipeKeys(std::vector<std::string>& keys) {
  for (std::string& key : keys) OPENSSL_cleanse(key.data(), key.size());
}

Result<std::vector<std::string>> DecodeKeyText(const std::string& path, std::string_view text) {
  std::size_t end = text.find_last_not_of(" \t\r\n");
  text = text.substr(0, end == std::string_view::npos ? 0 : end + 1);
  std::vector<std::string> keys;
  bool well_formed = !text.empty();
  while (well_formed && !text.empty()) {
    std::size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
    keys.emplace_back();
    keys.back().reserve(kKeyBytes);
    well_formed = keys.size() <= kMaxKeysPerFile && DecodeKeyLine(line, keys.back());
  }
  if (!well_formed) {
    WipeKeys(keys);
    return Fail("The cluster key file " + path + " does not hold one or " + std::to_string(kMaxKeysPerFile) +
                " lines of exactly " + std::to_string(kHexDigits) +
                " hex digits; copy it again from another host, or make a new key with `queued --keygen` for every host.");
  }
  return keys;
}

}  // namespace

std::string RandomBytes(std::size_t n) {
  std::string bytes(n, '\0');
  for (std::size_t done = 0; done < n;) {
    // Up to 256 bytes come whole; more may come in parts, or be cut by a signal.
    ssize_t got = getrandom(bytes.data() + done, n - done, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      std::fprintf(stderr, "queue: the kernel's random number generator failed (%s); stopping rather than use weak keys.\n",
                   got < 0 ? std::strerror(errno) : "it returned nothing");
      std::abort();
    }
    done += static_cast<std::size_t>(got);
  }
  return bytes;
}

Status WriteNewKeyFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  int open_errno = errno;
  if (fd < 0 && open_errno == EEXIST) {
    return Fail("Refusing to overwrite " + path +
                ", which already exists; remove it first if you really want a new cluster key (every host will then need the new one).");
  }
  if (fd < 0) return Fail("Cannot create the cluster key file " + path + ": " + ErrnoText(open_errno) + ".");
  OpenFile file(fd);
  std::string key = RandomBytes(kKeyBytes);
  SecretWiper wipe_key(key);
  std::string text = ToHex(key) + "\n";
  SecretWiper wipe_text(text);
  if (int err = FillNewFile(file, text); err != 0) {
    ::unlink(path.c_str());
    return Fail("Cannot write the cluster key file " + path + ": " + ErrnoText(err) + "; the partial file was removed.");
  }
  SyncParentDirectory(path);
  return Status::Ok();
}

Result<std::vector<std::string>> LoadKeyFileKeys(const std::string& path) {
  // O_NONBLOCK: opening a FIFO put in the key's place must not hang the daemon.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    return Fail("Cannot open the cluster key file " + path + ": " + ErrnoText(err) +
                "; create one with `queued --keygen " + path + "` and copy it to every host.");
  }
  OpenFile file(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    return Fail("Cannot inspect the cluster key file " + path + ": " + ErrnoText(err) + ".");
  }
  if (Status checked = CheckAttributes(path, st); !checked.ok()) return Fail(checked.message());
  Result<std::string> text = ReadBounded(path, fd);
  if (!text.ok()) return Fail(text.message());
  SecretWiper wipe_text(*text);
  return DecodeKeyText(path, *text);
}

Result<std::string> LoadKeyFile(const std::string& path) {
  Result<std::vector<std::string>> keys = LoadKeyFileKeys(path);
  if (!keys.ok()) return Fail(keys.message());
  std::string current = std::move(keys->front());
  WipeKeys(*keys);
  return current;
}

std::string KeyIdentity(const std::string& key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  return "queue-" + ToHex(std::string_view(reinterpret_cast<const char*>(digest), 4));
}

}  // namespace queue::auth
