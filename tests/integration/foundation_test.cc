// End-to-end tests of the foundation: real daemons on loopback, the real
// `queue` binary, jobs that really run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "cluster_fixture.h"
#include "wire/frame.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> kHostAndExit7 = {"-i", "-w", "-n", "--", "sh", "-c", "echo $QUEUE_HOST; exit 7"};

TEST(Foundation, OneHostRunsAJobAndPassesItsExitCode) {
  auto cluster = TestCluster::Start(1);
  ASSERT_TRUE(cluster->WaitForView(10s)) << cluster->log(0);
  auto run = cluster->Queue(0, kHostAndExit7);
  EXPECT_EQ(run.exit_code, 7) << run.err;
  EXPECT_EQ(run.out, cluster->entry(0) + "\n");
}

TEST(Foundation, ThreeHostsRunTheJobOnOneOfThem) {
  auto cluster = TestCluster::Start(3);
  ASSERT_TRUE(cluster->WaitForView(15s)) << cluster->log(0) << cluster->log(1) << cluster->log(2);
  std::set<std::string> seen;
  for (int via = 0; via < 3; ++via) {
    auto run = cluster->Queue(via, kHostAndExit7);
    EXPECT_EQ(run.exit_code, 7) << run.err;
    ASSERT_FALSE(run.out.empty()) << run.err;
    std::string host = run.out.substr(0, run.out.size() - 1);
    EXPECT_TRUE(host == cluster->entry(0) || host == cluster->entry(1) || host == cluster->entry(2)) << host;
  }
}

