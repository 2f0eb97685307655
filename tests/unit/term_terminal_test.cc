// Tests of term: termios/window-size capture and apply, and the stub's raw mode,
// on a pty pair each test opens for itself.
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>

#include "term/raw_mode.h"
#include "term/terminal_settings.h"

namespace queue::term {
namespace {

// A pty master and its slave. O_NOCTTY keeps the slave from becoming the test
// process's controlling terminal.
class PtyPair {
 public:
  PtyPair() {
    master_ = posix_openpt(O_RDWR | O_NOCTTY);
    if (master_ < 0 || grantpt(master_) != 0 || unlockpt(master_) != 0) return;
    const char* name = ptsname(master_);
    if (name != nullptr) slave_ = open(name, O_RDWR | O_NOCTTY);
  }
  ~PtyPair() {
    if (slave_ >= 0) close(slave_);
    if (master_ >= 0) close(master_);
  }
  PtyPair(const PtyPair&) = delete;
  PtyPair& operator=(const PtyPair&) = delete;

  bool ok() const { return master_ >= 0 && slave_ >= 0; }
  int master() const { return master_; }
  int slave() const { return slave_; }

 private:
  int master_ = -1;
  int slave_ = -1;
};

termios ModesOf(int fd) {
  termios mode{};
  EXPECT_EQ(tcgetattr(fd, &mode), 0);
  return mode;
}

void ExpectSameModes(const termios& a, const termios& b) {
  EXPECT_EQ(a.c_iflag, b.c_iflag);
  EXPECT_EQ(a.c_oflag, b.c_oflag);
  EXPECT_EQ(a.c_cflag, b.c_cflag);
  EXPECT_EQ(a.c_lflag, b.c_lflag);
  for (int i = 0; i < NCCS; ++i) EXPECT_EQ(a.c_cc[i], b.c_cc[i]) << "control char " << i;
  EXPECT_EQ(cfgetispeed(&a), cfgetispeed(&b));
  EXPECT_EQ(cfgetospeed(&a), cfgetospeed(&b));
}

// Whatever the slave can read within a short wait.
std::string ReadAvailable(int fd) {
  std::string out;
  pollfd p{fd, POLLIN, 0};
  while (poll(&p, 1, 200) == 1 && (p.revents & POLLIN)) {
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

TEST(TermSettings, CaptureReadsModesSizeAndSpeed) {
  PtyPair pty;
  ASSERT_TRUE(pty.ok());
  termios mode = ModesOf(pty.slave());
  cfsetispeed(&mode, B9600);
  cfsetospeed(&mode, B9600);
  ASSERT_EQ(tcsetattr(pty.slave(), TCSANOW, &mode), 0);
  ASSERT_TRUE(SetWindowSize(pty.slave(), {.rows = 24, .cols = 80, .xpixel = 640, .ypixel = 480}));

  auto captured = CaptureTerminal(pty.slave());
  ASSERT_TRUE(captured.ok()) << captured.message();
  termios now = ModesOf(pty.slave());
  EXPECT_TRUE(captured->present);
  EXPECT_EQ(captured->lflag, static_cast<uint32_t>(now.c_lflag));
  EXPECT_EQ(captured->iflag, static_cast<uint32_t>(now.c_iflag));
  ASSERT_EQ(captured->control_chars.size(), size_t{NCCS});
  EXPECT_EQ(captured->control_chars[VINTR], now.c_cc[VINTR]);
  EXPECT_EQ(captured->ispeed, 9600u);
  EXPECT_EQ(captured->ospeed, 9600u);
  EXPECT_EQ(captured->rows, 24);
  EXPECT_EQ(captured->cols, 80);
  EXPECT_EQ(captured->xpixel, 640);
  EXPECT_EQ(captured->ypixel, 480);
}

TEST(TermSettings, CaptureOfNonTerminalFails) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  auto captured = CaptureTerminal(fds[0]);
  EXPECT_FALSE(captured.ok());
  EXPECT_NE(captured.message().find("file descriptor"), std::string::npos);
  close(fds[0]);
  close(fds[1]);
}

TEST(TermSettings, ApplyThenCaptureRoundTrips) {
  PtyPair source, target;
  ASSERT_TRUE(source.ok() && target.ok());
  termios mode = ModesOf(source.slave());
  mode.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHOCTL);
  mode.c_iflag |= IXANY;
  mode.c_oflag &= ~static_cast<tcflag_t>(ONLCR);
  mode.c_cc[VINTR] = 0x07;
  mode.c_cc[VERASE] = 0x08;
  cfsetispeed(&mode, B19200);
  cfsetospeed(&mode, B19200);
  ASSERT_EQ(tcsetattr(source.slave(), TCSANOW, &mode), 0);
  ASSERT_TRUE(SetWindowSize(source.slave(), {.rows = 33, .cols = 101, .xpixel = 7, .ypixel = 9}));

  auto sent = CaptureTerminal(source.slave());
  ASSERT_TRUE(sent.ok()) << sent.message();
  ASSERT_NE(sent.value(), CaptureTerminal(target.slave()).value());
  Status applied = ApplyTerminal(target.slave(), *sent);
  ASSERT_TRUE(applied.ok()) << applied.message();

  auto received = CaptureTerminal(target.slave());
  ASSERT_TRUE(received.ok());
  EXPECT_EQ(received.value(), sent.value());
  ExpectSameModes(ModesOf(target.slave()), mode);
}

TEST(TermSettings, ApplyOfAbsentSettingsLeavesTerminalAlone) {
  PtyPair pty;
  ASSERT_TRUE(pty.ok());
  ASSERT_TRUE(SetWindowSize(pty.slave(), {.rows = 10, .cols = 20}));
  auto before = CaptureTerminal(pty.slave());
  ASSERT_TRUE(before.ok());

  wire::TerminalSettings absent = *before;
  absent.present = false;
  absent.lflag = 0;
  absent.rows = 99;
  EXPECT_TRUE(ApplyTerminal(pty.slave(), absent));
  EXPECT_EQ(CaptureTerminal(pty.slave()).value(), before.value());
}

TEST(TermSettings, UnknownSpeedKeepsCurrentSpeed) {
  PtyPair pty;
  ASSERT_TRUE(pty.ok());
  auto settings = CaptureTerminal(pty.slave());
  ASSERT_TRUE(settings.ok());
  uint32_t speed = settings->ospeed;
  settings->ispeed = 0;        // would hang the line up
  settings->ospeed = 12345;    // no such rate
  settings->lflag &= ~static_cast<uint32_t>(ECHO);
  ASSERT_TRUE(ApplyTerminal(pty.slave(), *settings));
  auto after = CaptureTerminal(pty.slave());
  EXPECT_EQ(after->ospeed, speed);
  EXPECT_EQ(after->lflag & ECHO, 0u);  // the rest still applied
}

TEST(TermSettings, WindowSizeRoundTrips) {
  PtyPair pty;
  ASSERT_TRUE(pty.ok());
  for (wire::WindowSize size : {wire::WindowSize{.rows = 1, .cols = 2, .xpixel = 3, .ypixel = 4},
                                wire::WindowSize{.rows = 65535, .cols = 300}}) {
    ASSERT_TRUE(SetWindowSize(pty.slave(), size));
    // The master and the slave share one size: the size the job's pty reports.
    auto read = ReadWindowSize(pty.master());
    ASSERT_TRUE(read.ok()) << read.message();
    EXPECT_EQ(read->rows, size.rows);
    EXPECT_EQ(read->cols, size.cols);
    EXPECT_EQ(read->xpixel, size.xpixel);
    EXPECT_EQ(read->ypixel, size.ypixel);
  }
}

TEST(TermSettings, WindowSizeOfNonTerminalFails) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  EXPECT_FALSE(ReadWindowSize(fds[0]).ok());
  EXPECT_FALSE(SetWindowSize(fds[1], {.rows = 1, .cols = 1}).ok());
  EXPECT_FALSE(IsForegroundOf(fds[0]));
  close(fds[0]);
  close(fds[1]);
}

TEST(TermSettings, NotForegroundOfAPtyThatIsNotOurs) {
  PtyPair pty;
  ASSERT_TRUE(pty.ok());
  EXPECT_FALSE(IsForegroundOf(pty.slave()));
}

TEST(TermRawMode, EnterClearsLineDisciplineFlags) {
  PtyPair pty;
  ASSERT_TRUE(pty.ok());
  termios original = ModesOf(pty.slave());
  ASSERT_TRUE(original.c_lflag & ICANON);  // a fresh pty is cooked

  auto guard = RawModeGuard::Enter(pty.slave(), /*output_is_tty=*/true);
  ASSERT_TRUE(guard.ok()) << guard.message();
  EXPECT_TRUE(guard->is_raw());
  termios raw = ModesOf(pty.slave());
  for (tcflag_t flag : {ICANON, ISIG, ECHO, ECHOE, ECHOK, ECHONL, IEXTEN})
    EXPECT_EQ(raw.c_lflag & flag, 0u) << "lflag " << flag;
  for (tcflag_t flag : {ICRNL, INLCR, IGNCR, IXON, IXOFF, ISTRIP})
    EXPECT_EQ(raw.c_iflag & flag, 0u) << "iflag " << flag;
  EXPECT_EQ(raw.c_oflag & OPOST, 0u);
  EXPECT_EQ(raw.c_cc[VMIN], 1);
  EXPECT_EQ(raw.c_cc[VTIME], 0);
  EXPECT_EQ(raw.c_cflag, original.c_cflag);
  ExpectSameModes(guard->original(), original);
}

TEST(TermRawMode, OutputProcessingStaysWhenOutputIsNotATerminal) {
  PtyPair pty;
  ASSERT_TRUE(pty.ok());
  ASSERT_TRUE(ModesOf(pty.slave()).c_oflag & OPOST);
  auto guard = RawModeGuard::Enter(pty.slave(), /*output_is_tty=*/false);
  ASSERT_TRUE(guard.ok());
  termios raw = ModesOf(pty.slave());
  EXPECT_TRUE(raw.c_oflag & OPOST);
  EXPECT_EQ(raw.c_lflag & ICANON, 0u);
}

TEST(TermRawMode, BytesPassUnchangedAndAreNotEchoed) {
  PtyPair pty;
  ASSERT_TRUE(pty.ok());
  auto guard = RawModeGuard::Enter(pty.slave(), true);
  ASSERT_TRUE(guard.ok());
  // ^C, ^Z and CR without a newline: a cooked tty would eat or translate them.
  const std::string typed = "a\x03\x1a\r";
  ASSERT_EQ(write(pty.master(), typed.data(), typed.size()), static_cast<ssize_t>(typed.size()));
  EXPECT_EQ(ReadAvailable(pty.slave()), typed);
  EXPECT_EQ(ReadAvailable(pty.master()), "");  // no echo
}

TEST(TermRawMode, RestorePutsBackExactModes) {
  PtyPair pty;
  ASSERT_TRUE(pty.ok());
  termios custom = ModesOf(pty.slave());
  custom.c_cc[VINTR] = 0x05;
  custom.c_iflag |= IXANY;
  ASSERT_EQ(tcsetattr(pty.slave(), TCSANOW, &custom), 0);
  termios before = ModesOf(pty.slave());

  auto guard = RawModeGuard::Enter(pty.slave(), true);
  ASSERT_TRUE(guard.ok());
  ASSERT_NE(ModesOf(pty.slave()).c_lflag, before.c_lflag);
  ASSERT_TRUE(guard->Restore());
  EXPECT_FALSE(guard->is_raw());
  ExpectSameModes(ModesOf(pty.slave()), before);
  // Idempotent: a second restore neither fails nor changes anything.
  ASSERT_TRUE(guard->Restore());
  ExpectSameModes(ModesOf(pty.slave()), before);
}

TEST(TermRawMode, DestructorRestores) {
  PtyPair pty;
  ASSERT_TRUE(pty.ok());
  termios before = ModesOf(pty.slave());
  {
    auto guard = RawModeGuard::Enter(pty.slave(), true);
    ASSERT_TRUE(guard.ok());
    ASSERT_EQ(ModesOf(pty.slave()).c_lflag & ICANON, 0u);
  }
  ExpectSameModes(ModesOf(pty.slave()), before);
}

TEST(TermRawMode, ReapplyAfterRestoreAndAfterOutsideChange) {
  PtyPair pty;
  ASSERT_TRUE(pty.ok());
  termios before = ModesOf(pty.slave());
  auto guard = RawModeGuard::Enter(pty.slave(), true);
  ASSERT_TRUE(guard.ok());
  termios raw = ModesOf(pty.slave());

  ASSERT_TRUE(guard->Restore());  // the stub stops itself
  ASSERT_TRUE(guard->Reapply());  // SIGCONT
  EXPECT_TRUE(guard->is_raw());
  ExpectSameModes(ModesOf(pty.slave()), raw);

  // The shell restored cooked modes behind the guard's back while stopped.
  ASSERT_EQ(tcsetattr(pty.slave(), TCSANOW, &before), 0);
  ASSERT_TRUE(guard->Reapply());
  ASSERT_TRUE(guard->Reapply());
  ExpectSameModes(ModesOf(pty.slave()), raw);
  ASSERT_TRUE(guard->Restore());
  ExpectSameModes(ModesOf(pty.slave()), before);
}

TEST(TermRawMode, MoveTransfersTheDutyToRestore) {
  PtyPair pty;
  ASSERT_TRUE(pty.ok());
  termios before = ModesOf(pty.slave());
  auto entered = RawModeGuard::Enter(pty.slave(), true);
  ASSERT_TRUE(entered.ok());
  {
    RawModeGuard outer = std::move(entered).value();
    {
      RawModeGuard moved_from = std::move(outer);
      outer = std::move(moved_from);
    }  // the moved-from guard must not restore
    EXPECT_EQ(ModesOf(pty.slave()).c_lflag & ICANON, 0u);
    EXPECT_TRUE(outer.is_raw());
  }
  ExpectSameModes(ModesOf(pty.slave()), before);
}

TEST(TermRawMode, EnterOnNonTerminalFails) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  auto guard = RawModeGuard::Enter(fds[0], true);
  EXPECT_FALSE(guard.ok());
  close(fds[0]);
  close(fds[1]);
}

}  // namespace
}  // namespace queue::term
