// Hosts in separate network namespaces: each daemon has its own network
// stack and address, joined by a bridge namespace, so host identity, the
// stub's listening address and daemon-to-daemon links are real. Addresses are
// private to the namespaces made here, and used only from inside them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/wait.h>

#include <csignal>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "cluster_fixture.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;

// Namespaces qN-<pid>-<i> for the hosts and qN-<pid>-br for the bridge,
// deleted on destruction.
class NamespaceLab {
 public:
  explicit NamespaceLab(int hosts) : prefix_("qn" + std::to_string(getpid() % 100000)) {
    ok_ = Ip({"netns", "add", Bridge()}) && IpIn(Bridge(), {"link", "add", "br0", "type", "bridge"}) &&
          IpIn(Bridge(), {"link", "set", "br0", "up"});
    for (int i = 0; ok_ && i < hosts; ++i) {
      std::string ns = Host(i), outside = prefix_ + "b" + std::to_string(i);
      ok_ = Ip({"netns", "add", ns}) &&
            Ip({"link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", outside, "netns", Bridge()}) &&
            IpIn(ns, {"addr", "add", Address(i) + "/24", "dev", "eth0"}) && IpIn(ns, {"link", "set", "eth0", "up"}) &&
            IpIn(ns, {"link", "set", "lo", "up"}) && IpIn(Bridge(), {"link", "set", outside, "master", "br0"}) &&
            IpIn(Bridge(), {"link", "set", outside, "up"});
      made_ = i + 1;
    }
  }
  ~NamespaceLab() {
    for (int i = 0; i < made_; ++i) Ip({"netns", "delete", Host(i)});
    Ip({"netns", "delete", Bridge()});
  }

  bool ok() const { return ok_; }
  std::string Host(int i) const { return prefix_ + "-" + std::to_string(i); }
  static std::string Address(int i) { return "10.231.0." + std::to_string(i + 1); }
  std::vector<std::string> Wrapper(int i) const { return {"/usr/sbin/ip", "netns", "exec", Host(i)}; }

 private:
  std::string Bridge() const { return prefix_ + "-br"; }
  static bool Ip(std::vector<std::string> args) {
    args.insert(args.begin(), "/usr/sbin/ip");
    return RunCommand(args).exit_code == 0;
  }
  static bool IpIn(const std::string& ns, std::vector<std::string> args) {
    args.insert(args.begin(), {"netns", "exec", ns, "/usr/sbin/ip"});
    return Ip(args);
  }

  std::string prefix_;
  bool ok_ = false;
  int made_ = 0;
};

TEST(Netns, ThreeHostsInTheirOwnNetworkNamespaces) {
  if (geteuid() != 0 || access("/usr/sbin/ip", X_OK) != 0) GTEST_SKIP() << "needs root and iproute2";
  NamespaceLab lab(3);
  ASSERT_TRUE(lab.ok()) << "could not build the namespaces";
  ClusterOptions options;
  for (int i = 0; i < 3; ++i) {
    options.host_entries.push_back(NamespaceLab::Address(i) + ":1421");
    options.host_wrappers[i] = lab.Wrapper(i);
  }
  auto cluster = TestCluster::Start(3, options);
  ASSERT_TRUE(cluster->WaitForView(20s)) << cluster->log(0) << cluster->log(1) << cluster->log(2);

  // -h: each host by its own address, the job sees that host's entry.
  for (int target = 0; target < 3; ++target) {
    auto run = cluster->Queue(0, {"-h", cluster->entry(target), "-n", "--", "sh", "-c", "echo $QUEUE_HOST; exit 7"});
    EXPECT_EQ(run.exit_code, 7) << run.err;
    EXPECT_EQ(run.out, cluster->entry(target) + "\n");
  }
  // Load steering across namespaces: only host 2 is idle.
  cluster->SetLoad(0, 8.0);
  cluster->SetLoad(1, 8.0);
  cluster->SetLoad(2, 0.0);
  // Host 1, where the job is submitted, places it by the loads it last heard:
  // wait until it has heard these, however long the heartbeats take.
  const std::map<std::string, double> loads = {
      {cluster->entry(0), 8.0}, {cluster->entry(1), 8.0}, {cluster->entry(2), 0.0}};
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto status = nlohmann::json::parse(cluster->Queue(1, {"--status", "--json"}).out, nullptr, false);
        if (status.is_discarded()) return false;
        size_t heard = 0;
        for (const auto& h : status["hosts"]) {
          auto load = loads.find(h.value("host", ""));
          if (load != loads.end() && h.value("load1", -1.0) == load->second) ++heard;
        }
        return heard == loads.size();
      },
      10s))
      << cluster->Queue(1, {"--status"}).out;
  auto steered = cluster->Queue(1, {"-n", "--", "sh", "-c", "echo $QUEUE_HOST"});
  EXPECT_EQ(steered.out, cluster->entry(2) + "\n") << steered.err;
  // A host that drops off the network is noticed and skipped.
  cluster->StopDaemon(2, SIGKILL);
  ASSERT_TRUE(cluster->WaitForView(10s, {2}));
  auto fallback = cluster->Queue(1, {"-n", "--", "sh", "-c", "echo $QUEUE_HOST"});
  EXPECT_EQ(fallback.exit_code, 0) << fallback.err;
  EXPECT_TRUE(fallback.out == cluster->entry(0) + "\n" || fallback.out == cluster->entry(1) + "\n") << fallback.out;
}