TEST(Foundation, OnlyHostOptionRunsThereAndNowhereElse) {
  auto cluster = TestCluster::Start(3);
  ASSERT_TRUE(cluster->WaitForView(15s));
  for (int target = 0; target < 3; ++target) {
    auto run = cluster->Queue(0, {"-h", cluster->entry(target), "-n", "--", "sh", "-c", "echo $QUEUE_HOST"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.out, cluster->entry(target) + "\n");
  }
}

TEST(Foundation, UnknownHostFailsNamingTheAuthorisedHosts) {
  auto cluster = TestCluster::Start(2);
  ASSERT_TRUE(cluster->WaitForView(10s));
  auto run = cluster->Queue(0, {"-h", "no-such-host.example", "-n", "--", "true"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("no-such-host.example"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("authorised hosts"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find(cluster->entry(0)), std::string::npos) << run.err;
  EXPECT_NE(run.err.find(cluster->entry(1)), std::string::npos) << run.err;
}

TEST(Foundation, LeastLoadedHostIsChosen) {
  auto cluster = TestCluster::Start(3);
  cluster->SetLoad(0, 6.0);
  cluster->SetLoad(1, 0.0);
  cluster->SetLoad(2, 9.0);
  ASSERT_TRUE(cluster->WaitForView(15s));
  // Evidence, not a pause: both submit hosts have heard the new loads.
  for (int via : {0, 2}) ASSERT_TRUE(cluster->WaitForLoads(via, 10s)) << cluster->Status(via).dump();
  for (int via : {0, 2}) {
    auto run = cluster->Queue(via, {"-n", "--", "sh", "-c", "echo $QUEUE_HOST"});
    EXPECT_EQ(run.out, cluster->entry(1) + "\n") << run.err;
  }
}

TEST(Foundation, StdinStdoutStderrAreRelayedSeparately) {
  auto cluster = TestCluster::Start(2);
  ASSERT_TRUE(cluster->WaitForView(10s));
  std::string data;
  for (int i = 0; i < 20000; ++i) data += "line " + std::to_string(i) + "\n";
  CommandOptions options;
  options.stdin_data = data;
  auto run = cluster->Queue(0, {"-h", cluster->entry(1), "-n", "--", "sh", "-c", "cat; echo to-stderr >&2"}, options);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, data);
  EXPECT_EQ(run.err, "to-stderr\n");
}

TEST(Foundation, EnvironmentAndCwdTravelWithTheJob) {
  auto cluster = TestCluster::Start(2);
  ASSERT_TRUE(cluster->WaitForView(10s));
  CommandOptions options;
  options.env = {"QUEUE_TEST_MARK=carried over"};
  options.cwd = cluster->dir();
  auto run = cluster->Queue(0, {"-h", cluster->entry(1), "-n", "--", "sh", "-c",
                                "echo \"$QUEUE_TEST_MARK|$QUEUE|$(pwd)\"; test -n \"$QUEUE_JOBID\""}, options);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "carried over|i|" + cluster->dir() + "\n");
}

TEST(Foundation, DeathBySignalIsMirroredOnTheStub) {
  auto cluster = TestCluster::Start(1);
  ASSERT_TRUE(cluster->WaitForView(10s));
  auto run = cluster->Queue(0, {"-n", "--", "sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(run.term_signal, SIGTERM) << run.err << " exit " << run.exit_code;
}

TEST(Foundation, CommandNotFoundIsAClearErrorAndExit2) {
  auto cluster = TestCluster::Start(1);
  ASSERT_TRUE(cluster->WaitForView(10s));
  auto run = cluster->Queue(0, {"-n", "--", "no-such-command-xyz"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.err, "no-such-command-xyz: Command not found.\n");
}

TEST(Foundation, DaemonWithAnotherKeyIsRefusedWithALoggedReason) {
  ClusterOptions options;
  options.foreign_key_hosts = {1};
  auto cluster = TestCluster::Start(2, options);
  ASSERT_TRUE(WaitUntil([&] { return cluster->log(0).find("refused") != std::string::npos; }, 10s))
      << cluster->log(0);
  EXPECT_NE(cluster->log(0).find("does not hold the same key"), std::string::npos) << cluster->log(0);
  auto run = cluster->Queue(0, {"-h", cluster->entry(1), "-n", "--", "true"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("not responding"), std::string::npos) << run.err;
  auto local = cluster->Queue(0, {"-n", "--", "sh", "-c", "echo $QUEUE_HOST"});
  EXPECT_EQ(local.out, cluster->entry(0) + "\n") << local.err;
}

int ConnectUnix(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return -1;
  return fd;
}

// Reads until EOF or timeout; true when the peer closed the connection.
bool PeerClosed(int fd) {
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buffer[4096];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    if (n < 0) return false;
  }
}

TEST(Foundation, MalformedFramesCloseOnlyThatConnection) {
  auto cluster = TestCluster::Start(1);
  ASSERT_TRUE(cluster->WaitForView(10s));
  // An oversized frame on the Unix socket.
  int fd = ConnectUnix(cluster->socket(0));
  ASSERT_GE(fd, 0);
  std::string huge_header("\xff\xff\xff\xff\x00\x01", 6);
  ASSERT_EQ(write(fd, huge_header.data(), huge_header.size()), 6);
  EXPECT_TRUE(PeerClosed(fd));
  close(fd);
  // A well-framed but malformed submission.
  fd = ConnectUnix(cluster->socket(0));
  std::string frame = wire::EncodeFrame(wire::MessageType::kSubmitRequest, "garbage");
  ASSERT_EQ(write(fd, frame.data(), frame.size()), static_cast<ssize_t>(frame.size()));
  EXPECT_TRUE(PeerClosed(fd));
  close(fd);
  // Plain-text garbage on the TCP port (not TLS).
  int tcp = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  const std::string& entry = cluster->entry(0);
  address.sin_port = htons(static_cast<uint16_t>(std::stoi(entry.substr(entry.rfind(':') + 1))));
  inet_pton(AF_INET, entry.substr(0, entry.rfind(':')).c_str(), &address.sin_addr);
  ASSERT_EQ(connect(tcp, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  // The daemon names the connection by its far end: this socket's address and port.
  sockaddr_in mine{};
  socklen_t mine_size = sizeof mine;
  ASSERT_EQ(getsockname(tcp, reinterpret_cast<sockaddr*>(&mine), &mine_size), 0);
  char mine_text[INET_ADDRSTRLEN] = "";
  inet_ntop(AF_INET, &mine.sin_addr, mine_text, sizeof mine_text);
  const std::string from = std::string(mine_text) + ":" + std::to_string(ntohs(mine.sin_port));
  std::string junk = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_EQ(write(tcp, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  EXPECT_TRUE(PeerClosed(tcp));
  close(tcp);
  // The daemon still works, and said why it closed each connection.
  auto run = cluster->Queue(0, {"-n", "--", "echo", "still here"});
  EXPECT_EQ(run.out, "still here\n") << run.err;
  std::string log = cluster->log(0);
  EXPECT_NE(log.find("exceeds the limit"), std::string::npos) << log;
  EXPECT_NE(log.find("malformed message"), std::string::npos) << log;
  EXPECT_NE(log.find("refused connection from " + from + ":"), std::string::npos) << log;
}

TEST(Foundation, DeadHostIsNoticedAndSkipped) {
  auto cluster = TestCluster::Start(3);
  ASSERT_TRUE(cluster->WaitForView(15s));
  cluster->StopDaemon(2, SIGKILL);
  ASSERT_TRUE(cluster->WaitForView(10s, {2}));
  for (int i = 0; i < 6; ++i) {
    auto run = cluster->Queue(i % 2, {"-n", "--", "sh", "-c", "echo $QUEUE_HOST"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_NE(run.out, cluster->entry(2) + "\n");
  }
}

TEST(Foundation, RunningJobSurvivesItsDaemonRestarting) {
  auto cluster = TestCluster::Start(1);
  ASSERT_TRUE(cluster->WaitForView(10s));
  std::string flag = cluster->dir() + "/go";
  CommandResult during;
  std::thread restarter([&] {
    WaitUntil([&] { return std::filesystem::exists(flag + ".started"); }, 10s);
    cluster->StopDaemon(0, SIGTERM);
    // A new daemon takes the same port and socket while the job runs on: the
    // shepherd must hold none of the old daemon's sockets or files.
    cluster->StartDaemon(0);
    if (cluster->WaitForView(10s)) during = cluster->Queue(0, {"-n", "--", "echo", "new daemon"});
    WriteFile(flag, "");
  });
  auto run = cluster->Queue(0, {"-n", "--", "sh", "-c",
                                "touch " + flag + ".started; while [ ! -e " + flag + " ]; do sleep 0.05; done; exit 5"});
  restarter.join();
  EXPECT_EQ(run.exit_code, 5) << run.err;
  EXPECT_EQ(during.out, "new daemon\n") << during.err << cluster->log(0);
}

TEST(Foundation, KilledStubTakesItsRemoteJobWithIt) {
  auto cluster = TestCluster::Start(2);
  ASSERT_TRUE(cluster->WaitForView(10s));
  std::string pidfile = cluster->dir() + "/job.pid";
  auto stub = StartBackground({BinDir() + "/queue", "-h", cluster->entry(1), "-n", "--", "sh", "-c",
                               "echo $$ > " + pidfile + "; exec sleep 300"},
                              {"QUEUE_SOCKET=" + cluster->socket(0)}, cluster->dir() + "/stub.out",
                              cluster->dir() + "/stub.err");
  ASSERT_TRUE(WaitUntil([&] { return !ReadFile(pidfile).empty(); }, 10s));
  pid_t job = std::stoi(ReadFile(pidfile));
  std::string cmdline_path = "/proc/" + std::to_string(job) + "/cmdline";
  ASSERT_NE(ReadFile(cmdline_path).find("sleep"), std::string::npos);
  kill(stub.pid, SIGKILL);
  WaitChild(stub.pid, 5s);
  EXPECT_TRUE(WaitUntil([&] { return ReadFile(cmdline_path).find("sleep") == std::string::npos; }, 15s))
      << "the job outlived its stub";
}

// queued as ./run.sh starts it: detached, with a pid file. It forks once it
// has set itself up (so that errors reach the terminal), and what it set up
// must work in the child: here, the worker thread that brings output home.
TEST(Foundation, ADetachedDaemonRunsBatchJobsAndStops) {
  auto cluster = TestCluster::Start(1);
  ASSERT_TRUE(cluster->WaitForView(10s));
  cluster->StopDaemon(0);
  const std::string host = cluster->dir() + "/host0", pidfile = cluster->dir() + "/queued.pid";
  auto started = RunCommand({BinDir() + "/queued", "--spooldir", host + "/spool", "--hosts", cluster->dir() + "/hosts",
                             "--key", cluster->dir() + "/cluster.key", "--listen", cluster->entry(0), "--socket",
                             cluster->socket(0), "--loadavg-file", host + "/loadavg", "--pidfile", pidfile});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  ASSERT_TRUE(WaitUntil([&] { return !ReadFile(pidfile).empty(); }, 5s));
  // A pidfd, not the bare pid: the daemon is not our child, and we wait for its end.
  int daemon = static_cast<int>(syscall(SYS_pidfd_open, std::stoi(ReadFile(pidfile)), 0));
  ASSERT_GE(daemon, 0);
  const std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  auto submitted =
      cluster->Queue(0, {"-r", "-j", "detached", "--", "sh", "-c", "echo from a detached daemon"}, {{}, "", 30s, cwd});
  EXPECT_EQ(submitted.exit_code, 0) << submitted.err;
  EXPECT_TRUE(WaitUntil([&] { return ReadFile(cwd + "/detached.o" + JobLabel(1)) == "from a detached daemon\n"; }, 20s))
      << ReadFile(host + "/spool/queued.log");
  syscall(SYS_pidfd_send_signal, daemon, SIGTERM, nullptr, 0);
  pollfd ended{daemon, POLLIN, 0};
  bool stopped = poll(&ended, 1, 10000) == 1;
  EXPECT_TRUE(stopped) << "queued did not stop within 10 s of SIGTERM\n" << ReadFile(host + "/spool/queued.log");
  if (!stopped) syscall(SYS_pidfd_send_signal, daemon, SIGKILL, nullptr, 0);
  close(daemon);
}

TEST(Foundation, StatusShowsHostsQueuesAndJobsAsJson) {
  auto cluster = TestCluster::Start(2);
  cluster->SetLoad(1, 1.5);
  ASSERT_TRUE(cluster->WaitForView(10s));
  // Evidence, not a pause: host 0 has heard host 1's new load.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto seen = nlohmann::json::parse(cluster->Queue(0, {"--status", "--json"}).out, nullptr, false);
        return !seen.is_discarded() && seen["hosts"].size() == 2 && seen["hosts"][1].contains("load1") &&
               seen["hosts"][1]["load1"] == 1.5;
      },
      10s));
  auto run = cluster->Queue(0, {"--status", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto status = nlohmann::json::parse(run.out);
  ASSERT_EQ(status["hosts"].size(), 2U);
  EXPECT_EQ(status["hosts"][1]["host"], cluster->entry(1));
  EXPECT_DOUBLE_EQ(status["hosts"][1]["load1"].get<double>(), 1.5);
  std::set<std::string> queues;
  for (const auto& q : status["queues"]) queues.insert(q["name"].get<std::string>());
  EXPECT_EQ(queues, (std::set<std::string>{"now", "wait"}));
  auto table = cluster->Queue(0, {"--status"});
  EXPECT_NE(table.out.find(cluster->entry(1)), std::string::npos);
}

}  // namespace
}  // namespace queue::testing

namespace queue::testing {
namespace {

std::vector<nlohmann::json> JobsOn(TestCluster& cluster, int i) {
  auto run = cluster.Queue(i, {"--status", "--json"});
  auto status = nlohmann::json::parse(run.out, nullptr, false);
  if (status.is_discarded()) return {};
  return std::vector<nlohmann::json>(status["jobs"].begin(), status["jobs"].end());
}

TEST(Foundation, BothHostsShowARemoteJobUntilItEnds) {
  auto cluster = TestCluster::Start(2);
  ASSERT_TRUE(cluster->WaitForView(10s));
  std::string flag = cluster->dir() + "/release";
  auto stub = StartBackground({BinDir() + "/queue", "-h", cluster->entry(1), "-n", "-j", "waiter", "--", "sh", "-c",
                               "while [ ! -e " + flag + " ]; do sleep 0.05; done"},
                              {"QUEUE_SOCKET=" + cluster->socket(0)}, cluster->dir() + "/stub.out",
                              cluster->dir() + "/stub.err");
  ASSERT_TRUE(WaitUntil([&] { return JobsOn(*cluster, 1).size() == 1; }, 10s));
  auto here = JobsOn(*cluster, 0), there = JobsOn(*cluster, 1);
  ASSERT_EQ(here.size(), 1U);
  EXPECT_EQ(here[0]["host"], cluster->entry(1));
  EXPECT_EQ(here[0]["name"], "waiter");
  EXPECT_EQ(there[0]["origin"], cluster->entry(0));
  EXPECT_EQ(there[0]["id"], here[0]["id"]) << "one job, one id on both hosts";
  WriteFile(flag, "");
  auto status = WaitChild(stub.pid, 10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0);
  EXPECT_TRUE(WaitUntil([&] { return JobsOn(*cluster, 0).empty() && JobsOn(*cluster, 1).empty(); }, 5s));
}

}  // namespace
}  // namespace queue::testing

namespace queue::testing {
namespace {

// Process state letter of pid (R, S, T, ...), or '?' when it is gone.
char ProcessState(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() ? '?' : stat[close + 2];
}

TEST(QueuePolicy, LoadstopSuspendsTellsTheUserAndResumes) {
  auto cluster = TestCluster::Start(1);
  std::string supervisor = cluster->dir() + "/supervisor.log";
  cluster->WriteProfile(0, "now", "loadstop 5\nloadsched 10\nsupervisor " + supervisor + "\n");
  ASSERT_TRUE(cluster->WaitForView(10s));
  ASSERT_TRUE(cluster->WaitForPolicy(0, "now", "loadstop 5,", 10s)) << cluster->Status(0).dump();
  std::string pidfile = cluster->dir() + "/job.pid", flag = cluster->dir() + "/done";
  // bash, not dash: dash starts `sleep` with vfork, and a stop that lands on
  // the child before its exec leaves the shell waiting in D, never T.
  auto stub = StartBackground({BinDir() + "/queue", "-n", "--", "/bin/bash", "-c",
                               "echo $$ > " + pidfile + "; echo up; while [ ! -e " + flag +
                                   " ]; do sleep 0.05; done; exit 4"},
                              {"QUEUE_SOCKET=" + cluster->socket(0)}, cluster->dir() + "/stub.out",
                              cluster->dir() + "/stub.err");
  // Relayed output, unlike the pid file, proves the shepherd is attached to
  // the stub, so the "suspended" notice has somewhere to go.
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(cluster->dir() + "/stub.out") == "up\n"; }, 10s))
      << ReadFile(cluster->dir() + "/stub.err");
  pid_t job = std::stoi(ReadFile(pidfile));
  cluster->SetLoad(0, 7.0);
  ASSERT_TRUE(WaitUntil([&] { return ProcessState(job) == 'T'; }, 5s)) << cluster->log(0);
  EXPECT_TRUE(WaitUntil([&] { return ReadFile(cluster->dir() + "/stub.err").find("process suspended") != std::string::npos; }, 5s));
  EXPECT_EQ(ProcessState(stub.pid), 'S') << "the stub itself must not stop";
  // The user's own SIGCONT does not defeat the suspension.
  kill(stub.pid, SIGCONT);
  kill(job, SIGCONT);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(ProcessState(job), 'T');
  cluster->SetLoad(0, 1.0);
  ASSERT_TRUE(WaitUntil([&] { return ProcessState(job) != 'T'; }, 5s));
  EXPECT_TRUE(WaitUntil([&] { return ReadFile(cluster->dir() + "/stub.err").find("resumed execution") != std::string::npos; }, 5s));
  WriteFile(flag, "");
  auto status = WaitChild(stub.pid, 10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 4);
  // The queue's supervisor log tells the administrator the whole story.
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(supervisor).find("END job") != std::string::npos; }, 5s));
  std::string log = ReadFile(supervisor);
  EXPECT_NE(log.find("queue now: START job"), std::string::npos) << log;
  EXPECT_NE(log.find("process suspended"), std::string::npos) << log;
  EXPECT_NE(log.find("resumed execution"), std::string::npos) << log;
  EXPECT_NE(log.find(": exit 4"), std::string::npos) << log;
}

std::time_t LocalTimeAt(int year, int month, int day, int hour, int minute) {
  std::tm t{};
  t.tm_year = year - 1900;
  t.tm_mon = month - 1;
  t.tm_mday = day;
  t.tm_hour = hour;
  t.tm_min = minute;
  t.tm_isdst = -1;
  return std::mktime(&t);
}

TEST(QueuePolicy, TimeschedClosesTheQueueOutsideItsHours) {
  auto cluster = TestCluster::Start(1);
  cluster->SetClock(0, LocalTimeAt(2026, 11, 29, 12, 0));  // a Sunday
  cluster->WriteProfile(0, "now", "timesched Wk0900-1700\n");
  ASSERT_TRUE(cluster->WaitForView(10s));
  ASSERT_TRUE(cluster->WaitForPolicy(0, "now", "timesched Wk0900-1700,", 10s)) << cluster->Status(0).dump();
  // Outside its hours the job waits, and says why; inside them it runs.
  std::string out = cluster->dir() + "/job.out", err = cluster->dir() + "/job.err";
  auto stub = StartBackground({BinDir() + "/queue", "-n", "--", "echo", "open"},
                              {"QUEUE_SOCKET=" + cluster->socket(0)}, out, err);
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(err).find("is waiting") != std::string::npos; }, 5s)) << ReadFile(err);
  EXPECT_NE(ReadFile(err).find("outside the timesched hours"), std::string::npos) << ReadFile(err);
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(ReadFile(out), "") << "ran outside its hours";
  cluster->SetClock(0, LocalTimeAt(2026, 11, 30, 10, 0));  // Monday morning
  auto status = WaitChild(stub.pid, 10s);
  ASSERT_TRUE(status.has_value()) << ReadFile(err);
  EXPECT_EQ(*status, 0);
  EXPECT_EQ(ReadFile(out), "open\n");
}

}  // namespace
}  // namespace queue::testing

