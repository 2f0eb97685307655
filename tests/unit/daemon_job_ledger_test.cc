// JobLedger: each transition is allowed only from its phases and for the
// job's current run, and a refused one changes nothing.
#include "daemon/job_ledger.h"

#include "temp_ledger.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <sqlite3.h>

#include <filesystem>

namespace queue::daemon {
namespace {

namespace fs = std::filesystem;
using spool::JobState;

class JobLedgerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(temp_.ledger); }

  uint64_t SubmitOne(bool batch = true) {
    spool::JobRecord r;
    r.uid = 1000;
    r.queue = "now";
    r.batch = batch;
    auto id = ledger_->Submit(r, [](uint64_t id) { return "/tmp/x.o" + std::to_string(id); });
    EXPECT_TRUE(id.ok()) << id.message();
    return id.ok() ? *id : 0;
  }
  spool::JobRecord Record(uint64_t id) {
    auto r = ledger_->Get(id);
    EXPECT_TRUE(r.ok() && r->has_value());
    return r.ok() && r->has_value() ? **r : spool::JobRecord{};
  }
  Status Committed() {
    std::optional<Status> result;
    ledger_->AfterCommit([&](const Status& s) { result = s; });
    io_.run_for(std::chrono::milliseconds(50));
    io_.restart();
    return result ? *result : Status(Fail("never committed"));
  }

  // The spool refuses to store an array's element of index 7 (a trigger).
  void RefuseArrayIndexSeven() {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ + "/jobs.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TRIGGER refuse_seven BEFORE INSERT ON jobs WHEN NEW.array_index = 7 "
                           "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }

  TempLedger temp_;
  std::string& dir_ = temp_.dir;
  asio::io_context& io_ = temp_.io;
  std::unique_ptr<JobLedger>& ledger_ = temp_.ledger;
};

TEST_F(JobLedgerTest, ASubmittedJobWaitsWithItsOutputNamedByItsId) {
  uint64_t id = SubmitOne();
  ASSERT_TRUE(Committed().ok());
  spool::JobRecord r = Record(id);
  EXPECT_EQ(PhaseOf(r), JobPhase::kWaiting);
  EXPECT_EQ(r.output_path, "/tmp/x.o" + std::to_string(id));
}

// A job array: every element a record of its own, numbered one after
// another, each naming its array (the first's id) and its index.
TEST_F(JobLedgerTest, SubmitManyStoresEveryElementNamingItsArray) {
  uint64_t before = SubmitOne();
  auto array = ledger_->SubmitMany(5, [](size_t i, uint64_t array_id) {
    spool::JobRecord r;
    r.uid = 1000;
    r.queue = "now";
    r.batch = true;
    r.array_index = static_cast<uint32_t>(10 + i);
    r.output_path = "/tmp/x.o" + std::to_string(array_id) + "_" + std::to_string(10 + i);
    return r;
  });
  ASSERT_TRUE(array.ok()) << array.message();
  ASSERT_TRUE(Committed().ok());
  EXPECT_EQ(*array, before + 1);
  for (uint64_t i = 0; i < 5; ++i) {
    spool::JobRecord r = Record(*array + i);
    EXPECT_EQ(PhaseOf(r), JobPhase::kWaiting);
    EXPECT_EQ(r.array_id, *array);
    EXPECT_EQ(r.array_index, 10 + i);
    EXPECT_EQ(r.output_path, "/tmp/x.o" + std::to_string(*array) + "_" + std::to_string(10 + i));
  }
  spool::JobFilter filter;
  filter.array_id = *array;
  filter.array_index = 12;
  auto found = ledger_->List(filter);
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ(found->front().id, *array + 2);
}

// All or nothing: an element the spool refuses (here a trigger refuses index
// 7) leaves no element behind, and the writes around it in the same group
// commit stand.
TEST_F(JobLedgerTest, SubmitManyStoresNothingWhenOneElementFails) {
  ASSERT_NO_FATAL_FAILURE(RefuseArrayIndexSeven());
  uint64_t before = SubmitOne();
  auto make = [](size_t i, uint64_t) {
    spool::JobRecord r;
    r.uid = 1000;
    r.queue = "now";
    r.batch = true;
    r.array_index = static_cast<uint32_t>(i + 1);
    return r;
  };
  auto array = ledger_->SubmitMany(10, make);
  ASSERT_FALSE(array.ok());
  EXPECT_NE(array.message().find("none"), std::string::npos) << array.message();
  uint64_t after = SubmitOne();
  ASSERT_TRUE(Committed().ok());
  EXPECT_EQ(PhaseOf(Record(before)), JobPhase::kWaiting);
  EXPECT_EQ(PhaseOf(Record(after)), JobPhase::kWaiting);
  auto all = ledger_->List({});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);
  for (const auto& r : *all) EXPECT_EQ(r.array_id, 0u);
  // A smaller array, with no index 7, goes in whole.
  auto small = ledger_->SubmitMany(6, make);
  ASSERT_TRUE(small.ok()) << small.message();
  ASSERT_TRUE(Committed().ok());
  spool::JobFilter filter;
  filter.array_id = *small;
  auto elements = ledger_->List(filter);
  ASSERT_TRUE(elements.ok());
  EXPECT_EQ(elements->size(), 6u);
}

