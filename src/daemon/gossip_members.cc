// A large cluster's membership from the local Serf agent.
#include "daemon/gossip_members.h"

#include <algorithm>
#include <iostream>

#include "auth/cluster_key.h"
#include "auth/derived_key.h"
#include "cluster/serf_agent.h"
#include "cluster/serf_membership.h"
#include "sched/host_sampler.h"

namespace queue::daemon {

namespace {

bool IsLoopback(const std::string& host) { return host.rfind("127.", 0) == 0 || host == "localhost" || host == "::1"; }

std::string WithPort(const std::string& host, int port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

std::string GossipAddress(const cluster::HostEntry& host) { return WithPort(host.host, host.port + 1); }

std::string GossipRpcAddress(const cluster::HostEntry& self) {
  return WithPort(IsLoopback(self.host) ? self.host : "127.0.0.1", self.port + 2);
}

GossipMembers::GossipMembers(asio::io_context& io, GossipConfig config, std::vector<cluster::HostEntry> hosts,
                             cluster::HostEntry self, Clock::duration dead_after, Clock::time_point now)
    : io_(io), config_(std::move(config)), self_(std::move(self)), dead_after_(dead_after), started_at_(now) {
  SetHosts(std::move(hosts));
}

GossipMembers::~GossipMembers() { Stop(); }

void GossipMembers::SetHosts(std::vector<cluster::HostEntry> hosts) {
  hosts_ = std::move(hosts);
  std::map<std::string, Seen> kept;
  for (const auto& h : hosts_) {
    if (h.entry == self_.entry) continue;
    auto old = seen_.find(h.entry);
    kept[h.entry] = old != seen_.end() ? old->second : Seen{false, started_at_};
  }
  seen_ = std::move(kept);
}

Status GossipMembers::Start() {
  if (self_.port > 65533) return Fail("the gossip needs ports " + std::to_string(self_.port) + " + 1 and + 2 free");
  if (auto written = cluster::WriteKeyring(config_.keyring_file, config_.cluster_keys); !written.ok()) return written;
  // The agent's RPC has no authentication but this key: without it, any local
  // user could make this host leave the cluster through the RPC port.
  const std::string rpc_key = auth::Base64(auth::RandomBytes(24));
  if (auto written = cluster::WriteAgentConfig(config_.agent_config_file, rpc_key); !written.ok()) return written;
  cluster::SerfAgentConfig agent;
  agent.program = config_.program;
  agent.node = self_.entry;
  agent.bind = GossipAddress(self_);
  agent.rpc = GossipRpcAddress(self_);
  agent.keyring_file = config_.keyring_file;
  agent.config_file = config_.agent_config_file;
  agent.snapshot_file = config_.snapshot_file;
  agent.log_file = config_.log_file;
  agent.profile = config_.profile;
  for (const auto& h : hosts_) {
    if (agent.join.size() == config_.join_through) break;
    if (h.entry != self_.entry) agent.join.push_back(GossipAddress(h));
  }
  agent_ = cluster::SerfAgent::Create(io_, agent);
  if (auto started = agent_->Start(); !started.ok()) return started;
  members_ = cluster::SerfMembership::Create(io_, agent.rpc, rpc_key);
  members_->Start([this](const cluster::serf::Member& member) { Saw(member, Clock::now()); });
  std::cerr << "queued: membership from the serf agent (gossip " << agent.bind << ", rpc " << agent.rpc << ")\n";
  return Status::Ok();
}

void GossipMembers::Stop() {
  if (members_) members_->Stop();
  if (agent_) agent_->Stop();
  members_.reset();
  agent_.reset();
}

void GossipMembers::Saw(const cluster::serf::Member& member, Clock::time_point now) {
  auto it = seen_.find(member.name);
  if (it == seen_.end()) return;  // not in our hosts file (or this host)
  const bool up = member.status == cluster::serf::MemberStatus::kAlive;
  if (it->second.up == up) return;
  it->second = Seen{up, now};
  std::cerr << "queued: " << member.name << " is " << (up ? "up" : "down") << " (serf: " << cluster::serf::StatusName(member.status)
            << ")\n";
}

bool GossipMembers::Up(const std::string& host) const {
  auto it = seen_.find(host);
  return it != seen_.end() && it->second.up;
}

std::vector<std::pair<std::string, int64_t>> GossipMembers::Dead(Clock::time_point now) const {
  std::vector<std::pair<std::string, int64_t>> dead;
  for (const auto& [host, seen] : seen_) {
    if (seen.up || now - seen.since <= dead_after_) continue;
    dead.emplace_back(host, std::chrono::duration_cast<std::chrono::seconds>(now - seen.since).count());
  }
  return dead;
}

std::vector<std::string> GossipMembers::Sample(size_t count, std::mt19937_64& rng) const {
  std::vector<std::string> up;
  for (const auto& [host, seen] : seen_)
    if (seen.up) up.push_back(host);
  std::vector<std::string> chosen;
  for (size_t i : sched::SampleHosts(up.size(), count, rng)) chosen.push_back(up[i]);
  return chosen;
}

size_t GossipMembers::UpCount() const {
  return static_cast<size_t>(std::count_if(seen_.begin(), seen_.end(), [](const auto& s) { return s.second.up; }));
}

bool GossipMembers::agent_connected() const { return members_ && members_->connected(); }

}  // namespace queue::daemon
