// "Remote jobs that feel local" (SPEC §2-§4), end to end: real daemons on
// loopback, every job submitted through host 0 and run on host 1, and the pty
// cases driven through a real terminal (a tmux server of our own).
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "cluster_fixture.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kTmux = "/usr/bin/tmux";

std::string SearchPath() {
  const char* path = std::getenv("PATH");
  return BinDir() + ":" + (path != nullptr ? path : "/usr/bin:/bin");
}

// Every line of `text` (without the newline).
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

bool HasLine(const std::string& text, const std::string& wanted) {
  auto lines = Lines(text);
  return std::find(lines.begin(), lines.end(), wanted) != lines.end();
}

// The largest N of "tickN" on the screen, 0 when there is none.
int LastTick(const std::string& screen) {
  static const std::regex tick("tick([0-9]+)");
  int last = 0;
  for (auto it = std::sregex_iterator(screen.begin(), screen.end(), tick); it != std::sregex_iterator(); ++it)
    last = std::max(last, std::stoi((*it)[1]));
  return last;
}

// A process is gone once it is reaped, or a zombie nobody will run again.
bool ProcessGone(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return true;
  auto close_paren = stat.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < stat.size() && stat[close_paren + 2] == 'Z';
}

std::optional<pid_t> PidFromFile(const std::string& path, std::chrono::milliseconds timeout) {
  if (!WaitUntil([&] { return ReadFile(path).find('\n') != std::string::npos; }, timeout)) return std::nullopt;
  return static_cast<pid_t>(std::stoi(ReadFile(path)));
}

// Waits for a change of state of a child, stops included.
std::optional<int> WaitChildOrStop(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t done = waitpid(pid, &status, WNOHANG | WUNTRACED);
    if (done == pid) return status;
    if (done < 0 || std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

// Stubs started in the background, killed and reaped by the destructor if the
// test leaves early, so that no stub (and through it no job) outlives a test.
class Stubs {
 public:
  Stubs() = default;
  Stubs(const Stubs&) = delete;
  Stubs& operator=(const Stubs&) = delete;
  ~Stubs() {
    for (pid_t pid : live_) {
      kill(pid, SIGKILL);
      WaitChild(pid, 5000ms);
    }
  }

  Background Start(const std::vector<std::string>& argv, const std::vector<std::string>& env, const std::string& out,
                   const std::string& err) {
    auto stub = StartBackground(argv, env, out, err);
    live_.push_back(stub.pid);
    return stub;
  }

  // Until the stub ends (its raw wait status) or, with stops = true, stops.
  std::optional<int> Wait(pid_t pid, std::chrono::milliseconds timeout, bool stops = false) {
    auto status = stops ? WaitChildOrStop(pid, timeout) : WaitChild(pid, timeout);
    if (status && !WIFSTOPPED(*status)) live_.erase(std::remove(live_.begin(), live_.end(), pid), live_.end());
    return status;
  }

 private:
  std::vector<pid_t> live_;
};

// Every process of session `sid` except its leader.
std::vector<pid_t> SessionMembers(pid_t sid) {
  std::vector<pid_t> members;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = ReadFile(entry.path().string() + "/stat");
    auto close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream rest(stat.substr(close_paren + 2));
    std::string state;
    pid_t parent = 0, group = 0, session = 0;
    rest >> state >> parent >> group >> session;
    pid_t pid = std::stoi(name);
    if (session == sid && pid != sid) members.push_back(pid);
  }
  return members;
}

// A terminal the tests type into: a private tmux server (its own -L socket)
// running an interactive bash whose PATH finds `queue` and `qsh` and whose
// QUEUE_SOCKET is host 0's. The server dies with the object.
class Terminal {
 public:
  Terminal(const std::string& workdir, const std::string& queue_socket)
      : socket_("queue-feel-" + std::to_string(getpid()) + "-" +
                std::to_string(std::hash<std::string>{}(workdir) % 1000000007)) {
    std::string rc = workdir + "/bashrc";
    WriteFile(rc, "PS1='$ '\nunset PROMPT_COMMAND\nexport HISTFILE=/dev/null PATH='" + SearchPath() +
                      "' QUEUE_SOCKET='" + queue_socket + "'\n");
    Tmux({"-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24", "-s", "feel", "-c", workdir,
          "bash --rcfile " + rc + " --noprofile -i"});
    started_ = WaitForPrompt(10s);
  }
  // Stubs the shell left behind (stopped, or in the background) die with the
  // terminal; their shepherds then hang up and kill the jobs.
  ~Terminal() {
    std::string shell = Tmux({"display-message", "-p", "-t", "feel", "#{pane_pid}"}).out;
    Tmux({"kill-server"});
    if (shell.empty() || shell.find_first_not_of("0123456789\n") != std::string::npos) return;
    for (pid_t pid : SessionMembers(std::stoi(shell))) kill(pid, SIGKILL);
  }
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  bool started() const { return started_; }

  CommandResult Tmux(std::vector<std::string> args) const {
    args.insert(args.begin(), {kTmux, "-L", socket_});
    return RunCommand(args, {{}, "", 10000ms, ""});
  }

  void Type(const std::string& text) const { Tmux({"send-keys", "-t", "feel", "-l", text}); }
  void Key(const std::string& key) const { Tmux({"send-keys", "-t", "feel", key}); }

  // Everything the terminal shows, history included, wrapped lines joined.
  std::string Screen() const { return Tmux({"capture-pane", "-p", "-J", "-t", "feel", "-S", "-2000"}).out; }

  bool WaitFor(const std::regex& pattern, std::chrono::milliseconds timeout) const {
    return WaitUntil([&] { return std::regex_search(Screen(), pattern); }, timeout);
  }
  bool WaitForText(const std::string& text, std::chrono::milliseconds timeout) const {
    return WaitUntil([&] { return Screen().find(text) != std::string::npos; }, timeout);
  }
  // Until the shell prompts again (its prompt is the last line shown).
  bool WaitForPrompt(std::chrono::milliseconds timeout) const {
    return WaitFor(std::regex("(^|\n)\\$ ?\n*$"), timeout);
  }

  // Types `line; echo <marker>$?` and waits for the marker; returns the exit
  // status of the line's last command, or nullopt on timeout.
  std::optional<int> Run(const std::string& line, std::chrono::milliseconds timeout = 20s) {
    std::string marker = "__E" + std::to_string(++runs_) + "__";
    Type(line + "; echo " + marker + "$?__");
    Key("Enter");
    std::regex done(marker + "([0-9]+)__");
    std::smatch match;
    bool seen = WaitUntil(
        [&] {
          std::string screen = Screen();
          return std::regex_search(screen, match, done);
        },
        timeout);
    if (!seen) return std::nullopt;
    std::string screen = Screen();
    if (!std::regex_search(screen, match, done)) return std::nullopt;
    // What the line printed: between the echoed command line and the marker.
    size_t typed = screen.rfind(marker + "$?__", static_cast<size_t>(match.position(0)));
    size_t from = typed == std::string::npos ? 0 : screen.find('\n', typed) + 1;
    last_output_ = screen.substr(from, static_cast<size_t>(match.position(0)) - from);
    return std::stoi(match[1]);
  }
  const std::string& last_output() const { return last_output_; }

 private:
  std::string socket_;
  bool started_ = false;
  int runs_ = 0;
  std::string last_output_;
};

// One two-host cluster per suite: jobs go in through host 0 and run on host 1.
// Its queues take 64 jobs, so that the tests' concurrent jobs (and the
// back-to-back ones: see BackToBackRemoteJobsAreNotRefused) are never
// refused for want of a slot.
class RemoteFeelBase : public ::testing::Test {
 protected:
  static void StartCluster(std::unique_ptr<TestCluster>& cluster, ClusterOptions options = {}) {
    options.profile_extra += "maxexec 64\n";
    cluster = TestCluster::Start(2, std::move(options));
    ASSERT_TRUE(cluster->WaitForView(15s)) << cluster->log(0) << cluster->log(1);
  }

  virtual TestCluster& cluster() = 0;

  std::string Remote() { return cluster().entry(1); }
  std::string Socket() { return "QUEUE_SOCKET=" + cluster().socket(0); }
  std::string Queue() { return BinDir() + "/queue"; }

  // A fresh directory for this test, inside the cluster's.
  std::string WorkDir() {
    std::string dir = cluster().dir() + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir);
    return dir;
  }

  // `queue -h <host 1> ARGS` through host 0.
  CommandResult RunRemote(const std::vector<std::string>& args, CommandOptions options = {}) {
    std::vector<std::string> all{"-h", Remote()};
    all.insert(all.end(), args.begin(), args.end());
    return cluster().Queue(0, all, std::move(options));
  }

  // A shell line with `queue` and `qsh` in PATH and host 0's socket.
  CommandResult Shell(const std::string& script, CommandOptions options = {}) {
    options.env.push_back(Socket());
    options.env.push_back("PATH=" + SearchPath());
    options.env.push_back("REMOTE=" + Remote());
    return RunCommand({"/bin/sh", "-c", script}, options);
  }
};

