// A large cluster's membership (issue 13): daemons that learn who is up from
// their serf agents' gossip, make links only when they need one, and place a
// job by asking a few hosts chosen at random for their load. With the real
// serf (scripts/install-deps.sh installs it); the test fails without it.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <sstream>
#include <thread>

#include "batch_helpers.h"
#include "cluster_fixture.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;

ClusterOptions Gossip(std::vector<std::string> extra = {}) {
  ClusterOptions options;
  options.daemon_args = {"--gossip-profile", "local"};  // loopback: failures seen in seconds
  options.daemon_args.insert(options.daemon_args.end(), extra.begin(), extra.end());
  options.ports_per_host = 3;  // the agent's gossip (port + 1) and RPC (port + 2)
  return options;
}

// The sockets process `pid` holds (TCP and Unix, listening or connected).
int SocketsOf(pid_t pid) {
  int sockets = 0;
  std::error_code ec;
  for (const auto& fd : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code link_ec;
    auto target = std::filesystem::read_symlink(fd.path(), link_ec);
    if (!link_ec && target.string().rfind("socket:", 0) == 0) ++sockets;
  }
  return sockets;
}

// A batch job of host 0's started on host `host` (it writes its shell's pid
// into `cwd`/pid, then sleeps): whether it came to run there, its id and that pid.
struct RemoteSleeper {
  bool running = false;
  uint64_t id = 0;
  pid_t pid = 0;
};
RemoteSleeper StartSleeperOn(TestCluster& cluster, int host, const std::string& cwd) {
  RemoteSleeper job;
  job.id = SubmitBatch(cluster, 0, {"-h", cluster.entry(host), "--", "sh", "-c", "echo $$ > pid; exec sleep 60"}, cwd);
  job.running = WaitUntil(
      [&] { return RunningOn(cluster, job.id) == cluster.entry(host) && !ReadFile(cwd + "/pid").empty(); }, 15s);
  if (job.running) std::istringstream(ReadFile(cwd + "/pid")) >> job.pid;
  return job;
}

TEST(Gossip, APlacementAsksTheHostsAndTheGossipSeesAKilledHost) {
  auto cluster = TestCluster::Start(4, Gossip({"--membership", "gossip", "--host-timeout", "3"}));
  ASSERT_TRUE(cluster->WaitForView(30s)) << cluster->log(0);
  EXPECT_NE(cluster->log(0).find("membership from the serf agent"), std::string::npos) << cluster->log(0);
  // No load is pushed: the only load host 0 knows is its own until it asks.
  // With hosts 0-2 loaded, every job goes to host 3: a placement asks three
  // hosts up in the gossip (here all three peers) and takes the least loaded.
  for (int i : {0, 1, 2}) cluster->SetLoad(i, 6.0);
  std::this_thread::sleep_for(1500ms);  // the heartbeat reads the load files
  for (int round = 0; round < 3; ++round) {
    auto run = cluster->Queue(0, {"-i", "-w", "-n", "--", "sh", "-c", "echo $QUEUE_HOST"});
    ASSERT_EQ(run.exit_code, 0) << run.err << cluster->log(0);
    EXPECT_EQ(run.out, cluster->entry(3) + "\n") << cluster->log(0);
  }
  // `queue --status` on host 0 shows host 3's load, learnt by asking.
  auto status = cluster->Status(0);
  ASSERT_FALSE(status.is_null());
  bool shown = false;
  for (const auto& h : status["hosts"])
    if (h["host"] == cluster->entry(3)) shown = h.value("alive", false) && h.contains("load1");
  EXPECT_TRUE(shown) << status.dump();

  // A request about a job goes to its submit host on a link made for it: a
  // cancel given on host 1 for a job of host 0's (a link host 1 never needed).
  std::string cwd = MakeDir(*cluster, "work");
  uint64_t waiting = SubmitBatch(*cluster, 0, {"-h", cluster->entry(3), "--", "sleep", "60"}, cwd);
  auto cancel = cluster->Queue(1, {"--cancel", JobLabel(waiting)});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.out << cancel.err << cluster->log(1);
  ASSERT_TRUE(WaitForEnds(*cluster, 0, {waiting}, 20s)) << cluster->log(0);
  auto cancelled = AllJobs(*cluster, 0)[waiting];  // ended by a signal where it ran (not 60 s later)
  EXPECT_TRUE(cancelled["state"] == "cancelled" || cancelled.contains("signal")) << cancelled.dump();

  // Host 2 dies with its job; its agent goes with it (parent-death signal),
  // the gossip marks it failed, and within --host-timeout of that (or of its
  // last answer to host 0's questions) its job from host 0 is lost with it.
  auto [running, id, job] = StartSleeperOn(*cluster, 2, cwd);
  ASSERT_TRUE(running) << cluster->log(0);
  cluster->StopDaemon(2, SIGKILL);
  if (job > 0) kill(-job, SIGKILL);
  ASSERT_TRUE(WaitForEnds(*cluster, 0, {id}, 30s)) << cluster->log(0);
  auto ended = AllJobs(*cluster, 0)[id];
  EXPECT_EQ(ended["state"], "failed") << ended.dump();
  EXPECT_NE(ended.value("message", "").find(cluster->entry(2)), std::string::npos) << ended.dump();
  // The job may be lost first by host 0's own questions to host 2, which
  // stop being answered at once; the gossip's verdict follows.
  EXPECT_TRUE(WaitUntil([&] { return cluster->log(0).find(cluster->entry(2) + " is down (serf: failed)") != std::string::npos; },
                        15s))
      << cluster->log(0);
  ASSERT_TRUE(cluster->WaitForView(15s, {2}));
}