namespace queue::testing {
namespace {

TEST(Jobs, OwnerCancelsARunningJobHereOrElsewhereAndSeesItInTheRecord) {
  auto cluster = TestCluster::Start(2);
  ASSERT_TRUE(cluster->WaitForView(10s));
  for (int target : {0, 1}) {
    std::string base = cluster->dir() + "/stub" + std::to_string(target);
    auto stub = StartBackground({BinDir() + "/queue", "-h", cluster->entry(target), "-n", "-j", "sleeper", "--", "sh",
                                 "-c", "echo started; exec sleep 300"},
                                {"QUEUE_SOCKET=" + cluster->socket(0)}, base + ".out", base + ".err");
    // Relayed output proves the shepherd is attached to the stub; a cancel
    // that comes earlier has no one to tell the owner.
    ASSERT_TRUE(WaitUntil([&] { return ReadFile(base + ".out") == "started\n"; }, 10s)) << ReadFile(base + ".err");
    auto listed = JobsOf(cluster->Queue(0, {"--jobs", "--json"}).out);
    ASSERT_EQ(listed.size(), 1U) << listed.dump();
    std::string id = listed[0]["id"];
    uint64_t number = listed[0]["number"];
    EXPECT_EQ(id, std::to_string(number) + ".1") << "host 0 is the first line of the hosts file";
    EXPECT_EQ(cluster->Queue(0, {"--cancel", std::to_string(number + 1000)}).exit_code, 2);
    auto cancel = cluster->Queue(0, {"--cancel", id});
    EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
    EXPECT_NE(cancel.out.find(cluster->entry(target)), std::string::npos) << cancel.out;
    auto status = WaitChild(stub.pid, 10s);
    ASSERT_TRUE(status.has_value()) << "cancel did not end the job";
    EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGTERM);
    EXPECT_NE(ReadFile(base + ".err").find("cancelled by its owner"), std::string::npos) << ReadFile(base + ".err");
    ASSERT_TRUE(WaitUntil([&] { return JobsOf(cluster->Queue(0, {"--jobs", "--json"}).out).empty(); }, 5s));
  }
  auto history = JobsOf(cluster->Queue(1, {"--jobs", "--all", "--json"}).out);
  ASSERT_FALSE(history.empty());
  EXPECT_EQ(history.back()["signal"], SIGTERM) << history.dump();
  EXPECT_EQ(history.back()["name"], "sleeper");
}

}  // namespace
}  // namespace queue::testing