// The waiting tally (what the user quota reads at every submission) follows
// each transition in and out of WAITING|OFFERED, per user, with the specs'
// bytes; it is kept, not read from the spool at each call (a record written
// behind the ledger's back is not in it), and read again after a rollback.
TEST_F(JobLedgerTest, TheWaitingTallyFollowsEachTransitionWithoutReadingTheSpool) {
  auto submit = [&](uint32_t uid, size_t spec_bytes) {
    spool::JobRecord r;
    r.uid = uid;
    r.queue = "now";
    r.spec = std::string(spec_bytes, 's');
    auto id = ledger_->Submit(r);
    EXPECT_TRUE(id.ok()) << id.message();
    return id.ok() ? *id : 0;
  };
  auto tally = [&](uint32_t uid) {
    auto t = ledger_->WaitingOf(uid);
    EXPECT_TRUE(t.ok()) << t.message();
    return t.ok() ? *t : WaitingTally{999, 999};
  };
  EXPECT_EQ(tally(1000), (WaitingTally{0, 0}));
  const uint64_t a = submit(1000, 10), b = submit(1000, 20), c = submit(1000, 30);
  submit(1001, 5);
  EXPECT_EQ(tally(1000), (WaitingTally{3, 60}));
  EXPECT_EQ(tally(1001), (WaitingTally{1, 5}));
  ASSERT_TRUE(ledger_->Offer(a, "e:1", 0).ok());
  EXPECT_EQ(tally(1000), (WaitingTally{3, 60})) << "an offered job still waits";
  ASSERT_TRUE(ledger_->Placed(a, "e:1", 0, 5).ok());
  EXPECT_EQ(tally(1000), (WaitingTally{2, 50}));
  ASSERT_TRUE(ledger_->Requeue(a, 0, "checkpointed").ok());
  EXPECT_EQ(tally(1000), (WaitingTally{3, 60}));
  ASSERT_TRUE(ledger_->AdmitLocal(b, 0, "h:1", 6).ok());
  ASSERT_TRUE(ledger_->EndWaiting(c, JobState::kCancelled, "cancelled", 7).ok());
  EXPECT_EQ(tally(1000), (WaitingTally{1, 10}));
  EXPECT_FALSE(ledger_->Placed(c, "e:1", 0, 8).ok());
  EXPECT_EQ(tally(1000), (WaitingTally{1, 10})) << "a refused transition changes nothing";
  ASSERT_TRUE(Committed().ok());

  // A second writer adds a waiting job of 1000's: the tally does not read it...
  auto other = spool::JobStore::Open(dir_ + "/jobs.db");
  ASSERT_TRUE(other.ok()) << other.message();
  spool::JobRecord behind;
  behind.uid = 1000;
  behind.queue = "now";
  behind.spec = "xyz";
  ASSERT_TRUE((*other)->Add(behind).ok());
  EXPECT_EQ(tally(1000), (WaitingTally{1, 10}));
  // ...until a transaction is rolled back, after which the spool is read again.
  { spool::JobStore::Transaction dropped = temp_.store->Begin(); }
  EXPECT_EQ(tally(1000), (WaitingTally{2, 13}));
}

// An array that fails to go in adds nothing to the tally; one that goes in
// adds all its jobs.
TEST_F(JobLedgerTest, TheWaitingTallyCountsAnArrayOnlyOnceItIsStored) {
  ASSERT_NO_FATAL_FAILURE(RefuseArrayIndexSeven());
  auto make = [](size_t i, uint64_t) {
    spool::JobRecord r;
    r.uid = 1000;
    r.queue = "now";
    r.spec = "12345";
    r.array_index = static_cast<uint32_t>(i + 1);
    return r;
  };
  SubmitOne();
  ASSERT_TRUE(ledger_->WaitingOf(1000).ok());
  EXPECT_FALSE(ledger_->SubmitMany(10, make).ok());
  EXPECT_EQ(*ledger_->WaitingOf(1000), (WaitingTally{1, 0}));
  ASSERT_TRUE(ledger_->SubmitMany(6, make).ok());
  EXPECT_EQ(*ledger_->WaitingOf(1000), (WaitingTally{7, 30}));
}

