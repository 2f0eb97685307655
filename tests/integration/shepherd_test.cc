// Tests of the real queue-shepherd binary on its own: the test plays the daemon
// (a socket pair on fd 3, a listening adoption socket on fd 4) and runs batch
// jobs through it, checking the events, the output file and the status file.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "cluster_fixture.h"
#include "exec/shepherd_status.h"
#include "wire/frame.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;
using wire::ShepherdEvent;
using wire::ShepherdEventKind;

// The test's end of a frame connection, read with a deadline.
class FrameConnection {
 public:
  explicit FrameConnection(int fd) : fd_(fd) {}
  FrameConnection(const FrameConnection&) = delete;
  FrameConnection& operator=(const FrameConnection&) = delete;
  ~FrameConnection() { Close(); }

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  template <class M>
  bool Send(const M& message) {
    std::string frame = wire::MakeFrame(message);
    return write(fd_, frame.data(), frame.size()) == static_cast<ssize_t>(frame.size());
  }

  // The next frame; nullopt on timeout, end of stream or a bad frame.
  std::optional<wire::FrameSplitter::Frame> Next(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto next = splitter_.Next();
      if (!next.ok()) return std::nullopt;
      if (next->has_value()) return std::move(**next);
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd poll_fd{fd_, POLLIN, 0};
      if (poll(&poll_fd, 1, static_cast<int>(left.count())) <= 0) continue;
      char buffer[4096];
      ssize_t n = read(fd_, buffer, sizeof buffer);
      if (n <= 0) {
        eof_ = true;
        return std::nullopt;
      }
      splitter_.Feed(std::string_view(buffer, static_cast<size_t>(n)));
    }
  }

  std::optional<ShepherdEvent> NextEvent(std::chrono::milliseconds timeout = 10s) {
    auto frame = Next(timeout);
    if (!frame || frame->type != wire::MessageType::kShepherdEvent) return std::nullopt;
    auto event = wire::DecodePayload<ShepherdEvent>(frame->payload);
    if (!event.ok()) return std::nullopt;
    return event.value();
  }

  // Whether the peer closed the connection within timeout (frames before the end are skipped).
  bool ClosedWithin(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!eof_ && std::chrono::steady_clock::now() < deadline) Next(10ms);
    return eof_;
  }

 private:
  int fd_;
  wire::FrameSplitter splitter_;
  bool eof_ = false;
};

class ShepherdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/queue-shepherd-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    output_path_ = dir_ + "/job.out";
    status_path_ = dir_ + "/job.status";
    adoption_path_ = dir_ + "/adopt.sock";
  }

  void TearDown() override {
    if (shepherd_pid_ > 0 && !WaitChild(shepherd_pid_, 0ms)) {
      kill(-shepherd_pid_, SIGKILL);  // the shepherd's session: it and its job
      WaitChild(shepherd_pid_, 5s);
    }
    std::filesystem::remove_all(dir_);
  }

  wire::ShepherdStart BatchStart(std::vector<std::string> argv) {
    wire::ShepherdStart start;
    start.job = {501, 1};
    start.exec_host = "127.0.0.1:1";
    start.allow_root = geteuid() == 0;  // the test's own uid runs the job, root included
    start.output_path = output_path_;
    start.status_path = status_path_;
    start.adoptable = true;
    wire::JobSpec& spec = start.spec;
    spec.argv = std::move(argv);
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.cwd = dir_;
    spec.uid = getuid();
    spec.gid = getgid();
    std::vector<gid_t> groups(getgroups(0, nullptr));
    groups.resize(getgroups(static_cast<int>(groups.size()), groups.data()));
    spec.groups.assign(groups.begin(), groups.end());
    spec.batch = true;
    return start;
  }

  // Spawns queue-shepherd in a session of its own, as queued does, and sends it
  // start. Returns the daemon's end of fd 3.
  std::unique_ptr<FrameConnection> Spawn(const wire::ShepherdStart& start) {
    int pair[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    int listener = ListenOn(adoption_path_);
    std::string binary = BinDir() + "/queue-shepherd";
    std::string log = dir_ + "/shepherd.log";
    pid_t pid = fork();
    if (pid == 0) {
      setsid();
      int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      // Above every fd in use, so that the dup2s below cannot clobber a source.
      int channel = fcntl(pair[1], F_DUPFD_CLOEXEC, 100);
      int adoption = fcntl(listener, F_DUPFD_CLOEXEC, 100);
      int null = open("/dev/null", O_RDWR);
      dup2(null, 0);
      dup2(null, 1);
      dup2(log_fd, 2);
      dup2(channel, 3);  // dup2 clears close-on-exec on the copy
      dup2(adoption, 4);
      close_range(5, ~0U, 0);
      execl(binary.c_str(), binary.c_str(), "--fd=3", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(pair[1]);
    close(listener);
    shepherd_pid_ = pid;
    auto daemon = std::make_unique<FrameConnection>(pair[0]);
    EXPECT_TRUE(daemon->Send(start));
    return daemon;
  }

  static int ListenOn(const std::string& path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0) << strerror(errno);
    EXPECT_EQ(listen(fd, 4), 0);
    return fd;
  }

  // A re-adopting daemon's connection to the shepherd.
  std::unique_ptr<FrameConnection> Adopt() {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, adoption_path_.c_str(), sizeof address.sun_path - 1);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0) << strerror(errno);
    return std::make_unique<FrameConnection>(fd);
  }

  // The shepherd's exit status, when it exits within timeout.
  std::optional<int> ShepherdExit(std::chrono::milliseconds timeout) {
    auto status = WaitChild(shepherd_pid_, timeout);
    if (status) shepherd_pid_ = -1;
    return status;
  }

  std::optional<ShepherdEvent> StatusFile() {
    auto read = exec::ReadShepherdStatus(status_path_);
    EXPECT_TRUE(read.ok()) << read.message();
    if (!read.ok()) return std::nullopt;
    return *read;
  }

  std::string ShepherdLog() { return ReadFile(dir_ + "/shepherd.log"); }

  std::string dir_, output_path_, status_path_, adoption_path_;
  pid_t shepherd_pid_ = -1;
};

