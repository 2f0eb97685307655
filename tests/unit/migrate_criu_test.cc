// Tests of the CRIU module that need no working criu: the streams file of an
// image directory, the job's streams as /proc shows them, the dump and restore
// command lines, the cause found in a CRIU log, the probe of a criu (stand-ins
// written as shell scripts) and the spawning of criu with exactly the fds,
// identity, capabilities and environment given.
#include "migrate/criu.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace queue::migrate {
namespace {

class MigrateCriuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/migrate_criu_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static void WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644) {
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << content;
    }  // closed before anyone runs it: exec of a file open for writing fails (ETXTBSY)
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
  }

  // A stand-in for criu: prints "Version: 9.9" for --version and runs
  // `check_body` for `check`.
  std::string FakeCriu(const std::string& name, const std::string& check_body) {
    std::string path = dir_ + "/" + name;
    WriteFile(path,
              "#!/bin/sh\n"
              "case \"$1\" in\n"
              "  --version) echo 'Version: 9.9'; echo 'GitID: v9.9'; exit 0 ;;\n"
              "  check) " + check_body + " ;;\n"
              "esac\n"
              "exit 2\n",
              0755);
    return path;
  }

  // Everything readable from `fd` until its end.
  static std::string Drain(int fd) {
    std::string text;
    char buffer[4096];
    for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      text.append(buffer, static_cast<size_t>(n));
    }
    return text;
  }

  static size_t OpenFdCount() {
    size_t count = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++count;
    return count;  // the iterator's own fd is counted every time alike
  }

  std::string dir_;
};

std::string PipeName(int fd) {
  struct stat info {};
  EXPECT_EQ(fstat(fd, &info), 0);
  return "pipe:[" + std::to_string(info.st_ino) + "]";
}

// ---- The streams file of an image directory ----

TEST_F(MigrateCriuTest, StreamsFileRoundTrips) {
  CriuStreams written;
  written.targets = {"/dev/null", "pipe:[4242]", "/home/user/a file with spaces.out"};
  ASSERT_TRUE(WriteCriuStreams(dir_, written).ok());
  Result<CriuStreams> read = ReadCriuStreams(dir_);
  ASSERT_TRUE(read.ok()) << read.message();
  EXPECT_EQ(read->targets, written.targets);

  // A closed stream (no target) stays closed, and writing again replaces the file.
  written.targets = {"", "pipe:[1]", ""};
  ASSERT_TRUE(WriteCriuStreams(dir_, written).ok());
  read = ReadCriuStreams(dir_);
  ASSERT_TRUE(read.ok()) << read.message();
  EXPECT_EQ(read->targets, written.targets);
}

TEST_F(MigrateCriuTest, StreamNameWithANewlineIsNotWritten) {
  CriuStreams streams;
  streams.targets = {"/dev/null", "/tmp/two\nlines", "/dev/null"};
  Status written = WriteCriuStreams(dir_, streams);
  ASSERT_FALSE(written.ok());
  EXPECT_NE(written.message().find("newline"), std::string::npos) << written.message();
}

TEST_F(MigrateCriuTest, WritingIntoAMissingDirectoryFails) {
  EXPECT_FALSE(WriteCriuStreams(dir_ + "/no-such-dir", CriuStreams{}).ok());
}

TEST_F(MigrateCriuTest, MissingStreamsFileIsAClearError) {
  Result<CriuStreams> read = ReadCriuStreams(dir_);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.message(), "the image has no queue-streams file");
}

TEST_F(MigrateCriuTest, TruncatedStreamsFileIsAClearError) {
  const std::string path = dir_ + "/" + kCriuStreamsFile;
  for (const std::string& content : {std::string(), std::string("/dev/null\n"), std::string("/dev/null\npipe:[1]\n")}) {
    WriteFile(path, content);
    Result<CriuStreams> read = ReadCriuStreams(dir_);
    ASSERT_FALSE(read.ok()) << "accepted: " << content;
    EXPECT_EQ(read.message(), path + " is truncated");
  }
}

TEST_F(MigrateCriuTest, OverlongStreamNameIsRefused) {
  WriteFile(dir_ + "/" + kCriuStreamsFile, "/dev/null\n" + std::string(5000, 'x') + "\n/dev/null\n");
  Result<CriuStreams> read = ReadCriuStreams(dir_);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.message().find("too long"), std::string::npos) << read.message();
}

