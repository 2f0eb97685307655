// Tests of when a peer is taken for dead (by its load reports' silence) and of
// the fences that end a run lost with it should it come back.
#include "daemon/host_liveness.h"

#include <gtest/gtest.h>

namespace queue::daemon {
namespace {

using namespace std::chrono_literals;
using Clock = HostLiveness::Clock;

wire::LoadReport Report(const std::string& host) { return wire::LoadReport{host, 0.5, 1, {}}; }

TEST(HostLiveness, APeerIsDeadOnlyAfterItsReportsStopForTheTimeout) {
  auto start = Clock::now();
  load::LoadTable table(3500ms);
  HostLiveness liveness(60s, start);
  table.Update(Report("b:1"), start);
  EXPECT_TRUE(liveness.Dead(table, {"b:1"}, start + 59s).empty());
  auto dead = liveness.Dead(table, {"b:1"}, start + 61s);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].first, "b:1");
  EXPECT_EQ(dead[0].second, 61);
  // Heard again: alive.
  table.Update(Report("b:1"), start + 62s);
  EXPECT_TRUE(liveness.Dead(table, {"b:1"}, start + 63s).empty());
}

TEST(HostLiveness, APeerNeverHeardCountsFromThisDaemonsStart) {
  auto start = Clock::now();
  load::LoadTable table(3500ms);
  HostLiveness liveness(60s, start);
  EXPECT_TRUE(liveness.Dead(table, {"c:1"}, start + 30s).empty());
  EXPECT_EQ(liveness.Dead(table, {"c:1"}, start + 60s).size(), 1u);
}

TEST(HostLiveness, FencesAreSentEveryFewSecondsUntilTheRunsEndComesOrTheyExpire) {
  auto start = Clock::now();
  HostLiveness liveness(60s, start);
  liveness.AddFence("b:1", Fence{17, 2}, start);
  liveness.AddFence("b:1", Fence{18, 0}, start);
  auto due = liveness.FencesDue("b:1", start);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].origin_id, 17u);
  EXPECT_EQ(due[0].attempt, 2u);
  EXPECT_TRUE(liveness.FencesDue("b:1", start + 1s).empty());  // not yet again
  EXPECT_EQ(liveness.FencesDue("b:1", start + HostLiveness::kFenceEvery).size(), 2u);
  liveness.RunEnded("b:1", 17, 1);  // another run's end: the fence stays
  EXPECT_EQ(liveness.fenced("b:1"), 2u);
  liveness.RunEnded("b:1", 17, 2);
  EXPECT_EQ(liveness.fenced("b:1"), 1u);
  EXPECT_TRUE(liveness.FencesDue("b:1", start + HostLiveness::kFenceFor).empty());
  EXPECT_EQ(liveness.fenced("b:1"), 0u);
  EXPECT_TRUE(liveness.FencesDue("other:1", start).empty());
}

}  // namespace
}  // namespace queue::daemon
