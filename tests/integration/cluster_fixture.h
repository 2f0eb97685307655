// TestCluster: brings up N real queued daemons on loopback, each with its own
// spool, socket, port and load file, in a temporary directory, and runs the real
// `queue` binary against them. Any integration test can use it:
//
//   auto cluster = TestCluster::Start(3);
//   auto run = cluster->Queue(0, {"-n", "--", "true"});
//   EXPECT_EQ(run.exit_code, 0);
//
// Daemons are children of the test process and are never reaped before they are
// killed, so their PIDs cannot be reused underneath us. They listen on a
// loopback address of the test process's own (LoopbackAddress), so that tests
// can run side by side: the port a cluster picks cannot be taken meanwhile by
// another test's daemon.
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

// Whether this build runs under ASan or TSan (-O0, several times slower):
// the largest tests run smaller there, and at full size in the plain build.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

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

// A TCP port nobody listens on at `address` (an IPv4 literal) just now; 0 if none.
uint16_t FreePortOn(const std::string& address);

// Runs argv `total` times from `clients` threads at once (benchmarks); the
// seconds it took, or -1 when a run failed.
double RunConcurrently(const std::vector<std::string>& argv, const CommandOptions& options, int total, int clients);

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
// This process's loopback address, 127.X.Y.Z derived from its pid (never
// 127.0.0.1, nor .0 or .255 last): where TestCluster's daemons listen. It is
// 127.0.0.1 where that address cannot be bound.
std::string LoopbackAddress();
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
  // Host entries to use instead of LoopbackAddress():<free port> (e.g. addresses inside
  // network namespaces), and per-host words put in front of every command run
  // "on" that host: its daemon and the clients Queue() runs there.
  std::vector<std::string> host_entries;
  std::map<int, std::vector<std::string>> host_wrappers;
  // Extra options for every queued (e.g. {"--host-timeout", "3"}).
  std::vector<std::string> daemon_args;
  // Extra options for the queued of these host indexes (e.g. its own --metrics port).
  std::map<int, std::vector<std::string>> host_daemon_args;
  // Ports each host needs from its entry's on (3 for a gossip membership: the
  // serf agent takes port + 1, TCP and UDP, and port + 2 for its RPC).
  int ports_per_host = 1;
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
  // The cluster key file host i's daemon reads (at start and on SIGHUP); shared
  // by all hosts but the foreign_key_hosts, which share another one.
  const std::string& key_file(int i) const { return hosts_[i].key; }

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
  // Host i's `queue --status --json`; null when it does not answer.
  nlohmann::json Status(int i);
  // Until host `observer` has heard every live host's load as SetLoad last
  // set it (0 before): the load reports of a heartbeat have carried them.
  bool WaitForLoads(int observer, std::chrono::milliseconds timeout);
  // Until host i's queue `queue` has re-read its profile and its policy
  // (`queue --status`) says `text`, e.g. "loadstop 5".
  bool WaitForPolicy(int i, const std::string& queue, const std::string& text, std::chrono::milliseconds timeout);

  void StartDaemon(int i);
  void SignalDaemon(int i, int signo);
  // Kills (signo) and reaps the daemon.
  void StopDaemon(int i, int signo = 15);

 private:
  struct Host {
    std::string entry, socket, spool, key, loadavg, clock, log;
    pid_t pid = -1;
    double load1 = 0.0;  // as SetLoad last set it
  };
  std::string dir_;
  std::string hosts_file_;
  std::vector<Host> hosts_;
  ClusterOptions options_;
};

// ---- Jobs submitted through host 0 (queue --jobs --json) ----

// Job `id` as host `host` lists it, when host 0 is its submit host; null when absent.
// The job list of a `queue --jobs --json` output (its document's "jobs"), or a
// discarded value when the output is no such document.
inline nlohmann::json JobsOf(const std::string& out) {
  auto doc = nlohmann::json::parse(out, nullptr, false);
  if (!doc.is_object() || !doc.contains("jobs")) return nlohmann::json(nlohmann::json::value_t::discarded);
  return doc["jobs"];
}

nlohmann::json JobOn(TestCluster& cluster, int host, uint64_t id);
// The same once its state is `state`, or as it is when `timeout` has passed:
// its stub, or its output file, can show a job's end a moment before the
// submit host's record does.
nlohmann::json JobOnceIn(TestCluster& cluster, int host, uint64_t id, const std::string& state,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));
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