// A daemon that hangs while its serf agent goes on answering is up to the
// gossip; the host that sent it a job asks it for its load, and after
// --host-timeout without an answer takes the job for lost, as a full mesh
// does with a host whose load reports stop. Before, the job never ended.
TEST(Gossip, ADaemonHungBesideItsRunningAgentLosesTheJobsItRanForOthers) {
  auto cluster = TestCluster::Start(3, Gossip({"--membership", "gossip", "--host-timeout", "3"}));
  ASSERT_TRUE(cluster->WaitForView(30s)) << cluster->log(0);
  std::string cwd = MakeDir(*cluster, "work");
  auto [running, id, job] = StartSleeperOn(*cluster, 2, cwd);
  ASSERT_TRUE(running) << cluster->log(0);
  // Only the daemon stops: its agent (its child) goes on gossiping.
  ContinueOnExit resume{*cluster, 2};
  cluster->SignalDaemon(2, SIGSTOP);
  const bool ended = WaitForEnds(*cluster, 0, {id}, 30s);
  if (job > 0) kill(-job, SIGKILL);
  ASSERT_TRUE(ended) << cluster->log(0);
  auto lost = AllJobs(*cluster, 0)[id];
  EXPECT_EQ(lost["state"], "failed") << lost.dump();
  EXPECT_NE(lost.value("message", "").find(cluster->entry(2) + " was silent for"), std::string::npos) << lost.dump();
  EXPECT_NE(cluster->log(0).find(cluster->entry(2) + " is up in the gossip but has not answered"), std::string::npos)
      << cluster->log(0);
  EXPECT_EQ(cluster->log(0).find(cluster->entry(2) + " is down (serf"), std::string::npos) << cluster->log(0);
}

// Above 16 hosts in the hosts file the gossip is the default, and an idle
// daemon holds no connection per peer (a full mesh of 18 would hold 34).
TEST(Gossip, AboveSixteenHostsAnIdleDaemonHoldsNoConnectionPerPeer) {
  auto cluster = TestCluster::Start(18, Gossip());
  ASSERT_TRUE(cluster->WaitForView(60s)) << cluster->log(0);
  EXPECT_NE(cluster->log(0).find("membership from the serf agent"), std::string::npos) << cluster->log(0);
  auto run = cluster->Queue(0, {"-i", "-w", "-n", "--", "true"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  for (int i : {0, 9, 17}) {
    int sockets = SocketsOf(cluster->daemon_pid(i));
    EXPECT_LT(sockets, 16) << "host " << i;
  }
}

}  // namespace
}  // namespace queue::testing
