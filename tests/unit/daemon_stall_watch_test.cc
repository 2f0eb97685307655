// Tests of the stall watch on transfers between daemons: a transfer that moves
// no byte for the stall time is said to stall, once, and to move again once
// bytes move; slow progress is no stall.
#include <gtest/gtest.h>

#include "daemon/bundle_sender.h"

namespace queue::daemon {
namespace {

using namespace std::chrono_literals;
using Change = StallWatch::Change;

TEST(StallWatch, NothingMovedForTheStallTimeIsAStallSaidOnce) {
  const auto start = StallWatch::Clock::now();
  StallWatch watch(10s, start);
  EXPECT_EQ(watch.Observe(1000, start + 1s), Change::kNone);
  EXPECT_EQ(watch.Observe(1000, start + 10s), Change::kNone);  // 9 s idle
  EXPECT_FALSE(watch.stalled());
  EXPECT_EQ(watch.Observe(1000, start + 11s), Change::kStalled);
  EXPECT_TRUE(watch.stalled());
  EXPECT_EQ(watch.bytes(), 1000u);
  for (auto later : {12s, 30s, 150s}) EXPECT_EQ(watch.Observe(1000, start + later), Change::kNone);
  EXPECT_EQ(watch.idle(start + 150s), 149s);
}

TEST(StallWatch, BytesMovingAgainEndTheStall) {
  const auto start = StallWatch::Clock::now();
  StallWatch watch(10s, start);
  EXPECT_EQ(watch.Observe(0, start + 10s), Change::kStalled);  // not a byte from the start
  EXPECT_EQ(watch.Observe(65536, start + 20s), Change::kResumed);
  EXPECT_FALSE(watch.stalled());
  EXPECT_EQ(watch.Observe(70000, start + 21s), Change::kNone);
  // It may stall again, and is said to again.
  EXPECT_EQ(watch.Observe(70000, start + 31s), Change::kStalled);
  EXPECT_EQ(watch.Observe(80000, start + 32s), Change::kResumed);
}

TEST(StallWatch, SlowProgressIsNoStall) {
  const auto start = StallWatch::Clock::now();
  StallWatch watch(10s, start);
  for (int second = 1; second <= 120; ++second)
    EXPECT_EQ(watch.Observe(static_cast<uint64_t>(second / 9), start + std::chrono::seconds(second)), Change::kNone)
        << second;
}

TEST(StallWatch, FewerBytesThanBeforeAreNoProgress) {
  // Measured as bytes queued less the link's backlog, the count can fall when
  // other frames join the backlog: that is not progress.
  const auto start = StallWatch::Clock::now();
  StallWatch watch(10s, start);
  EXPECT_EQ(watch.Observe(5000, start + 1s), Change::kNone);
  EXPECT_EQ(watch.Observe(4000, start + 5s), Change::kNone);
  EXPECT_EQ(watch.Observe(5000, start + 11s), Change::kStalled);
}

}  // namespace
}  // namespace queue::daemon