// SPEC §7 across real network stacks: a job checkpointed in one namespace goes
// on in another, its restart file carried by the daemons, its stub (in host 0's
// namespace) attached throughout.
TEST(Netns, AJobMovesBetweenNamespacesWithItsStubAttached) {
  if (geteuid() != 0 || access("/usr/sbin/ip", X_OK) != 0) GTEST_SKIP() << "needs root and iproute2";
  std::string counter = BinDir() + "/queue-example-counter";
  if (access(counter.c_str(), X_OK) != 0) GTEST_SKIP() << "queue-example-counter is not built";
  NamespaceLab lab(2);
  ASSERT_TRUE(lab.ok()) << "could not build the namespaces";
  ClusterOptions options;
  options.profile_extra = "checkpointmode 2\nloadcheckpoint 3\nrestartflag --resume\nrestartmode 1\n";
  for (int i = 0; i < 2; ++i) {
    options.host_entries.push_back(NamespaceLab::Address(i) + ":1421");
    options.host_wrappers[i] = lab.Wrapper(i);
  }
  auto cluster = TestCluster::Start(2, options);
  ASSERT_TRUE(cluster->WaitForView(20s)) << cluster->log(0) << cluster->log(1);
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  std::vector<std::string> argv = cluster->OnHost(0);
  for (const char* word : {"/bin/sh", "-c", "cd \"$0\" && exec \"$@\""}) argv.push_back(word);
  argv.push_back(cwd);
  for (const std::string& word : {BinDir() + "/queue", std::string("-n"), std::string("-H"), cluster->entry(0),
                                  std::string("--"), counter, std::string("2000"), std::string("0.002")})
    argv.push_back(word);
  auto stub = StartBackground(argv, {"QUEUE_SOCKET=" + cluster->socket(0)}, cwd + "/out", cwd + "/err");
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(cwd + "/out").find("step") != std::string::npos; }, 15s))
      << ReadFile(cwd + "/err");
  cluster->SetLoad(0, 5.0);  // the job's host passes loadcheckpoint; host 1 takes restarts
  auto status = WaitChild(stub.pid, 60s);
  ASSERT_TRUE(status.has_value()) << ReadFile(cwd + "/err");
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(cwd + "/err");
  std::string out = ReadFile(cwd + "/out");
  auto alone = RunCommand({counter, "2000", "0"});
  EXPECT_NE(out.find("resumed"), std::string::npos) << out << ReadFile(cwd + "/err");
  EXPECT_EQ(out.substr(out.rfind("result")), alone.out.substr(alone.out.rfind("result")));
  EXPECT_NE(ReadFile(cwd + "/err").find("checkpointed on " + cluster->entry(0)), std::string::npos)
      << ReadFile(cwd + "/err");
}

}  // namespace
}  // namespace queue::testing

namespace queue::testing {
namespace {

// SPEC §5 "no herd": a burst of submissions to idle hosts spreads over them
// instead of piling onto the idlest one (here 45 at once onto 3 hosts).
TEST(Burst, ABurstOfSubmissionsSpreadsOverIdleHosts) {
  ClusterOptions options;
  options.profile_extra = "maxexec 64\n";
  auto cluster = TestCluster::Start(3, options);
  ASSERT_TRUE(cluster->WaitForView(15s));
  // Evidence, not a pause: host 0, where the burst goes in, knows every
  // host's 64 slots.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto status = cluster->Status(0);
        if (status.is_null() || status["hosts"].size() != 3) return false;
        for (const auto& h : status["hosts"]) {
          bool has_slots = false;
          for (const auto& q : h.value("queues", nlohmann::json::array()))
            has_slots |= q["name"] == "now" && q["maxexec"] == 64 && q["accepting"] == true;
          if (!has_slots) return false;
        }
        return true;
      },
      10s))
      << cluster->Status(0).dump();
  std::vector<Background> stubs;
  for (int i = 0; i < 45; ++i)
    stubs.push_back(StartBackground({BinDir() + "/queue", "-n", "--", "sh", "-c", "echo $QUEUE_HOST; sleep 2"},
                                    {"QUEUE_SOCKET=" + cluster->socket(0)},
                                    cluster->dir() + "/burst" + std::to_string(i) + ".out",
                                    cluster->dir() + "/burst.err"));
  std::map<std::string, int> per_host;
  for (int i = 0; i < 45; ++i) {
    auto status = WaitChild(stubs[i].pid, 30s);
    ASSERT_TRUE(status.has_value()) << ReadFile(cluster->dir() + "/burst.err");
    ++per_host[ReadFile(stubs[i].out_path)];
  }
  for (int h = 0; h < 3; ++h)
    EXPECT_GE(per_host[cluster->entry(h) + "\n"], 9) << cluster->entry(h) << " got too few of the burst; "
                                                      << per_host.size() << " distinct outputs, first host "
                                                      << per_host.begin()->first << per_host.begin()->second
                                                      << ReadFile(cluster->dir() + "/burst.err");
}

}  // namespace
}  // namespace queue::testing
