// Tests of the room the spool keeps for records (spool/spool_reserve.h,
// JobStore::KeepRoom): on a file system the jobs' outputs fill, the ends of
// the jobs already running must still commit, however many, however often
// the outputs take every block that comes free, and across a restart of the
// daemon. The file systems are real (tmpfs, root only): what counts is which
// blocks the kernel has given to which file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "small_file_system.h"
#include "spool/job_store.h"
#include "spool/spool_dir.h"
#include "spool/spool_reserve.h"

namespace queue::spool {
namespace {

constexpr uint64_t kRoom = kSpoolReserveBytes;

// The running jobs' outputs: they take every block the file system has
// free, now and whenever one comes free. Returns the bytes they took.
uint64_t OutputsTakeEveryFreeBlock(const std::string& dir) {
  std::filesystem::create_directories(dir + "/output");
  uint64_t took = testing::FillWith(dir + "/output/1.out");
  EXPECT_EQ(testing::FreeBytesOn(dir), 0u);
  return took;
}

JobRecord RunningJob(uint64_t origin_id) {
  JobRecord r;
  r.origin_host = "alpha:1421";
  r.origin_id = origin_id;
  r.uid = 1000;
  r.gid = 100;
  r.queue = "now";
  r.job_name = "fault";
  r.state = JobState::kRunning;
  r.spec = std::string(2000, 's');  // argv and environment, as a job's spec holds them
  r.exec_host = "beta:1421";
  r.submit_time = r.start_time = 1700000000;
  r.batch = true;
  r.output_path = "/home/ann/fault.o" + std::to_string(origin_id);
  return r;
}

std::vector<uint64_t> AddRunningJobs(JobStore& store, int count) {
  std::vector<uint64_t> ids;
  JobStore::Transaction tx = store.Begin();
  for (int i = 1; i <= count; ++i) {
    Result<uint64_t> id = store.Add(RunningJob(static_cast<uint64_t>(i)));
    EXPECT_TRUE(id.ok()) << id.message();
    if (id.ok()) ids.push_back(*id);
  }
  EXPECT_TRUE(tx.Commit().ok());
  return ids;
}

// Records the end of job `id` in a transaction of its own, as the daemon's
// group commit does when ends come one at a time.
Status RecordEnd(JobStore& store, uint64_t id) {
  Result<std::optional<JobRecord>> found = store.Get(id);
  if (!found.ok()) return found.error();
  if (!found->has_value()) return Fail("no job " + std::to_string(id));
  JobRecord r = **found;
  r.state = JobState::kFailed;
  r.end_time = 1700000100;
  r.wait_status = 0;
  r.message = "its output may be incomplete: the spool is full (0 bytes free) on beta:1421 as it ended";
  JobStore::Transaction tx = store.Begin();
  if (!tx.status().ok()) return tx.status();
  if (Status updated = store.Update(r); !updated.ok()) return updated;
  return tx.Commit();
}

std::unique_ptr<JobStore> OpenStore(const std::string& dir) {
  Result<std::unique_ptr<JobStore>> store = JobStore::Open(dir + "/jobs.db");
  EXPECT_TRUE(store.ok()) << store.message();
  return store.ok() ? std::move(store).value() : nullptr;
}

class SpoolReserveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root, to mount a small file system";
  }
};

// The test the chaos test found: every end commits while the outputs take
// every block that comes free, one commit after another, far past the point
// where the WAL must be written over from its start.
TEST_F(SpoolReserveTest, EndsCommitWhileTheJobsOutputsFillTheFileSystem) {
  testing::OnSmallFileSystem("4m", [](const std::string& dir) {
    auto store = OpenStore(dir);
    ASSERT_TRUE(store);
    std::vector<uint64_t> ids = AddRunningJobs(*store, 150);
    SpoolReserve reserve(*store, dir, kRoom);
    ASSERT_TRUE(reserve.Keep());
    EXPECT_GT(OutputsTakeEveryFreeBlock(dir), 0u);
    int failed = 0;
    for (uint64_t id : ids) {
      OutputsTakeEveryFreeBlock(dir);
      Status ended = RecordEnd(*store, id);
      if (!ended.ok() && ++failed <= 3) ADD_FAILURE() << "job " << id << ": " << ended.message();
    }
    EXPECT_EQ(failed, 0);
    Result<std::vector<JobRecord>> still = store->List({.states = {JobState::kRunning}});
    ASSERT_TRUE(still.ok()) << still.message();
    EXPECT_TRUE(still->empty());
  });
}