#define REMOTE_FEEL_SUITE(Name)                                                   \
  class Name : public RemoteFeelBase {                                          \
   protected:                                                                   \
    static void SetUpTestSuite() { StartCluster(shared_); }                     \
    static void TearDownTestSuite() { shared_.reset(); }                        \
    void SetUp() override { ASSERT_NE(shared_, nullptr) << "no cluster"; }     \
    TestCluster& cluster() override { return *shared_; }                        \
    static std::unique_ptr<TestCluster> shared_;                                \
  };                                                                            \
  std::unique_ptr<TestCluster> Name::shared_;

// ---------------------------------------------------------------------------
// 1. The pty, through a real terminal.

class RemoteFeelPty : public RemoteFeelBase {
 protected:
  static void SetUpTestSuite() { StartCluster(shared_); }
  static void TearDownTestSuite() { shared_.reset(); }
  void SetUp() override {
    ASSERT_NE(shared_, nullptr) << "no cluster";
    if (access(kTmux, X_OK) != 0) GTEST_SKIP() << "tmux is not installed";
    dir_ = WorkDir();
    term_ = std::make_unique<Terminal>(dir_, cluster().socket(0));
    ASSERT_TRUE(term_->started()) << term_->Screen();
  }
  void TearDown() override { term_.reset(); }
  TestCluster& cluster() override { return *shared_; }

  // `queue -h <host 1> ` for typing.
  std::string Q() { return "queue -h " + Remote() + " "; }
  std::string File(const std::string& name) { return dir_ + "/" + name; }

  static std::unique_ptr<TestCluster> shared_;
  std::string dir_;
  std::unique_ptr<Terminal> term_;
};
std::unique_ptr<TestCluster> RemoteFeelPty::shared_;

TEST_F(RemoteFeelPty, JobGetsItsOwnPtyOfTheTerminalsSize) {
  auto local = term_->Run("tty; stty size");
  ASSERT_EQ(local, 0) << term_->Screen();
  auto local_lines = Lines(term_->last_output());
  ASSERT_EQ(local_lines.size(), 2U) << term_->last_output();
  for (const char* mode : {"", "-p "}) {
    auto status = term_->Run(Q() + mode + "-- sh -c 'tty; stty size'");
    ASSERT_EQ(status, 0) << term_->Screen();
    auto lines = Lines(term_->last_output());
    ASSERT_EQ(lines.size(), 2U) << term_->last_output();
    EXPECT_TRUE(std::regex_match(lines[0], std::regex("/dev/pts/[0-9]+"))) << lines[0];
    EXPECT_NE(lines[0], local_lines[0]) << "the job must have a pty of its own on its host";
    EXPECT_EQ(lines[1], local_lines[1]) << "the job's window size is the terminal's";
  }
}

TEST_F(RemoteFeelPty, ResizingTheTerminalSendsSigwinchWithTheNewSize) {
  term_->Type(Q() + "-- sh -c 'trap \"stty size\" WINCH; trap \"exit 0\" INT; echo ready; "
                    "while :; do sleep 0.1; done'; echo __W__$?__");
  term_->Key("Enter");
  ASSERT_TRUE(term_->WaitFor(std::regex("\nready"), 10s)) << term_->Screen();
  term_->Tmux({"resize-window", "-t", "feel", "-x", "100", "-y", "30"});
  EXPECT_TRUE(term_->WaitFor(std::regex("\n30 100"), 10s)) << term_->Screen();
  term_->Tmux({"resize-window", "-t", "feel", "-x", "90", "-y", "20"});
  EXPECT_TRUE(term_->WaitFor(std::regex("\n20 90"), 10s)) << term_->Screen();
  term_->Key("C-c");
  EXPECT_TRUE(term_->WaitForText("__W__0__", 10s)) << term_->Screen();
}

