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
#include "daemon/daemon.h"
#include "util/result.h"

namespace {

std::string SiblingBinary(const std::string& name) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return name;
  return (self.parent_path() / name).string();
}

std::string DefaultListen() {
  char name[HOST_NAME_MAX + 1] = {};
  gethostname(name, sizeof name - 1);
  return std::string(name) + ":1421";
}

// Leaves the terminal: a new session, stdin from /dev/null, logs appended to a file.
bool Daemonize(asio::io_context& io, const std::string& log_path) {
  int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log < 0) {
    std::cerr << "queued: cannot open log " << log_path << "\n";
    return false;
  }
  io.notify_fork(asio::io_context::fork_prepare);
  if (pid_t pid = fork(); pid != 0) _exit(pid < 0 ? 2 : 0);
  io.notify_fork(asio::io_context::fork_child);
  setsid();
  int null = open("/dev/null", O_RDONLY);
  dup2(null, 0);
  dup2(log, 1);
  dup2(log, 2);
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
  queue::auth::InitOpenSsl();
  CLI::App app{"queued: the Queue daemon; runs on every host of the cluster."};
  queue::daemon::DaemonConfig config;
  config.spool_dir = "/var/spool/queue";
  config.hosts_file = "/etc/queue/hosts";
  config.key_file = "/etc/queue/cluster.key";
  config.socket_path = "/run/queue/queued.sock";
  config.listen = DefaultListen();
  std::string keygen, pidfile;
  bool foreground = false, version = false;
  app.add_option("--keygen", keygen, "write a new random cluster key to FILE (mode 0600) and exit");
  app.add_flag("-D,--debug", foreground, "stay in the foreground, log on stderr");
  app.add_option("-d,--spooldir", config.spool_dir, "spool root (one directory per queue)")->capture_default_str();
  app.add_option("--hosts", config.hosts_file, "hosts file (qhostsfile format, name[:port])")->capture_default_str();
  app.add_option("--key", config.key_file, "cluster key file")->capture_default_str();
  app.add_option("--listen", config.listen, "ADDR:PORT of this daemon, as written in the hosts file")->capture_default_str();
  app.add_option("--socket", config.socket_path, "Unix socket for local clients")->capture_default_str();
  app.add_option("--loadavg-file", config.loadavg_file, "read the load from FILE (/proc/loadavg format)")->capture_default_str();
  app.add_option("-p,--pidfile", pidfile, "write the daemon's pid to FILE");
  app.add_option("--clock-file", config.clock_file, "tests: take the time (Unix seconds) from FILE");
  app.add_option("--criu", config.criu_path, "the criu binary for checkpointmode 1 (default: found in PATH)");
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
  app.add_flag("-v,--version", version, "print the version");
  CLI11_PARSE(app, argc, argv);

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
  config.host_dead_after = std::chrono::milliseconds(static_cast<int64_t>(host_timeout * 1000));
  config.keep_finished = std::chrono::seconds(static_cast<int64_t>(keep_finished));
  RaiseDescriptorLimit();
  if (geteuid() == 0) umask(022);
  config.shepherd_path = SiblingBinary("queue-shepherd");
  asio::io_context io;
  auto daemon = queue::daemon::Daemon::Create(io, config);
  if (!daemon.ok()) {
    std::cerr << "queued: " << daemon.message() << "\n";
    return 1;
  }
  if (!foreground && !Daemonize(io, config.spool_dir + "/queued.log")) return 1;
  if (!pidfile.empty()) std::ofstream(pidfile) << getpid() << "\n";
  (*daemon)->Run();
  if (!pidfile.empty()) unlink(pidfile.c_str());
  return 0;
}
