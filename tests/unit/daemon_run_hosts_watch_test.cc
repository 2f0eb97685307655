// RunHostsWatch: the hosts running this host's jobs in a large cluster, asked
// every pass and taken for silent after dead_after without an answer.
#include "daemon/run_hosts_watch.h"

#include <gtest/gtest.h>

namespace queue::daemon {
namespace {

using namespace std::chrono_literals;
using Clock = RunHostsWatch::Clock;
using Silence = std::vector<std::pair<std::string, int64_t>>;

TEST(RunHostsWatch, AsksEveryHostRunningJobsFromHereOncePerPass) {
  RunHostsWatch watch(5s, 30s);
  const Clock::time_point t0{};
  EXPECT_TRUE(watch.PassDue(t0));
  EXPECT_EQ(watch.Pass({"b:1", "a:1"}, t0), (std::vector<std::string>{"a:1", "b:1"}));
  EXPECT_FALSE(watch.PassDue(t0 + 4s));
  EXPECT_TRUE(watch.PassDue(t0 + 5s));
  EXPECT_EQ(watch.Pass({"a:1"}, t0 + 5s), (std::vector<std::string>{"a:1"}));
}

TEST(RunHostsWatch, AHostIsSilentOnlyAfterDeadAfterWithoutAnAnswerSinceItWasFirstWatched) {
  RunHostsWatch watch(5s, 30s);
  const Clock::time_point t0 = Clock::time_point{} + 1000s;
  watch.Pass({"a:1", "b:1"}, t0);
  EXPECT_TRUE(watch.Silent(t0 + 30s).empty());  // not longer than dead_after yet
  watch.Answered("a:1", t0 + 20s);
  EXPECT_EQ(watch.Silent(t0 + 31s), (Silence{{"b:1", 31}}));
  EXPECT_EQ(watch.Silent(t0 + 51s), (Silence{{"a:1", 31}, {"b:1", 51}}));
}

TEST(RunHostsWatch, AHostNewlyRunningJobsIsWatchedFromThenNotFromLongAgo) {
  RunHostsWatch watch(5s, 30s);
  const Clock::time_point t0{};
  watch.Pass({}, t0);
  watch.Pass({"a:1"}, t0 + 600s);
  EXPECT_TRUE(watch.Silent(t0 + 620s).empty());
  EXPECT_EQ(watch.Silent(t0 + 640s), (Silence{{"a:1", 40}}));
}

TEST(RunHostsWatch, HostsWithNoJobsFromHereAreForgottenAndLateAnswersChangeNothing) {
  RunHostsWatch watch(5s, 30s);
  const Clock::time_point t0{};
  watch.Pass({"a:1"}, t0);
  watch.Pass({}, t0 + 5s);
  watch.Answered("a:1", t0 + 6s);  // an answer to a question of before
  EXPECT_TRUE(watch.Silent(t0 + 100s).empty());
  // Forgotten once taken for lost; watched again from the next pass that lists it.
  watch.Pass({"a:1"}, t0 + 100s);
  watch.Forget("a:1");
  EXPECT_TRUE(watch.Silent(t0 + 200s).empty());
  watch.Pass({"a:1"}, t0 + 200s);
  EXPECT_TRUE(watch.Silent(t0 + 230s).empty());
  EXPECT_EQ(watch.Silent(t0 + 231s), (Silence{{"a:1", 31}}));
}

}  // namespace
}  // namespace queue::daemon
