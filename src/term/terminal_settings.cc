// Conversion between a tty's termios/winsize and wire::TerminalSettings.
#include "term/terminal_settings.h"

#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "util/fd_io.h"

namespace queue::term {
namespace {

struct SpeedCode {
  speed_t code;
  uint32_t baud;
};

// B* codes are opaque bit patterns on Linux, so the wire carries the baud rate.
constexpr SpeedCode kSpeeds[] = {
    {B0, 0},           {B50, 50},         {B75, 75},           {B110, 110},
    {B134, 134},       {B150, 150},       {B200, 200},         {B300, 300},
    {B600, 600},       {B1200, 1200},     {B1800, 1800},       {B2400, 2400},
    {B4800, 4800},     {B9600, 9600},     {B19200, 19200},     {B38400, 38400},
    {B57600, 57600},   {B115200, 115200}, {B230400, 230400},   {B460800, 460800},
    {B500000, 500000}, {B576000, 576000}, {B921600, 921600},   {B1000000, 1000000},
    {B1152000, 1152000}, {B1500000, 1500000}, {B2000000, 2000000}, {B2500000, 2500000},
    {B3000000, 3000000}, {B3500000, 3500000}, {B4000000, 4000000},
};

uint32_t BaudOf(speed_t code) {
  for (const auto& s : kSpeeds)
    if (s.code == code) return s.baud;
  return 0;  // unknown: the receiver keeps its own speed
}

// Baud 0 would hang the line up, and an unknown rate cannot be set; both keep
// the terminal's current speed, which on a pty only matters to programs that ask.
void SetSpeedIfKnown(termios& mode, uint32_t baud, int (*set)(termios*, speed_t)) {
  if (baud == 0) return;
  for (const auto& s : kSpeeds)
    if (s.baud == baud) set(&mode, s.code);
}

// tcsetattr may be interrupted by a signal the stub is relaying; retry then.
int SetAttrRetrying(int fd, const termios& mode) {
  int rc;
  do rc = tcsetattr(fd, TCSANOW, &mode);
  while (rc != 0 && errno == EINTR);
  return rc;
}

void MergeInto(termios& mode, const wire::TerminalSettings& s) {
  mode.c_iflag = static_cast<tcflag_t>(s.iflag);
  mode.c_oflag = static_cast<tcflag_t>(s.oflag);
  mode.c_cflag = static_cast<tcflag_t>(s.cflag);
  mode.c_lflag = static_cast<tcflag_t>(s.lflag);
  for (size_t i = 0; i < s.control_chars.size() && i < NCCS; ++i)
    mode.c_cc[i] = static_cast<cc_t>(s.control_chars[i]);
  SetSpeedIfKnown(mode, s.ispeed, cfsetispeed);
  SetSpeedIfKnown(mode, s.ospeed, cfsetospeed);
}

}  // namespace

Result<wire::TerminalSettings> CaptureTerminal(int fd) {
  termios mode{};
  if (tcgetattr(fd, &mode) != 0)
    return Fail("Cannot read the terminal modes of " + FdName(fd) + ": " + ErrnoText(errno) + ".");
  auto size = ReadWindowSize(fd);
  if (!size.ok()) return size.error();

  wire::TerminalSettings s;
  s.present = true;
  s.iflag = static_cast<uint32_t>(mode.c_iflag);
  s.oflag = static_cast<uint32_t>(mode.c_oflag);
  s.cflag = static_cast<uint32_t>(mode.c_cflag);
  s.lflag = static_cast<uint32_t>(mode.c_lflag);
  s.control_chars.assign(mode.c_cc, mode.c_cc + NCCS);
  s.ispeed = BaudOf(cfgetispeed(&mode));
  s.ospeed = BaudOf(cfgetospeed(&mode));
  s.rows = size->rows;
  s.cols = size->cols;
  s.xpixel = size->xpixel;
  s.ypixel = size->ypixel;
  return s;
}

Status ApplyTerminal(int fd, const wire::TerminalSettings& settings) {
  if (!settings.present) return Status::Ok();
  // Start from the current modes so fields the wire does not carry (c_line) stay.
  termios mode{};
  if (tcgetattr(fd, &mode) != 0)
    return Fail("Cannot read the terminal modes of " + FdName(fd) + ": " + ErrnoText(errno) + ".");
  MergeInto(mode, settings);
  if (SetAttrRetrying(fd, mode) != 0)
    return Fail("Cannot set the terminal modes of " + FdName(fd) + ": " + ErrnoText(errno) + ".");
  wire::WindowSize size;
  size.rows = settings.rows;
  size.cols = settings.cols;
  size.xpixel = settings.xpixel;
  size.ypixel = settings.ypixel;
  return SetWindowSize(fd, size);
}

Result<wire::WindowSize> ReadWindowSize(int fd) {
  winsize ws{};
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0)
    return Fail("Cannot read the window size of " + FdName(fd) + ": " + ErrnoText(errno) + ".");
  wire::WindowSize size;
  size.rows = ws.ws_row;
  size.cols = ws.ws_col;
  size.xpixel = ws.ws_xpixel;
  size.ypixel = ws.ws_ypixel;
  return size;
}

Status SetWindowSize(int fd, const wire::WindowSize& size) {
  winsize ws{};
  ws.ws_row = size.rows;
  ws.ws_col = size.cols;
  ws.ws_xpixel = size.xpixel;
  ws.ws_ypixel = size.ypixel;
  if (ioctl(fd, TIOCSWINSZ, &ws) != 0)
    return Fail("Cannot set the window size of " + FdName(fd) + ": " + ErrnoText(errno) + ".");
  return Status::Ok();
}

bool IsForegroundOf(int fd) {
  pid_t foreground = tcgetpgrp(fd);
  return foreground != -1 && foreground == getpgrp();
}

}  // namespace queue::term