// A daemon stopped and started again while the spool is full: closing the
// store keeps its room (SQLite would delete the WAL, and the outputs take
// its blocks), and ends still commit after the restart.
TEST_F(SpoolReserveTest, TheRoomOutlivesARestartOnAFullFileSystem) {
  testing::OnSmallFileSystem("4m", [](const std::string& dir) {
    std::vector<uint64_t> ids;
    {
      auto store = OpenStore(dir);
      ASSERT_TRUE(store);
      ids = AddRunningJobs(*store, 100);
      SpoolReserve reserve(*store, dir, kRoom);
      ASSERT_TRUE(reserve.Keep());
      OutputsTakeEveryFreeBlock(dir);
      for (size_t i = 0; i < ids.size() / 2; ++i) EXPECT_TRUE(RecordEnd(*store, ids[i]).ok());
    }
    EXPECT_EQ(OutputsTakeEveryFreeBlock(dir), 0u) << "closing the store gave blocks back";
    auto store = OpenStore(dir);
    ASSERT_TRUE(store);
    SpoolReserve reserve(*store, dir, kRoom);
    EXPECT_TRUE(reserve.Held());
    for (size_t i = ids.size() / 2; i < ids.size(); ++i) {
      OutputsTakeEveryFreeBlock(dir);
      Status ended = RecordEnd(*store, ids[i]);
      EXPECT_TRUE(ended.ok()) << ended.message();
    }
  });
}

// The room is used up only by records, and made again once the file
// system has room: not before, and without a word said twice.
TEST_F(SpoolReserveTest, RecordsUseTheRoomAndItIsMadeAgainOnceThereIsRoom) {
  testing::OnSmallFileSystem("8m", [](const std::string& dir) {
    auto store = OpenStore(dir);
    ASSERT_TRUE(store);
    SpoolReserve reserve(*store, dir, kRoom);
    ASSERT_TRUE(reserve.Keep());
    Result<StoreRoom> room = store->Room();
    ASSERT_TRUE(room.ok()) << room.message();
    EXPECT_GE(room->free_page_bytes, kRoom);
    EXPECT_GE(room->wal_bytes, kRoom);
    // New records take the free pages before the file grows.
    struct stat before {};
    ASSERT_EQ(stat((dir + "/jobs.db").c_str(), &before), 0);
    AddRunningJobs(*store, 300);  // ~700 KiB: specs two to a page, rows small
    struct stat after {};
    ASSERT_EQ(stat((dir + "/jobs.db").c_str(), &after), 0);
    EXPECT_EQ(after.st_size, before.st_size);
    EXPECT_FALSE(reserve.Held());
    // No room to make it again: nothing is written.
    OutputsTakeEveryFreeBlock(dir);
    std::filesystem::resize_file(dir + "/output/1.out",
                                 std::filesystem::file_size(dir + "/output/1.out") - kRoom);
    ::testing::internal::CaptureStderr();
    EXPECT_FALSE(reserve.Keep());
    EXPECT_FALSE(reserve.Keep());
    std::string said = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(said.find("too few to make it again"), std::string::npos) << said;
    EXPECT_EQ(said.find("too few", said.find("too few") + 1), std::string::npos) << said;
    EXPECT_GE(testing::FreeBytesOn(dir), kRoom - 4096);
    // Once the outputs are gone, it is made again.
    std::filesystem::remove(dir + "/output/1.out");
    ::testing::internal::CaptureStderr();
    EXPECT_TRUE(reserve.Keep());
    said = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(said.find("kept again"), std::string::npos) << said;
    EXPECT_TRUE(reserve.Held());
  });
}

// Made with the file system's blocks claimed first: a file system too full
// for them leaves the store as it was, and a WAL that takes in every commit.
TEST_F(SpoolReserveTest, AFileSystemTooFullToMakeTheRoomLeavesTheStoreAsItWas) {
  testing::OnSmallFileSystem("4m", [](const std::string& dir) {
    auto store = OpenStore(dir);
    ASSERT_TRUE(store);
    std::vector<uint64_t> ids = AddRunningJobs(*store, 20);
    Result<StoreRoom> before = store->Room();
    ASSERT_TRUE(before.ok());
    OutputsTakeEveryFreeBlock(dir);
    Status kept = store->KeepRoom(kRoom);
    EXPECT_FALSE(kept.ok());
    EXPECT_NE(kept.message().find("did not give it"), std::string::npos) << kept.message();
    Result<StoreRoom> after = store->Room();
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->free_page_bytes, before->free_page_bytes);
    std::filesystem::remove(dir + "/output/1.out");
    for (uint64_t id : ids) EXPECT_TRUE(RecordEnd(*store, id).ok());
  });
}

// Without a file system of its own: what the store holds after KeepRoom,
// across a close and a reopen.
TEST(SpoolStoreRoom, KeepRoomHoldsFreePagesAndWalAcrossAReopen) {
  char pattern[] = "/tmp/spool_reserve_test.XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(store);
    AddRunningJobs(*store, 10);
    Status kept = store->KeepRoom(kRoom);
    ASSERT_TRUE(kept.ok()) << kept.message();
    JobStore::Transaction open = store->Begin();
    EXPECT_FALSE(store->KeepRoom(kRoom).ok()) << "made inside an open transaction";
  }
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(store);
    Result<StoreRoom> room = store->Room();
    ASSERT_TRUE(room.ok()) << room.message();
    EXPECT_GE(room->free_page_bytes, kRoom);
    EXPECT_GE(room->wal_bytes, kRoom);
    Result<std::vector<JobRecord>> jobs = store->List({});
    ASSERT_TRUE(jobs.ok());
    EXPECT_EQ(jobs->size(), 10u);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace queue::spool