TEST_F(ShepherdTest, BatchJobReportsItsEndToTheDaemonAndTheStatusFile) {
  auto daemon = Spawn(BatchStart({"sh", "-c", "echo out; echo err >&2; exit 3"}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started) << ShepherdLog();
  EXPECT_EQ(started->kind, ShepherdEventKind::kStarted);
  EXPECT_GT(started->pid, 0);
  auto finished = daemon->NextEvent();
  ASSERT_TRUE(finished) << ShepherdLog();
  EXPECT_EQ(finished->kind, ShepherdEventKind::kFinished);
  EXPECT_EQ(finished->pid, started->pid);
  ASSERT_TRUE(WIFEXITED(finished->wait_status));
  EXPECT_EQ(WEXITSTATUS(finished->wait_status), 3);

  auto exit = ShepherdExit(5s);
  ASSERT_TRUE(exit) << "the shepherd did not exit after its job";
  EXPECT_EQ(WEXITSTATUS(*exit), 3) << ShepherdLog();
  EXPECT_EQ(ReadFile(output_path_), "out\nerr\n");
  struct stat info {};
  ASSERT_EQ(stat(output_path_.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_EQ(info.st_uid, getuid());

  auto status = StatusFile();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->kind, ShepherdEventKind::kFinished);
  EXPECT_EQ(status->pid, finished->pid);
  EXPECT_EQ(status->wait_status, finished->wait_status);
  EXPECT_DOUBLE_EQ(status->cpu_seconds, finished->cpu_seconds);
}

TEST_F(ShepherdTest, BatchJobGetsNoShepherdFdsAndNoInput) {
  // `ls` runs as a child of the shell and lists the shell's descriptors.
  auto daemon = Spawn(BatchStart({"sh", "-c", "ls /proc/$$/fd; cat; echo end"}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  auto finished = daemon->NextEvent();
  ASSERT_TRUE(finished && finished->kind == ShepherdEventKind::kFinished) << ShepherdLog();
  EXPECT_EQ(ReadFile(output_path_), "0\n1\n2\nend\n");
}

TEST_F(ShepherdTest, RestartedDaemonReadoptsARunningJob) {
  auto daemon = Spawn(BatchStart({"sh", "-c", "sleep 1; echo done"}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  daemon->Close();  // the daemon stops

  auto running = exec::ReadShepherdStatus(status_path_);
  ASSERT_TRUE(running.ok()) << running.message();
  EXPECT_FALSE(running->has_value()) << "the job has not ended yet";

  auto adopter = Adopt();
  auto again = adopter->NextEvent();
  ASSERT_TRUE(again) << ShepherdLog();
  EXPECT_EQ(again->kind, ShepherdEventKind::kStarted);
  EXPECT_EQ(again->pid, started->pid);
  auto finished = adopter->NextEvent(10s);
  ASSERT_TRUE(finished) << ShepherdLog();
  EXPECT_EQ(finished->kind, ShepherdEventKind::kFinished);
  EXPECT_EQ(finished->pid, started->pid);
  EXPECT_TRUE(WIFEXITED(finished->wait_status) && WEXITSTATUS(finished->wait_status) == 0);

  ASSERT_TRUE(ShepherdExit(5s));
  EXPECT_EQ(ReadFile(output_path_), "done\n");
  auto status = StatusFile();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->kind, ShepherdEventKind::kFinished);
  EXPECT_EQ(status->wait_status, finished->wait_status);
}

TEST_F(ShepherdTest, ReadoptionReplacesTheOldDaemonChannel) {
  auto daemon = Spawn(BatchStart({"sh", "-c", "sleep 1"}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  auto adopter = Adopt();
  auto again = adopter->NextEvent();
  ASSERT_TRUE(again && again->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  EXPECT_TRUE(daemon->ClosedWithin(2s)) << "the old channel should be closed";
  auto finished = adopter->NextEvent(10s);
  ASSERT_TRUE(finished && finished->kind == ShepherdEventKind::kFinished) << ShepherdLog();
}

TEST_F(ShepherdTest, ControlFromTheAdoptingDaemonReachesTheJob) {
  auto daemon = Spawn(BatchStart({"sleep", "30"}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  daemon->Close();
  auto adopter = Adopt();
  ASSERT_TRUE(adopter->NextEvent());
  ASSERT_TRUE(adopter->Send(wire::ShepherdControl{wire::ShepherdAction::kTerminate, "exec off"}));
  auto finished = adopter->NextEvent(10s);
  ASSERT_TRUE(finished && finished->kind == ShepherdEventKind::kFinished) << ShepherdLog();
  EXPECT_TRUE(WIFSIGNALED(finished->wait_status) && WTERMSIG(finished->wait_status) == SIGTERM);
}

TEST_F(ShepherdTest, SuspendedBatchJobWaitsForResume) {
  auto daemon = Spawn(BatchStart({"sh", "-c", "sleep 0.5; echo resumed"}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kSuspend, "load too high"}));
  EXPECT_FALSE(daemon->NextEvent(1500ms)) << "a stopped job must not end";
  EXPECT_EQ(ReadFile(output_path_), "");
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kResume, ""}));
  auto finished = daemon->NextEvent(10s);
  ASSERT_TRUE(finished && finished->kind == ShepherdEventKind::kFinished) << ShepherdLog();
  EXPECT_TRUE(WIFEXITED(finished->wait_status) && WEXITSTATUS(finished->wait_status) == 0);
  ASSERT_TRUE(ShepherdExit(5s));
  EXPECT_EQ(ReadFile(output_path_), "resumed\n");
}

TEST_F(ShepherdTest, WithoutADaemonTheStatusFileCarriesTheEnd) {
  auto daemon = Spawn(BatchStart({"sh", "-c", "sleep 0.3; echo alone; exit 7"}));
  daemon->Close();  // gone before it hears anything
  auto exit = ShepherdExit(10s);
  ASSERT_TRUE(exit) << "the shepherd must not wait for a daemon that is gone";
  EXPECT_EQ(WEXITSTATUS(*exit), 7);
  EXPECT_EQ(ReadFile(output_path_), "alone\n");
  auto status = StatusFile();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->kind, ShepherdEventKind::kFinished);
  EXPECT_GT(status->pid, 0);
  EXPECT_TRUE(WIFEXITED(status->wait_status) && WEXITSTATUS(status->wait_status) == 7);
}

TEST_F(ShepherdTest, JobThatCannotStartFailsInBothPlaces) {
  auto daemon = Spawn(BatchStart({"no-such-command-for-queue"}));
  auto failed = daemon->NextEvent();
  ASSERT_TRUE(failed) << ShepherdLog();
  EXPECT_EQ(failed->kind, ShepherdEventKind::kFailed);
  EXPECT_EQ(failed->message, "no-such-command-for-queue: Command not found.");
  auto exit = ShepherdExit(5s);
  ASSERT_TRUE(exit);
  EXPECT_EQ(WEXITSTATUS(*exit), 2);
  auto status = StatusFile();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->kind, ShepherdEventKind::kFailed);
  EXPECT_EQ(status->message, failed->message);
}

TEST_F(ShepherdTest, UnwritableOutputFailsTheJobInBothPlaces) {
  output_path_ = dir_ + "/no-such-dir/job.out";
  auto daemon = Spawn(BatchStart({"true"}));
  auto failed = daemon->NextEvent();
  ASSERT_TRUE(failed) << ShepherdLog();
  EXPECT_EQ(failed->kind, ShepherdEventKind::kFailed);
  EXPECT_NE(failed->message.find("output file"), std::string::npos) << failed->message;
  ASSERT_TRUE(ShepherdExit(5s));
  auto status = StatusFile();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->kind, ShepherdEventKind::kFailed);
}

// Unix time in milliseconds, as ShepherdEvent::signal_time_ms.
int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A job that traps the checkpoint signal must have set its trap before it gets
// one: these jobs touch `ready` once it is set.
constexpr char kReadyAfterTrap[] = "echo > ready; while :; do sleep 0.1; done";

TEST_F(ShepherdTest, CheckpointedJobSavesAndItsEndSaysSo) {
  auto daemon =
      Spawn(BatchStart({"sh", "-c", std::string("trap 'echo saved > state; exit 0' USR2; ") + kReadyAfterTrap}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(dir_ + "/ready"); }, 5s));
  int64_t before = NowMs();
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpoint, "moving", SIGUSR2, 0}));
  auto finished = daemon->NextEvent(10s);
  int64_t after = NowMs();
  ASSERT_TRUE(finished) << ShepherdLog();
  EXPECT_EQ(finished->kind, ShepherdEventKind::kFinished);
  EXPECT_TRUE(finished->checkpointed);
  EXPECT_GE(finished->signal_time_ms, before);
  EXPECT_LE(finished->signal_time_ms, after);
  EXPECT_TRUE(WIFEXITED(finished->wait_status) && WEXITSTATUS(finished->wait_status) == 0);
  EXPECT_EQ(ReadFile(dir_ + "/state"), "saved\n");
  ASSERT_TRUE(ShepherdExit(5s));
  auto status = StatusFile();
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->checkpointed);
  EXPECT_EQ(status->signal_time_ms, finished->signal_time_ms);
}

