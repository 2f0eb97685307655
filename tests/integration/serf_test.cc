// Membership for large clusters from Serf's agent (issue 13), with the real
// `serf` program: agents started and kept running by cluster/SerfAgent, keyed
// with gossip keys derived from the cluster key, and a member list kept by
// cluster/SerfMembership from the agent's RPC. A hung agent is seen failed
// and then alive again, a killed one is started again, and an agent without
// the cluster key never gets in.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <functional>

#include "auth/cluster_key.h"
#include "cluster/serf_agent.h"
#include "cluster/serf_membership.h"
#include "cluster_fixture.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;
using cluster::serf::MemberStatus;

// Runs the loop until `done` holds or `timeout` passes.
bool RunUntil(asio::io_context& io, const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    io.restart();
    io.run_for(50ms);
  }
  return true;
}

std::string NewDir() {
  std::string path = (std::filesystem::temp_directory_path() / "queue-serf-XXXXXX").string();
  return mkdtemp(path.data()) ? path : std::string();
}

struct Agents {
  asio::io_context io;
  std::string dir = NewDir();
  std::string address = LoopbackAddress();
  std::vector<cluster::SerfAgentConfig> configs;
  std::vector<std::shared_ptr<cluster::SerfAgent>> agents;

  // Agent `i` of `n`, keyed with `key` (raw), joining through agent 0; its
  // RPC asks for `rpc_key` when one is given.
  void Add(const std::string& key, const std::string& name, const std::string& rpc_key = "") {
    cluster::SerfAgentConfig c;
    c.node = name;
    c.bind = address + ":" + std::to_string(FreePortOn(address));
    c.rpc = "127.0.0.1:" + std::to_string(FreePortOn("127.0.0.1"));
    c.keyring_file = dir + "/" + name + ".keyring";
    c.log_file = dir + "/" + name + ".log";
    c.profile = "local";  // loopback timings: failures seen in seconds
    if (!configs.empty()) c.join = {configs[0].bind};
    EXPECT_TRUE(cluster::WriteKeyring(c.keyring_file, {key}).ok());
    if (!rpc_key.empty()) {
      c.config_file = dir + "/" + name + ".json";
      EXPECT_TRUE(cluster::WriteAgentConfig(c.config_file, rpc_key).ok());
    }
    configs.push_back(c);
    agents.push_back(cluster::SerfAgent::Create(io, c));
    Status started = agents.back()->Start();
    EXPECT_TRUE(started.ok()) << started.message();
  }
  std::string Log(size_t i) { return ReadFile(configs[i].log_file); }
  ~Agents() {
    for (auto& a : agents) a->Stop();
    std::filesystem::remove_all(dir);
  }
};

MemberStatus StatusOf(const cluster::SerfMembership& m, const std::string& name) {
  auto it = m.members().find(name);
  return it == m.members().end() ? MemberStatus::kOther : it->second.status;
}

TEST(SerfMembership, AgentsFindEachOtherAHungOneFailsAndComesBackAKilledOneIsRestarted) {
  Agents a;
  const std::string key = auth::RandomBytes(auth::kKeyBytes);
  for (const char* name : {"h0", "h1", "h2"}) a.Add(key, name);
  auto members = cluster::SerfMembership::Create(a.io, a.configs[0].rpc);
  int changes = 0;
  members->Start([&](const cluster::serf::Member&) { ++changes; });
  ASSERT_TRUE(RunUntil(a.io, [&] { return members->CountIn(MemberStatus::kAlive) == 3; }, 30s))
      << members->members().size() << " members; " << a.Log(0) << a.Log(1);
  EXPECT_EQ(members->members().at("h1").address, a.address);

  // Hung (SIGSTOP): failed within seconds, alive again once it goes on.
  const pid_t hung = a.agents[2]->pid();
  ASSERT_EQ(kill(hung, SIGSTOP), 0);
  auto stopped_at = std::chrono::steady_clock::now();
  EXPECT_TRUE(RunUntil(a.io, [&] { return StatusOf(*members, "h2") == MemberStatus::kFailed; }, 30s));
  std::cout << "[serf] a hung agent was seen failed after "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped_at).count() << " s" << std::endl;
  kill(hung, SIGCONT);
  EXPECT_TRUE(RunUntil(a.io, [&] { return StatusOf(*members, "h2") == MemberStatus::kAlive; }, 30s));

  // Killed: the supervisor starts it again, and it rejoins.
  const pid_t first = a.agents[1]->pid();
  ASSERT_EQ(kill(first, SIGKILL), 0);
  EXPECT_TRUE(RunUntil(a.io, [&] { return a.agents[1]->starts() == 2; }, 10s));
  EXPECT_NE(a.agents[1]->pid(), first);
  EXPECT_TRUE(RunUntil(a.io, [&] { return StatusOf(*members, "h1") == MemberStatus::kAlive && members->CountIn(MemberStatus::kAlive) == 3; }, 30s))
      << a.Log(1);
  EXPECT_GT(changes, 3);
  members->Stop();
}