TEST_F(JobLedgerTest, AnOfferIsRecordedAndWithdrawn) {
  uint64_t id = SubmitOne();
  ASSERT_TRUE(ledger_->Offer(id, "h2", 0).ok());
  EXPECT_EQ(PhaseOf(Record(id)), JobPhase::kOffered);
  ASSERT_TRUE(ledger_->WithdrawOffer(id, "h2", 0).ok());
  EXPECT_EQ(PhaseOf(Record(id)), JobPhase::kWaiting);
}

// A placement of run 0 that outlived its host's death (a long restart-file
// transfer) must not offer run 1 anywhere: run 1 has a placement of its own.
TEST_F(JobLedgerTest, AnOfferOfAnEarlierRunIsRefused) {
  uint64_t id = SubmitOne();
  ASSERT_TRUE(ledger_->Offer(id, "h2", 0).ok());
  ASSERT_TRUE(ledger_->Requeue(id, 0, "h2 was silent").ok());
  ASSERT_TRUE(ledger_->Offer(id, "h3", 1).ok());
  spool::JobRecord before = Record(id);
  Status stale = ledger_->Offer(id, "h4", 0);
  EXPECT_FALSE(stale.ok());
  EXPECT_NE(stale.message().find("run 0"), std::string::npos) << stale.message();
  EXPECT_EQ(Record(id), before);
}

// The refusal of an earlier offer (another run, or another host) leaves the
// current offer standing: the host it went to may be running the job.
TEST_F(JobLedgerTest, ARefusalWithdrawsOnlyTheOfferItAnswers) {
  uint64_t id = SubmitOne();
  ASSERT_TRUE(ledger_->Offer(id, "h2", 0).ok());
  ASSERT_TRUE(ledger_->Requeue(id, 0, "h2 was silent").ok());
  ASSERT_TRUE(ledger_->Offer(id, "h3", 1).ok());
  spool::JobRecord offered = Record(id);
  EXPECT_FALSE(ledger_->WithdrawOffer(id, "h2", 0).ok()) << "run 0's refusal";
  EXPECT_FALSE(ledger_->WithdrawOffer(id, "h2", 1).ok()) << "another host's refusal";
  EXPECT_EQ(Record(id), offered);
  ASSERT_TRUE(ledger_->WithdrawOffer(id, "h3", 1).ok());
  EXPECT_EQ(PhaseOf(Record(id)), JobPhase::kWaiting);
  EXPECT_TRUE(ledger_->WithdrawOffer(id, "h3", 1).ok()) << "withdrawn already";
}

TEST_F(JobLedgerTest, APlacementOfAnEarlierRunIsRefused) {
  uint64_t id = SubmitOne();
  ASSERT_TRUE(ledger_->Offer(id, "h2", 0).ok());
  ASSERT_TRUE(ledger_->Placed(id, "h2", 0, 100).ok());
  ASSERT_TRUE(ledger_->Requeue(id, 0, "checkpointed on h2").ok());
  spool::JobRecord before = Record(id);
  EXPECT_EQ(before.restarts, 1U);
  Status stale = ledger_->Placed(id, "h2", 0, 200);
  EXPECT_FALSE(stale.ok());
  EXPECT_NE(stale.message().find("run 0"), std::string::npos) << stale.message();
  EXPECT_EQ(Record(id), before);
}

TEST_F(JobLedgerTest, AClosedJobCannotBeEndedOrRequeuedAgain) {
  uint64_t id = SubmitOne();
  ASSERT_TRUE(ledger_->Placed(id, "h2", 0, 100).ok());
  ASSERT_TRUE(ledger_->Close(id, 0, RunEnd{JobState::kDone, 0, 1.5, 100, 110, ""}).ok());
  spool::JobRecord closed = Record(id);
  EXPECT_EQ(PhaseOf(closed), JobPhase::kClosed);
  EXPECT_FALSE(ledger_->Close(id, 0, RunEnd{JobState::kFailed, 0, 0, 0, 120, "again"}).ok());
  EXPECT_FALSE(ledger_->Requeue(id, 0, "again").ok());
  EXPECT_FALSE(ledger_->EndWaiting(id, JobState::kCancelled, "late cancel", 130).ok());
  EXPECT_EQ(Record(id), closed);
}

TEST_F(JobLedgerTest, AWaitingJobEndsOnlyFailedOrCancelled) {
  uint64_t id = SubmitOne();
  EXPECT_FALSE(ledger_->EndWaiting(id, JobState::kDone, "no", 1).ok());
  ASSERT_TRUE(ledger_->EndWaiting(id, JobState::kCancelled, "cancelled by its owner", 1).ok());
  EXPECT_EQ(Record(id).state, JobState::kCancelled);
  EXPECT_EQ(PhaseOf(Record(id)), JobPhase::kClosed);
}