TEST_F(ShepherdTest, JobThatIgnoresTheCheckpointSignalIsKilledAfterTheGrace) {
  auto daemon = Spawn(BatchStart({"sh", "-c", std::string("trap '' USR2; ") + kReadyAfterTrap}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(dir_ + "/ready"); }, 5s));
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpoint, "", SIGUSR2, 1}));
  EXPECT_FALSE(daemon->NextEvent(700ms)) << "killed before its grace was over";
  auto finished = daemon->NextEvent(10s);
  ASSERT_TRUE(finished) << ShepherdLog();
  EXPECT_EQ(finished->kind, ShepherdEventKind::kFinished);
  EXPECT_TRUE(finished->checkpointed);
  EXPECT_GT(finished->signal_time_ms, 0);
  EXPECT_TRUE(WIFSIGNALED(finished->wait_status) && WTERMSIG(finished->wait_status) == SIGKILL);
}

TEST_F(ShepherdTest, SecondCheckpointRequestSendsNoSecondSignal) {
  auto daemon = Spawn(
      BatchStart({"sh", "-c", std::string("n=0; trap 'n=$((n+1)); echo $n > count' USR2; ") + kReadyAfterTrap}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(dir_ + "/ready"); }, 5s));
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpoint, "", SIGUSR2, 0}));
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(dir_ + "/count") == "1\n"; }, 5s)) << ShepherdLog();
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpoint, "", SIGUSR2, 0}));
  EXPECT_FALSE(daemon->NextEvent(1s));
  EXPECT_EQ(ReadFile(dir_ + "/count"), "1\n");
  // However it ends after the signal, it ends checkpointed.
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kTerminate, ""}));
  auto finished = daemon->NextEvent(10s);
  ASSERT_TRUE(finished && finished->kind == ShepherdEventKind::kFinished) << ShepherdLog();
  EXPECT_TRUE(finished->checkpointed);
  EXPECT_TRUE(WIFSIGNALED(finished->wait_status) && WTERMSIG(finished->wait_status) == SIGTERM);
}