TEST(SerfMembership, AnAgentWithoutTheClusterKeyNeverGetsIn) {
  Agents a;
  const std::string key = auth::RandomBytes(auth::kKeyBytes);
  a.Add(key, "h0");
  a.Add(key, "h1");
  a.Add(auth::RandomBytes(auth::kKeyBytes), "stranger");
  auto members = cluster::SerfMembership::Create(a.io, a.configs[0].rpc);
  members->Start(nullptr);
  ASSERT_TRUE(RunUntil(a.io, [&] { return members->CountIn(MemberStatus::kAlive) == 2; }, 30s)) << a.Log(0);
  // Evidence that it tried: its own log says its join failed.
  EXPECT_TRUE(RunUntil(a.io, [&] { return a.Log(2).find("oin failed") != std::string::npos; }, 30s)) << a.Log(2);
  EXPECT_EQ(members->members().count("stranger"), 0U) << a.Log(2);
  EXPECT_EQ(members->CountIn(MemberStatus::kAlive), 2U);
  members->Stop();
}

// The agent's RPC port is on loopback, where every local user can reach it:
// without the key in the agent's config (0600, root's in queued's spool) a
// client is refused, and a "leave" sent by one does not make the host leave.
TEST(SerfMembership, TheRpcServesOnlyTheHolderOfItsKey) {
  Agents a;
  const std::string key = auth::RandomBytes(auth::kKeyBytes);
  a.Add(key, "h0", "the-rpc-key");
  a.Add(key, "h1", "another-rpc-key");
  auto good = cluster::SerfMembership::Create(a.io, a.configs[0].rpc, "the-rpc-key");
  good->Start(nullptr);
  ASSERT_TRUE(RunUntil(a.io, [&] { return good->CountIn(MemberStatus::kAlive) == 2; }, 30s)) << a.Log(0);
  auto stranger = cluster::SerfMembership::Create(a.io, a.configs[0].rpc, "a-guess");
  stranger->Start(nullptr);
  auto keyless = cluster::SerfMembership::Create(a.io, a.configs[0].rpc);
  keyless->Start(nullptr);
  // A local user's own client: the handshake, then "leave" with no key.
  asio::ip::tcp::socket raw(a.io);
  const auto colon = a.configs[0].rpc.rfind(':');
  raw.connect({asio::ip::make_address(a.configs[0].rpc.substr(0, colon)),
               static_cast<uint16_t>(std::stoi(a.configs[0].rpc.substr(colon + 1)))});
  asio::write(raw, asio::buffer(cluster::serf::EncodeHandshake(0) + cluster::serf::EncodeLeave(1)));
  RunUntil(a.io, [] { return false; }, 3s);
  EXPECT_TRUE(stranger->members().empty());
  EXPECT_TRUE(keyless->members().empty());
  EXPECT_EQ(StatusOf(*good, "h0"), MemberStatus::kAlive) << a.Log(0);
  EXPECT_EQ(a.agents[0]->starts(), 1);
  EXPECT_EQ(kill(a.agents[0]->pid(), 0), 0) << "the agent ended";
  good->Stop();
  stranger->Stop();
  keyless->Stop();
}

}  // namespace
}  // namespace queue::testing
