// Tests of the daemon's queue table: discovery, profile loading, refusals.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "daemon/group_commit.h"
#include "daemon/queue_table.h"

namespace queue::daemon {
namespace {

namespace fs = std::filesystem;

class QueueTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/queue-table-XXXXXX";
    dir_ = mkdtemp(templ);
    chmod(dir_.c_str(), 0700);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void WriteProfile(const std::string& queue, const std::string& text) {
    fs::create_directories(dir_ + "/" + queue);
    chmod((dir_ + "/" + queue).c_str(), 0700);
    std::ofstream(dir_ + "/" + queue + "/profile") << text;
  }

  std::string dir_;
};

TEST_F(QueueTableTest, FindsQueuesAndAppliesTheirProfiles) {
  WriteProfile("now", "exec on\nmaxexec 3\npfactor 2\n");
  WriteProfile("wait", "exec drain\n");
  QueueTable table(dir_, "127.0.0.1:1", 4);
  table.Refresh(false);
  ASSERT_EQ(table.queues().size(), 2U);
  EXPECT_EQ(table.Find("now")->policy.max_exec, 3U);
  auto loads = table.Loads(0.0);
  ASSERT_EQ(loads.size(), 2U);
  EXPECT_EQ(loads[0].name, "now");
  EXPECT_EQ(loads[0].maxexec, 3U);
  EXPECT_DOUBLE_EQ(loads[0].pfactor, 2.0);
  EXPECT_TRUE(loads[0].accepting);
  EXPECT_FALSE(loads[1].accepting);
  EXPECT_FALSE(table.RefusalReason("now", 0.0).has_value());
  EXPECT_NE(table.RefusalReason("wait", 0.0)->find("exec drain"), std::string::npos);
}

// A profile error quotes the profile's path: under a deep spool it outgrew
// the bound a LoadReport's reason has on the wire, and every peer refused the
// whole report (the host looked down to all of them).
TEST_F(QueueTableTest, AReasonTooLongForTheWireIsShortenedAndTheReportStillDecodes) {
  std::string deep = dir_;
  for (int i = 0; i < 6; ++i) deep += "/" + std::string(200, 'd');
  fs::create_directories(deep);
  fs::create_directories(deep + "/broken");
  std::ofstream(deep + "/broken/profile") << "exec on\nmaxexc 3\n";
  QueueTable table(deep, "h", 2);
  table.Refresh(false);
  ASSERT_GT(table.Find("broken")->error.size(), kMaxRefusalBytes);
  wire::LoadReport report{"h", 0.5, 2, table.Loads(0.0)};
  ASSERT_EQ(report.queues.size(), 1U);
  EXPECT_FALSE(report.queues[0].accepting);
  EXPECT_LE(report.queues[0].refusal.size(), kMaxRefusalBytes);
  EXPECT_TRUE(report.queues[0].refusal.ends_with("...")) << report.queues[0].refusal;
  auto decoded = wire::DecodePayload<wire::LoadReport>(wire::EncodePayload(report));
  ASSERT_TRUE(decoded.ok()) << decoded.message();
  EXPECT_EQ(decoded->queues[0].refusal, report.queues[0].refusal);
}

TEST(ShortenedRefusal, KeepsShortReasonsAndCutsOnACharacterBoundary) {
  EXPECT_EQ(ShortenedRefusal("exec off"), "exec off");
  std::string accented;
  while (accented.size() < 2000) accented += "\xc3\xa9";  // é, two bytes each
  std::string cut = ShortenedRefusal(accented);
  EXPECT_LE(cut.size(), kMaxRefusalBytes);
  ASSERT_TRUE(cut.ends_with("..."));
  EXPECT_EQ((cut.size() - 3) % 2, 0U) << "a character was cut in half";
}

TEST_F(QueueTableTest, BrokenProfileDrainsOnlyThatQueueAndSaysWhere) {
  WriteProfile("now", "exec on\n");
  WriteProfile("broken", "exec on\nloadsched lots\n");
  QueueTable table(dir_, "h", 2);
  table.Refresh(false);
  const QueueState* broken = table.Find("broken");
  ASSERT_NE(broken, nullptr);
  EXPECT_NE(broken->error.find("profile:2"), std::string::npos) << broken->error;
  EXPECT_NE(broken->error.find("loadsched"), std::string::npos) << broken->error;
  EXPECT_TRUE(table.RefusalReason("broken", 0.0).has_value());
  EXPECT_FALSE(table.RefusalReason("now", 0.0).has_value());
}

TEST_F(QueueTableTest, MissingProfileDrainsTheQueue) {
  fs::create_directories(dir_ + "/bare");
  QueueTable table(dir_, "h", 2);
  table.Refresh(false);
  ASSERT_NE(table.Find("bare"), nullptr);
  EXPECT_NE(table.Find("bare")->error.find("missing"), std::string::npos);
  EXPECT_TRUE(table.RefusalReason("bare", 0.0).has_value());
}

TEST_F(QueueTableTest, RefusesWhenFullOrLoadedOrUnknown) {
  WriteProfile("now", "maxexec 1\nloadsched 2.5\n");
  QueueTable table(dir_, "h", 2);
  table.Refresh(false);
  EXPECT_FALSE(table.RefusalReason("now", 2.4).has_value());
  EXPECT_NE(table.RefusalReason("now", 2.5)->find("loadsched"), std::string::npos);
  table.Find("now")->running = 1;
  EXPECT_NE(table.RefusalReason("now", 0.0)->find("full"), std::string::npos);
  EXPECT_NE(table.RefusalReason("nosuch", 0.0)->find("no queue"), std::string::npos);
}

TEST_F(QueueTableTest, MinfreeRefusesWhenTheFileSystemIsShort) {
  WriteProfile("roomy", "minfree /tmp 1\n");
  WriteProfile("greedy", "minfree /tmp 18446744073709551\n");
  QueueTable table(dir_, "h", 2);
  table.Refresh(false);
  ASSERT_TRUE(table.Find("greedy")->error.empty()) << table.Find("greedy")->error;
  EXPECT_FALSE(table.RefusalReason("roomy", 0.0).has_value());
  auto refusal = table.RefusalReason("greedy", 0.0);
  ASSERT_TRUE(refusal.has_value());
  EXPECT_NE(refusal->find("KB free on /tmp"), std::string::npos) << *refusal;
}

TEST_F(QueueTableTest, ChangedProfileIsReReadAndRunningCountsSurvive) {
  WriteProfile("now", "maxexec 1\n");
  QueueTable table(dir_, "h", 2);
  table.Refresh(false);
  table.Find("now")->running = 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  WriteProfile("now", "maxexec 5\n");
  fs::last_write_time(dir_ + "/now/profile", fs::file_time_type::clock::now() + std::chrono::seconds(1));
  table.Refresh(false);
  EXPECT_EQ(table.Find("now")->policy.max_exec, 5U);
  EXPECT_EQ(table.Find("now")->running, 1U);
}

TEST_F(QueueTableTest, ForcedRefreshReReadsUnchangedProfiles) {
  WriteProfile("now", "maxexec 1\n");
  QueueTable table(dir_, "h", 2);
  table.Refresh(false);
  table.Find("now")->policy.max_exec = 99;  // as if the in-memory copy went stale
  table.Refresh(true);
  EXPECT_EQ(table.Find("now")->policy.max_exec, 1U);
}

TEST(GroupCommitTest, WritesInOneWindowCommitTogether) {
  char templ[] = "/tmp/queue-commit-XXXXXX";
  std::string dir = mkdtemp(templ);
  auto store = spool::JobStore::Open(dir + "/jobs.db");
  ASSERT_TRUE(store.ok()) << store.message();
  asio::io_context io;
  {
    GroupCommit batch(io, **store, std::chrono::milliseconds(10));
    batch.Join();
    ASSERT_TRUE((*store)->Add(spool::JobRecord{}).ok());
    batch.Join();
    ASSERT_TRUE((*store)->Add(spool::JobRecord{}).ok());
    // Another connection sees nothing until the window closes.
    auto reader = spool::JobStore::Open(dir + "/jobs.db");
    ASSERT_TRUE(reader.ok());
    EXPECT_TRUE((*reader)->List({})->empty());
    io.run_for(std::chrono::milliseconds(50));
    EXPECT_EQ((*reader)->List({})->size(), 2U);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace queue::daemon
