// queued as a system service (issue 15): options from a config file, the
// systemd readiness protocol against a stand-in NOTIFY_SOCKET, log lines with
// the journal's priorities, the log file opened again on SIGHUP (logrotate),
// and the unit file as systemd-analyze verifies it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include "cluster_fixture.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;

const std::string kPackaging = QUEUE_PACKAGING_DIR;
// No service manager, no journal: what a test does not set, it does not inherit.
const std::vector<std::string> kNoSystemd{"NOTIFY_SOCKET=", "JOURNAL_STREAM="};

// A one-host cluster whose daemon the fixture stopped: its files (hosts, key,
// spool, load) for a queued a test starts its own way.
struct Host {
  std::unique_ptr<TestCluster> cluster = TestCluster::Start(1);
  std::string dir = cluster->dir();
  std::string spool = dir + "/host0/spool";

  Host() { cluster->StopDaemon(0); }
  // The config file lines that make this host's daemon.
  std::string ConfigText(bool foreground = true) const {
    return "spooldir = " + spool + "\nhosts = " + dir + "/hosts\nkey = " + dir + "/cluster.key\nlisten = " +
           cluster->entry(0) + "\nsocket = " + cluster->socket(0) + "\nloadavg-file = " + dir +
           "/host0/loadavg\n" + (foreground ? "debug = true\n" : "");
  }
  bool Answers() { return cluster->Queue(0, {"--status"}, {{}, "", 5s, ""}).exit_code == 0; }
};

