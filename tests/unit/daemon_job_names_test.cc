// Tests of how users name jobs across the cluster: "17.2" is the job host 2 of
// the hosts file numbered 17, on every host alike.
#include "daemon/job_names.h"

#include <gtest/gtest.h>

#include "wire/job_id.h"

namespace queue::daemon {
namespace {

JobNames NamesOn(const std::string& self) {
  JobNames names;
  names.SetHosts({"a:1", "b:1", "c:1"}, self);
  return names;
}

TEST(JobNames, AJobIsSpelledAlikeOnItsSubmitHostAndWhereItRuns) {
  spool::JobRecord submitted;
  submitted.id = 17;
  spool::JobRecord running;  // on c, from b, where b numbered it 17
  running.id = 4;
  running.origin_host = "b:1";
  running.origin_id = 17;
  EXPECT_EQ(NamesOn("b:1").Label(submitted), "17.2");
  EXPECT_EQ(NamesOn("c:1").Label(running), "17.2");
  EXPECT_EQ(NamesOn("c:1").IdOf(running), (wire::JobId{17, 2}));
}

TEST(JobNames, HostNumbersAreLinesOfTheHostsFile) {
  JobNames names = NamesOn("c:1");
  EXPECT_EQ(names.SelfNumber(), 3u);
  EXPECT_EQ(names.HostNumber("a:1"), 1u);
  EXPECT_EQ(names.HostNumber("z:1"), 0u);
  EXPECT_EQ(names.HostOf(2), "b:1");
  EXPECT_EQ(names.HostOf(0), "");
  EXPECT_EQ(names.HostOf(4), "");
  EXPECT_EQ(names.LocalLabel(5), "5.3");
}

TEST(JobNames, ABareNumberIsTheAskedHostsJob) {
  EXPECT_EQ(NamesOn("a:1").Complete({9, 0}), (wire::JobId{9, 1}));
  EXPECT_EQ(NamesOn("a:1").Complete({9, 3}), (wire::JobId{9, 3}));
}

TEST(JobId, FormatsAndParsesBothForms) {
  EXPECT_EQ(wire::FormatJobId(17, 2), "17.2");
  EXPECT_EQ(wire::FormatJobId(17, 0), "17");
  auto parsed = wire::ParseJobId("17.2");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, (wire::JobId{17, 2}));
  EXPECT_EQ(*wire::ParseJobId("17"), (wire::JobId{17, 0}));
  for (const char* bad : {"", "x", "17.", ".2", "17.2.1", "0.1", "1.0", "-1", "17,2", "1e3"})
    EXPECT_FALSE(wire::ParseJobId(bad).ok()) << bad;
}

}  // namespace
}  // namespace queue::daemon
