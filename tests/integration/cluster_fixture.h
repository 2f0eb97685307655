// TestCluster: brings up N real queued daemons on loopback, each with its own
// spool, socket, port and load file, in a temporary directory, and runs the real
// `queue` binary against them. Any integration test can use it:
//
//   auto cluster = TestCluster::Start(3);
//   auto run = cluster->Queue(0, {"-n", "--", "true"});
//   EXPECT_EQ(run.exit_code, 0);
//
// Daemons are children of the test process and are never reaped before they are
// killed, so their PIDs cannot be reused underneath us.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace queue::testing {

struct CommandResult {
  int exit_code = -1;     // when the process exited
  int term_signal = 0;    // when a signal killed it
  int stop_signal = 0;    // unused unless asked for
  bool timed_out = false;
  std::string out, err;
};

struct CommandOptions {
  std::vector<std::string> env;  // extra NAME=value entries
  std::string stdin_data;
  std::chrono::milliseconds timeout{30000};
  std::string cwd;
};

// Runs argv (argv[0] a path), feeding stdin_data and capturing both outputs.
CommandResult RunCommand(const std::vector<std::string>& argv, const CommandOptions& options = {});

// A process started in the background that the caller controls.
struct Background {
  pid_t pid = -1;
  std::string out_path, err_path;
};
Background StartBackground(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                           const std::string& out_path, const std::string& err_path);
// Waits for the child; returns its raw wait status, or nullopt on timeout.
std::optional<int> WaitChild(pid_t pid, std::chrono::milliseconds timeout);

std::string BinDir();
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& text, int mode = 0644);
bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);
// The parent of process `pid` (from /proc), or -1 when it is gone.
pid_t ParentOf(pid_t pid);

struct ClusterOptions {
  // Use another key for these host indexes (to test refusal).
  std::vector<int> foreign_key_hosts;
  // Extra lines appended to every queue's profile.
  std::string profile_extra;
  // Words put before queued's command line for these host indexes, so that a
  // test can give one daemon another view of the machine (e.g. its own mount
  // namespace: another /etc/passwd, a directory that does not exist there).
  // The wrapper must exec the command it is given, so the daemon keeps its pid.
  std::map<int, std::vector<std::string>> daemon_wrappers;
  // Host entries to use instead of 127.0.0.1:<free port> (e.g. addresses inside
  // network namespaces), and per-host words put in front of every command run
  // "on" that host: its daemon and the clients Queue() runs there.
  std::vector<std::string> host_entries;
  std::map<int, std::vector<std::string>> host_wrappers;
  // Extra options for every queued (e.g. {"--host-timeout", "3"}).
  std::vector<std::string> daemon_args;
};

class TestCluster {
 public:
  static std::unique_ptr<TestCluster> Start(int hosts, ClusterOptions options = {});
  ~TestCluster();

  int size() const { return static_cast<int>(hosts_.size()); }
  const std::string& dir() const { return dir_; }
  const std::string& entry(int i) const { return hosts_[i].entry; }
  const std::string& socket(int i) const { return hosts_[i].socket; }
  const std::string& spool(int i) const { return hosts_[i].spool; }
  std::string log(int i) const { return ReadFile(hosts_[i].log); }
  pid_t daemon_pid(int i) const { return hosts_[i].pid; }

  void SetLoad(int i, double load1);
  // The daemon's clock (Unix seconds), for time-window tests; real time until set.
  void SetClock(int i, long long unix_seconds);
  void WriteProfile(int i, const std::string& queue, const std::string& text);

  // Runs `queue ARGS` through host i's daemon (inside its host wrapper).
  CommandResult Queue(int i, const std::vector<std::string>& args, CommandOptions options = {});
  // The words that run a command on host i (its host wrapper; empty for loopback).
  std::vector<std::string> OnHost(int i) const;

  // Until every daemon sees every listed host alive (or not, for `down`).
  bool WaitForView(std::chrono::milliseconds timeout, const std::vector<int>& down = {});

  void StartDaemon(int i);
  void SignalDaemon(int i, int signo);
  // Kills (signo) and reaps the daemon.
  void StopDaemon(int i, int signo = 15);

 private:
  struct Host {
    std::string entry, socket, spool, key, loadavg, clock, log;
    pid_t pid = -1;
  };
  std::string dir_;
  std::string hosts_file_;
  std::vector<Host> hosts_;
  ClusterOptions options_;
};

// ---- Jobs submitted through host 0 (queue --jobs --json) ----

// Job `id` as host `host` lists it, when host 0 is its submit host; null when absent.
nlohmann::json JobOn(TestCluster& cluster, int host, uint64_t id);
// A job's id as users see it: the number host `host` gave it, and that host's
// line in the hosts file ("17.1" for host 0).
inline std::string JobLabel(uint64_t number, int host = 0) {
  return std::to_string(number) + "." + std::to_string(host + 1);
}
// The host job `id` (submitted on host 0) runs on now, or "" when it is not running.
std::string RunningOn(TestCluster& cluster, uint64_t id);
// Which host of the cluster `entry` is, or -1.
int IndexOf(TestCluster& cluster, const std::string& entry);
// Starts `queue ARGS` through host 0 in the background, from `cwd` (where the
// job's files live), its output in cwd/stub.out and cwd/stub.err.
Background StartStub(TestCluster& cluster, const std::string& cwd, const std::vector<std::string>& args);

}  // namespace queue::testing
