// Tests of which jobs a heartbeat asks to checkpoint: periods, drains, and
// the load, one job at a time, with each move counting against the load.
#include "daemon/checkpoint_policy.h"

#include <gtest/gtest.h>

#include <cmath>

namespace queue::daemon {
namespace {

using namespace std::chrono_literals;
using Clock = CheckpointPolicy::Clock;

CheckpointQueueView Queue(const std::string& name, double load_checkpoint, std::vector<uint64_t> candidates) {
  CheckpointQueueView q;
  q.name = name;
  q.policy.load_checkpoint = load_checkpoint;
  q.can_checkpoint = true;
  q.others_take_restarts = true;
  q.candidates = std::move(candidates);
  return q;
}

TEST(CheckpointPolicy, AtLoadCheckpointOneJobMovesPerHeartbeatFromTheFirstLoadedQueue) {
  CheckpointPolicy policy;
  auto orders = policy.Decide(5.0, 1, "a:1", {Queue("q1", 4.0, {7, 8}), Queue("q2", 4.0, {9})}, Clock::now());
  ASSERT_EQ(orders.size(), 1u);
  EXPECT_EQ(orders[0].record_id, 7u);
  EXPECT_TRUE(orders[0].for_load);
  EXPECT_NE(orders[0].reason.find("reached loadcheckpoint 4"), std::string::npos) << orders[0].reason;
}

TEST(CheckpointPolicy, BelowLoadCheckpointNothingMoves) {
  CheckpointPolicy policy;
  EXPECT_TRUE(policy.Decide(3.9, 1, "a:1", {Queue("q", 4.0, {7})}, Clock::now()).empty());
}

TEST(CheckpointPolicy, NothingLeavesWhenNoOtherHostTakesRestarts) {
  CheckpointPolicy policy;
  auto q = Queue("q", 1.0, {7});
  q.others_take_restarts = false;
  EXPECT_TRUE(policy.Decide(10.0, 1, "a:1", {q}, Clock::now()).empty());
  q.policy.exec = profile::ExecState::kDrain;
  EXPECT_TRUE(policy.Decide(10.0, 1, "a:1", {q}, Clock::now()).empty());
}

TEST(CheckpointPolicy, AMoveCountsAgainstTheLoadAndFadesOverAMinute) {
  CheckpointPolicy policy;
  auto now = Clock::now();
  policy.NoteMovedForLoad(now);
  // 4.5 less the job just sent away is below 4: no second job leaves yet.
  EXPECT_TRUE(policy.Decide(4.5, 1, "a:1", {Queue("q", 4.0, {7})}, now + 1s).empty());
  // Two minutes on, it counts for little: the load still there moves another.
  EXPECT_EQ(policy.Decide(4.5, 1, "a:1", {Queue("q", 4.0, {7})}, now + 120s).size(), 1u);
  EXPECT_NEAR(policy.LoadLessMoved(2.0, now + 60s), 2.0 - std::exp(-1.0), 1e-9);
  // Forgotten after five minutes.
  EXPECT_DOUBLE_EQ(policy.LoadLessMoved(2.0, now + 301s), 2.0);
}

TEST(CheckpointPolicy, ADrainingQueueMovesEveryCandidateWhateverTheLoad) {
  CheckpointPolicy policy;
  auto q = Queue("q", 100.0, {7, 8, 9});
  q.policy.exec = profile::ExecState::kDrain;
  auto orders = policy.Decide(0.0, 1, "a:1", {q}, Clock::now());
  ASSERT_EQ(orders.size(), 3u);
  for (const auto& o : orders) {
    EXPECT_FALSE(o.for_load);
    EXPECT_EQ(o.reason, "[a:1 is draining: the job moves to another host]");
  }
}

TEST(CheckpointPolicy, PeriodicCopiesAreTakenInPlaceEvenWithNoOtherHostAndAfterALoadMove) {
  CheckpointPolicy policy;
  auto loaded = Queue("loaded", 1.0, {7});
  auto periodic = Queue("periodic", 100.0, {});
  periodic.policy.checkpoint_period_seconds = 60;
  periodic.due_for_period = {11, 12};
  periodic.others_take_restarts = false;
  auto orders = policy.Decide(5.0, 1, "a:1", {loaded, periodic}, Clock::now());
  ASSERT_EQ(orders.size(), 3u);
  EXPECT_EQ(orders[0].record_id, 7u);
  EXPECT_EQ(orders[1].record_id, 11u);
  EXPECT_TRUE(orders[1].in_place);
  EXPECT_TRUE(orders[1].reason.empty());
  EXPECT_EQ(orders[2].record_id, 12u);
}

TEST(CheckpointPolicy, AQueueThatCannotCheckpointOrIsBrokenNeverMoves) {
  CheckpointPolicy policy;
  auto q = Queue("q", 1.0, {7});
  q.can_checkpoint = false;
  EXPECT_TRUE(policy.Decide(10.0, 1, "a:1", {q}, Clock::now()).empty());
  q.can_checkpoint = true;
  q.broken = true;
  EXPECT_TRUE(policy.Decide(10.0, 1, "a:1", {q}, Clock::now()).empty());
}

}  // namespace
}  // namespace queue::daemon