// A queued started by the test, as its child: stopped (and reaped) at the end.
struct Daemon {
  pid_t pid = -1;
  Daemon(const std::vector<std::string>& args, const std::vector<std::string>& env, const std::string& log) {
    std::vector<std::string> argv{BinDir() + "/queued"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid = StartBackground(argv, env, log, log).pid;
  }
  ~Daemon() { Stop(SIGKILL); }
  bool Running() { return pid > 0 && !WaitChild(pid, 0ms); }
  // The wait status, or nullopt when it did not end within 10 s.
  std::optional<int> Stop(int signo) {
    if (pid <= 0) return std::nullopt;
    kill(pid, signo);
    auto status = WaitChild(pid, 10s);
    if (!status) {
      kill(pid, SIGKILL);
      WaitChild(pid, 10s);
    }
    pid = -1;
    return status;
  }
};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// ---- The config file ----

TEST(ServiceConfig, ADaemonStartedWithOnlyAConfigFileServes) {
  Host host;
  std::string conf = host.dir + "/queued.conf";
  WriteFile(conf, host.ConfigText());
  Daemon daemon({"--config", conf}, kNoSystemd, host.dir + "/queued.log");
  ASSERT_TRUE(WaitUntil([&] { return host.Answers(); }, 15s)) << ReadFile(host.dir + "/queued.log");
  std::string cwd = host.dir + "/work";
  std::filesystem::create_directories(cwd);
  auto run = host.cluster->Queue(0, {"-i", "-w", "-n", "--", "sh", "-c", "echo from the config file"}, {{}, "", 30s, cwd});
  EXPECT_EQ(run.exit_code, 0) << run.err << ReadFile(host.dir + "/queued.log");
  EXPECT_EQ(run.out, "from the config file\n");
  auto status = host.cluster->Status(0);
  ASSERT_FALSE(status.is_null());
  EXPECT_EQ(status["hosts"][0]["host"], host.cluster->entry(0));  // listen and hosts from the file
  EXPECT_TRUE(std::filesystem::exists(host.spool + "/jobs.db"));
}

TEST(ServiceConfig, TheCommandLineWinsOverTheFile) {
  Host host;
  std::string conf = host.dir + "/queued.conf";
  // The file names another socket, and a timeout the option refuses.
  WriteFile(conf, host.ConfigText() + "socket = " + host.dir + "/from-file.sock\nhost-timeout = 0\n");
  // A key given twice in the file: CLI11 takes the last; the command line beats both.
  Daemon daemon({"--config", conf, "--socket", host.cluster->socket(0), "--host-timeout", "30"}, kNoSystemd,
                host.dir + "/queued.log");
  ASSERT_TRUE(WaitUntil([&] { return host.Answers(); }, 15s)) << ReadFile(host.dir + "/queued.log");
  EXPECT_FALSE(std::filesystem::exists(host.dir + "/from-file.sock"));
}

TEST(ServiceConfig, AnUnknownKeyABadValueOrAMissingFileIsOneLineAndNoStart) {
  Host host;
  struct Case {
    std::string text;  // "" : the file is missing
    std::string says;
  };
  const std::vector<Case> cases{
      {"spool-dir = /var/spool/queue\n", "unknown key 'spool-dir'"},
      {"host-timeout = 0\n", "host-timeout"},
      {"user-waiting-jobs = many\n", "user-waiting-jobs"},
      {"keep-finished = 3 fortnights\n", "keep-finished"},
      {"keygen = /tmp/k\n", "keygen"},
      {"", "cannot read it"},
  };
  for (const auto& c : cases) {
    std::string conf = host.dir + "/bad.conf";
    std::filesystem::remove(conf);
    if (!c.text.empty()) WriteFile(conf, host.ConfigText() + c.text);
    auto run = RunCommand({BinDir() + "/queued", "--config", conf}, {kNoSystemd, "", 10s, ""});
    EXPECT_EQ(run.exit_code, 78) << c.text << run.err;
    auto lines = Lines(run.err);
    ASSERT_EQ(lines.size(), 1U) << c.text << run.err;
    EXPECT_EQ(lines[0].rfind("queued: config file " + conf + ": ", 0), 0U) << lines[0];
    EXPECT_NE(lines[0].find(c.says), std::string::npos) << lines[0];
    EXPECT_FALSE(std::filesystem::exists(host.cluster->socket(0))) << c.text << ": it started";
  }
}

// --help's options are queued's options; the example file must list each
// (commented out), and every value it shows must be one queued takes.
TEST(ServiceConfig, TheExampleConfigFileListsEveryOption) {
  auto help = RunCommand({BinDir() + "/queued", "--help"}, {kNoSystemd, "", 10s, ""});
  ASSERT_EQ(help.exit_code, 0) << help.err;
  const std::string example = ReadFile(kPackaging + "/queued.conf");
  ASSERT_FALSE(example.empty()) << kPackaging + "/queued.conf";
  // Options that act once and have no place in a file.
  const std::set<std::string> not_keys{"help", "version", "keygen", "config"};
  // An option's line: "  -d,--spooldir TEXT [/var/spool/queue]  spool root ...".
  std::set<std::string> options;
  for (const auto& line : Lines(help.out)) {
    std::istringstream words(line);
    std::string names;
    if (!(words >> names) || !names.starts_with("-")) continue;
    std::istringstream each(names);
    for (std::string name; std::getline(each, name, ',');)
      if (name.starts_with("--")) options.insert(name.substr(2));
  }
  ASSERT_GT(options.size(), 10U) << help.out;
  std::string uncommented;
  for (const auto& name : options) {
    if (not_keys.count(name)) continue;
    std::smatch line;
    std::regex key_line("(^|\n)# (" + name + " = [^\n]*)");
    EXPECT_TRUE(std::regex_search(example, line, key_line))
        << "packaging/queued.conf has no line '# " << name << " = ...' for queued's option --" << name;
    if (!line.empty()) uncommented += line[2].str() + "\n";
  }
  // Every example value, uncommented, is accepted (--version: parse, then exit).
  std::string conf = std::filesystem::temp_directory_path() / ("queued-example-" + std::to_string(getpid()) + ".conf");
  WriteFile(conf, uncommented);
  auto parsed = RunCommand({BinDir() + "/queued", "--config", conf, "--version"}, {kNoSystemd, "", 10s, ""});
  EXPECT_EQ(parsed.exit_code, 0) << uncommented << parsed.err;
  std::filesystem::remove(conf);
}

// ---- systemd's readiness protocol ----

// systemd's end of NOTIFY_SOCKET: a datagram socket the test binds.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)), fd_(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path_.copy(address.sun_path, sizeof address.sun_path - 1);
    bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~NotifySocket() { close(fd_); }
  bool bound() const { return bound_; }
  const std::string& path() const { return path_; }
  // Messages until one has `line` as a line of it (true), or `timeout` passes.
  bool WaitFor(const std::string& line, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd ready{fd_, POLLIN, 0};
      if (left.count() <= 0 || poll(&ready, 1, static_cast<int>(left.count())) != 1) return false;
      char text[4096];
      ssize_t n = recv(fd_, text, sizeof text, 0);
      if (n <= 0) continue;
      std::string message(text, static_cast<size_t>(n));
      received_ += message + "\n";
      for (const auto& got : Lines(message))
        if (got == line) return true;
    }
  }
  const std::string& received() const { return received_; }
  // `line` came in some message already.
  bool Received(const std::string& line) const {
    for (const auto& got : Lines(received_))
      if (got == line) return true;
    return false;
  }

 private:
  std::string path_;
  int fd_;
  bool bound_ = false;
  std::string received_;
};

