// UserQuota (issue 12, fault 4): what one user keeps in root's spool counts
// against that user only: their waiting jobs' specs, and the restart files
// and held outputs of their jobs, found by the record each file is named
// after; a submission past a limit is refused with the limit named.
#include "daemon/user_quota.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "temp_ledger.h"

namespace queue::daemon {
namespace {

namespace fs = std::filesystem;

class UserQuotaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(temp_.ledger);
    fs::create_directories(layout_.RestartDir());
    fs::create_directories(layout_.HeldDir());
  }
  uint64_t Submit(uint32_t uid, size_t spec_bytes) {
    spool::JobRecord r;
    r.uid = uid;
    r.queue = "now";
    r.batch = true;
    r.spec = std::string(spec_bytes, 's');
    auto id = ledger_->Submit(r, [](uint64_t id) { return "/tmp/x.o" + std::to_string(id); });
    EXPECT_TRUE(id.ok()) << id.message();
    return id.ok() ? *id : 0;
  }
  static void WriteBytes(const std::string& path, size_t n) { std::ofstream(path) << std::string(n, 'x'); }

  TempLedger temp_{"quota"};
  std::unique_ptr<JobLedger>& ledger_ = temp_.ledger;
  spool::SpoolLayout layout_{temp_.dir};
};

TEST_F(UserQuotaTest, RestartFilesAndHeldOutputsCountAgainstTheirJobsOwnerOnly) {
  const uint64_t a1 = Submit(1000, 100), a2 = Submit(1000, 100), b1 = Submit(1001, 100);
  WriteBytes(layout_.RestartBundle(a1), 5000);
  WriteBytes(layout_.PartialOutput(a1) + ".2", 1000);  // an output piece kept since a checkpoint
  WriteBytes(layout_.HeldOutput(a2), 2000);
  WriteBytes(layout_.RestartBundle(b1), 7000);
  WriteBytes(layout_.HeldDir() + "/notes.txt", 9000);  // named after no job: nobody's
  const UserLimits limits{10, 8500};
  auto a = MeasureUser(*ledger_, layout_, 1000);
  ASSERT_TRUE(a.ok()) << a.message();
  EXPECT_EQ(a->waiting_jobs, 2U);
  EXPECT_EQ(a->spec_bytes, 200U);
  EXPECT_EQ(a->kept_bytes, 8000U);
  auto b = MeasureUser(*ledger_, layout_, 1001);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->kept_bytes, 7000U);

  // 200 + 8000 kept: 100 more fit under 8500, 400 do not, and the refusal
  // says what is kept and how to free it.
  EXPECT_TRUE(CheckSubmission(1000, *a, 100, limits, "h:1").ok());
  Status refused = CheckSubmission(1000, *a, 400, limits, "h:1");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("held outputs and restart files"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find("uid 1000"), std::string::npos) << refused.message();
  EXPECT_TRUE(CheckSubmission(1001, *b, 400, limits, "h:1").ok()) << "another user's files are not counted";
}

TEST_F(UserQuotaTest, WaitingJobsPastTheLimitAreRefusedAndAnArrayAllOrNone) {
  const UserLimits limits{2, 1u << 30};
  UserUsage usage;
  usage.waiting_jobs = 1;
  EXPECT_TRUE(CheckSubmission(1000, usage, 10, limits, "h:1").ok());
  Status array = CheckSubmission(1000, usage, 30, limits, "h:1", 3);
  ASSERT_FALSE(array.ok());
  EXPECT_NE(array.message().find("nothing submitted"), std::string::npos) << array.message();
  usage.waiting_jobs = 2;
  Status full = CheckSubmission(1000, usage, 10, limits, "h:1");
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.message().find("2 jobs waiting on h:1"), std::string::npos) << full.message();
}

}  // namespace
}  // namespace queue::daemon
