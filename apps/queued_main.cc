// queued: the Queue daemon. Parses options and runs src/daemon.
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <iostream>

#include "auth/psk_tls.h"
#include "auth/cluster_key.h"
#include "daemon/config_file.h"
#include "daemon/daemon.h"
#include "daemon/log_output.h"
#include "daemon/service_notifier.h"
#include "spool/spool_layout.h"
#include "util/log_priority.h"
#include "util/result.h"

namespace {

// The shepherd beside queued (the build tree, build/bin), else where the
// install puts it: /usr/sbin/queued and /usr/lib/queue/queue-shepherd
// (packaging/CMakeLists.txt), found from queued's own path so that any
// prefix works.
std::string ShepherdPath() {
  const std::string name = "queue-shepherd";
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return name;
  auto beside = self.parent_path() / name;
  auto installed = self.parent_path().parent_path() / "lib" / "queue" / name;
  if (!std::filesystem::exists(beside, ec) && std::filesystem::exists(installed, ec)) return installed.string();
  return beside.string();
}

std::string DefaultListen() {
  char name[HOST_NAME_MAX + 1] = {};
  gethostname(name, sizeof name - 1);
  return std::string(name) + ":1421";
}

// Leaves the terminal: a new session, stdin from /dev/null, logs appended to a
// file (opened again on SIGHUP, for logrotate).
bool Daemonize(asio::io_context& io, const std::string& log_path) {
  int null = open("/dev/null", O_RDONLY);
  if (null < 0 || dup2(null, 0) < 0) {
    std::cerr << "queued: cannot open /dev/null: " << queue::ErrnoText(errno) << "\n";
    return false;
  }
  if (null > 2) close(null);
  // Before the fork, so that an error reaches the terminal.
  if (auto opened = queue::daemon::OpenLogFile(log_path); !opened.ok()) {
    std::cerr << "queued: " << opened.message() << "\n";
    return false;
  }
  queue::daemon::InstallLogStream(/*journal=*/false);
  io.notify_fork(asio::io_context::fork_prepare);
  if (pid_t pid = fork(); pid != 0) _exit(pid < 0 ? 2 : 0);
  io.notify_fork(asio::io_context::fork_child);
  setsid();
  return true;
}

// A daemon holds a descriptor per connection, running job and file in
// transit; the soft limit a service starts with (often 1,024) is far below
// what the kernel lets it have, so it takes the hard limit.
void RaiseDescriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  rlim_t wanted = limit.rlim_max;
  limit.rlim_cur = wanted;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
    std::cerr << "queued: cannot raise the descriptor limit to " << wanted << ": " << queue::ErrnoText(errno) << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  // Descriptors whoever started us left open (a shell's, a test runner's log,
  // a pipe its starter reads to its end): a daemon would hold them, and their
  // files and pipes, for its whole life. queued is given none it needs.
  if (close_range(STDERR_FILENO + 1, ~0U, 0) != 0)  // a kernel before 5.9: one by one, as far as is usual
    for (int fd = STDERR_FILENO + 1; fd < 1024; ++fd) close(fd);
  queue::auth::InitOpenSsl(queue::auth::OpenSslUse::kLongLived);
  queue::daemon::InstallLogStream(queue::daemon::StderrIsJournal());
  CLI::App app{"queued: the Queue daemon; runs on every host of the cluster."};
  queue::daemon::DaemonConfig config;
  config.spool_dir = "/var/spool/queue";
  config.hosts_file = "/etc/queue/hosts";
  config.key_file = "/etc/queue/cluster.key";
  config.socket_path = "/run/queue/queued.sock";
  config.listen = DefaultListen();
  std::string keygen, pidfile;
  bool foreground = false, version = false;
  queue::daemon::AddConfigFileOption(app, queue::daemon::kDefaultConfigFile);
  app.add_option("--keygen", keygen, "write a new random cluster key to FILE (mode 0600) and exit")->configurable(false);
  app.add_flag("-D,--debug", foreground,
               "stay in the foreground, log on stderr (so does a daemon systemd starts: $NOTIFY_SOCKET)");
  app.add_option("-d,--spooldir", config.spool_dir, "spool root (one directory per queue)")->capture_default_str();
  app.add_option("--hosts", config.hosts_file, "hosts file (qhostsfile format, name[:port])")->capture_default_str();
  app.add_option("--key", config.key_file, "cluster key file")->capture_default_str();
  app.add_option("--listen", config.listen, "ADDR:PORT of this daemon, as written in the hosts file")->capture_default_str();
  app.add_option("--socket", config.socket_path, "Unix socket for local clients")->capture_default_str();
  app.add_option("--loadavg-file", config.loadavg_file, "read the load from FILE (/proc/loadavg format)")->capture_default_str();
  app.add_option("-p,--pidfile", pidfile, "write the daemon's pid to FILE");
  app.add_option("--clock-file", config.clock_file, "tests: take the time (Unix seconds) from FILE");
  app.add_option("--criu", config.criu_path, "the criu binary for checkpointmode 1 (default: found in PATH)");
  app.add_option("--metrics", config.metrics_listen,
                 "serve Prometheus/OpenMetrics metrics at http://ADDR:PORT/metrics (PORT alone: 127.0.0.1); off when not given");
  double host_timeout = 60;
  app.add_option("--host-timeout", host_timeout,
                 "seconds a silent peer may take (a daemon restart, say) before its jobs from here count as lost")
      ->capture_default_str()->check(CLI::Range(1.0, 86400.0));
  double keep_finished = 7 * 86400;  // seconds
  app.add_option("--keep-finished", keep_finished,
                 "how long finished jobs stay listed (queue --jobs --all) before their records are removed: "
                 "a number with s, m, h or d (default 7d)")
      ->transform(CLI::AsNumberWithUnit(std::map<std::string, double>{{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}},
                                        CLI::AsNumberWithUnit::CASE_SENSITIVE))
      ->check(CLI::Range(0.0, 1e10));
  app.add_option("--user-waiting-jobs", config.user_waiting_jobs,
                 "jobs one user may have waiting in this host's spool")
      ->capture_default_str()->check(CLI::Range(1, 10000000));
  uint64_t user_spool_mib = config.user_spool_bytes >> 20;
  app.add_option("--user-spool-mib", user_spool_mib,
                 "MiB one user may keep in this host's spool: waiting jobs' specs, held outputs, restart files")
      ->capture_default_str()->check(CLI::Range(1, 1 << 30));
  app.add_option("--membership", config.membership,
                 "how hosts learn of each other: full (a link to every peer, loads pushed every second), gossip "
                 "(a serf agent for who is up, links made on demand, placement asks a few random hosts), or auto "
                 "(gossip above 16 hosts in the hosts file)")
      ->transform(CLI::CheckedTransformer(std::map<std::string, queue::daemon::Membership>{
          {"auto", queue::daemon::Membership::kAuto},
          {"full", queue::daemon::Membership::kFull},
          {"gossip", queue::daemon::Membership::kGossip}}))
      ->default_str("auto");
  app.add_option("--serf", config.serf_program, "the serf binary a gossip membership runs (default: serf in PATH)");
  app.add_option("--gossip-profile", config.gossip_profile,
                 "serf's timings for a gossip membership: lan, wan, or local (loopback: failures seen in seconds)")
      ->check(CLI::IsMember({"lan", "wan", "local"}))
      ->capture_default_str();
  app.add_flag("-v,--version", version, "print the version")->configurable(false);
  if (auto exit = queue::daemon::ParseCommandLineAndConfigFile(app, argc, argv, queue::daemon::kDefaultConfigFile))
    return *exit;