TEST(ServiceNotify, ReadyOnceClientsAreServedReloadingAndStopping) {
  Host host;
  NotifySocket manager(host.dir + "/notify");
  ASSERT_TRUE(manager.bound());
  std::string conf = host.dir + "/queued.conf";
  WriteFile(conf, host.ConfigText(/*foreground=*/false));
  // No -D: under systemd queued must not fork away (the pid systemd started is the daemon).
  Daemon daemon({"--config", conf}, {"NOTIFY_SOCKET=" + manager.path(), "JOURNAL_STREAM="}, host.dir + "/queued.log");
  ASSERT_TRUE(manager.WaitFor("READY=1", 20s)) << manager.received() << ReadFile(host.dir + "/queued.log");
  // READY=1 means a client is served now: the socket answers at once.
  EXPECT_TRUE(host.Answers()) << "READY=1 came before the socket answered";
  EXPECT_TRUE(daemon.Running()) << "queued forked away from its service manager";
  // The first status may come before READY=1 (the first heartbeat) or after.
  const std::string idle = "STATUS=0 jobs running, 0 waiting; 1 of 1 host up";
  EXPECT_TRUE(manager.Received(idle) || manager.WaitFor(idle, 10s)) << manager.received();
  // The status line follows the jobs.
  std::string cwd = host.dir + "/work";
  std::filesystem::create_directories(cwd);
  auto job = StartBackground({BinDir() + "/queue", "-i", "-w", "-n", "--", "sleep", "60"},
                             {"QUEUE_SOCKET=" + host.cluster->socket(0)}, cwd + "/stub.out", cwd + "/stub.err");
  EXPECT_TRUE(manager.WaitFor("STATUS=1 job running, 0 waiting; 1 of 1 host up", 15s)) << manager.received();
  kill(job.pid, SIGKILL);
  WaitChild(job.pid, 10s);

  kill(daemon.pid, SIGHUP);
  EXPECT_TRUE(manager.WaitFor("RELOADING=1", 10s)) << manager.received();
  EXPECT_TRUE(manager.WaitFor("READY=1", 10s)) << manager.received();

  kill(daemon.pid, SIGTERM);
  EXPECT_TRUE(manager.WaitFor("STOPPING=1", 10s)) << manager.received();
  auto status = daemon.Stop(0);  // signal 0: only wait for it
  ASSERT_TRUE(status.has_value()) << "queued did not stop on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
}

// A descriptor queued inherits (a shell's, a test runner's log, the write end
// of a pipe its starter reads) is closed at its start: a daemon would hold
// it, and the file or pipe behind it, for its whole life. The test runner's
// log, deleted under the daemon, failed the descriptor check of
// Lifecycle.ThreeHundredBatchJobsDrainUnderADescriptorLimitOf256 now and then.
TEST(ServiceStart, ADaemonKeepsNoDescriptorItInherited) {
  Host host;
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, 0), 0);  // not close-on-exec: the daemon inherits the write end
  Daemon daemon({"-D", "--spooldir", host.spool, "--hosts", host.dir + "/hosts", "--key", host.dir + "/cluster.key",
                 "--listen", host.cluster->entry(0), "--socket", host.cluster->socket(0), "--loadavg-file",
                 host.dir + "/host0/loadavg"},
                kNoSystemd, host.dir + "/queued.log");
  close(pipe_fds[1]);
  ASSERT_TRUE(WaitUntil([&] { return host.Answers(); }, 15s)) << ReadFile(host.dir + "/queued.log");
  pollfd ended{pipe_fds[0], POLLIN, 0};
  if (poll(&ended, 1, 5000) == 1) {
    char byte;
    EXPECT_EQ(read(pipe_fds[0], &byte, 1), 0) << "end of file: no writer left";
  } else {
    ADD_FAILURE() << "the daemon still holds the pipe's write end";
  }
  close(pipe_fds[0]);
  EXPECT_TRUE(daemon.Running());
}

