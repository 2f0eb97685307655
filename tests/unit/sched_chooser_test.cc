// Tests of host choice: ranking by virtual load, the -h/-H/exclude requests,
// the reasons hosts are left out, tie-breaking, and that a burst of placements
// spreads over equal hosts instead of piling onto one (no herd).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "cluster/hosts_file.h"
#include "load/load_table.h"
#include "profile/queue_policy.h"
#include "sched/host_chooser.h"

namespace queue::sched {
namespace {

using namespace std::chrono_literals;
using load::Clock;

const Clock::time_point kNow = Clock::time_point{} + 1h;

std::vector<cluster::HostEntry> Hosts(const std::vector<std::string>& entries) {
  std::vector<cluster::HostEntry> hosts;
  for (const auto& e : entries) hosts.push_back(cluster::ParseHostEntry(e).value());
  return hosts;
}

wire::QueueLoad Queue(uint32_t running, uint32_t maxexec, uint32_t vmaxexec, double pfactor = 1.0,
                      const std::string& name = "now") {
  return {name, running, maxexec, vmaxexec, pfactor, true};
}

void Report(load::LoadTable& table, const std::string& host, double load1, wire::QueueLoad q,
            Clock::time_point at = kNow) {
  wire::LoadReport r;
  r.host = host;
  r.load1 = load1;
  r.cpus = 4;
  r.queues.push_back(std::move(q));
  table.Update(std::move(r), at);
}

PlacementRequest Request(const std::string& queue = "now") {
  PlacementRequest request;
  request.queue = queue;
  return request;
}

bool HasRefusal(const Ranking& ranking, const std::string& text) {
  return std::any_of(ranking.refusals.begin(), ranking.refusals.end(),
                     [&](const std::string& r) { return r == text; });
}

std::string Refusals(const Ranking& ranking) {
  std::string all;
  for (const auto& r : ranking.refusals) all += "[" + r + "] ";
  return all;
}

using Names = std::vector<std::string>;

TEST(SchedChooser, RanksByVirtualLoadLowestFirst) {
  auto hosts = Hosts({"a", "b", "c"});
  load::LoadTable table(30s);
  Report(table, "a", 3.0, Queue(0, 8, 8));
  Report(table, "b", 0.5, Queue(0, 8, 8));
  Report(table, "c", 1.0, Queue(0, 8, 8));
  HostChooser chooser(hosts, "a");
  Ranking ranking = chooser.Rank(table, Request(), kNow);
  EXPECT_EQ(ranking.candidates, (Names{"b", "c", "a"}));
  EXPECT_TRUE(ranking.refusals.empty()) << Refusals(ranking);
}

TEST(SchedChooser, UsesTheVirtualLoadFormulaNotTheRawLoad) {
  // a: raw load lower but one free virtual slot: (0.5+1)/((1-0)+1) = 0.75.
  // b: raw load higher, seven free slots:       (2.0+1)/((8-1)+1) = 0.375.
  ASSERT_LT(profile::VirtualLoad(2.0, 8, 1, 1.0), profile::VirtualLoad(0.5, 1, 0, 1.0));
  auto hosts = Hosts({"a", "b"});
  load::LoadTable table(30s);
  Report(table, "a", 0.5, Queue(0, 8, 1));
  Report(table, "b", 2.0, Queue(1, 8, 8));
  Ranking ranking = HostChooser(hosts, "a").Rank(table, Request(), kNow);
  EXPECT_EQ(ranking.candidates, (Names{"b", "a"}));
}

TEST(SchedChooser, PfactorDividesTheVirtualLoad) {
  auto hosts = Hosts({"a", "b"});
  load::LoadTable table(30s);
  Report(table, "a", 1.0, Queue(0, 4, 4, 1.0));
  Report(table, "b", 1.0, Queue(0, 4, 4, 1.0));
  EXPECT_EQ(HostChooser(hosts, "a").Rank(table, Request(), kNow).candidates, (Names{"a", "b"}));
  // A faster host (pfactor 2) wins even with a somewhat higher load.
  Report(table, "b", 2.5, Queue(0, 4, 4, 2.0));
  EXPECT_EQ(HostChooser(hosts, "a").Rank(table, Request(), kNow).candidates, (Names{"b", "a"}));
  Report(table, "b", 4.5, Queue(0, 4, 4, 2.0));
  EXPECT_EQ(HostChooser(hosts, "a").Rank(table, Request(), kNow).candidates, (Names{"a", "b"}));
}

TEST(SchedChooser, RunningJobsUseUpVirtualSlots) {
  auto hosts = Hosts({"a", "b"});
  load::LoadTable table(30s);
  Report(table, "a", 0.0, Queue(3, 8, 4));  // (0+1)/((4-3)+1) = 0.5
  Report(table, "b", 0.9, Queue(0, 8, 4));  // (0.9+1)/(4+1) = 0.38
  EXPECT_EQ(HostChooser(hosts, "a").Rank(table, Request(), kNow).candidates, (Names{"b", "a"}));
  // Beyond vmaxexec the free slots stay at zero, the host still takes jobs up to maxexec.
  Report(table, "a", 0.0, Queue(6, 8, 4));
  Report(table, "b", 0.5, Queue(0, 8, 4));
  EXPECT_EQ(HostChooser(hosts, "a").Rank(table, Request(), kNow).candidates, (Names{"b", "a"}));
}

TEST(SchedChooser, OnlyHostLimitsTheCandidates) {
  auto hosts = Hosts({"a", "b:1500", "c"});
  load::LoadTable table(30s);
  for (const char* h : {"a", "b:1500", "c"}) Report(table, h, 0.0, Queue(0, 4, 4));
  PlacementRequest request = Request();
  request.only_host = "b:1500";
  Ranking ranking = HostChooser(hosts, "a").Rank(table, request, kNow);
  EXPECT_EQ(ranking.candidates, (Names{"b:1500"}));
  EXPECT_TRUE(ranking.refusals.empty()) << Refusals(ranking);

  // The only host closed: no candidate, and the refusal says why.
  wire::QueueLoad closed = Queue(0, 4, 4);
  closed.accepting = false;
  closed.refusal = "queue \"now\" is closed: outside the timesched hours";
  Report(table, "b:1500", 0.0, closed);
  ranking = HostChooser(hosts, "a").Rank(table, request, kNow);
  EXPECT_TRUE(ranking.candidates.empty());
  ASSERT_EQ(ranking.refusals.size(), 1u) << Refusals(ranking);
  EXPECT_EQ(ranking.refusals[0], "b:1500: queue \"now\" is closed: outside the timesched hours");

  // The only host looking full is still tried: its own count is the fresh one.
  Report(table, "b:1500", 0.0, Queue(4, 4, 4));
  EXPECT_EQ(HostChooser(hosts, "a").Rank(table, request, kNow).candidates, (Names{"b:1500"}));
}

TEST(SchedChooser, PreferredHostComesFirstEvenWhenBusier) {
  auto hosts = Hosts({"a", "b", "c"});
  load::LoadTable table(30s);
  Report(table, "a", 0.0, Queue(0, 4, 4));
  Report(table, "b", 0.1, Queue(0, 4, 4));
  Report(table, "c", 3.0, Queue(2, 4, 4));
  PlacementRequest request = Request();
  request.preferred_host = "c";
  EXPECT_EQ(HostChooser(hosts, "a").Rank(table, request, kNow).candidates, (Names{"c", "a", "b"}));

  // A preferred host that looks full is still asked first.
  Report(table, "c", 3.0, Queue(4, 4, 4));
  EXPECT_EQ(HostChooser(hosts, "a").Rank(table, request, kNow).candidates, (Names{"c", "a", "b"}));

  // A preferred host that does not accept jobs is not a candidate at all.
  wire::QueueLoad drained = Queue(0, 4, 4);
  drained.accepting = false;
  Report(table, "c", 3.0, drained);
  Ranking ranking = HostChooser(hosts, "a").Rank(table, request, kNow);
  EXPECT_EQ(ranking.candidates, (Names{"a", "b"}));
  EXPECT_EQ(ranking.refusals.size(), 1u) << Refusals(ranking);
}

TEST(SchedChooser, ExcludedHostsAreSkipped) {
  auto hosts = Hosts({"a", "b", "c"});
  load::LoadTable table(30s);
  for (const char* h : {"a", "b", "c"}) Report(table, h, 0.0, Queue(0, 4, 4));
  PlacementRequest request = Request();
  request.exclude = {"a", "c"};
  EXPECT_EQ(HostChooser(hosts, "a").Rank(table, request, kNow).candidates, (Names{"b"}));
}

TEST(SchedChooser, StaleAndUnknownHostsAreNotResponding) {
  auto hosts = Hosts({"a", "b", "c"});
  load::LoadTable table(30s);
  Report(table, "a", 0.0, Queue(0, 4, 4), kNow);
  Report(table, "b", 0.0, Queue(0, 4, 4), kNow - 31s);
  Ranking ranking = HostChooser(hosts, "a").Rank(table, Request(), kNow);
  EXPECT_EQ(ranking.candidates, (Names{"a"}));
  EXPECT_TRUE(HasRefusal(ranking, "b: not responding")) << Refusals(ranking);
  EXPECT_TRUE(HasRefusal(ranking, "c: not responding")) << Refusals(ranking);
  EXPECT_EQ(ranking.refusals.size(), 2u) << Refusals(ranking);
}

TEST(SchedChooser, MissingQueueIsARefusal) {
  auto hosts = Hosts({"a", "b"});
  load::LoadTable table(30s);
  Report(table, "a", 0.0, Queue(0, 4, 4, 1.0, "wait"));
  Report(table, "b", 0.0, Queue(0, 4, 4, 1.0, "now"));
  Ranking ranking = HostChooser(hosts, "a").Rank(table, Request("wait"), kNow);
  EXPECT_EQ(ranking.candidates, (Names{"a"}));
  EXPECT_TRUE(HasRefusal(ranking, "b: has no queue \"wait\"")) << Refusals(ranking);
}

TEST(SchedChooser, NotAcceptingIsARefusal) {
  auto hosts = Hosts({"a", "b"});
  load::LoadTable table(30s);
  wire::QueueLoad draining = Queue(0, 4, 4);
  draining.accepting = false;
  Report(table, "a", 0.0, draining);
  Report(table, "b", 2.0, Queue(1, 4, 4));
  Ranking ranking = HostChooser(hosts, "a").Rank(table, Request(), kNow);
  EXPECT_EQ(ranking.candidates, (Names{"b"}));
  EXPECT_TRUE(HasRefusal(ranking, "a: queue \"now\" is not accepting jobs")) << Refusals(ranking);
}

// The table's counts lag: a host that looks full (running and recent
// placements at maxexec) is tried last, and the execution host decides.
TEST(SchedChooser, HostsThatLookFullAreTriedLast) {
  auto hosts = Hosts({"a", "b"});
  load::LoadTable table(30s);
  Report(table, "a", 0.0, Queue(2, 2, 2));
  Report(table, "b", 0.5, Queue(1, 2, 2));
  Ranking ranking = HostChooser(hosts, "a").Rank(table, Request(), kNow);
  EXPECT_EQ(ranking.candidates, (Names{"b", "a"}));
  EXPECT_TRUE(ranking.refusals.empty()) << Refusals(ranking);

  // One job placed on b since its report: both look full; lower load first.
  table.AddPlacement("b", kNow);
  ranking = HostChooser(hosts, "a").Rank(table, Request(), kNow);
  EXPECT_EQ(ranking.candidates, (Names{"a", "b"}));

  // b's next report includes the job and says it has room again.
  Report(table, "b", 0.5, Queue(0, 2, 2));
  EXPECT_EQ(HostChooser(hosts, "a").Rank(table, Request(), kNow).candidates, (Names{"b", "a"}));
}

TEST(SchedChooser, TiesGoToSelfThenFileOrder) {
  auto hosts = Hosts({"a", "b", "c", "d"});
  load::LoadTable table(30s);
  for (const char* h : {"d", "c", "b", "a"}) Report(table, h, 0.25, Queue(0, 4, 4));
  EXPECT_EQ(HostChooser(hosts, "c").Rank(table, Request(), kNow).candidates,
            (Names{"c", "a", "b", "d"}));
  EXPECT_EQ(HostChooser(hosts, "none-of-them").Rank(table, Request(), kNow).candidates,
            (Names{"a", "b", "c", "d"}));
}

// Places `jobs` jobs one after the other, each on the best host, as the daemon
// does between two load reports; returns how many each host got.
std::map<std::string, int> PlaceBurst(const std::vector<cluster::HostEntry>& hosts,
                                      load::LoadTable& table, const std::string& self, int jobs) {
  HostChooser chooser(hosts, self);
  std::map<std::string, int> placed;
  for (int i = 0; i < jobs; ++i) {
    Ranking ranking = chooser.Rank(table, Request(), kNow);
    if (ranking.candidates.empty()) break;
    const std::string& best = ranking.candidates.front();
    ++placed[best];
    table.AddPlacement(best, kNow);
  }
  return placed;
}

TEST(SchedChooser, NoHerdABurstSpreadsOverEqualIdleHosts) {
  auto hosts = Hosts({"a", "b", "c"});
  load::LoadTable table(30s);
  for (const char* h : {"a", "b", "c"}) Report(table, h, 0.0, Queue(0, 64, 64));
  auto placed = PlaceBurst(hosts, table, "b", 99);
  for (const char* h : {"a", "b", "c"}) {
    EXPECT_GE(placed[h], 32) << h;
    EXPECT_LE(placed[h], 34) << h;
  }
  EXPECT_EQ(placed["a"] + placed["b"] + placed["c"], 99);
}

TEST(SchedChooser, NoHerdEvenWhenSelfIsSlightlyIdler) {
  auto hosts = Hosts({"a", "b", "c"});
  load::LoadTable table(30s);
  Report(table, "a", 0.00, Queue(0, 64, 64));
  Report(table, "b", 0.01, Queue(0, 64, 64));
  Report(table, "c", 0.01, Queue(0, 64, 64));
  auto placed = PlaceBurst(hosts, table, "a", 99);
  for (const char* h : {"a", "b", "c"}) {
    EXPECT_GE(placed[h], 32) << h;
    EXPECT_LE(placed[h], 34) << h;
  }
}

// Past vmaxexec the virtual slots no longer tell hosts apart; the placement
// load (decaying like the load average) must still spread a burst.
TEST(SchedChooser, NoHerdBeyondVmaxexec) {
  auto hosts = Hosts({"a", "b", "c"});
  load::LoadTable table(30s);
  for (const char* h : {"a", "b", "c"}) Report(table, h, 0.0, Queue(0, 64, 4));
  auto placed = PlaceBurst(hosts, table, "a", 99);
  for (const char* h : {"a", "b", "c"}) {
    EXPECT_GE(placed[h], 32) << h;
    EXPECT_LE(placed[h], 34) << h;
  }
}

}  // namespace
}  // namespace queue::sched