namespace queue::testing {
namespace {

TEST(QueuePolicy, ProgramExitCodesStopAndDrainTheQueue) {
  auto cluster = TestCluster::Start(1);
  // The program runs without privileges (as nobody under root), so it and its
  // verdict live where anyone may read them; it is called as `PROGRAM QUEUE`.
  char templ[] = "/tmp/queue-program-XXXXXX";
  std::string open_dir = mkdtemp(templ);
  chmod(open_dir.c_str(), 0755);
  std::string verdict = open_dir + "/verdict", script = open_dir + "/check";
  WriteFile(verdict, "0\n");
  WriteFile(script, "#!/bin/sh\n[ \"$1\" = now ] || exit 9\nexit $(cat " + verdict + ")\n", 0755);
  cluster->WriteProfile(0, "now", "program " + script + "\n");
  ASSERT_TRUE(cluster->WaitForView(10s));
  std::string pidfile = cluster->dir() + "/job.pid", flag = cluster->dir() + "/done";
  auto stub = StartBackground({BinDir() + "/queue", "-n", "--", "sh", "-c",
                               "echo $$ > " + pidfile + "; while [ ! -e " + flag + " ]; do sleep 0.05; done"},
                              {"QUEUE_SOCKET=" + cluster->socket(0)}, cluster->dir() + "/stub.out",
                              cluster->dir() + "/stub.err");
  ASSERT_TRUE(WaitUntil([&] { return !ReadFile(pidfile).empty(); }, 10s)) << ReadFile(cluster->dir() + "/stub.err");
  pid_t job = std::stoi(ReadFile(pidfile));
  WriteFile(verdict, "1\n");  // stop: the running job is suspended
  ASSERT_TRUE(WaitUntil([&] { return ProcessState(job) == 'T'; }, 6s)) << cluster->log(0);
  WriteFile(verdict, "2\n");  // drain: the job resumes, no new job starts
  ASSERT_TRUE(WaitUntil([&] { return ProcessState(job) != 'T'; }, 6s));
  std::this_thread::sleep_for(2500ms);
  std::string second_err = cluster->dir() + "/second.err";
  auto second = StartBackground({BinDir() + "/queue", "-n", "--", "true"}, {"QUEUE_SOCKET=" + cluster->socket(0)},
                                cluster->dir() + "/second.out", second_err);
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(second_err).find("its program says drain") != std::string::npos; }, 5s))
      << ReadFile(second_err);
  WriteFile(verdict, "0\n");  // run: the waiting job starts
  auto second_status = WaitChild(second.pid, 10s);
  ASSERT_TRUE(second_status.has_value());
  EXPECT_EQ(*second_status, 0);
  WriteFile(flag, "");
  EXPECT_TRUE(WaitChild(stub.pid, 10s).has_value());
  std::filesystem::remove_all(open_dir);
}

}  // namespace
}  // namespace queue::testing