TEST_F(RemoteFeelPty, CtrlCReachesTheJobsTrap) {
  term_->Type(Q() + "-- sh -c 'trap \"echo got-INT; exit 42\" INT; echo ready; while :; do sleep 0.1; done'; "
                    "echo __C__$?__");
  term_->Key("Enter");
  ASSERT_TRUE(term_->WaitFor(std::regex("\nready"), 10s)) << term_->Screen();
  term_->Key("C-c");
  EXPECT_TRUE(term_->WaitForText("__C__42__", 10s)) << term_->Screen();
  // The job's pty echoes "^C" just before the trap's line, as a local tty does.
  EXPECT_TRUE(std::regex_search(term_->Screen(), std::regex("\n(\\^C)?got-INT\n"))) << term_->Screen();
}

TEST_F(RemoteFeelPty, CtrlZStopsTheStubAndTheJobAndFgResumesThem) {
  ASSERT_EQ(term_->Run("stty -g > " + File("before")), 0);
  term_->Type(Q() + "-- sh -c 'i=0; while :; do i=$((i+1)); echo tick$i; sleep 0.2; done'");
  term_->Key("Enter");
  ASSERT_TRUE(term_->WaitForText("tick3", 10s)) << term_->Screen();
  term_->Key("C-z");
  ASSERT_TRUE(term_->WaitFor(std::regex("Stopped +queue"), 10s)) << term_->Screen();
  std::this_thread::sleep_for(500ms);  // ticks already in flight
  int at_stop = LastTick(term_->Screen());
  std::this_thread::sleep_for(1200ms);
  EXPECT_EQ(LastTick(term_->Screen()), at_stop) << "the remote job must stop too\n" << term_->Screen();
  term_->Type("fg");
  term_->Key("Enter");
  EXPECT_TRUE(WaitUntil([&] { return LastTick(term_->Screen()) >= at_stop + 3; }, 10s)) << term_->Screen();
  term_->Key("C-c");
  ASSERT_TRUE(term_->WaitForPrompt(10s)) << term_->Screen();
  ASSERT_EQ(term_->Run("stty -g > " + File("after")), 0);
  EXPECT_EQ(ReadFile(File("after")), ReadFile(File("before")));
}

// ^Z then bg: a job that does not read its stdin keeps running in the
// background, as it would locally; the stub leaves the terminal alone there.
TEST_F(RemoteFeelPty, CtrlZThenBgLetsTheJobRunOnInTheBackground) {
  term_->Type(Q() + "-- sh -c 'i=0; while :; do i=$((i+1)); echo tick$i; sleep 0.2; done'");
  term_->Key("Enter");
  ASSERT_TRUE(term_->WaitForText("tick3", 10s)) << term_->Screen();
  term_->Key("C-z");
  ASSERT_TRUE(term_->WaitFor(std::regex("Stopped +queue"), 10s)) << term_->Screen();
  std::this_thread::sleep_for(500ms);
  int at_stop = LastTick(term_->Screen());
  term_->Type("bg");
  term_->Key("Enter");
  EXPECT_TRUE(WaitUntil([&] { return LastTick(term_->Screen()) >= at_stop + 3; }, 10s)) << term_->Screen();
  term_->Type("kill %1");
  term_->Key("Enter");
  // The remote job dies a round trip after bash printed its prompt, and bash
  // reports a background job's end at the next prompt: ask for one until the
  // report shows, however long that round trip takes.
  std::regex ended("(Terminated|Hangup|Done)");
  auto asked = std::chrono::steady_clock::now() - 1s;
  EXPECT_TRUE(WaitUntil(
      [&] {
        if (std::regex_search(term_->Screen(), ended)) return true;
        if (std::chrono::steady_clock::now() - asked >= 300ms) {
          term_->Key("Enter");
          asked = std::chrono::steady_clock::now();
        }
        return false;
      },
      10s))
      << term_->Screen();
}

TEST_F(RemoteFeelPty, TerminalIsRestoredAfterExitAndAfterDeathBySignal) {
  std::string line = "stty -g > " + File("before") + "; " + Q() + "-- sh -c 'echo hi; exit 3'; stty -g > " +
                     File("after-exit") + "; " + Q() + "-- sh -c 'kill -KILL $$'; stty -g > " + File("after-kill");
  ASSERT_TRUE(term_->Run(line, 30s).has_value()) << term_->Screen();
  EXPECT_TRUE(HasLine(term_->Screen(), "hi")) << term_->Screen();
  EXPECT_TRUE(HasLine(term_->Screen(), "Killed")) << "the shell must see the job's SIGKILL\n" << term_->Screen();
  std::string before = ReadFile(File("before"));
  ASSERT_FALSE(before.empty());
  EXPECT_EQ(ReadFile(File("after-exit")), before);
  EXPECT_EQ(ReadFile(File("after-kill")), before);
}

// A pty job that cannot start reports it at once (the shepherd, which holds
// the job's pty as its terminal, must survive the hangup of that pty).
TEST_F(RemoteFeelPty, PtyJobThatCannotStartFailsAtOnceAndRestoresTheTerminal) {
  auto start = std::chrono::steady_clock::now();
  auto status = term_->Run("stty -g > " + File("before") + "; " + Q() + "-- no-such-command-feel; s=$?; stty -g > " +
                               File("after") + "; (exit $s)",
                           20s);
  ASSERT_EQ(status, 2) << term_->Screen();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_TRUE(HasLine(term_->Screen(), "no-such-command-feel: Command not found.")) << term_->Screen();
  EXPECT_EQ(ReadFile(File("after")), ReadFile(File("before")));
}