// A stop asked while queued starts (systemd's stop during a slow start, or
// a test's): once its socket exists, SIGTERM is a clean stop (exit 0, the
// socket removed), never the default death that leaves the socket behind.
// It used to be caught only once the loop ran, a window that CI under ASan
// hit (ServiceConfig.AnUnknownKey... then found the last daemon's socket).
TEST(ServiceStop, ATermAsSoonAsTheSocketExistsIsACleanStop) {
  Host host;
  std::string conf = host.dir + "/queued.conf";
  WriteFile(conf, host.ConfigText());
  const std::string socket = host.cluster->socket(0);
  for (int round = 0; round < 10; ++round) {
    std::filesystem::remove(socket);
    Daemon daemon({"--config", conf}, kNoSystemd, host.dir + "/queued.log");
    bool appeared = false;
    for (auto until = std::chrono::steady_clock::now() + 20s; !appeared && std::chrono::steady_clock::now() < until;) {
      appeared = std::filesystem::exists(socket);
      if (!appeared) usleep(200);
    }
    ASSERT_TRUE(appeared) << ReadFile(host.dir + "/queued.log");
    auto status = daemon.Stop(SIGTERM);
    ASSERT_TRUE(status.has_value()) << "queued did not stop on SIGTERM";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "round " << round << ": wait status " << *status << ReadFile(host.dir + "/queued.log");
    EXPECT_FALSE(std::filesystem::exists(socket)) << "round " << round;
  }
}

// ---- Logging ----

// stderr connected to "the journal": JOURNAL_STREAM names stderr's device and
// inode, as systemd sets it. Every line then starts with its priority.
TEST(ServiceLog, LinesToTheJournalCarryTheirPriority) {
  Host host;
  std::string conf = host.dir + "/queued.conf";
  WriteFile(conf, host.ConfigText());
  for (bool journal : {true, false}) {
    std::string log = host.dir + (journal ? "/journal.log" : "/plain.log");
    WriteFile(log, "");
    struct stat st {};
    ASSERT_EQ(stat(log.c_str(), &st), 0);
    std::string stream = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + (journal ? 0 : 1));
    Daemon daemon({"--config", conf}, {"NOTIFY_SOCKET=", "JOURNAL_STREAM=" + stream}, log);
    ASSERT_TRUE(WaitUntil([&] { return host.Answers(); }, 15s)) << ReadFile(log);
    daemon.Stop(SIGTERM);
    auto lines = Lines(ReadFile(log));
    ASSERT_GE(lines.size(), 2U) << ReadFile(log);
    std::regex prefixed("^<[0-7]>queued: .*");
    for (const auto& line : lines) {
      if (journal) EXPECT_TRUE(std::regex_match(line, prefixed)) << line;
      else EXPECT_EQ(line.rfind("queued: ", 0), 0U) << line;
    }
    if (journal) {
      EXPECT_NE(ReadFile(log).find("<6>queued: " + host.cluster->entry(0) + " serving"), std::string::npos);
      EXPECT_NE(ReadFile(log).find("<5>queued: signal 15: stopping"), std::string::npos);
    }
  }
}