TEST_F(ShepherdTest, CheckpointContinuesASuspendedJob) {
  auto daemon =
      Spawn(BatchStart({"sh", "-c", std::string("trap 'echo saved > state; exit 0' USR2; ") + kReadyAfterTrap}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(dir_ + "/ready"); }, 5s));
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kSuspend, "load too high"}));
  EXPECT_FALSE(daemon->NextEvent(300ms));
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpoint, "", SIGUSR2, 0}));
  auto finished = daemon->NextEvent(10s);
  ASSERT_TRUE(finished && finished->kind == ShepherdEventKind::kFinished) << ShepherdLog();
  EXPECT_TRUE(finished->checkpointed);
  EXPECT_EQ(ReadFile(dir_ + "/state"), "saved\n");
}

// checkpointmode 1: the daemon dumps the job with CRIU, which SIGKILLs it once
// its image is complete. These jobs wait for the file `go`, then exit 0.
constexpr char kReadyThenWaitForGo[] = "echo > ready; while [ ! -e go ]; do sleep 0.05; done; echo done";

// Whether the queue's hold (SIGSTOP to the job's group) has reached the job.
// The shepherd acknowledges no control but kCheckpointByDaemon, and handles
// them in order: a hold seen also says every control before it was read.
// dash vforks its commands: a SIGSTOP that stops the child before its exec
// leaves the shell waiting for it (state D) with its own stop still pending.
bool Held(pid_t job) {
  std::string status = ReadFile("/proc/" + std::to_string(job) + "/status");
  if (status.find("\nState:\tT") != std::string::npos) return true;
  size_t pending = status.find("\nShdPnd:\t");
  if (pending == std::string::npos) return false;
  return (std::stoull(status.substr(pending + 9, 16), nullptr, 16) >> (SIGSTOP - 1)) & 1;
}