TEST_F(RemoteFeelPty, TerminalIsRestoredWhenTheConnectionToTheJobIsLost) {
  std::string pidfile = File("job.pid");
  // The job's line on the screen says its shepherd has reached the stub (the
  // quotes keep the typed command from showing it): killed before that, the
  // shepherd would leave the stub waiting for a connection, not losing one.
  term_->Type("stty -g > " + File("before") + "; " + Q() + "-- sh -c 'echo $$ > " + pidfile +
              "; echo job-on\"-\"the-line; while :; do sleep 0.1; done'; s=$?; stty -g > " + File("after") +
              "; echo __L__${s}__");
  term_->Key("Enter");
  auto job = PidFromFile(pidfile, 10s);
  ASSERT_TRUE(job.has_value()) << term_->Screen();
  ASSERT_TRUE(term_->WaitForText("job-on-the-line", 10s)) << term_->Screen();
  pid_t shepherd = ParentOf(*job);
  ASSERT_GT(shepherd, 1);
  ASSERT_NE(ReadFile("/proc/" + std::to_string(shepherd) + "/cmdline").find("queue-shepherd"), std::string::npos);
  kill(shepherd, SIGKILL);
  EXPECT_TRUE(term_->WaitForText("__L__2__", 10s)) << term_->Screen();
  EXPECT_NE(term_->Screen().find("lost the connection to job"), std::string::npos) << term_->Screen();
  EXPECT_EQ(ReadFile(File("after")), ReadFile(File("before")));
  if (!ProcessGone(*job)) kill(*job, SIGKILL);
}

TEST_F(RemoteFeelPty, VimEditsAFileOnTheRemoteHost) {
  term_->Type(Q() + "-- vim -u NONE -N notes.txt; echo __V__$?__");
  term_->Key("Enter");
  ASSERT_TRUE(term_->WaitFor(std::regex("notes\\.txt.*\\[New"), 15s)) << term_->Screen();
  term_->Type("ihello");
  term_->Key("Escape");
  term_->Type(":wq");
  term_->Key("Enter");
  ASSERT_TRUE(term_->WaitForText("__V__0__", 15s)) << term_->Screen();
  EXPECT_EQ(ReadFile(File("notes.txt")), "hello\n");
}

TEST_F(RemoteFeelPty, TerminalSettingsTravelWithTheJob) {
  auto status = term_->Run("stty intr ^G; " + Q() + "-- stty -a; s=$?; stty intr ^C; (exit $s)");
  ASSERT_EQ(status, 0) << term_->Screen();
  EXPECT_NE(term_->last_output().find("intr = ^G;"), std::string::npos) << term_->last_output();
}

TEST_F(RemoteFeelPty, HalfPtyHasATtyForInputOnly) {
  auto status = term_->Run(Q() + "-o -- sh -c '[ -t 0 ] && echo in-tty; [ -t 1 ] || echo out-not-tty'");
  ASSERT_EQ(status, 0) << term_->Screen();
  EXPECT_NE(term_->last_output().find("in-tty"), std::string::npos) << term_->last_output();
  EXPECT_NE(term_->last_output().find("out-not-tty"), std::string::npos) << term_->last_output();
}

// In -o mode the output does not pass through the remote pty, so the local
// tty must keep turning "\n" into "\r\n" (no staircase).
TEST_F(RemoteFeelPty, HalfPtyOutputIsDrawnAsLocally) {
  auto status = term_->Run(Q() + "-o -- sh -c 'echo in-tty; echo out-not-tty'");
  ASSERT_EQ(status, 0) << term_->Screen();
  auto lines = Lines(term_->last_output());
  EXPECT_EQ(lines, (std::vector<std::string>{"in-tty", "out-not-tty"})) << term_->last_output();
}

TEST_F(RemoteFeelPty, NoPtyWhenAskedOrWhenStdinIsNotATerminal) {
  ASSERT_EQ(term_->Run(Q() + "-n -- sh -c '[ -t 0 ] || echo n-no-tty; [ -t 1 ] || echo n-out-no-tty'"), 0);
  EXPECT_TRUE(HasLine(term_->last_output(), "n-no-tty")) << term_->last_output();
  EXPECT_TRUE(HasLine(term_->last_output(), "n-out-no-tty")) << term_->last_output();
  ASSERT_EQ(term_->Run("echo x | " + Q() + "-- sh -c '[ -t 0 ] || echo no-tty; cat'"), 0);
  EXPECT_EQ(Lines(term_->last_output()), (std::vector<std::string>{"no-tty", "x"})) << term_->last_output();
}

TEST_F(RemoteFeelPty, QshHasNoPtyUnlessAskedWithT) {
  ASSERT_EQ(term_->Run("qsh " + Remote() + " '[ -t 0 ] || echo qsh-no-tty'"), 0) << term_->Screen();
  EXPECT_TRUE(HasLine(term_->last_output(), "qsh-no-tty")) << term_->last_output();
  ASSERT_EQ(term_->Run("qsh -t " + Remote() + " tty"), 0) << term_->Screen();
  EXPECT_TRUE(std::regex_search(term_->last_output(), std::regex("(^|\n)/dev/pts/[0-9]+"))) << term_->last_output();
}

// ---------------------------------------------------------------------------
// 2. Streams.

REMOTE_FEEL_SUITE(RemoteFeelStream)

double MegabytesPerSecond(size_t bytes, std::chrono::steady_clock::duration elapsed) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0) / std::chrono::duration<double>(elapsed).count();
}

