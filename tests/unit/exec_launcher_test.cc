// Tests of the job launcher: streams, environment, cwd, command lookup, umask,
// nice, rlimits, ptys, sessions and credentials. They run both as root (as CI
// does) and as an ordinary user; only the test that switches to another uid
// needs root.
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "exec/job_launcher.h"
#include "term/terminal_settings.h"

namespace queue::exec {
namespace {

namespace fs = std::filesystem;
using wire::JobSpec;
using wire::PtyMode;

constexpr const char* kJobId = "77.2";
const char* const kHost = "testhost";

JobSpec SpecFor(std::vector<std::string> argv) {
  JobSpec spec;
  spec.argv = std::move(argv);
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.cwd = "/";
  spec.uid = geteuid();
  spec.gid = getegid();
  std::vector<gid_t> groups(getgroups(0, nullptr));
  groups.resize(getgroups(static_cast<int>(groups.size()), groups.data()));
  spec.groups.assign(groups.begin(), groups.end());
  return spec;
}

LaunchOptions Options() {
  LaunchOptions options;
  options.job_id = kJobId;
  options.exec_host = kHost;
  options.allow_root = geteuid() == 0;  // the tests run as whoever runs them
  return options;
}

struct Outcome {
  std::string out;
  std::string err;
  int status = -1;
};

void CloseIfOpen(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Reads stdout and stderr until both end (EOF, or EIO from a pty whose slave is
// gone); gives up after 10 s so that a broken launcher fails instead of hanging.
void DrainOutput(LaunchedJob& job, Outcome& outcome) {
  int* fds[2] = {&job.stdout_fd, &job.stderr_fd};
  std::string* sinks[2] = {&outcome.out, &outcome.err};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((*fds[0] >= 0 || *fds[1] >= 0) && std::chrono::steady_clock::now() < deadline) {
    pollfd polls[2] = {{*fds[0], POLLIN, 0}, {*fds[1], POLLIN, 0}};
    if (poll(polls, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (*fds[i] < 0 || polls[i].revents == 0) continue;
      char buffer[4096];
      ssize_t n = read(*fds[i], buffer, sizeof buffer);
      if (n > 0) sinks[i]->append(buffer, static_cast<size_t>(n));
      else if (n == 0 || errno == EIO) CloseIfOpen(*fds[i]);
    }
  }
  if (*fds[0] >= 0 || *fds[1] >= 0) {
    ADD_FAILURE() << "the job's output did not end within 10 s";
    kill(-job.pid, SIGKILL);
  }
}

// Feeds input, closes the job's stdin, collects its output and reaps it.
Outcome Finish(LaunchedJob job, const std::string& input = "") {
  Outcome outcome;
  if (!input.empty()) {
    EXPECT_EQ(write(job.stdin_fd, input.data(), input.size()), static_cast<ssize_t>(input.size()));
  }
  CloseIfOpen(job.stdin_fd);
  DrainOutput(job, outcome);
  CloseIfOpen(job.pty_master);
  EXPECT_EQ(waitpid(job.pid, &outcome.status, 0), job.pid);
  return outcome;
}

Outcome RunToEnd(const JobSpec& spec, const LaunchOptions& options = Options()) {
  auto job = LaunchJob(spec, options);
  if (!job.ok()) {
    ADD_FAILURE() << "launch failed: " << job.message();
    return {};
  }
  return Finish(*job);
}

int ExitCode(const Outcome& outcome) {
  return WIFEXITED(outcome.status) ? WEXITSTATUS(outcome.status) : -1;
}

std::string WithoutCarriageReturns(std::string text) {
  text.erase(std::remove(text.begin(), text.end(), '\r'), text.end());
  return text;
}

std::vector<std::string> SortedLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  return lines;
}

// True when the launcher left no child behind to reap.
bool NoChildLeft() { return waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD; }

// A fresh directory, removed with its contents at the end of the test.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (fs::temp_directory_path() / "exec_launcher_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~ScratchDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

  void WriteFile(const fs::path& relative, const std::string& text, fs::perms perms) const {
    fs::create_directories((path_ / relative).parent_path());
    std::ofstream(path_ / relative) << text;
    fs::permissions(path_ / relative, perms);
  }

 private:
  fs::path path_;
};

TEST(ExecLauncher, PipesKeepStdoutAndStderrApart) {
  auto job = LaunchJob(SpecFor({"sh", "-c", "echo out; echo err >&2"}), Options());
  ASSERT_TRUE(job.ok()) << job.message();
  EXPECT_EQ(job->pty_master, -1);
  EXPECT_GE(job->stderr_fd, 0);
  EXPECT_NE(fcntl(job->stdout_fd, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(fcntl(job->stdin_fd, F_GETFD) & FD_CLOEXEC, 0);
  Outcome outcome = Finish(*job);
  EXPECT_EQ(outcome.out, "out\n");
  EXPECT_EQ(outcome.err, "err\n");
  EXPECT_EQ(ExitCode(outcome), 0);
}

TEST(ExecLauncher, StdinReachesTheJobAndEndsWithEof) {
  auto job = LaunchJob(SpecFor({"cat"}), Options());
  ASSERT_TRUE(job.ok()) << job.message();
  Outcome outcome = Finish(*job, "hello\nworld\n");
  EXPECT_EQ(outcome.out, "hello\nworld\n");
  EXPECT_EQ(ExitCode(outcome), 0);
}

TEST(ExecLauncher, ExitCodeIsTheJobsInFullRange) {
  EXPECT_EQ(ExitCode(RunToEnd(SpecFor({"sh", "-c", "exit 42"}))), 42);
  EXPECT_EQ(ExitCode(RunToEnd(SpecFor({"sh", "-c", "exit 200"}))), 200);
}

TEST(ExecLauncher, EnvironmentIsTheSpecsPlusQueueVariables) {
  setenv("EXEC_LAUNCHER_TEST_OWN_VARIABLE", "leaked", 1);
  JobSpec spec = SpecFor({"env"});
  // The login variables are set, so none is filled in from passwd (the next test).
  spec.env = {"PATH=/usr/bin:/bin", "FOO=bar baz", "QUEUE=stale", "QUEUE_HOST=elsewhere",
              "QUEUE_JOBID=1", "HOME=/h", "SHELL=/s", "USER=u", "LOGNAME=l"};
  Outcome outcome = RunToEnd(spec);
  unsetenv("EXEC_LAUNCHER_TEST_OWN_VARIABLE");
  std::vector<std::string> expected = {"FOO=bar baz", "HOME=/h", "LOGNAME=l", "PATH=/usr/bin:/bin", "QUEUE=i",
                                       "QUEUE_HOST=testhost", "QUEUE_JOBID=77.2", "SHELL=/s", "USER=u"};
  EXPECT_EQ(SortedLines(outcome.out), expected);
}

TEST(ExecLauncher, LoginVariablesTheSpecLacksComeFromTheOwnersPasswdEntry) {
  JobSpec spec = SpecFor({"env"});
  spec.env = {"PATH=/usr/bin:/bin", "USER=kept"};
  passwd* owner = getpwuid(spec.uid);
  ASSERT_NE(owner, nullptr);
  std::string shell = owner->pw_shell[0] != '\0' ? owner->pw_shell : "/bin/sh";
  auto lines = SortedLines(RunToEnd(spec).out);
  auto has = [&](const std::string& line) { return std::find(lines.begin(), lines.end(), line) != lines.end(); };
  EXPECT_TRUE(has(std::string("HOME=") + owner->pw_dir));
  EXPECT_TRUE(has("SHELL=" + shell));
  EXPECT_TRUE(has(std::string("LOGNAME=") + owner->pw_name));
  EXPECT_TRUE(has("USER=kept")) << "a variable the caller set is not replaced";
}

TEST(ExecLauncher, RunsInTheSpecsDirectory) {
  ScratchDir dir;
  JobSpec spec = SpecFor({"pwd"});
  spec.cwd = dir.path().string();
  EXPECT_EQ(RunToEnd(spec).out, fs::canonical(dir.path()).string() + "\n");
}

TEST(ExecLauncher, MissingDirectoryIsAClearError) {
  JobSpec spec = SpecFor({"pwd"});
  spec.cwd = "/nonexistent/exec-launcher-test";
  auto job = LaunchJob(spec, Options());
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.message(),
            "queued: chdir to /nonexistent/exec-launcher-test on host testhost failed: "
            "No such file or directory.");
  EXPECT_TRUE(NoChildLeft());
}

TEST(ExecLauncher, UnknownCommandIsNotFound) {
  auto job = LaunchJob(SpecFor({"exec-launcher-no-such-command"}), Options());
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.message(), "exec-launcher-no-such-command: Command not found.");
  EXPECT_TRUE(NoChildLeft());

  auto by_path = LaunchJob(SpecFor({"/nonexistent/tool"}), Options());
  ASSERT_FALSE(by_path.ok());
  EXPECT_EQ(by_path.message(), "/nonexistent/tool: Command not found.");
}

TEST(ExecLauncher, CommandIsSearchedInTheJobsPath) {
  ScratchDir dir;
  dir.WriteFile("tools/exec-launcher-tool", "#!/bin/sh\necho found \"$@\"\n", fs::perms::owner_all);
  dir.WriteFile("bin/exec-launcher-relative", "#!/bin/sh\necho relative\n", fs::perms::owner_all);
  dir.WriteFile("bin/exec-launcher-bare", "echo bare script\n", fs::perms::owner_all);

  JobSpec spec = SpecFor({"exec-launcher-tool", "a1"});
  spec.env = {"PATH=/nonexistent:" + (dir.path() / "tools").string() + ":/usr/bin:/bin"};
  EXPECT_EQ(RunToEnd(spec).out, "found a1\n");

  // Relative PATH entries are relative to the job's cwd, not the launcher's.
  JobSpec relative = SpecFor({"exec-launcher-relative"});
  relative.env = {"PATH=bin:/usr/bin:/bin"};
  relative.cwd = dir.path().string();
  EXPECT_EQ(RunToEnd(relative).out, "relative\n");

  // A script without #! runs under sh, as execvp would run it.
  JobSpec bare = relative;
  bare.argv = {"exec-launcher-bare"};
  EXPECT_EQ(RunToEnd(bare).out, "bare script\n");
}

TEST(ExecLauncher, UnexecutableCommandSaysWhy) {
  ScratchDir dir;
  dir.WriteFile("exec-launcher-plain", "#!/bin/sh\necho never\n", fs::perms::owner_read);
  JobSpec spec = SpecFor({"exec-launcher-plain"});
  spec.env = {"PATH=" + dir.path().string() + ":/usr/bin:/bin"};
  auto job = LaunchJob(spec, Options());
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.message(), "exec-launcher-plain: Permission denied.");
}

TEST(ExecLauncher, UmaskIsApplied) {
  JobSpec spec = SpecFor({"sh", "-c", "umask"});
  spec.umask = 027;
  EXPECT_EQ(RunToEnd(spec).out, "0027\n");
  spec.umask = 0;
  EXPECT_EQ(RunToEnd(spec).out, "0000\n");
}

TEST(ExecLauncher, NiceIsTheLargerOfSpecAndProfile) {
  errno = 0;
  int base = getpriority(PRIO_PROCESS, 0);
  ASSERT_EQ(errno, 0);
  if (base > 12) GTEST_SKIP() << "this test process is already at nice " << base;
  JobSpec spec = SpecFor({"nice"});
  LaunchOptions options = Options();
  spec.nice = base + 2;
  options.profile_nice = base + 5;
  EXPECT_EQ(RunToEnd(spec, options).out, std::to_string(base + 5) + "\n");
  spec.nice = base + 6;
  options.profile_nice = base + 1;
  EXPECT_EQ(RunToEnd(spec, options).out, std::to_string(base + 6) + "\n");
}

TEST(ExecLauncher, RlimitsAreAppliedAndCappedByTheCurrentHardLimit) {
  rlimit current{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &current), 0);
  ASSERT_GE(current.rlim_max, 200u);
  JobSpec spec = SpecFor({"sh", "-c", "ulimit -Sn; ulimit -Hn"});
  spec.rlimits = {{RLIMIT_NOFILE, 100, 200}};
  EXPECT_EQ(RunToEnd(spec).out, "100\n200\n");