// logrotate moves the log away and sends SIGHUP: the lines before it stay in
// the moved file, those after it go to a new file at the old path, and no
// line is lost between them.
TEST(ServiceLog, ADetachedDaemonOpensItsLogAgainOnSighup) {
  Host host;
  std::string conf = host.dir + "/queued.conf", pidfile = host.dir + "/queued.pid";
  WriteFile(conf, host.ConfigText(/*foreground=*/false) + "pidfile = " + pidfile + "\n");
  auto started = RunCommand({BinDir() + "/queued", "--config", conf}, {kNoSystemd, "", 15s, ""});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  ASSERT_TRUE(WaitUntil([&] { return !ReadFile(pidfile).empty(); }, 10s));
  // A pidfd: the detached daemon is not our child.
  int daemon = static_cast<int>(syscall(SYS_pidfd_open, std::stoi(ReadFile(pidfile)), 0));
  ASSERT_GE(daemon, 0);
  const std::string log = host.spool + "/queued.log", moved = log + ".1";
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(log).find(" serving ") != std::string::npos; }, 10s)) << ReadFile(log);
  ASSERT_TRUE(host.Answers());

  std::filesystem::rename(log, moved);
  syscall(SYS_pidfd_send_signal, daemon, SIGHUP, nullptr, 0);
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(log).find("SIGHUP: reloading") != std::string::npos; }, 10s))
      << "old: " << ReadFile(moved) << "new: " << ReadFile(log);
  const std::string before = ReadFile(moved);
  // The moved file ends with the line that says where the next one goes.
  auto old_lines = Lines(before);
  ASSERT_FALSE(old_lines.empty());
  EXPECT_NE(old_lines.back().find("opening the log file " + log + " again"), std::string::npos) << before;
  EXPECT_NE(before.find(" serving "), std::string::npos) << before;
  // The new file starts with the next line.
  EXPECT_EQ(ReadFile(log).rfind("queued: SIGHUP: reloading", 0), 0U) << ReadFile(log);

  // Later lines go to the new file only.
  syscall(SYS_pidfd_send_signal, daemon, SIGTERM, nullptr, 0);
  pollfd ended{daemon, POLLIN, 0};
  bool stopped = poll(&ended, 1, 10000) == 1;
  if (!stopped) syscall(SYS_pidfd_send_signal, daemon, SIGKILL, nullptr, 0);
  close(daemon);
  ASSERT_TRUE(stopped) << ReadFile(log);
  EXPECT_NE(ReadFile(log).find("signal 15: stopping"), std::string::npos) << ReadFile(log);
  EXPECT_EQ(ReadFile(moved), before);
}

// ---- The unit file ----

// systemd-analyze verify, on a copy whose ExecStart is the built queued (it
// checks that the program exists). It warns but exits 0 on a bad key or
// value, so any word from it fails the test.
TEST(ServiceUnit, TheUnitFileVerifies) {
  std::string unit = ReadFile(kPackaging + "/queued.service");
  ASSERT_FALSE(unit.empty());
  for (const char* line : {"\nType=notify\n", "\nKillMode=process\n", "\nRestart=on-failure\n",
                           "\nExecReload=/bin/kill -HUP $MAINPID\n", "\nRuntimeDirectory=queue\n",
                           "\nExecStart=/usr/sbin/queued --config /etc/queue/queued.conf -D\n"})
    EXPECT_NE(unit.find(line), std::string::npos) << "packaging/queued.service lacks" << line;
  char templ[] = "/tmp/queue-unit-XXXXXX";
  std::string dir = mkdtemp(templ);
  auto verify = [&](const std::string& text) {
    WriteFile(dir + "/queued.service", text);
    // --man=no: man:queued(8) is installed with the package, not here.
    return RunCommand({"/usr/bin/systemd-analyze", "verify", "--man=no", dir + "/queued.service"},
                      {{"SYSTEMD_LOG_COLOR=0"}, "", 60s, ""});
  };
  std::string copy = std::regex_replace(unit, std::regex("/usr/sbin/queued"), BinDir() + "/queued");
  auto good = verify(copy);
  EXPECT_EQ(good.exit_code, 0) << good.err;
  EXPECT_EQ(good.out + good.err, "");
  // The check can fail: a wrong unit makes it speak.
  auto bad = verify(std::regex_replace(copy, std::regex("KillMode=process"), "KillMode=procces"));
  EXPECT_NE(bad.out + bad.err, "") << "systemd-analyze verify passed a wrong KillMode";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace queue::testing