// Under the sanitizers 64 MiB (16 s under ASan with 200), which still fills
// every buffer on the way many times over; memory is measured without them.
TEST_F(RemoteFeelStream, TwoHundredMegabytesThroughTheJobIntactWithBoundedMemory) {
  constexpr size_t kBytes = kSanitized ? 64U << 20 : 200U << 20;
  std::string dir = WorkDir();
  std::string big = dir + "/big", rss = dir + "/rss", out = dir + "/out", out_local = dir + "/out-local";
  ASSERT_EQ(RunCommand({"/bin/sh", "-c", "head -c " + std::to_string(kBytes) + " /dev/urandom > " + big}).exit_code,
            0);
  ASSERT_EQ(fs::file_size(big), kBytes);
  CommandOptions slow;
  slow.timeout = 120s;
  auto local = Shell("sha256sum < " + big, slow);
  ASSERT_EQ(local.exit_code, 0);
  // Under AddressSanitizer freed memory sits in a 256 MiB quarantine, so RSS
  // says nothing about buffering there; the plain build checks it.
#if defined(__SANITIZE_ADDRESS__)
  bool have_time = false;
#else
  bool have_time = access("/usr/bin/time", X_OK) == 0;
#endif
  std::string measure = have_time ? "/usr/bin/time -f %M -o " + rss + " " : "";
  auto remote = Shell("cat " + big + " | " + measure + "queue -h $REMOTE -n -- sha256sum", slow);
  EXPECT_EQ(remote.exit_code, 0) << remote.err;
  EXPECT_EQ(remote.out, local.out);
  if (have_time) {
    long peak_kib = std::stol("0" + ReadFile(rss));
    std::cout << "[ feel     ] stub peak RSS over a " << (kBytes >> 20) << " MiB stdin: " << peak_kib / 1024.0
              << " MiB\n";
    EXPECT_GT(peak_kib, 0) << ReadFile(rss);
    EXPECT_LT(peak_kib, 64 * 1024) << "the stub must stream, not buffer";
  }

  auto start = std::chrono::steady_clock::now();
  auto copied = Shell("cat " + big + " | queue -h $REMOTE -n -- cat > " + out, slow);
  auto remote_time = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(copied.exit_code, 0) << copied.err;
  start = std::chrono::steady_clock::now();
  ASSERT_EQ(Shell("cat " + big + " | cat > " + out_local, slow).exit_code, 0);
  auto local_time = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(Shell("cmp " + big + " " + out).exit_code, 0) << "the copy through the job differs";
  std::cout << "[ feel     ] " << (kBytes >> 20) << " MiB cat through queue -n: " << MegabytesPerSecond(kBytes, remote_time)
            << " MiB/s; local cat | cat: " << MegabytesPerSecond(kBytes, local_time) << " MiB/s\n";
  fs::remove(big);
  fs::remove(out);
  fs::remove(out_local);
}

TEST_F(RemoteFeelStream, OutputWrittenJustBeforeExitIsNeverLost) {
  std::string expected;
  for (int i = 1; i <= 100000; ++i) expected += std::to_string(i) + "\n";
  for (int round = 0; round < 20; ++round) {
    auto run = RunRemote({"-n", "--", "sh", "-c", "seq 1 100000; exit 3"});
    ASSERT_EQ(run.exit_code, 3) << "round " << round << ": " << run.err;
    ASSERT_EQ(run.out.size(), expected.size()) << "round " << round;
    ASSERT_TRUE(run.out == expected) << "round " << round;
  }
}

TEST_F(RemoteFeelStream, StdoutAndStderrStaySeparateAndInOrder) {
  auto run = RunRemote({"-n", "--", "sh", "-c",
                        "i=1; while [ $i -le 3000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::string out, err;
  for (int i = 1; i <= 3000; ++i) {
    out += "out" + std::to_string(i) + "\n";
    err += "err" + std::to_string(i) + "\n";
  }
  EXPECT_TRUE(run.out == out) << run.out.substr(0, 200);
  EXPECT_TRUE(run.err == err) << run.err.substr(0, 200);
}

TEST_F(RemoteFeelStream, EndOfStdinReachesTheJob) {
  CommandOptions options;
  options.stdin_data = "abc";
  auto run = RunRemote({"-n", "--", "sh", "-c", "cat; echo after-eof"}, options);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "abcafter-eof\n");
  auto empty = RunRemote({"-n", "--", "wc", "-c"});
  EXPECT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_EQ(empty.out, "0\n");
}

// ---------------------------------------------------------------------------
// 3. Exit status.

REMOTE_FEEL_SUITE(RemoteFeelExit)

TEST_F(RemoteFeelExit, ExitCodesPassThroughUnclamped) {
  for (int code : {0, 1, 2, 126, 127, 128, 130, 200, 255}) {
    auto run = RunRemote({"-n", "--", "sh", "-c", "exit " + std::to_string(code)});
    EXPECT_EQ(run.exit_code, code) << run.err;
    EXPECT_EQ(run.term_signal, 0);
  }
}

TEST_F(RemoteFeelExit, DeathBySignalIsDeathBySignal) {
  for (auto [name, signo] : {std::pair{"KILL", SIGKILL}, {"SEGV", SIGSEGV}, {"TERM", SIGTERM}, {"INT", SIGINT}}) {
    auto run = RunRemote({"-n", "--", "sh", "-c", std::string("kill -") + name + " $$"});
    EXPECT_EQ(run.term_signal, signo) << name << ": exit " << run.exit_code << " " << run.err;
  }
}

TEST_F(RemoteFeelExit, StopBySignalStopsTheStubAndContinueResumesTheJob) {
  std::string dir = WorkDir();
  Stubs stubs;
  for (auto [name, signo] : {std::pair{"STOP", SIGSTOP}, {"TSTP", SIGTSTP}}) {
    std::string out = dir + "/" + name + ".out";
    auto stub = stubs.Start(
        {Queue(), "-h", Remote(), "-n", "--", "sh", "-c", std::string("kill -") + name + " $$; echo resumed; exit 4"},
        {Socket()}, out, dir + "/" + name + ".err");
    auto stopped = stubs.Wait(stub.pid, 10s, true);
    ASSERT_TRUE(stopped.has_value()) << name << ": the stub neither stopped nor ended";
    EXPECT_TRUE(WIFSTOPPED(*stopped)) << name << ": status " << *stopped << " " << ReadFile(stub.err_path);
    if (WIFSTOPPED(*stopped)) {
      EXPECT_EQ(WSTOPSIG(*stopped), signo);
      EXPECT_EQ(ReadFile(out), "") << "the job must still be stopped";
      kill(stub.pid, SIGCONT);
      auto ended = stubs.Wait(stub.pid, 10s, true);
      ASSERT_TRUE(ended.has_value());
      EXPECT_TRUE(WIFEXITED(*ended) && WEXITSTATUS(*ended) == 4) << name << ": status " << *ended;
      EXPECT_EQ(ReadFile(out), "resumed\n");
    }
  }
}

// Back-to-back short remote jobs with the default profile (maxexec = the
// CPU count): the submit host's table still counts the earlier ones for up to
// a second; a host that only looks full is tried, and decides for itself.
TEST(RemoteFeelSlots, BackToBackRemoteJobsAreNotRefused) {
  auto cluster = TestCluster::Start(2);
  ASSERT_TRUE(cluster->WaitForView(15s));
  for (int round = 0; round < 6; ++round) {
    auto run = cluster->Queue(0, {"-h", cluster->entry(1), "-n", "--", "true"});
    EXPECT_EQ(run.exit_code, 0) << "round " << round << ": " << run.err;
  }
}

// ---------------------------------------------------------------------------
// 4. Signals.

REMOTE_FEEL_SUITE(RemoteFeelSignal)

TEST_F(RemoteFeelSignal, EveryCatchableSignalSentToTheStubReachesTheJob) {
  const std::vector<std::pair<std::string, int>> signals = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},
                                                            {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM},
                                                            {"ALRM", SIGALRM}, {"WINCH", SIGWINCH}};
  std::string dir = WorkDir();
  Stubs owner;
  std::vector<Background> stubs;
  for (const auto& [name, signo] : signals) {
    std::string base = dir + "/" + name;
    stubs.push_back(owner.Start({Queue(), "-h", Remote(), "-n", "--", "sh", "-c",
                                     "trap 'echo " + name + " >> " + base + ".got; exit 0' " + name +
                                         "; echo ready; while :; do sleep 0.1; done"},
                                    {Socket()}, base + ".out", base + ".err"));
  }
  for (size_t k = 0; k < signals.size(); ++k) {
    std::string base = dir + "/" + signals[k].first;
    // Relayed output means the stub is attached (see SignalSentJustAsTheJobStarts).
    ASSERT_TRUE(WaitUntil([&] { return ReadFile(base + ".out") == "ready\n"; }, 15s)) << ReadFile(base + ".err");
    kill(stubs[k].pid, signals[k].second);
  }
  for (size_t k = 0; k < signals.size(); ++k) {
    const std::string& name = signals[k].first;
    auto status = owner.Wait(stubs[k].pid, 10s);
    EXPECT_EQ(ReadFile(dir + "/" + name + ".got"), name + "\n") << "SIG" << name << " did not reach the job";
    ASSERT_TRUE(status.has_value()) << "SIG" << name << ": the stub did not end with its job";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "SIG" << name << ": the stub itself must not die of the signal, status " << *status;
  }
}

