// Blocking-style I/O that also works on a non-blocking descriptor we must not change.
#include "util/fd_io.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace queue {

namespace {

// Until fd is ready for `events` (or has an error or hang-up for the next
// call to report). A descriptor poll() cannot watch is reported ready, and
// the call that follows says what is wrong with it.
void WaitFor(int fd, short events) {
  pollfd watched{fd, events, 0};
  while (poll(&watched, 1, -1) < 0 && errno == EINTR) {
  }
}

}  // namespace

int WriteFully(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      WaitFor(fd, POLLOUT);
      continue;
    }
    return n < 0 ? errno : EIO;  // write() of a non-empty buffer never returns 0 on Linux
  }
  return 0;
}

ssize_t ReadSome(int fd, char* buffer, size_t size) {
  for (;;) {
    ssize_t n = read(fd, buffer, size);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      WaitFor(fd, POLLIN);
      continue;
    }
    return -errno;
  }
}

std::string FdName(int fd) { return "file descriptor " + std::to_string(fd); }

}  // namespace queue