namespace queue::testing {
namespace {

TEST(Waiting, AJobWaitsForAFreeSlotAndRunsOnTheHostThatFreesOne) {
  auto cluster = TestCluster::Start(2);
  for (int i = 0; i < 2; ++i) cluster->WriteProfile(i, "now", "maxexec 1\n");
  ASSERT_TRUE(cluster->WaitForView(10s));
  // Evidence, not a pause: host 0 sees maxexec 1 on both hosts.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto seen = nlohmann::json::parse(cluster->Queue(0, {"--status", "--json"}).out, nullptr, false);
        if (seen.is_discarded() || seen["hosts"].size() != 2) return false;
        for (const auto& h : seen["hosts"]) {
          if (!h.contains("queues")) return false;
          for (const auto& q : h["queues"])
            if (q["name"] == "now" && q["maxexec"] != 1) return false;
        }
        return true;
      },
      10s));
  std::vector<Background> holders;
  for (int i = 0; i < 2; ++i) {
    std::string flag = cluster->dir() + "/release" + std::to_string(i), started = flag + ".started";
    holders.push_back(StartBackground({BinDir() + "/queue", "-h", cluster->entry(i), "-n", "--", "sh", "-c",
                                       "touch " + started + "; while [ ! -e " + flag + " ]; do sleep 0.05; done"},
                                      {"QUEUE_SOCKET=" + cluster->socket(0)}, cluster->dir() + "/h.out",
                                      cluster->dir() + "/h.err"));
    ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(started); }, 10s)) << ReadFile(cluster->dir() + "/h.err");
  }
  std::string out = cluster->dir() + "/w.out", err = cluster->dir() + "/w.err";
  auto waiter = StartBackground({BinDir() + "/queue", "-n", "--", "sh", "-c", "echo $QUEUE_HOST"},
                                {"QUEUE_SOCKET=" + cluster->socket(0)}, out, err);
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(err).find("is waiting") != std::string::npos; }, 10s)) << ReadFile(err);
  EXPECT_NE(ReadFile(err).find("full"), std::string::npos) << ReadFile(err);
  auto jobs = JobsOf(cluster->Queue(0, {"--jobs", "--json"}).out);
  bool listed_waiting = false;
  for (const auto& j : jobs) listed_waiting |= j["state"] == "waiting";
  EXPECT_TRUE(listed_waiting) << jobs.dump();
  WriteFile(cluster->dir() + "/release1", "");  // host 1 frees its slot
  auto status = WaitChild(waiter.pid, 10s);
  ASSERT_TRUE(status.has_value()) << ReadFile(err);
  EXPECT_EQ(*status, 0);
  EXPECT_EQ(ReadFile(out), cluster->entry(1) + "\n");
  WriteFile(cluster->dir() + "/release0", "");
  for (auto& h : holders) WaitChild(h.pid, 10s);
}