// A signal that reaches the stub once the job runs, but before the shepherd
// has connected back, must not be lost nor kill the stub.
//
// The stub takes over the signals before it submits, holds what arrives
// before the shepherd attaches, and forwards it then.
TEST_F(RemoteFeelSignal, SignalSentJustAsTheJobStarts) {
  std::string dir = WorkDir();
  Stubs stubs;
  for (int round = 0; round < 30; ++round) {
    std::string base = dir + "/" + std::to_string(round);
    auto stub = stubs.Start({Queue(), "-h", Remote(), "-n", "--", "sh", "-c",
                                 "trap 'echo USR1 >> " + base + ".got; exit 0' USR1; touch " + base +
                                     ".ready; while :; do sleep 0.05; done"},
                                {Socket()}, base + ".out", base + ".err");
    auto deadline = std::chrono::steady_clock::now() + 15s;
    while (!fs::exists(base + ".ready") && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    kill(stub.pid, SIGUSR1);
    auto status = stubs.Wait(stub.pid, 10s);
    ASSERT_TRUE(status.has_value()) << "round " << round << ": the stub did not end";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "round " << round << ": stub status " << *status << " (" << (WIFSIGNALED(*status) ? "killed by signal " : "")
        << (WIFSIGNALED(*status) ? WTERMSIG(*status) : 0) << ") " << ReadFile(base + ".err");
    EXPECT_EQ(ReadFile(base + ".got"), "USR1\n") << "round " << round;
  }
}

TEST_F(RemoteFeelSignal, KilledStubHangsUpTheJobThenKillsItAfterAGrace) {
  std::string dir = WorkDir();
  // One job records its SIGHUP and keeps going; one ignores SIGHUP. Both must die.
  struct Case {
    std::string name, trap;
  };
  std::vector<Case> cases = {{"records", "trap 'echo HUP >> " + dir + "/records.hup' HUP"}, {"ignores", "trap '' HUP"}};
  Stubs owner;
  std::vector<Background> stubs;
  std::vector<pid_t> jobs;
  for (const auto& c : cases) {
    std::string base = dir + "/" + c.name;
    stubs.push_back(owner.Start({Queue(), "-h", Remote(), "-n", "--", "sh", "-c",
                                     c.trap + "; echo $$ > " + base + ".pid; echo ready; while :; do sleep 0.1; done"},
                                    {Socket()}, base + ".out", base + ".err"));
  }
  for (size_t k = 0; k < cases.size(); ++k) {
    std::string base = dir + "/" + cases[k].name;
    auto job = PidFromFile(base + ".pid", 15s);
    ASSERT_TRUE(job.has_value()) << ReadFile(stubs[k].err_path);
    jobs.push_back(*job);
    // The pid file only says the job runs: a stub killed before the shepherd
    // has attached to it gets its job killed without a hang-up. Output the
    // stub relays proves the shepherd is attached.
    ASSERT_TRUE(WaitUntil([&] { return ReadFile(base + ".out") == "ready\n"; }, 15s)) << ReadFile(stubs[k].err_path);
  }
  auto killed_at = std::chrono::steady_clock::now();
  for (auto& stub : stubs) {
    kill(stub.pid, SIGKILL);
    owner.Wait(stub.pid, 5s);
  }
  EXPECT_TRUE(WaitUntil([&] { return ReadFile(dir + "/records.hup") == "HUP\n"; }, 5s))
      << "the job was not sent SIGHUP when its stub died";
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(ProcessGone(jobs[1])) << "a job that ignores SIGHUP is killed only after a grace";
  for (size_t k = 0; k < jobs.size(); ++k) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(10s - (std::chrono::steady_clock::now() - killed_at));
    bool gone = WaitUntil([&] { return ProcessGone(jobs[k]); }, left);
    EXPECT_TRUE(gone) << cases[k].name << ": the job outlived its stub by 10 s";
    if (!gone) kill(jobs[k], SIGKILL);
  }
}

// ---------------------------------------------------------------------------
// 5. What travels with the job.

REMOTE_FEEL_SUITE(RemoteFeelContext)