  spec.rlimits = {{RLIMIT_NOFILE, 64, wire::ResourceLimit::kUnlimited}};
  std::string hard =
      current.rlim_max == RLIM_INFINITY ? "unlimited" : std::to_string(current.rlim_max);
  EXPECT_EQ(RunToEnd(spec).out, "64\n" + hard + "\n");

  spec.rlimits = {{RLIMIT_NOFILE, 500, 150}};  // soft above hard: capped to hard
  EXPECT_EQ(RunToEnd(spec).out, "150\n150\n");
}

// Settings as a stub would capture them from its own terminal, here a fresh pty.
wire::TerminalSettings TerminalOfSize(uint16_t rows, uint16_t cols) {
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  EXPECT_GE(master, 0);
  EXPECT_EQ(grantpt(master), 0);
  EXPECT_EQ(unlockpt(master), 0);
  int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
  auto captured = term::CaptureTerminal(slave);
  close(slave);
  close(master);
  EXPECT_TRUE(captured.ok()) << captured.message();
  wire::TerminalSettings settings = captured.ok() ? *captured : wire::TerminalSettings{};
  settings.rows = rows;
  settings.cols = cols;
  return settings;
}

TEST(ExecLauncher, FullPtyIsTheJobsControllingTerminal) {
  JobSpec spec = SpecFor({"sh", "-c",
                          "tty; stty size; exec 3</dev/tty && echo has-ctty; echo to-stderr >&2"});
  spec.pty = PtyMode::kFull;
  spec.terminal = TerminalOfSize(33, 101);
  auto job = LaunchJob(spec, Options());
  ASSERT_TRUE(job.ok()) << job.message();
  EXPECT_GE(job->pty_master, 0);
  EXPECT_GE(job->stderr_fd, 0);
  Outcome outcome = Finish(*job);
  std::string out = WithoutCarriageReturns(outcome.out);
  EXPECT_TRUE(out.starts_with("/dev/pts/")) << out;
  EXPECT_NE(out.find("\n33 101\n"), std::string::npos) << out;
  EXPECT_NE(out.find("has-ctty\n"), std::string::npos) << out;
  EXPECT_EQ(outcome.err, "to-stderr\n");
  EXPECT_EQ(ExitCode(outcome), 0);
}

TEST(ExecLauncher, StderrGoesThroughThePtyWhenItIsATty) {
  JobSpec spec = SpecFor({"sh", "-c", "[ -t 2 ] && echo stderr-is-tty >&2"});
  spec.pty = PtyMode::kFull;
  spec.stderr_is_tty = true;
  auto job = LaunchJob(spec, Options());
  ASSERT_TRUE(job.ok()) << job.message();
  EXPECT_EQ(job->stderr_fd, -1);
  EXPECT_EQ(WithoutCarriageReturns(Finish(*job).out), "stderr-is-tty\n");
}

TEST(ExecLauncher, ResizePtyChangesTheWindowSize) {
  JobSpec spec = SpecFor({"sh", "-c", "read line; stty size"});
  spec.pty = PtyMode::kFull;
  spec.terminal = TerminalOfSize(24, 80);
  auto job = LaunchJob(spec, Options());
  ASSERT_TRUE(job.ok()) << job.message();
  Status resized = ResizePty(job->pty_master, 50, 132, 0, 0);
  EXPECT_TRUE(resized.ok()) << resized.message();
  Outcome outcome = Finish(*job, "go\n");
  EXPECT_NE(WithoutCarriageReturns(outcome.out).find("50 132\n"), std::string::npos)
      << outcome.out;
  EXPECT_FALSE(ResizePty(-1, 1, 1, 0, 0).ok());
}

TEST(ExecLauncher, HalfPtyIsForStdinOnly) {
  JobSpec spec = SpecFor({"sh", "-c", "tty; [ -t 1 ] || echo stdout-is-a-pipe"});
  spec.pty = PtyMode::kHalf;
  auto job = LaunchJob(spec, Options());
  ASSERT_TRUE(job.ok()) << job.message();
  EXPECT_GE(job->pty_master, 0);
  EXPECT_GE(job->stderr_fd, 0);
  Outcome outcome = Finish(*job);
  EXPECT_TRUE(outcome.out.starts_with("/dev/pts/")) << outcome.out;
  EXPECT_TRUE(outcome.out.ends_with("\nstdout-is-a-pipe\n")) << outcome.out;
}

TEST(ExecLauncher, JobLeadsItsOwnSessionAndProcessGroup) {
  auto job = LaunchJob(
      SpecFor({"sh", "-c",
               "read -r pid comm state ppid pgrp session rest </proc/self/stat; "
               "echo \"$pid $pgrp $session\""}),
      Options());
  ASSERT_TRUE(job.ok()) << job.message();
  std::string pid = std::to_string(job->pid);
  EXPECT_EQ(Finish(*job).out, pid + " " + pid + " " + pid + "\n");
}

TEST(ExecLauncher, SignalsAreResetAndInheritedFdsClosed) {
  struct sigaction ignore {}, previous_int {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ignore, &previous_int);
  sigset_t usr1, previous_mask;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, &previous_mask);
  int leaked = dup2(STDERR_FILENO, 100);  // not close-on-exec
  ASSERT_EQ(leaked, 100);

