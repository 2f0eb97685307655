// The Serf agent a large cluster's daemon runs beside it (issue 13): Serf's
// gossip (SWIM with Lifeguard) gives membership and failure detection without
// a connection or a report per peer. This module builds the agent's command
// line, writes its keyring (gossip keys derived from the cluster keys, so
// that holding the cluster key file is what lets a host in), and keeps the
// agent running: started at Start, started again when it dies (after a pause
// that doubles up to a minute, each death logged once), stopped at Stop.
//
// Lifetime: the supervisor's waits run on the event loop and hold only a
// weak reference to it; once it is destroyed (or stopped) nothing it started
// touches it, and Stop (or the destructor) ends the agent it started.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <asio.hpp>

#include "util/result.h"

namespace queue::cluster {

struct SerfAgentConfig {
  std::string program = "serf";      // found in PATH unless a path
  std::string node;                  // the member's name: this daemon's host entry
  std::string bind;                  // gossip address, "IP:PORT"
  std::string rpc;                   // the agent's RPC address, "127.0.0.1:PORT" (loopback: it has no auth)
  std::string keyring_file;          // written by WriteKeyring
  std::string config_file;           // written by WriteAgentConfig: the RPC's key (not in argv, which all can read)
  std::string snapshot_file;         // where the agent keeps what it knew, to rejoin after a restart
  std::vector<std::string> join;     // gossip addresses to join through (retried until one answers)
  std::map<std::string, std::string> tags;
  std::string profile = "lan";       // Serf's timing profile: lan, wan or local
  std::string log_file;              // the agent's own output ("" : /dev/null)
};

// The agent's argv. Pure.
std::vector<std::string> SerfAgentArgv(const SerfAgentConfig& config);

// The gossip key for raw cluster key `key`: 32 bytes (AES-256) derived from it
// for this use only, base64 as Serf takes it. Pure.
Result<std::string> GossipKey(const std::string& key);

// Writes Serf's keyring file (a JSON list of base64 keys, the first the one
// it sends with) for `cluster_keys` (raw, the current one first: during a
// rolling change of the cluster key both are accepted), mode 0600, replaced
// atomically.
Status WriteKeyring(const std::string& path, const std::vector<std::string>& cluster_keys);

// Writes the agent's config file: `rpc_key`, which an RPC client must give
// (serf's "auth" command) before the agent does anything for it, so that a
// local user cannot make this host leave the cluster, or end the agent, through
// the RPC port. Mode 0600, replaced atomically.
Status WriteAgentConfig(const std::string& path, const std::string& rpc_key);

class SerfAgent : public std::enable_shared_from_this<SerfAgent> {
 public:
  static constexpr std::chrono::seconds kFirstPause{1};
  static constexpr std::chrono::seconds kLongestPause{60};

  static std::shared_ptr<SerfAgent> Create(asio::io_context& io, SerfAgentConfig config);
  ~SerfAgent();

  // Starts the agent; an error when it cannot be started at all (no program).
  Status Start();
  // Ends the agent (SIGTERM, then SIGKILL after 5 s) and starts no other.
  void Stop();
  pid_t pid() const { return pid_; }
  int starts() const { return starts_; }

 private:
  SerfAgent(asio::io_context& io, SerfAgentConfig config);
  Status Spawn();
  void WatchExit();
  void OnExit();
  void RestartLater();

  asio::io_context& io_;
  SerfAgentConfig config_;
  pid_t pid_ = -1;
  std::unique_ptr<asio::posix::stream_descriptor> pidfd_;
  asio::steady_timer restart_timer_;
  std::chrono::seconds pause_ = kFirstPause;
  std::chrono::steady_clock::time_point started_at_{};
  bool stopped_ = false;
  int starts_ = 0;
};

}  // namespace queue::cluster