  if (version) {
    std::cout << "queued " << QUEUE_VERSION << "\n";
    return 0;
  }
  if (!keygen.empty()) {
    auto written = queue::auth::WriteNewKeyFile(keygen);
    if (!written.ok()) {
      std::cerr << "queued: " << written.message() << "\n";
      return 1;
    }
    return 0;
  }
  config.user_spool_bytes = user_spool_mib << 20;
  config.host_dead_after = std::chrono::milliseconds(static_cast<int64_t>(host_timeout * 1000));
  config.keep_finished = std::chrono::seconds(static_cast<int64_t>(keep_finished));
  RaiseDescriptorLimit();
  if (geteuid() == 0) umask(022);
  config.shepherd_path = ShepherdPath();
  // systemd watches the process it started: under it, no fork.
  const bool detach = !foreground && !queue::daemon::UnderServiceManager();
  if (detach) config.log_file = queue::spool::SpoolLayout(config.spool_dir).Log();
  asio::io_context io;
  auto daemon = queue::daemon::Daemon::Create(io, config);
  if (!daemon.ok()) {
    std::cerr << queue::util::kLogErr << "queued: " << daemon.message() << "\n";
    return 1;
  }
  if (detach && !Daemonize(io, config.log_file)) return 1;
  if (!pidfile.empty()) std::ofstream(pidfile) << getpid() << "\n";
  (*daemon)->Run();
  if (!pidfile.empty()) unlink(pidfile.c_str());
  return 0;
}