// Its answer to kCheckpointByDaemon, after which the daemon's CRIU may kill the job.
bool Armed(const std::optional<ShepherdEvent>& event, pid_t job) {
  return event && event->kind == ShepherdEventKind::kCheckpointArmed && event->pid == job;
}

TEST_F(ShepherdTest, SigkillAfterTheDaemonsCheckpointIsThatCheckpoint) {
  auto daemon = Spawn(BatchStart({"sh", "-c", kReadyThenWaitForGo}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(dir_ + "/ready"); }, 5s));
  int64_t before = NowMs();
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointByDaemon, "moving"}));
  ASSERT_TRUE(Armed(daemon->NextEvent(5s), started->pid)) << ShepherdLog();
  int64_t killed_at = NowMs();
  ASSERT_EQ(kill(started->pid, SIGKILL), 0);  // as CRIU does once the image is complete
  auto finished = daemon->NextEvent(10s);
  ASSERT_TRUE(finished) << ShepherdLog();
  EXPECT_EQ(finished->kind, ShepherdEventKind::kFinished);
  EXPECT_TRUE(WIFSIGNALED(finished->wait_status) && WTERMSIG(finished->wait_status) == SIGKILL);
  EXPECT_TRUE(finished->checkpointed);
  EXPECT_GE(finished->signal_time_ms, before);
  EXPECT_LE(finished->signal_time_ms, killed_at);
  ASSERT_TRUE(ShepherdExit(5s));
  auto status = StatusFile();
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->checkpointed);
  EXPECT_EQ(status->signal_time_ms, finished->signal_time_ms);
}

TEST_F(ShepherdTest, AbandonedCheckpointLeavesTheJobsOwnEnd) {
  auto daemon = Spawn(BatchStart({"sh", "-c", kReadyThenWaitForGo}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(dir_ + "/ready"); }, 5s));
  int64_t before = NowMs();
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointByDaemon, ""}));
  ASSERT_TRUE(Armed(daemon->NextEvent(5s), started->pid)) << ShepherdLog();
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointAbandoned, "CRIU failed"}));
  EXPECT_FALSE(daemon->NextEvent(300ms)) << "the job carries on";
  std::ofstream(dir_ + "/go").flush();
  auto finished = daemon->NextEvent(10s);
  ASSERT_TRUE(finished) << ShepherdLog();
  EXPECT_EQ(finished->kind, ShepherdEventKind::kFinished);
  EXPECT_TRUE(WIFEXITED(finished->wait_status) && WEXITSTATUS(finished->wait_status) == 0);
  EXPECT_FALSE(finished->checkpointed);
  EXPECT_LE(finished->signal_time_ms, before) << "not checkpointed: the time is the job's start";
  ASSERT_TRUE(ShepherdExit(5s));
  EXPECT_EQ(ReadFile(output_path_), "done\n");
  auto status = StatusFile();
  ASSERT_TRUE(status);
  EXPECT_FALSE(status->checkpointed);
}