TEST_F(JobLedgerTest, ALocalRunEndsThenClosesOnceItsOutputIsHome) {
  uint64_t id = SubmitOne();
  ASSERT_TRUE(ledger_->AdmitLocal(id, 0, "h1", 100).ok());
  auto ended = ledger_->EndRun(id, 0, RunEnd{JobState::kDone, 0, 0.5, 0, 110, ""});
  ASSERT_TRUE(ended.ok()) << ended.message();
  EXPECT_EQ(PhaseOf(*ended), JobPhase::kEnded);
  EXPECT_FALSE(ledger_->EndRun(id, 0, RunEnd{JobState::kFailed, 0, 0, 0, 111, "twice"}).ok());
  ASSERT_TRUE(ledger_->Close(id, 0, RunEnd{JobState::kDone, 0, 0.5, 0, 110, ""}).ok());
  EXPECT_EQ(PhaseOf(Record(id)), JobPhase::kClosed);
}

TEST_F(JobLedgerTest, ALocalInteractiveRunClosesAtItsEnd) {
  uint64_t id = SubmitOne(/*batch=*/false);
  ASSERT_TRUE(ledger_->AdmitLocal(id, 0, "h1", 100).ok());
  auto ended = ledger_->EndRun(id, 0, RunEnd{JobState::kDone, 0, 0.5, 0, 110, ""});
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(PhaseOf(*ended), JobPhase::kClosed);
}

TEST_F(JobLedgerTest, APeersJobIsClosedByItsAcknowledgement) {
  spool::JobRecord r;
  r.origin_host = "h1";
  r.origin_id = 7;
  r.restarts = 2;
  auto id = ledger_->AdmitFromPeer(r, "h2", 100);
  ASSERT_TRUE(id.ok()) << id.message();
  EXPECT_FALSE(ledger_->Acknowledge(*id).ok()) << "a running job has no end to acknowledge";
  ASSERT_TRUE(ledger_->EndRun(*id, 2, RunEnd{JobState::kFailed, 0, 0, 0, 110, "it failed"}).ok());
  EXPECT_FALSE(ledger_->Requeue(*id, 2, "not here").ok()) << "only the submit host requeues";
  ASSERT_TRUE(ledger_->Acknowledge(*id).ok());
  EXPECT_EQ(PhaseOf(Record(*id)), JobPhase::kClosed);
  ASSERT_TRUE(ledger_->Acknowledge(*id).ok()) << "an ack sent twice is harmless";
}

TEST_F(JobLedgerTest, ACancelNotedWhileItRunsSurvivesItsEnd) {
  uint64_t id = SubmitOne();
  ASSERT_TRUE(ledger_->AdmitLocal(id, 0, "h1", 100).ok());
  ASSERT_TRUE(ledger_->NoteCancelRequested(id).ok());
  auto ended = ledger_->EndRun(id, 0, RunEnd{JobState::kDone, 0, 0, 0, 110, "", /*checkpointed=*/true});
  ASSERT_TRUE(ended.ok());
  EXPECT_TRUE(ended->cancel_requested) << "the end is applied to the record as it is, not a stale copy";
}

TEST_F(JobLedgerTest, FinishedRecordsExpireAfterTheirTime) {
  uint64_t old_job = SubmitOne();
  ASSERT_TRUE(ledger_->EndWaiting(old_job, JobState::kCancelled, "x", 1000).ok());
  uint64_t new_job = SubmitOne();
  ASSERT_TRUE(ledger_->EndWaiting(new_job, JobState::kCancelled, "x", 5000).ok());
  uint64_t waiting = SubmitOne();
  auto removed = ledger_->Expire(2000, 100);
  ASSERT_TRUE(removed.ok()) << removed.message();
  EXPECT_EQ(*removed, 1U);
  ASSERT_TRUE(Committed().ok());
  EXPECT_FALSE(ledger_->Get(old_job)->has_value());
  EXPECT_TRUE(ledger_->Get(new_job)->has_value());
  EXPECT_TRUE(ledger_->Get(waiting)->has_value());
}

TEST_F(JobLedgerTest, ExpiryIsBoundedPerPass) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(ledger_->EndWaiting(SubmitOne(), JobState::kFailed, "x", 10).ok());
  EXPECT_EQ(*ledger_->Expire(100, 3), 3U);
  EXPECT_EQ(*ledger_->Expire(100, 3), 2U);
  EXPECT_EQ(*ledger_->Expire(100, 3), 0U);
}

}  // namespace
}  // namespace queue::daemon
