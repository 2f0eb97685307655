// GossipMembers: a large cluster's view of which hosts are up (issue 13),
// from this host's Serf agent instead of a connection and a load report per
// peer. It starts and supervises the agent (cluster/serf_agent: gossip keyed
// by a key derived from the cluster keys, on the daemon's port + 1), follows
// its member list (cluster/serf_membership, RPC on loopback at port + 2), and
// answers three questions: which hosts are up, which have been down (failed
// or left) for longer than the daemon's --host-timeout (their jobs from here
// are lost), and a few hosts chosen at random among those up, for a
// placement to ask (sched/host_sampler).
//
// A member's name is its host entry as the hosts file writes it; a member the
// hosts file does not list is ignored. A host never seen in the gossip counts
// as down from this daemon's start.
//
// What the gossip cannot tell: a daemon that hangs beside a healthy agent
// (its probes go unanswered, so placement passes it by, but its jobs are not
// declared lost).
//
// Lifetime: the agent and the RPC connection run on the event loop and hold
// only weak references; Stop (or the destructor) ends the agent.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <asio.hpp>

#include "cluster/hosts_file.h"
#include "cluster/serf_rpc.h"
#include "util/result.h"

namespace queue::cluster {
class SerfAgent;
class SerfMembership;
}  // namespace queue::cluster

namespace queue::daemon {

struct GossipConfig {
  std::string program = "serf";
  std::string profile = "lan";  // Serf's timings: lan, wan or local
  std::string keyring_file, snapshot_file, log_file;
  std::string agent_config_file;  // holds the RPC key, new at each start
  std::vector<std::string> cluster_keys;  // raw, the one offered first
  size_t join_through = 3;                // hosts of the hosts file the agent joins through
};

// The agent's addresses for the daemon at `self`: gossip on its port + 1,
// RPC on port + 2 of loopback (its own address when that is a loopback one,
// so that daemons on several loopback addresses do not collide).
std::string GossipAddress(const cluster::HostEntry& host);
std::string GossipRpcAddress(const cluster::HostEntry& self);

class GossipMembers {
 public:
  using Clock = std::chrono::steady_clock;

  GossipMembers(asio::io_context& io, GossipConfig config, std::vector<cluster::HostEntry> hosts,
                cluster::HostEntry self, Clock::duration dead_after, Clock::time_point now);
  ~GossipMembers();

  // Writes the keyring and starts the agent and the RPC client.
  Status Start();
  void Stop();
  // The hosts file was read again (SIGHUP).
  void SetHosts(std::vector<cluster::HostEntry> hosts);

  // What the agent said of one member (the RPC client calls it; tests too).
  void Saw(const cluster::serf::Member& member, Clock::time_point now);

  bool Up(const std::string& host) const;
  // Peers (not this host) down for longer than dead_after, with how long in seconds.
  std::vector<std::pair<std::string, int64_t>> Dead(Clock::time_point now) const;
  // `count` distinct peers that are up, chosen at random.
  std::vector<std::string> Sample(size_t count, std::mt19937_64& rng) const;
  // Peers up and peers down, for status and metrics.
  size_t UpCount() const;
  bool agent_connected() const;

 private:
  struct Seen {
    bool up = false;
    Clock::time_point since;  // when it last changed between up and down
  };
  asio::io_context& io_;
  GossipConfig config_;
  std::vector<cluster::HostEntry> hosts_;
  cluster::HostEntry self_;
  Clock::duration dead_after_;
  Clock::time_point started_at_;
  std::map<std::string, Seen> seen_;  // by host entry, hosts of the hosts file only
  std::shared_ptr<cluster::SerfAgent> agent_;
  std::shared_ptr<cluster::SerfMembership> members_;
};

}  // namespace queue::daemon