// The same, ended by a SIGKILL that is not CRIU's: only the abandonment tells them apart.
TEST_F(ShepherdTest, SigkillAfterAnAbandonedCheckpointIsNoCheckpoint) {
  auto daemon = Spawn(BatchStart({"sh", "-c", kReadyThenWaitForGo}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(dir_ + "/ready"); }, 5s));
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointByDaemon, ""}));
  ASSERT_TRUE(Armed(daemon->NextEvent(5s), started->pid)) << ShepherdLog();
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointAbandoned, ""}));
  // Armed, the shepherd would not stop the job: held, the abandonment was read.
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kSuspend, "load too high"}));
  ASSERT_TRUE(WaitUntil([&] { return Held(started->pid); }, 5s)) << ShepherdLog();
  ASSERT_EQ(kill(started->pid, SIGKILL), 0);
  auto finished = daemon->NextEvent(10s);
  ASSERT_TRUE(finished) << ShepherdLog();
  EXPECT_EQ(finished->kind, ShepherdEventKind::kFinished);
  EXPECT_TRUE(WIFSIGNALED(finished->wait_status) && WTERMSIG(finished->wait_status) == SIGKILL);
  EXPECT_FALSE(finished->checkpointed);
}

// The job exited before CRIU froze it: its end is its own, and it does not move.
TEST_F(ShepherdTest, JobThatExitsDuringTheDaemonsCheckpointEndsAsItself) {
  auto daemon = Spawn(BatchStart({"sh", "-c", kReadyThenWaitForGo}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(dir_ + "/ready"); }, 5s));
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointByDaemon, ""}));
  ASSERT_TRUE(Armed(daemon->NextEvent(5s), started->pid)) << ShepherdLog();
  std::ofstream(dir_ + "/go").flush();
  auto finished = daemon->NextEvent(10s);
  ASSERT_TRUE(finished) << ShepherdLog();
  EXPECT_EQ(finished->kind, ShepherdEventKind::kFinished);
  EXPECT_TRUE(WIFEXITED(finished->wait_status) && WEXITSTATUS(finished->wait_status) == 0);
  EXPECT_FALSE(finished->checkpointed);
  ASSERT_TRUE(ShepherdExit(5s));
  auto status = StatusFile();
  ASSERT_TRUE(status);
  EXPECT_FALSE(status->checkpointed);
}

// The queue's hold (loadstop) that comes during the daemon's checkpoint does
// not stop the job CRIU is dumping; it applies if the checkpoint is abandoned.
TEST_F(ShepherdTest, AHoldDuringTheDaemonsCheckpointWaitsForItsOutcome) {
  auto daemon = Spawn(BatchStart({"sh", "-c", kReadyThenWaitForGo}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(dir_ + "/ready"); }, 5s));
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointByDaemon, ""}));
  ASSERT_TRUE(Armed(daemon->NextEvent(5s), started->pid)) << ShepherdLog();
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kSuspend, "load too high"}));
  // Asked again, it answers only once it has read the hold sent before.
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointByDaemon, ""}));
  ASSERT_TRUE(Armed(daemon->NextEvent(5s), started->pid)) << ShepherdLog();
  EXPECT_FALSE(Held(started->pid)) << "the job must not be stopped while CRIU dumps it";
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointAbandoned, "CRIU failed"}));
  ASSERT_TRUE(WaitUntil([&] { return Held(started->pid); }, 5s)) << "abandoned, the hold applies\n" << ShepherdLog();
  std::ofstream(dir_ + "/go").flush();
  EXPECT_FALSE(daemon->NextEvent(700ms)) << "abandoned, the hold stands";
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kResume, ""}));
  auto finished = daemon->NextEvent(10s);
  ASSERT_TRUE(finished) << ShepherdLog();
  EXPECT_TRUE(WIFEXITED(finished->wait_status) && WEXITSTATUS(finished->wait_status) == 0);
}