TEST_F(RemoteFeelContext, EnvironmentWithQueueVariables) {
  CommandOptions options;
  options.env = {"FEEL_MULTI=line one\nline=two", "PATH=/feel/bin:" + SearchPath()};
  auto run = RunRemote({"-n", "--", "sh", "-c",
                        "printf '%s|%s|%s|%s\\n' \"$FEEL_MULTI\" \"$QUEUE\" \"$QUEUE_HOST\" \"$PATH\"; "
                        "echo \"$QUEUE_JOBID\" | grep -Eqx '[0-9]+[.][0-9]+' && echo jobid-ok"},
                       options);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "line one\nline=two|i|" + Remote() + "|/feel/bin:" + SearchPath() + "\njobid-ok\n");
}

// A caller with a cleaned environment (env -i, GNU Parallel) still gives its job the
// login variables, from the owner's passwd entry on the execution host, as sshd does;
// what the caller set travels unchanged.
TEST_F(RemoteFeelContext, LoginVariablesMissingFromTheEnvironmentComeFromPasswd) {
  passwd* me = getpwuid(geteuid());
  ASSERT_NE(me, nullptr);
  std::string shell = me->pw_shell[0] != '\0' ? me->pw_shell : "/bin/sh";
  std::string print = "printf '%s|%s|%s|%s\\n' \"$HOME\" \"$SHELL\" \"$USER\" \"$LOGNAME\"";
  auto run = RunCommand({"/usr/bin/env", "-i", "PATH=" + SearchPath(), Socket(), Queue(), "-h", Remote(), "-n", "--",
                         "sh", "-c", print});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, std::string(me->pw_dir) + "|" + shell + "|" + me->pw_name + "|" + me->pw_name + "\n");
  auto kept = RunCommand({"/usr/bin/env", "-i", "PATH=" + SearchPath(), Socket(), "HOME=/feel/home", "SHELL=/feel/sh",
                          "USER=feel", "LOGNAME=feel", Queue(), "-h", Remote(), "-n", "--", "sh", "-c", print});
  EXPECT_EQ(kept.out, "/feel/home|/feel/sh|feel|feel\n") << kept.err;
}

TEST_F(RemoteFeelContext, CwdUmaskNiceAndLimits) {
  std::string dir = WorkDir();
  CommandOptions in_dir;
  in_dir.cwd = dir;
  auto cwd = Shell("exec queue -h $REMOTE -n -- pwd", in_dir);
  EXPECT_EQ(cwd.out, dir + "\n") << cwd.err;
  auto mask = Shell("umask 027; exec queue -h $REMOTE -n -- sh -c umask");
  EXPECT_EQ(mask.out, "0027\n") << mask.err;
  auto niced = Shell("exec nice -n 5 queue -h $REMOTE -n -- nice");
  ASSERT_EQ(niced.exit_code, 0) << niced.err;
  EXPECT_GE(std::stoi("0" + niced.out), 5) << niced.out;
  auto limits = Shell("ulimit -n 200; ulimit -t 1000; exec queue -h $REMOTE -n -- sh -c 'ulimit -n; ulimit -t'");
  EXPECT_EQ(limits.out, "200\n1000\n") << limits.err;
}

// The cluster directory is the test's (0700); a non-root submitter must reach
// host 0's socket through it.
void OpenToOthers(const std::string& dir) { chmod(dir.c_str(), 0755); }

TEST_F(RemoteFeelContext, NonRootSubmitterRunsAsItselfWithItsSupplementaryGroups) {
  if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "needs root and setpriv";
  OpenToOthers(cluster().dir());
  CommandOptions options;
  options.cwd = "/tmp";
  options.env = {Socket()};
  auto run = RunCommand({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--groups=65534,100", "--", Queue(),
                         "-h", Remote(), "-n", "--", "sh", "-c", "id -u; id -g; id -G"},
                        options);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 3U) << run.out;
  EXPECT_EQ(lines[0], "65534");
  EXPECT_EQ(lines[1], "65534");
  std::set<std::string> groups;
  std::istringstream words(lines[2]);
  for (std::string g; words >> g;) groups.insert(g);
  EXPECT_EQ(groups, (std::set<std::string>{"65534", "100"})) << lines[2];
}

TEST_F(RemoteFeelContext, CommandNotFoundIsOneLineAndExit2) {
  auto run = RunRemote({"-n", "--", "no-such-command-feel", "arg"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.err, "no-such-command-feel: Command not found.\n");
  EXPECT_EQ(run.out, "");
}

// Host 1 of this suite lives in its own mount namespace, where a directory
// that exists for the submitter is hidden under an empty tmpfs and /etc/passwd
// lacks one of the submit host's users: an execution host with another view.
class RemoteFeelForeignHost : public RemoteFeelBase {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0 || access("/usr/bin/unshare", X_OK) != 0) return;
    char templ[] = "/tmp/queue-feel-ns-XXXXXX";
    if (mkdtemp(templ) == nullptr) return;
    scratch_ = templ;
    chmod(scratch_.c_str(), 0755);
    fs::create_directories(scratch_ + "/hidden/work");
    // A user of /etc/passwd that host 1 does not know (not 65534: nss-systemd
    // makes that one up even when /etc/passwd lacks it).
    std::string passwd;
    for (const auto& line : Lines(ReadFile("/etc/passwd"))) {
      std::vector<std::string> fields;
      std::stringstream parts(line);
      for (std::string field; std::getline(parts, field, ':');) fields.push_back(field);
      bool candidate = fields.size() >= 4 && hidden_uid_ < 0 && fields[2] != "0" && fields[2] != "65534";
      if (candidate) {
        hidden_uid_ = std::stoi(fields[2]);
        hidden_gid_ = std::stoi(fields[3]);
        continue;
      }
      passwd += line + "\n";
    }
    if (hidden_uid_ < 0) return;
    WriteFile(scratch_ + "/passwd", passwd);
    ClusterOptions options;
    options.daemon_wrappers[1] = {"/usr/bin/unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                                  "mount -t tmpfs feel " + scratch_ + "/hidden && mount --bind " + scratch_ +
                                      "/passwd /etc/passwd && exec \"$@\"",
                                  "sh"};
    StartCluster(shared_, options);
  }
  static void TearDownTestSuite() {
    shared_.reset();
    if (!scratch_.empty()) fs::remove_all(scratch_);
  }
  void SetUp() override {
    if (shared_ == nullptr) GTEST_SKIP() << "needs root, unshare and a non-root user in /etc/passwd";
  }
  TestCluster& cluster() override { return *shared_; }

  static std::unique_ptr<TestCluster> shared_;
  static std::string scratch_;
  static int hidden_uid_, hidden_gid_;
};
std::unique_ptr<TestCluster> RemoteFeelForeignHost::shared_;
std::string RemoteFeelForeignHost::scratch_;
int RemoteFeelForeignHost::hidden_uid_ = -1;
int RemoteFeelForeignHost::hidden_gid_ = -1;

