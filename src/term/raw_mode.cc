// Raw mode for the stub's local tty, restored on every exit path the guard sees.
#include "term/raw_mode.h"

#include <cerrno>
#include <string>
#include <utility>

#include "util/fd_io.h"

namespace queue::term {
namespace {

// tcsetattr may be interrupted by a signal the stub is relaying; retry then.
bool SetModes(int fd, const termios& mode) {
  int rc;
  do rc = tcsetattr(fd, TCSANOW, &mode);
  while (rc != 0 && errno == EINTR);
  return rc == 0;
}

}  // namespace

termios MakeRaw(const termios& mode, bool output_is_tty) {
  termios raw = mode;
  raw.c_iflag &= ~static_cast<tcflag_t>(ICRNL | INLCR | IGNCR | ISTRIP | IXON | IXOFF | IXANY);
#ifdef IUCLC
  raw.c_iflag &= ~static_cast<tcflag_t>(IUCLC);
#endif
  raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ISIG | ECHO | ECHOE | ECHOK | ECHONL | IEXTEN);
  if (output_is_tty) raw.c_oflag &= ~static_cast<tcflag_t>(OPOST);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  return raw;
}

Result<RawModeGuard> RawModeGuard::Enter(int fd, bool output_is_tty) {
  termios original{};
  if (tcgetattr(fd, &original) != 0)
    return Fail("Cannot read the terminal modes of " + FdName(fd) + ": " + ErrnoText(errno) + ".");
  RawModeGuard guard(fd, original, MakeRaw(original, output_is_tty));
  if (Status s = guard.Reapply(); !s.ok()) return Error{s.message()};
  return guard;
}

RawModeGuard::RawModeGuard(int fd, const termios& original, const termios& raw)
    : fd_(fd), original_(original), raw_mode_(raw) {}

RawModeGuard::RawModeGuard(RawModeGuard&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      original_(other.original_),
      raw_mode_(other.raw_mode_),
      raw_(std::exchange(other.raw_, false)) {}

RawModeGuard& RawModeGuard::operator=(RawModeGuard&& other) noexcept {
  if (this != &other) {
    (void)Restore();
    fd_ = std::exchange(other.fd_, -1);
    original_ = other.original_;
    raw_mode_ = other.raw_mode_;
    raw_ = std::exchange(other.raw_, false);
  }
  return *this;
}

RawModeGuard::~RawModeGuard() {
  // Nothing useful can be done with a failure here: the tty may be gone.
  (void)Restore();
}

Status RawModeGuard::Restore() {
  if (fd_ < 0 || !raw_) return Status::Ok();
  if (!SetModes(fd_, original_))
    return Fail("Cannot restore the terminal modes of " + FdName(fd_) + ": " + ErrnoText(errno) +
                "; run `stty sane` to repair the terminal.");
  raw_ = false;
  return Status::Ok();
}

Status RawModeGuard::Reapply() {
  if (fd_ < 0) return Fail("The terminal guard was moved away; raw mode cannot be applied.");
  if (!SetModes(fd_, raw_mode_))
    return Fail("Cannot put the terminal on " + FdName(fd_) + " into raw mode: " +
                ErrnoText(errno) + ".");
  raw_ = true;
  return Status::Ok();
}

}  // namespace queue::term