// A daemon restarted while the shepherd was armed asks again: it answers again.
TEST_F(ShepherdTest, AskedAgainTheShepherdSaysItIsStillArmed) {
  auto daemon = Spawn(BatchStart({"sh", "-c", kReadyThenWaitForGo}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(dir_ + "/ready"); }, 5s));
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointByDaemon, ""}));
  ASSERT_TRUE(Armed(daemon->NextEvent(5s), started->pid)) << ShepherdLog();
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointByDaemon, ""}));
  ASSERT_TRUE(Armed(daemon->NextEvent(5s), started->pid)) << ShepherdLog();
  std::ofstream(dir_ + "/go").flush();
  auto finished = daemon->NextEvent(10s);
  ASSERT_TRUE(finished) << ShepherdLog();
  EXPECT_FALSE(finished->checkpointed);
}

// A cancel (kTerminate) during the daemon's checkpoint ends the job for good:
// the SIGKILL that follows the SIGTERM is no checkpoint.
TEST_F(ShepherdTest, TheKillAfterACancelIsNoCheckpoint) {
  auto daemon = Spawn(BatchStart({"sh", "-c", std::string("trap '' TERM; ") + kReadyThenWaitForGo}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(dir_ + "/ready"); }, 5s));
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointByDaemon, ""}));
  ASSERT_TRUE(Armed(daemon->NextEvent(5s), started->pid)) << ShepherdLog();
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kTerminate, "cancelled"}));
  auto finished = daemon->NextEvent(10s);
  ASSERT_TRUE(finished) << ShepherdLog();
  EXPECT_TRUE(WIFSIGNALED(finished->wait_status) && WTERMSIG(finished->wait_status) == SIGKILL);
  EXPECT_FALSE(finished->checkpointed);
}

// A stopped job would be dumped stopped and restored stopped, with nobody to continue it.
TEST_F(ShepherdTest, DaemonsCheckpointContinuesASuspendedJob) {
  auto daemon = Spawn(BatchStart({"sh", "-c", kReadyThenWaitForGo}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(dir_ + "/ready"); }, 5s));
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kSuspend, "load too high"}));
  ASSERT_TRUE(WaitUntil([&] { return Held(started->pid); }, 5s)) << ShepherdLog();
  std::ofstream(dir_ + "/go").flush();
  EXPECT_FALSE(daemon->NextEvent(700ms)) << "a stopped job must not end";
  ASSERT_TRUE(daemon->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointByDaemon, ""}));
  ASSERT_TRUE(Armed(daemon->NextEvent(5s), started->pid)) << ShepherdLog();
  auto finished = daemon->NextEvent(10s);
  ASSERT_TRUE(finished) << ShepherdLog() << "the job was not continued";
  EXPECT_EQ(finished->kind, ShepherdEventKind::kFinished);
  EXPECT_TRUE(WIFEXITED(finished->wait_status) && WEXITSTATUS(finished->wait_status) == 0);
  EXPECT_FALSE(finished->checkpointed);
}

TEST_F(ShepherdTest, StrangersCannotAdopt) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to connect as another user";
  chmod(dir_.c_str(), 0755);
  auto daemon = Spawn(BatchStart({"sh", "-c", "sleep 1"}));
  auto started = daemon->NextEvent();
  ASSERT_TRUE(started && started->kind == ShepherdEventKind::kStarted) << ShepherdLog();
  chmod(adoption_path_.c_str(), 0777);
  pid_t stranger = fork();
  if (stranger == 0) {
    // nobody connects; its exit code says whether the shepherd closed on it without a word.
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, adoption_path_.c_str(), sizeof address.sun_path - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) _exit(4);
    pollfd poll_fd{fd, POLLIN, 0};
    char byte;
    bool closed_empty = poll(&poll_fd, 1, 5000) == 1 && read(fd, &byte, 1) == 0;
    _exit(closed_empty ? 0 : 5);
  }
  auto stranger_status = WaitChild(stranger, 10s);
  ASSERT_TRUE(stranger_status);
  EXPECT_EQ(WEXITSTATUS(*stranger_status), 0) << "the stranger was not closed out without a word";
  // The real daemon keeps its channel.
  auto finished = daemon->NextEvent(10s);
  ASSERT_TRUE(finished && finished->kind == ShepherdEventKind::kFinished) << ShepherdLog();
}

}  // namespace
}  // namespace queue::testing