// ---- The job's streams, from /proc ----

TEST_F(MigrateCriuTest, JobStreamsNameItsPipeItsFileAndDevNull) {
  int out[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  const std::string error_file = dir_ + "/job.err";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int null = open("/dev/null", O_RDONLY);
    int err = open(error_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (null < 0 || err < 0 || dup2(null, 0) != 0 || dup2(out[1], 1) != 1 || dup2(err, 2) != 2) _exit(126);
    execl("/bin/sh", "sh", "-c", "echo ready; exec sleep 30", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  // Once it says so, its streams are in place.
  char ready[6] = {};
  ASSERT_EQ(read(out[0], ready, sizeof ready), 6);
  Result<CriuStreams> streams = ReadJobStreams(pid);
  const std::string expected_pipe = PipeName(out[0]);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  close(out[0]);
  ASSERT_TRUE(streams.ok()) << streams.message();
  EXPECT_EQ(streams->targets[0], "/dev/null");
  EXPECT_EQ(streams->targets[1], expected_pipe);
  EXPECT_EQ(streams->targets[2], error_file);
}

TEST_F(MigrateCriuTest, ClosedJobStreamHasNoTarget) {
  int out[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, 0) != 0 || dup2(out[1], 1) != 1) _exit(126);
    close(2);
    execl("/bin/sh", "sh", "-c", "echo ready; exec sleep 30", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  char ready[6] = {};
  ASSERT_EQ(read(out[0], ready, sizeof ready), 6);
  // While sleep's loader runs, the lowest free fd (2) briefly holds libc.
  std::string exe;
  for (int i = 0; i < 200 && !exe.ends_with("/sleep"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::error_code error;
    exe = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", error).string();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Result<CriuStreams> streams = ReadJobStreams(pid);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  close(out[0]);
  ASSERT_TRUE(streams.ok()) << streams.message();
  EXPECT_EQ(streams->targets[0], "/dev/null");
  EXPECT_TRUE(streams->targets[1].starts_with("pipe:[")) << streams->targets[1];
  EXPECT_EQ(streams->targets[2], "");
}

// ---- Command lines ----

// Whether `option` is in `command`, followed by `value`.
bool HasOption(const std::vector<std::string>& command, const std::string& option, const std::string& value) {
  for (size_t i = 0; i + 1 < command.size(); ++i)
    if (command[i] == option && command[i + 1] == value) return true;
  return false;
}

bool HasFlag(const std::vector<std::string>& command, const std::string& flag) {
  return std::find(command.begin(), command.end(), flag) != command.end();
}

TEST(MigrateCriuCommand, DumpCommand) {
  std::vector<std::string> command = CriuDumpCommand("/usr/local/sbin/criu", 4242, "/spool/.queued/criu/7");
  ASSERT_GE(command.size(), 2u);
  EXPECT_EQ(command[0], "/usr/local/sbin/criu");
  EXPECT_EQ(command[1], "dump");
  EXPECT_TRUE(HasOption(command, "--tree", "4242"));
  EXPECT_TRUE(HasOption(command, "--images-dir", "/spool/.queued/criu/7"));
  EXPECT_TRUE(HasFlag(command, "--shell-job"));
  EXPECT_TRUE(HasOption(command, "--log-file", "dump.log"));
  // The job is killed once dumped: it moves, it does not go on here too.
  EXPECT_FALSE(HasFlag(command, "--leave-running"));
  EXPECT_FALSE(HasFlag(command, "-R"));
}

TEST(MigrateCriuCommand, RestoreCommand) {
  std::vector<std::string> command = CriuRestoreCommand(
      "/usr/local/sbin/criu", "/spool/.queued/criu/7", {{3, "pipe:[12]"}, {4, "pipe:[34]"}});
  ASSERT_GE(command.size(), 2u);
  EXPECT_EQ(command[0], "/usr/local/sbin/criu");
  EXPECT_EQ(command[1], "restore");
  EXPECT_TRUE(HasOption(command, "--images-dir", "/spool/.queued/criu/7"));
  EXPECT_TRUE(HasFlag(command, "--shell-job"));
  EXPECT_TRUE(HasFlag(command, "--restore-sibling"));
  EXPECT_TRUE(HasFlag(command, "--restore-detached"));
  EXPECT_TRUE(HasOption(command, "--pidfile", "/spool/.queued/criu/7/restored.pid"));
  EXPECT_TRUE(HasOption(command, "--log-file", "restore.log"));
  EXPECT_TRUE(HasOption(command, "--inherit-fd", "fd[3]:pipe:[12]"));
  EXPECT_TRUE(HasOption(command, "--inherit-fd", "fd[4]:pipe:[34]"));
  EXPECT_EQ(std::count(command.begin(), command.end(), "--inherit-fd"), 2);

  std::vector<std::string> plain = CriuRestoreCommand("/usr/sbin/criu", "/images", {});
  EXPECT_FALSE(HasFlag(plain, "--inherit-fd"));
  EXPECT_TRUE(HasFlag(plain, "--restore-sibling"));
}

// ---- The cause in a CRIU log ----

TEST_F(MigrateCriuTest, LogErrorIsTheFirstRealCause) {
  const std::string log = dir_ + "/restore.log";
  WriteFile(log,
            "(00.000010) Version: 4.1.1 (gitid 0)\n"
            "(00.000200) Error (criu/util.c:1637): Can't set RLIMIT_NOFILE to 1048576: Operation not permitted\n"
            "(00.001000) Warn  (criu/cr-restore.c:100): something to note\n"
            "(00.002000) 4242: Error (criu/cr-restore.c:1480): Can't fork for 4242: File exists\n"
            "(00.003000) Error (criu/cr-restore.c:2600): Can't attach to 4242: No such process\n"
            "(00.004000) Error (criu/cr-restore.c:2447): Restoring FAILED.\n");
  EXPECT_EQ(CriuLogError(log), "Can't fork for 4242: File exists");
}

TEST_F(MigrateCriuTest, LogOfADumpThatOnlySaysItFailedGivesNothingToBlame) {
  const std::string log = dir_ + "/dump.log";
  WriteFile(log,
            "(00.000200) Error (criu/util.c:1637): Can't raise RLIMIT_NOFILE\n"
            "(00.004000) Error (criu/cr-dump.c:2093): Dumping FAILED.\n");
  EXPECT_EQ(CriuLogError(log), "");
}

TEST_F(MigrateCriuTest, LogWithoutErrorsOrMissingGivesNothing) {
  const std::string log = dir_ + "/dump.log";
  WriteFile(log,
            "(00.000010) Version: 4.1.1 (gitid 0)\n"
            "(00.001000) Warn  (criu/cr-dump.c:100): Error-free warning\n"
            "(00.500000) Dumping finished successfully\n");
  EXPECT_EQ(CriuLogError(log), "");
  EXPECT_EQ(CriuLogError(dir_ + "/no-such.log"), "");
}

// ---- Probing criu ----

TEST_F(MigrateCriuTest, ProbeOfAMissingCriu) {
  CriuAvailability criu = ProbeCriu("/nonexistent/criu");
  EXPECT_FALSE(criu.usable);
  EXPECT_NE(criu.reason.find("is not an executable file"), std::string::npos) << criu.reason;
  EXPECT_NE(criu.reason.find("/nonexistent/criu"), std::string::npos) << criu.reason;
  EXPECT_EQ(DescribeCriu(criu), criu.reason);
}

TEST_F(MigrateCriuTest, ProbeOfANonExecutableFile) {
  std::string path = dir_ + "/criu";
  WriteFile(path, "#!/bin/sh\nexit 0\n", 0644);  // no x bit: not even root may run it
  CriuAvailability criu = ProbeCriu(path);
  EXPECT_FALSE(criu.usable);
  EXPECT_NE(criu.reason.find("is not an executable file"), std::string::npos) << criu.reason;
}

TEST_F(MigrateCriuTest, ProbeOfACriuWhoseCheckFails) {
  std::string path = FakeCriu("criu", "echo '(00.1) Error (x.c:1): kernel says no' >&2; exit 1");
  CriuAvailability criu = ProbeCriu(path);
  EXPECT_FALSE(criu.usable);
  EXPECT_EQ(criu.path, path);
  EXPECT_EQ(criu.version, "9.9");
  EXPECT_NE(criu.reason.find("9.9"), std::string::npos) << criu.reason;
  EXPECT_NE(criu.reason.find("kernel says no"), std::string::npos) << criu.reason;
  EXPECT_NE(criu.reason.find(path), std::string::npos) << criu.reason;
  EXPECT_EQ(criu.reason.find('\n'), std::string::npos) << criu.reason;
  EXPECT_EQ(DescribeCriu(criu), criu.reason);
}

TEST_F(MigrateCriuTest, ProbeOfACriuWhoseCheckFailsSilently) {
  std::string path = FakeCriu("criu", "exit 1");
  CriuAvailability criu = ProbeCriu(path);
  EXPECT_FALSE(criu.usable);
  EXPECT_NE(criu.reason.find("`criu check` failed"), std::string::npos) << criu.reason;
}

TEST_F(MigrateCriuTest, ProbeOfAWorkingCriu) {
  std::string path = FakeCriu("criu", "echo 'Looks good.'; exit 0");
  CriuAvailability criu = ProbeCriu(path);
  EXPECT_TRUE(criu.usable) << criu.reason;
  EXPECT_EQ(criu.path, path);
  EXPECT_EQ(criu.version, "9.9");
  EXPECT_EQ(DescribeCriu(criu), "criu 9.9 (" + path + ") works here");
}

// ---- Spawning criu (SpawnCriu) ----
//
// SpawnCriu returns once it has forked, before the child has exec'd: a test
// that looks at the child's fds or masks waits for the exec first.

const CriuIdentity kRoot{0, 0, {}};

// Whether `pid` came to run `program` within a few seconds.
bool WaitForExec(pid_t pid, const std::string& program) {
  const std::filesystem::path want = std::filesystem::canonical(program);
  const std::string exe = "/proc/" + std::to_string(pid) + "/exe";
  for (int tries = 0; tries < 500; ++tries) {
    std::error_code ec;
    if (std::filesystem::read_symlink(exe, ec) == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// SpawnCriu as root, then waits: the child's wait status.
Result<int> SpawnAndWait(const std::vector<std::string>& argv, const std::vector<int>& pass_fds = {}) {
  Result<pid_t> pid = SpawnCriu(argv, pass_fds, kRoot, CriuStep::kDump);
  if (!pid.ok()) return pid.error();
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0)
    if (errno != EINTR) return Fail("waitpid: " + ErrnoText(errno));
  return status;
}

// A field of /proc/PID/status ("SigBlk", "CapAmb", "Uid"), as written there.
std::string StatusField(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(field + ":")) {
      size_t value = line.find_first_not_of(" \t", field.size() + 1);
      return value == std::string::npos ? "" : line.substr(value);
    }
  return "";
}

void KillAndReap(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

class SpawnCriuTest : public MigrateCriuTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "SpawnCriu requires root";
    MigrateCriuTest::SetUp();
  }
};

TEST_F(SpawnCriuTest, PassedFdsLandAtThreeOnwards) {
  int first[2], second[2];
  ASSERT_EQ(pipe2(first, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(second, O_CLOEXEC), 0);
  Result<int> status = SpawnAndWait({"/bin/sh", "-c", "echo hi >&3; echo there >&4"}, {first[1], second[1]});
  close(first[1]);
  close(second[1]);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_EQ(Drain(first[0]), "hi\n");
  EXPECT_EQ(Drain(second[0]), "there\n");
  close(first[0]);
  close(second[0]);
}

// Passing fds 3 and 4 swapped: placing one must not overwrite the other.
TEST_F(SpawnCriuTest, PassedFdsMaySwapPlaces) {
  int first[2], second[2];
  ASSERT_EQ(pipe2(first, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(second, O_CLOEXEC), 0);
  // Out of the way of 3 and 4 first; the pipes' names tell them apart, nothing is read.
  ASSERT_EQ(dup3(first[1], 40, O_CLOEXEC), 40);
  ASSERT_EQ(dup3(second[1], 41, O_CLOEXEC), 41);
  for (int fd : {first[0], first[1], second[0], second[1]}) close(fd);
  // Whatever 3 and 4 are (the test runner may hold them), kept aside and put back after.
  int saved3 = fcntl(3, F_DUPFD_CLOEXEC, 50), saved4 = fcntl(4, F_DUPFD_CLOEXEC, 50);
  ASSERT_EQ(dup3(40, 4, O_CLOEXEC), 4);
  ASSERT_EQ(dup3(41, 3, O_CLOEXEC), 3);
  close(40);
  close(41);
  const std::string first_name = PipeName(4), second_name = PipeName(3);
  Result<int> status = SpawnAndWait({"/bin/sh", "-c",
                                     "[ \"$(readlink /proc/$$/fd/3)\" = '" + first_name + "' ] && "
                                     "[ \"$(readlink /proc/$$/fd/4)\" = '" + second_name + "' ]"},
                                    {4, 3});
  for (auto [saved, fd] : {std::pair{saved3, 3}, std::pair{saved4, 4}}) {
    if (saved >= 0) {
      dup3(saved, fd, O_CLOEXEC);
      close(saved);
    } else {
      close(fd);
    }
  }
  ASSERT_NE(first_name, second_name);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << "fd 4 should be the child's 3 (" << first_name << ") and fd 3 its 4 (" << second_name << ")";
}

// Names of the fds open in process `pid`, sorted by number, with their targets.
std::vector<std::pair<int, std::string>> OpenFds(pid_t pid) {
  std::vector<std::pair<int, std::string>> fds;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(entry.path(), ec);
    fds.emplace_back(std::stoi(entry.path().filename().string()), target.string());
  }
  std::sort(fds.begin(), fds.end());
  return fds;
}

// The same once it holds still: just after the exec the dynamic loader opens
// and closes the program's libraries, and a listing taken then shows such an
// fd (or one already gone, with no target). Two listings alike, 20 ms apart,
// with every target readable, are what the program itself holds.
std::vector<std::pair<int, std::string>> SettledFds(pid_t pid) {
  auto fds = OpenFds(pid);
  for (int tries = 0; tries < 100; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto again = OpenFds(pid);
    bool readable = std::none_of(again.begin(), again.end(), [](const auto& fd) { return fd.second.empty(); });
    if (again == fds && readable) return again;
    fds = std::move(again);
  }
  return fds;
}

TEST_F(SpawnCriuTest, ChildGetsDevNullStreamsThePassedFdsAndNoOtherFd) {
  // An fd without close-on-exec, as a library might leave one: it must not reach criu.
  int leaky = open("/dev/null", O_RDONLY);
  ASSERT_GE(leaky, 0);
  int passed[2];
  ASSERT_EQ(pipe2(passed, O_CLOEXEC), 0);
  Result<pid_t> child = SpawnCriu({"/bin/sleep", "30"}, {passed[1], passed[0]}, kRoot, CriuStep::kDump);
  close(leaky);
  ASSERT_TRUE(child.ok()) << child.message();
  ASSERT_TRUE(WaitForExec(*child, "/bin/sleep"));
  auto fds = SettledFds(*child);
  KillAndReap(*child);
  const std::string pipe_name = PipeName(passed[0]);
  close(passed[0]);
  close(passed[1]);
  const std::vector<std::pair<int, std::string>> want = {
      {0, "/dev/null"}, {1, "/dev/null"}, {2, "/dev/null"}, {3, pipe_name}, {4, pipe_name}};
  EXPECT_EQ(fds, want);
}

TEST_F(SpawnCriuTest, StdinMayBeGiven) {
  int input[2];
  ASSERT_EQ(pipe2(input, O_CLOEXEC), 0);
  Result<pid_t> child = SpawnCriu({"/bin/sleep", "30"}, {}, kRoot, CriuStep::kRestore, input[0]);
  ASSERT_TRUE(child.ok()) << child.message();
  ASSERT_TRUE(WaitForExec(*child, "/bin/sleep"));
  auto fds = SettledFds(*child);
  KillAndReap(*child);
  const std::string pipe_name = PipeName(input[0]);
  close(input[0]);
  close(input[1]);
  const std::vector<std::pair<int, std::string>> want = {{0, pipe_name}, {1, "/dev/null"}, {2, "/dev/null"}};
  EXPECT_EQ(fds, want);
}

TEST_F(SpawnCriuTest, ChildGetsNoBlockedOrIgnoredSignals) {
  sigset_t usr1, old_mask;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  ASSERT_EQ(sigprocmask(SIG_BLOCK, &usr1, &old_mask), 0);
  struct sigaction ignore {}, old_action {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGUSR2, &ignore, &old_action), 0);
  Result<pid_t> child = SpawnCriu({"/bin/sleep", "30"}, {}, kRoot, CriuStep::kDump);
  sigaction(SIGUSR2, &old_action, nullptr);
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  ASSERT_TRUE(child.ok()) << child.message();
  ASSERT_TRUE(WaitForExec(*child, "/bin/sleep"));
  const std::string blocked = StatusField(*child, "SigBlk"), ignored = StatusField(*child, "SigIgn");
  KillAndReap(*child);
  ASSERT_FALSE(blocked.empty());
  ASSERT_FALSE(ignored.empty());
  EXPECT_EQ(std::stoull(blocked, nullptr, 16) & (1ULL << (SIGUSR1 - 1)), 0u) << blocked;
  EXPECT_EQ(std::stoull(ignored, nullptr, 16) & (1ULL << (SIGUSR2 - 1)), 0u) << ignored;
}

TEST_F(SpawnCriuTest, EnvironmentIsBare) {
  int out[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  ASSERT_EQ(setenv("QUEUE_TEST_SECRET", "leaked", 1), 0);
  Result<int> status = SpawnAndWait({"/bin/sh", "-c", "/usr/bin/env >&3"}, {out[1]});
  unsetenv("QUEUE_TEST_SECRET");
  close(out[1]);
  ASSERT_TRUE(status.ok()) << status.message();
  std::string env = Drain(out[0]);
  close(out[0]);
  EXPECT_NE(env.find("PATH=/usr/local/sbin:"), std::string::npos) << env;
  EXPECT_EQ(env.find("QUEUE_TEST_SECRET"), std::string::npos) << env;
  EXPECT_EQ(env.find("HOME="), std::string::npos) << env;
}

// An owner's criu: the owner's ids, and only the capabilities its step needs,
// ambient so that they survive the exec.
TEST_F(SpawnCriuTest, AnOwnersCriuHasTheOwnersIdsAndOnlyItsCapabilities) {
  const CriuIdentity nobody{65534, 65534, {65534}};
  for (CriuStep step : {CriuStep::kDump, CriuStep::kRestore}) {
    Result<pid_t> child = SpawnCriu({"/bin/sleep", "30"}, {}, nobody, step);
    ASSERT_TRUE(child.ok()) << child.message();
    ASSERT_TRUE(WaitForExec(*child, "/bin/sleep"));
    const std::string uid = StatusField(*child, "Uid"), ambient = StatusField(*child, "CapAmb");
    KillAndReap(*child);
    EXPECT_EQ(uid, "65534\t65534\t65534\t65534");
    uint64_t want = uint64_t{1} << 40;  // CAP_CHECKPOINT_RESTORE
    if (step == CriuStep::kRestore) want |= uint64_t{1} << 8;  // CAP_SETPCAP
    EXPECT_EQ(std::stoull(ambient, nullptr, 16), want) << ambient;
  }
}

TEST_F(SpawnCriuTest, ExitStatusIsReturned) {
  Result<int> status = SpawnAndWait({"/bin/sh", "-c", "exit 7"});
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 7);
}

// The exec fails in the child: it exits 127, and no copy of a passed fd is left here.
TEST_F(SpawnCriuTest, AMissingProgramExits127) {
  int passed[2];
  ASSERT_EQ(pipe2(passed, O_CLOEXEC), 0);
  size_t before = OpenFdCount();
  Result<int> status = SpawnAndWait({dir_ + "/no-such-criu", "check"}, {passed[1]});
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 127);
  EXPECT_EQ(OpenFdCount(), before) << "the copies of the passed fds must be closed";
  close(passed[0]);
  close(passed[1]);
}

TEST_F(SpawnCriuTest, SpawnLeavesNoCopiesOfThePassedFds) {
  int passed[2];
  ASSERT_EQ(pipe2(passed, O_CLOEXEC), 0);
  size_t before = OpenFdCount();
  Result<pid_t> spawned = SpawnCriu({"/bin/true"}, {passed[0], passed[1]}, kRoot, CriuStep::kDump);
  ASSERT_TRUE(spawned.ok()) << spawned.message();
  EXPECT_EQ(OpenFdCount(), before);
  int status = 0;
  ASSERT_EQ(waitpid(*spawned, &status, 0), *spawned);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(passed[0]);
  close(passed[1]);
}

}  // namespace
}  // namespace queue::migrate
