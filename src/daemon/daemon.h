// Daemon: the wiring of queued. One Asio event loop serves
//   - local clients on a Unix socket (uid from SO_PEERCRED, never from a message),
//   - peer daemons over TLS keyed by the cluster key (PeerLink out, PeerSession in),
//   - this host's shepherds (JobRunner),
// and a timer that samples the load and pushes it to every peer.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <asio.hpp>

#include "util/result.h"

namespace queue::daemon {

// How a daemon learns which hosts are up and how loaded (issue 13).
enum class Membership {
  kAuto,  // kFull up to kMostFullMeshHosts hosts in the hosts file, kGossip above
  kFull,  // a link to every peer, each pushing its load every second
  kGossip,  // Serf's gossip for who is up; links made on demand; a placement asks a few random hosts
};
inline constexpr size_t kMostFullMeshHosts = 16;

struct DaemonConfig {
  std::string spool_dir;
  std::string hosts_file;
  std::string key_file;
  std::string listen;  // ADDR:PORT as in the hosts file
  std::string socket_path;
  std::string loadavg_file = "/proc/loadavg";
  std::string clock_file;  // tests: the time as Unix seconds, read on every pass
  std::string shepherd_path;  // the queue-shepherd binary
  std::string criu_path;      // checkpointmode 1; empty: look for criu in PATH, /usr/local/sbin, /usr/sbin
  std::string metrics_listen;  // --metrics: PORT (loopback) or ADDR:PORT for /metrics; empty: off
  std::chrono::milliseconds report_interval{1000};
  std::chrono::milliseconds stale_after{3500};
  std::chrono::milliseconds place_timeout{5000};
  std::chrono::milliseconds commit_window{20};  // spool writes are grouped this long
  // A peer silent this long is taken for dead: its jobs from here are lost with it
  // (run again when their queue says `restart`). Long enough for a daemon restart.
  std::chrono::milliseconds host_dead_after{60000};
  // Finished jobs' records (their spec included) are removed this long after they end.
  std::chrono::seconds keep_finished{7 * 24 * 3600};
  // What one user may keep in this host's spool (UserQuota).
  size_t user_waiting_jobs = 1000;
  uint64_t user_spool_bytes = 1ull << 30;
  // Detached: the log file on descriptors 1 and 2, opened again on SIGHUP
  // (logrotate moves it away first). Empty: the log is stderr as it is.
  std::string log_file;
  Membership membership = Membership::kAuto;
  std::string serf_program = "serf";  // found in PATH unless a path
  std::string gossip_profile = "lan";  // Serf's timings: lan, wan or local
};

class DaemonImpl;

class Daemon {
 public:
  // Checks the configuration (hosts file, key, spool) and binds the sockets.
  static Result<std::unique_ptr<Daemon>> Create(asio::io_context& io, DaemonConfig config);
  ~Daemon();

  // Runs until SIGTERM or SIGINT; SIGHUP reloads the hosts file, the key and
  // profiles, and opens the log file again. Under systemd it says when it is
  // ready, reloading and stopping, and its status (ServiceNotifier).
  void Run();

 private:
  explicit Daemon(std::unique_ptr<DaemonImpl> impl);
  std::unique_ptr<DaemonImpl> impl_;
};

}  // namespace queue::daemon
