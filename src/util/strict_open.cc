// Opening a file for root without following others' links.
#include "util/strict_open.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace queue::util {

namespace {

// Whether `st` belongs to root or us and no one else may write it.
std::string Unsafe(const struct stat& st, const std::string& what) {
  if (st.st_uid != 0 && st.st_uid != geteuid())
    return what + " belongs to uid " + std::to_string(st.st_uid);
  if ((st.st_mode & 022) != 0) return what + " is writable by others (mode " + std::to_string(st.st_mode & 07777) + ")";
  return "";
}

}  // namespace

Result<int> OpenForAppendStrictly(const std::string& path) {
  if (path.empty() || path.front() != '/') return Fail(path + ": not an absolute path");
  const size_t slash = path.rfind('/');
  const std::string name = path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") return Fail(path + ": names no file");
  char resolved[PATH_MAX];
  const std::string parent = slash == 0 ? "/" : path.substr(0, slash);
  if (realpath(parent.c_str(), resolved) == nullptr) return Fail(parent + ": " + ErrnoText(errno));
  // Every directory from the file's up to /. Above the file's own, a sticky
  // directory others may write (/tmp) is allowed: in it only an entry's
  // owner may rename or remove it, and the entry below was checked to be
  // root's (or ours).
  std::string dir = resolved;
  for (std::string at = dir;;) {
    struct stat st {};
    if (lstat(at.c_str(), &st) != 0) return Fail(at + ": " + ErrnoText(errno));
    std::string why = Unsafe(st, "directory " + at);
    const bool sticky_above = at != dir && (st.st_mode & S_ISVTX) != 0 && (st.st_uid == 0 || st.st_uid == geteuid());
    if (!why.empty() && !sticky_above) return Fail(why);
    if (at == "/") break;
    size_t up = at.rfind('/');
    at = up == 0 ? "/" : at.substr(0, up);
  }
  int dirfd = open(dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (dirfd < 0) return Fail(dir + ": " + ErrnoText(errno));
  // O_NONBLOCK: a FIFO put there must not hang the daemon's loop.
  int fd = openat(dirfd, name.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC | O_NONBLOCK,
                  0600);
  int open_errno = errno;
  close(dirfd);
  if (fd < 0)
    return Fail(path + ": " + (open_errno == ELOOP ? std::string("a symbolic link") : ErrnoText(open_errno)));
  struct stat st {};
  std::string why;
  if (fstat(fd, &st) != 0)
    why = ErrnoText(errno);
  else if (!S_ISREG(st.st_mode))
    why = "not a regular file";
  else if (st.st_nlink != 1)
    why = "has " + std::to_string(st.st_nlink) + " links";
  else
    why = Unsafe(st, "the file");
  if (!why.empty()) {
    close(fd);
    return Fail(path + ": " + why);
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

}  // namespace queue::util