TEST(Waiting, InterruptingAWaitingJobWithdrawsIt) {
  auto cluster = TestCluster::Start(1);
  cluster->WriteProfile(0, "now", "exec drain\n");
  ASSERT_TRUE(cluster->WaitForView(10s));
  ASSERT_TRUE(cluster->WaitForPolicy(0, "now", "exec drain,", 10s)) << cluster->Status(0).dump();
  std::string err = cluster->dir() + "/w.err";
  auto waiter = StartBackground({BinDir() + "/queue", "-n", "--", "true"}, {"QUEUE_SOCKET=" + cluster->socket(0)},
                                cluster->dir() + "/w.out", err);
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(err).find("is waiting") != std::string::npos; }, 10s)) << ReadFile(err);
  kill(waiter.pid, SIGINT);
  auto status = WaitChild(waiter.pid, 5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGINT);
  EXPECT_NE(ReadFile(err).find("withdrawn"), std::string::npos);
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto all = JobsOf(cluster->Queue(0, {"--jobs", "--all", "--json"}).out);
        return !all.empty() && all.back()["state"] == "cancelled";
      },
      5s));
}

}  // namespace
}  // namespace queue::testing

namespace queue::testing {
namespace {

TEST(QueuePolicy, ABrokenProfileDrainsOnlyItsQueueAndStatusSaysWhere) {
  auto cluster = TestCluster::Start(1);
  cluster->WriteProfile(0, "wait", "exec on\nloadsched lots\n");
  ASSERT_TRUE(cluster->WaitForView(10s));
  ASSERT_TRUE(WaitUntil(
      [&] { return cluster->Queue(0, {"--status"}).out.find("wait/profile:2: loadsched") != std::string::npos; },
      10s));
  auto status = cluster->Queue(0, {"--status"});
  EXPECT_NE(status.out.find("wait/profile:2: loadsched"), std::string::npos) << status.out;
  // Its jobs wait, saying why; the other queue runs; fixing the profile lets them go.
  std::string err = cluster->dir() + "/w.err";
  auto waiter = StartBackground({BinDir() + "/queue", "-q", "-n", "--", "true"},
                                {"QUEUE_SOCKET=" + cluster->socket(0)}, cluster->dir() + "/w.out", err);
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(err).find("is waiting") != std::string::npos; }, 10s)) << ReadFile(err);
  EXPECT_NE(ReadFile(err).find("loadsched"), std::string::npos) << ReadFile(err);
  auto other = cluster->Queue(0, {"-n", "--", "echo", "now works"});
  EXPECT_EQ(other.out, "now works\n") << other.err;
  cluster->WriteProfile(0, "wait", "exec on\nloadsched 40\n");
  auto status_after_fix = WaitChild(waiter.pid, 10s);
  ASSERT_TRUE(status_after_fix.has_value()) << ReadFile(err);
  EXPECT_EQ(*status_after_fix, 0);
}

}  // namespace
}  // namespace queue::testing