  Outcome signals = RunToEnd(SpecFor({"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}));
  Outcome fds = RunToEnd(SpecFor({"sh", "-c", "[ -e /proc/$$/fd/100 ] && echo open || echo closed"}));

  close(leaked);
  sigprocmask(SIG_SETMASK, &previous_mask, nullptr);
  sigaction(SIGINT, &previous_int, nullptr);
  EXPECT_EQ(signals.out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
  EXPECT_EQ(fds.out, "closed\n");
}

TEST(ExecLauncher, RefusesAUidItMayNotRunAs) {
  JobSpec spec = SpecFor({"true"});
  LaunchOptions options = Options();
  options.allow_root = false;
  if (geteuid() == 0) {
    spec.uid = 0;
    auto job = LaunchJob(spec, options);
    ASSERT_FALSE(job.ok());
    EXPECT_EQ(job.message(),
              "queued: refusing to run job 77.2 as root on host testhost; the queue's profile "
              "does not say allowroot.");
  } else {
    spec.uid = geteuid() + 1;
    auto job = LaunchJob(spec, options);
    ASSERT_FALSE(job.ok());
    EXPECT_NE(job.message().find("not as root"), std::string::npos) << job.message();
  }
  EXPECT_TRUE(NoChildLeft());
}

TEST(ExecLauncher, RootRunsTheJobAsTheSpecsUser) {
  if (geteuid() != 0) GTEST_SKIP() << "switching uid needs root";
  ASSERT_NE(getpwuid(65534), nullptr);
  JobSpec spec = SpecFor({"sh", "-c", "id -u; id -g; id -G"});
  spec.uid = 65534;
  spec.gid = 65534;
  spec.groups = {65534};
  LaunchOptions options = Options();
  options.allow_root = false;
  Outcome outcome = RunToEnd(spec, options);
  EXPECT_EQ(outcome.out, "65534\n65534\n65534\n");
  EXPECT_EQ(ExitCode(outcome), 0);
}

TEST(ExecLauncher, RootRefusesAUidUnknownHere) {
  if (geteuid() != 0) GTEST_SKIP() << "only root checks the uid against the password file";
  uid_t unknown = 3999999;
  ASSERT_EQ(getpwuid(unknown), nullptr);
  JobSpec spec = SpecFor({"true"});
  spec.uid = unknown;
  auto job = LaunchJob(spec, Options());
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.message(), "queued: uid 3999999 is unknown on host testhost.");
}

}  // namespace
}  // namespace queue::exec