TEST_F(RemoteFeelForeignHost, CwdMissingOnTheExecutionHostIsOneLineAndExit2) {
  std::string cwd = scratch_ + "/hidden/work";
  CommandOptions options;
  options.cwd = cwd;
  auto run = RunRemote({"-n", "--", "echo", "must not run"}, options);
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_EQ(run.out, "");
  EXPECT_NE(run.err.find(cwd), std::string::npos) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  // The same job from the same place runs on host 0, which sees the directory.
  auto here = cluster().Queue(0, {"-h", cluster().entry(0), "-n", "--", "pwd"}, options);
  EXPECT_EQ(here.out, cwd + "\n") << here.err;
}

TEST_F(RemoteFeelForeignHost, UidUnknownOnTheExecutionHostIsOneLineAndExit2) {
  OpenToOthers(cluster().dir());
  CommandOptions options;
  options.cwd = "/tmp";
  options.env = {Socket()};
  std::string uid = std::to_string(hidden_uid_);
  auto run = RunCommand({"/usr/bin/setpriv", "--reuid=" + uid, "--regid=" + std::to_string(hidden_gid_),
                         "--clear-groups", "--", Queue(), "-h", Remote(), "-n", "--", "echo", "must not run"},
                        options);
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_EQ(run.out, "");
  EXPECT_NE(run.err.find("uid " + uid), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("unknown"), std::string::npos) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
}

// ---------------------------------------------------------------------------
// 6. qsh, the rsh/ssh drop-in.

REMOTE_FEEL_SUITE(RemoteFeelQsh)

TEST_F(RemoteFeelQsh, WordsAreJoinedAndRunBySh) {
  CommandOptions options;
  options.env = {Socket(), "HOME=/feel/home"};
  auto run = RunCommand({BinDir() + "/qsh", Remote(), "echo", "a  b", "$HOME"}, options);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "a b /feel/home\n");
  auto parallel_style = RunCommand({BinDir() + "/qsh", Remote(), "--", "exec", "echo", "hi"}, options);
  EXPECT_EQ(parallel_style.out, "hi\n") << parallel_style.err;
  auto status = RunCommand({BinDir() + "/qsh", Remote(), "exit", "7"}, options);
  EXPECT_EQ(status.exit_code, 7) << status.err;
  options.stdin_data = "piped\n";
  auto piped = RunCommand({BinDir() + "/qsh", Remote(), "cat"}, options);
  EXPECT_EQ(piped.out, "piped\n") << piped.err;
}

TEST_F(RemoteFeelQsh, PlusPicksAHostAndPortOptionNamesTheEntry) {
  CommandOptions options;
  options.env = {Socket()};
  auto any = RunCommand({BinDir() + "/qsh", "+", "echo $QUEUE_HOST"}, options);
  EXPECT_EQ(any.exit_code, 0) << any.err;
  EXPECT_TRUE(any.out == cluster().entry(0) + "\n" || any.out == cluster().entry(1) + "\n") << any.out;
  std::string address = Remote().substr(0, Remote().rfind(':')), port = Remote().substr(Remote().rfind(':') + 1);
  auto by_port = RunCommand({BinDir() + "/qsh", "-p", port, address, "echo $QUEUE_HOST"}, options);
  EXPECT_EQ(by_port.out, Remote() + "\n") << by_port.err;
}

TEST_F(RemoteFeelQsh, SshOptionsAreAcceptedAndOtherUsersRefused) {
  CommandOptions options;
  options.env = {Socket()};
  auto ssh_like = RunCommand({BinDir() + "/qsh", "-T", "-x", "-q", "-o", "BatchMode=yes", Remote(), "true"}, options);
  EXPECT_EQ(ssh_like.exit_code, 0) << ssh_like.err;
  passwd* me = getpwuid(geteuid());
  ASSERT_NE(me, nullptr);
  auto as_me = RunCommand({BinDir() + "/qsh", "-l", me->pw_name, Remote(), "echo ok"}, options);
  EXPECT_EQ(as_me.out, "ok\n") << as_me.err;
  auto other = RunCommand({BinDir() + "/qsh", "-l", "no-such-user-feel", Remote(), "echo ran"}, options);
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_EQ(other.out, "");
  EXPECT_NE(other.err.find("no-such-user-feel"), std::string::npos) << other.err;
  EXPECT_EQ(std::count(other.err.begin(), other.err.end(), '\n'), 1) << other.err;
}

TEST_F(RemoteFeelQsh, QueueOptionAndWaitMode) {
  CommandOptions options;
  options.env = {Socket()};
  auto in_wait = RunCommand({BinDir() + "/qsh", "-d", "wait", "-w", Remote(), "echo waited"}, options);
  EXPECT_EQ(in_wait.out, "waited\n") << in_wait.err;
  auto no_pty = RunCommand({BinDir() + "/qsh", "-n", Remote(), "echo plain"}, options);
  EXPECT_EQ(no_pty.out, "plain\n") << no_pty.err;
}

TEST_F(RemoteFeelQsh, BatchModePrintsTheJobId) {
  CommandOptions options;
  options.env = {Socket(), "QMAIL=FALSE"};
  options.cwd = WorkDir();
  auto batch = RunCommand({BinDir() + "/qsh", "-r", Remote(), "true"}, options);
  EXPECT_EQ(batch.exit_code, 0) << batch.err;
  EXPECT_TRUE(std::regex_match(batch.out, std::regex("[0-9]+[.][0-9]+\n"))) << batch.out;
}

}  // namespace
}  // namespace queue::testing
