// Tests of the summary of a placement's refusals (queue --jobs "waiting_for").
#include <gtest/gtest.h>

#include "daemon/wait_reason.h"

namespace queue::daemon {
namespace {

TEST(WaitReason, OneKindOnEveryHostIsSaidOnce) {
  EXPECT_EQ(SummarizeRefusals({"127.0.0.1:1: load 4.200 is at or above loadsched",
                               "127.0.0.1:2: load 3.100 is at or above loadsched"}),
            "load above loadsched on all hosts");
  EXPECT_EQ(SummarizeRefusals({"a:1: queue \"now\" is full (2 running)", "b:1: queue \"now\" is full (1 running)"}),
            "maxexec reached on all hosts");
  EXPECT_EQ(SummarizeRefusals({"a:1: queue \"now\" is closed: outside the timesched hours",
                               "b:1: queue \"now\" is closed: outside the timesched hours"}),
            "no host accepts (timesched)");
}

TEST(WaitReason, OneHostIsNamed) {
  EXPECT_EQ(SummarizeRefusals({"127.0.0.9:15002: queue \"now\" is drained: /s/now/profile:2: unknown keyword "
                               "\"maxexc\" (the queue is drained)"}),
            "queue drained (profile) on 127.0.0.9:15002");
  EXPECT_EQ(SummarizeRefusals({"h:1: not responding"}), "not responding on h:1");
}

TEST(WaitReason, MixedKindsAreCounted) {
  EXPECT_EQ(SummarizeRefusals({"a:1: load 9.000 is at or above loadsched", "b:1: not responding",
                               "c:1: load 5.000 is at or above loadsched"}),
            "no host accepts: load above loadsched on 2 hosts, not responding on 1 host");
}

TEST(WaitReason, KindsOfTheQueueTablesWords) {
  EXPECT_EQ(RefusalKind("queue \"now\" is not accepting jobs (exec off)"), "exec off");
  EXPECT_EQ(RefusalKind("queue \"now\" is not accepting jobs (exec drain)"), "exec drain");
  EXPECT_EQ(RefusalKind("queue \"now\" is suspended: load 9 is at or above loadstop"), "suspended");
  EXPECT_EQ(RefusalKind("queue \"now\" is closed: its program says drain"), "its program");
  EXPECT_EQ(RefusalKind("only 12 KB free on /tmp (minfree 100)"), "disk below minfree");
  EXPECT_EQ(RefusalKind("minfree: cannot check /x: gone"), "disk below minfree");
  EXPECT_EQ(RefusalKind("has no queue \"x\""), "no such queue");
  EXPECT_EQ(RefusalKind("something new"), "refused");
  EXPECT_EQ(SummarizeRefusals({}), "");
}

}  // namespace
}  // namespace queue::daemon
