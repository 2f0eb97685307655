// GossipMembers' decisions, fed member events by hand (no agent started):
// who is up, who is dead for long enough, the random sample, the addresses.
#include "daemon/gossip_members.h"

#include <gtest/gtest.h>

#include <set>

namespace queue::daemon {
namespace {

using namespace std::chrono_literals;
using Clock = GossipMembers::Clock;

std::vector<cluster::HostEntry> Hosts(int n) {
  std::vector<cluster::HostEntry> hosts;
  for (int i = 0; i < n; ++i) {
    std::string host = "10.0.0." + std::to_string(i + 1);
    hosts.push_back(cluster::HostEntry{host + ":15002", host, 15002});
  }
  return hosts;
}

cluster::serf::Member M(const std::string& name, cluster::serf::MemberStatus status) {
  cluster::serf::Member m;
  m.name = name;
  m.status = status;
  return m;
}

struct Fixture {
  asio::io_context io;
  Clock::time_point t0 = Clock::now();
  std::vector<cluster::HostEntry> hosts = Hosts(5);
  GossipMembers members{io, GossipConfig{}, hosts, hosts[0], 10s, t0};
};

TEST(GossipMembers, AHostIsUpOnlyWhileTheGossipSaysAlive) {
  Fixture f;
  EXPECT_FALSE(f.members.Up(f.hosts[1].entry));
  f.members.Saw(M(f.hosts[1].entry, cluster::serf::MemberStatus::kAlive), f.t0 + 1s);
  EXPECT_TRUE(f.members.Up(f.hosts[1].entry));
  f.members.Saw(M(f.hosts[1].entry, cluster::serf::MemberStatus::kFailed), f.t0 + 2s);
  EXPECT_FALSE(f.members.Up(f.hosts[1].entry));
  // Not in the hosts file, or this host: ignored.
  f.members.Saw(M("10.9.9.9:15002", cluster::serf::MemberStatus::kAlive), f.t0 + 1s);
  EXPECT_FALSE(f.members.Up("10.9.9.9:15002"));
  EXPECT_EQ(f.members.UpCount(), 0u);
}

// A daemon restart makes its agent leave and come back within the timeout:
// no job of it is taken for lost. Down for longer is dead, with how long.
TEST(GossipMembers, DeadOnlyAfterBeingDownForLongerThanTheTimeout) {
  Fixture f;
  for (int i = 1; i < 5; ++i) f.members.Saw(M(f.hosts[i].entry, cluster::serf::MemberStatus::kAlive), f.t0 + 1s);
  f.members.Saw(M(f.hosts[2].entry, cluster::serf::MemberStatus::kLeft), f.t0 + 20s);
  f.members.Saw(M(f.hosts[3].entry, cluster::serf::MemberStatus::kFailed), f.t0 + 20s);
  EXPECT_TRUE(f.members.Dead(f.t0 + 25s).empty());
  f.members.Saw(M(f.hosts[2].entry, cluster::serf::MemberStatus::kAlive), f.t0 + 26s);  // came back in time
  auto dead = f.members.Dead(f.t0 + 33s);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].first, f.hosts[3].entry);
  EXPECT_EQ(dead[0].second, 13);
}

// Never seen in the gossip: down since this daemon started.
TEST(GossipMembers, AHostNeverSeenIsDeadOnceTheTimeoutPassedSinceTheStart) {
  Fixture f;
  for (int i = 1; i < 4; ++i) f.members.Saw(M(f.hosts[i].entry, cluster::serf::MemberStatus::kAlive), f.t0 + 1s);
  EXPECT_TRUE(f.members.Dead(f.t0 + 9s).empty());
  auto dead = f.members.Dead(f.t0 + 11s);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].first, f.hosts[4].entry);
}

TEST(GossipMembers, TheSampleIsDistinctHostsThatAreUpAndNeverThisOne) {
  Fixture f;
  for (int i = 1; i < 5; ++i) f.members.Saw(M(f.hosts[i].entry, cluster::serf::MemberStatus::kAlive), f.t0);
  f.members.Saw(M(f.hosts[4].entry, cluster::serf::MemberStatus::kFailed), f.t0);
  std::mt19937_64 rng(7);
  std::set<std::string> seen;
  for (int round = 0; round < 200; ++round) {
    auto sample = f.members.Sample(2, rng);
    ASSERT_EQ(sample.size(), 2u);
    EXPECT_NE(sample[0], sample[1]);
    for (const auto& h : sample) {
      EXPECT_NE(h, f.hosts[0].entry);
      EXPECT_NE(h, f.hosts[4].entry);
      seen.insert(h);
    }
  }
  EXPECT_EQ(seen.size(), 3u);  // every host up is asked in time
  EXPECT_EQ(f.members.Sample(10, rng).size(), 3u);
}

TEST(GossipMembers, ARemovedHostIsForgottenAndANewOneStartsDown) {
  Fixture f;
  f.members.Saw(M(f.hosts[1].entry, cluster::serf::MemberStatus::kAlive), f.t0);
  auto fewer = f.hosts;
  fewer.pop_back();
  fewer.push_back(cluster::HostEntry{"10.0.0.9:15002", "10.0.0.9", 15002});
  f.members.SetHosts(fewer);
  EXPECT_TRUE(f.members.Up(f.hosts[1].entry));
  f.members.Saw(M(f.hosts[4].entry, cluster::serf::MemberStatus::kAlive), f.t0);
  EXPECT_FALSE(f.members.Up(f.hosts[4].entry));
  EXPECT_FALSE(f.members.Up("10.0.0.9:15002"));
}

TEST(GossipMembers, TheAgentListensOnThePortAfterTheDaemonsAndItsRpcOnLoopback) {
  cluster::HostEntry remote{"10.0.0.1:15002", "10.0.0.1", 15002};
  cluster::HostEntry local{"127.0.0.5:15002", "127.0.0.5", 15002};
  EXPECT_EQ(GossipAddress(remote), "10.0.0.1:15003");
  EXPECT_EQ(GossipRpcAddress(remote), "127.0.0.1:15004");
  EXPECT_EQ(GossipRpcAddress(local), "127.0.0.5:15004");
}

}  // namespace
}  // namespace queue::daemon
