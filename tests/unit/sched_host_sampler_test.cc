// Host samples (sched/host_sampler): distinct, uniform, replayable from a
// seed; the least loaded host that accepts is the one placed on.
#include "sched/host_sampler.h"

#include <gtest/gtest.h>

#include <set>

namespace queue::sched {
namespace {

TEST(HostSampler, SamplesAreDistinctInRangeAndReplayable) {
  std::mt19937_64 rng(42), again(42);
  for (int round = 0; round < 1000; ++round) {
    auto sample = SampleHosts(50, 3, rng);
    ASSERT_EQ(sample.size(), 3U);
    EXPECT_EQ(std::set<size_t>(sample.begin(), sample.end()).size(), 3U);
    for (size_t h : sample) EXPECT_LT(h, 50U);
    EXPECT_EQ(sample, SampleHosts(50, 3, again));
  }
  EXPECT_EQ(SampleHosts(3, 5, rng), (std::vector<size_t>{0, 1, 2})) << "fewer hosts than asked: all of them";
  EXPECT_TRUE(SampleHosts(0, 2, rng).empty());
}

// Each host is in a sample of 2 out of 10 with probability 1/5: over 100,000
// samples every count is within 3% of 20,000 (a biased pick, say always the
// lowest index of a collision, fails this by far).
TEST(HostSampler, EveryHostIsEquallyLikely) {
  std::mt19937_64 rng(7);
  std::vector<int> seen(10);
  for (int i = 0; i < 100000; ++i)
    for (size_t h : SampleHosts(10, 2, rng)) ++seen[h];
  for (int count : seen) EXPECT_NEAR(count, 20000, 600);
}

TEST(HostSampler, TheLeastLoadedHostThatAcceptsIsPicked) {
  EXPECT_EQ(LeastLoaded({{4, 0.5, true}, {9, 0.1, false}, {2, 0.3, true}}), 2U);
  EXPECT_EQ(LeastLoaded({{4, 0.3, true}, {2, 0.3, true}}), 4U) << "ties: the first";
  EXPECT_FALSE(LeastLoaded({{4, 0.3, false}}).has_value());
  EXPECT_EQ(ProbesFor(10, 2, 1000), 20U);
  EXPECT_EQ(ProbesFor(10, 2, 15), 15U);
}

}  // namespace
}  // namespace queue::sched