namespace queue::testing {
namespace {

// The shepherd starts the job before it reaches the stub: a cancel that comes
// in between is told to the owner once the stub is reached (and nothing is
// written to the stub's connection before its handshake is done). The stub is
// held stopped over that time, so the job is placed, started and cancelled
// while its shepherd waits for the handshake.
TEST(Jobs, ACancelBeforeTheShepherdReachesTheStubIsStillToldToTheOwner) {
  auto cluster = TestCluster::Start(1, ClusterOptions{{}, "maxexec 1\n"});
  ASSERT_TRUE(cluster->WaitForView(10s));
  const std::string base = cluster->dir() + "/early";
  auto blocker = StartBackground({BinDir() + "/queue", "-n", "--", "sh", "-c", "echo blocking; exec sleep 300"},
                                 {"QUEUE_SOCKET=" + cluster->socket(0)}, base + ".blocker.out", base + ".blocker.err");
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(base + ".blocker.out") == "blocking\n"; }, 10s));
  const std::string started = cluster->dir() + "/started";
  auto stub = StartBackground({BinDir() + "/queue", "-n", "--", "sh", "-c", "touch " + started + "; exec sleep 300"},
                              {"QUEUE_SOCKET=" + cluster->socket(0)}, base + ".out", base + ".err");
  ASSERT_TRUE(WaitUntil([&] { return JobOn(*cluster, 0, 2)["state"] == "waiting"; }, 10s)) << ReadFile(base + ".err");
  kill(stub.pid, SIGSTOP);
  EXPECT_EQ(cluster->Queue(0, {"--cancel", "1"}).exit_code, 0);
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(started); }, 10s)) << cluster->log(0);
  auto cancel = cluster->Queue(0, {"--cancel", "2"});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  kill(stub.pid, SIGCONT);
  auto status = WaitChild(stub.pid, 20s);
  ASSERT_TRUE(status.has_value()) << ReadFile(base + ".err");
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGTERM) << ReadFile(base + ".err");
  EXPECT_NE(ReadFile(base + ".err").find("[job 2.1 cancelled by its owner]"), std::string::npos) << ReadFile(base + ".err");
  WaitChild(blocker.pid, 10s);
}

}  // namespace
}  // namespace queue::testing
