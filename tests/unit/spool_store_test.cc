// Tests of the SQLite job store: records round-trip, filters, ids, transactions,
// reopening, upgrading older files, and refusing files that are not (or no longer)
// a usable spool.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "spool/job_store.h"

namespace queue::spool {
namespace {

class SpoolStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/spool_store_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/jobs.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<JobStore> OpenStore() {
    Result<std::unique_ptr<JobStore>> store = JobStore::Open(path_);
    EXPECT_TRUE(store.ok()) << store.message();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // Runs one statement on the file with plain SQLite, as an operator might.
  void RunSql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  // The first column of every row of `sql` on the file, with plain SQLite.
  std::vector<std::string> QueryColumn(const std::string& sql) {
    sqlite3* db = nullptr;
    std::vector<std::string> rows;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    while (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      rows.emplace_back(text == nullptr ? "" : reinterpret_cast<const char*>(text));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rows;
  }

  // Every table and index definition in the file, by name.
  std::vector<std::string> Schema() {
    return QueryColumn(
        "SELECT name || ': ' || sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name");
  }

  std::string dir_;
  std::string path_;
};

// The schema of version 1 spools, exactly as queued wrote it, to test upgrades.
constexpr const char* kVersion1Schema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids are never reused
  origin_host TEXT NOT NULL,
  origin_id INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  queue TEXT NOT NULL,
  job_name TEXT NOT NULL,
  state TEXT NOT NULL,
  spec BLOB NOT NULL,
  exec_host TEXT NOT NULL,
  submit_time INTEGER NOT NULL,
  start_time INTEGER NOT NULL,
  end_time INTEGER NOT NULL,
  wait_status INTEGER NOT NULL,
  cpu_seconds REAL NOT NULL,
  shepherd_pid INTEGER NOT NULL,
  shepherd_start_time INTEGER NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, id);
CREATE INDEX IF NOT EXISTS jobs_by_origin ON jobs (origin_host, origin_id);
PRAGMA application_id = 1364542805;
PRAGMA user_version = 1;
)sql";

// A job as a version-1 queued stored it: ids 1 and 2 were handed out, 2 removed.
constexpr const char* kVersion1Jobs = R"sql(
INSERT INTO jobs VALUES (1, 'alpha', 17, 1000, 100, 'now', 'build', 'done', X'00ff',
  'beta', 1700000000, 1700000005, 1700000100, 0, 1.5, 4242, 99, '');
INSERT INTO jobs VALUES (2, '', 0, 1000, 100, 'wait', 'gone', 'waiting', X'', '', 1, 0, 0,
  -1, 0, 0, 0, '');
DELETE FROM jobs WHERE id = 2;
)sql";

JobRecord SampleJob(std::string queue = "now", uint32_t uid = 1000) {
  JobRecord r;
  r.origin_host = "alpha:1421";
  r.origin_id = 0xfedcba9876543210ULL;  // above INT64_MAX: must survive the round trip
  r.uid = uid;
  r.gid = 100;
  r.queue = std::move(queue);
  r.job_name = "build";
  r.spec = std::string("\x00\x01\xff spec", 8);  // binary, with a NUL inside
  r.exec_host = "beta";
  r.submit_time = 1700000000;
  r.start_time = 1700000005;
  r.end_time = 1700000100;
  r.wait_status = 256;
  r.cpu_seconds = 12.5;
  r.shepherd_pid = 4242;
  r.shepherd_start_time = 987654321;
  r.message = "exit 1";
  r.batch = true;
  r.output_path = "/home/ann/build.o42";
  r.restarts = 3;
  r.end_reported = true;
  r.checkpointed = true;
  r.checkpoint_in_place = true;
  r.cancel_requested = true;
  return r;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Adds `count` waiting jobs in one transaction. Their exec_host "beta"
// follows the state (and the empty spec column) in a job's row: a test can
// tell the row's "waiting" from an index entry's in the file.
void AddWaitingJobs(JobStore& store, int count) {
  JobRecord job = SampleJob();
  job.state = JobState::kWaiting;
  job.spec = "SPEC" + std::string(2000, 'z');
  JobStore::Transaction tx = store.Begin();
  for (int i = 0; i < count; ++i) ASSERT_TRUE(store.Add(job).ok());
  ASSERT_TRUE(tx.Commit().ok());
}

// Bit rot that leaves every page well formed: the first `limit` "waiting"s in
// jobs' rows (or, with in_rows false, in index entries) become "xaiting".
void RotWaiting(const std::string& path, bool in_rows, int limit) {
  std::string bytes = ReadBytes(path);
  int rotted = 0;
  for (size_t at = bytes.find("waiting"); at != std::string::npos && rotted < limit;
       at = bytes.find("waiting", at + 1)) {
    if ((bytes.compare(at + 7, 4, "beta") == 0) != in_rows) continue;
    bytes[at] = 'x';
    ++rotted;
  }
  ASSERT_EQ(rotted, limit);
  WriteBytes(path, bytes);
}

size_t CountJobs(JobStore& store) {
  Result<std::vector<JobRecord>> all = store.List({});
  EXPECT_TRUE(all.ok()) << all.message();
  return all.ok() ? all->size() : 0;
}

TEST(SpoolJobState, StringsRoundTrip) {
  for (JobState s : {JobState::kWaiting, JobState::kRunning, JobState::kDone,
                     JobState::kFailed, JobState::kCancelled}) {
    EXPECT_EQ(JobStateFromString(ToString(s)), s);
  }
  EXPECT_EQ(ToString(JobState::kCancelled), "cancelled");
  EXPECT_FALSE(JobStateFromString("Running").has_value());
  EXPECT_FALSE(JobStateFromString("").has_value());
}

TEST_F(SpoolStoreTest, AddThenGetReturnsEveryField) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  JobRecord job = SampleJob();
  job.id = 999;  // ignored: the store assigns ids
  Result<uint64_t> id = store->Add(job);
  ASSERT_TRUE(id.ok()) << id.message();
  EXPECT_EQ(*id, 1u);

  Result<std::optional<JobRecord>> got = store->Get(*id);
  ASSERT_TRUE(got.ok()) << got.message();
  ASSERT_TRUE(got->has_value());
  job.id = *id;
  EXPECT_EQ(**got, job);
}

TEST_F(SpoolStoreTest, EmptyStringsAndSpecAreKept) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  JobRecord job;  // all defaults: empty strings, empty spec
  Result<uint64_t> id = store->Add(job);
  ASSERT_TRUE(id.ok()) << id.message();
  auto got = store->Get(*id);
  ASSERT_TRUE(got.ok() && got->has_value());
  job.id = *id;
  EXPECT_EQ(**got, job);
  EXPECT_EQ((*got)->wait_status, -1);
}

// Specs live in a table of their own (schema 9): a listing may leave them
// out, a record written back without its spec keeps it, and a removed
// record's spec goes too.
TEST_F(SpoolStoreTest, SpecsAreKeptApartListedOnlyWhenAskedAndGoWithTheirRecord) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  JobRecord job = SampleJob();
  Result<uint64_t> id = store->Add(job);
  ASSERT_TRUE(id.ok()) << id.message();
  job.id = *id;
  auto without = store->List({.with_spec = false});
  ASSERT_TRUE(without.ok()) << without.message();
  ASSERT_EQ(without->size(), 1u);
  EXPECT_EQ(without->front().spec, "");
  JobRecord no_spec = job;
  no_spec.spec.clear();
  EXPECT_EQ(without->front(), no_spec) << "every other field is read";
  auto with = store->List({});
  ASSERT_TRUE(with.ok());
  EXPECT_EQ(with->front(), job);
  ASSERT_TRUE(store->Update(without->front()).ok());
  EXPECT_EQ(**store->Get(job.id), job) << "written back without its spec, it keeps it";
  EXPECT_EQ(QueryColumn("SELECT count(*) FROM job_specs"), std::vector<std::string>{"1"});
  EXPECT_EQ(QueryColumn("SELECT length(spec) FROM jobs"), std::vector<std::string>{"0"});
  ASSERT_TRUE(store->Remove(job.id).ok());
  EXPECT_EQ(QueryColumn("SELECT count(*) FROM job_specs"), std::vector<std::string>{"0"});
}

TEST_F(SpoolStoreTest, GetOfUnknownIdIsEmpty) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto got = store->Get(12345);
  ASSERT_TRUE(got.ok()) << got.message();
  EXPECT_FALSE(got->has_value());
}

TEST_F(SpoolStoreTest, UpdateReplacesTheWholeRecordButItsSpec) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  uint64_t id = *store->Add(SampleJob());
  JobRecord changed = SampleJob("wait", 7);
  changed.id = id;
  changed.state = JobState::kRunning;
  changed.exec_host = "";
  changed.message = "";
  changed.cpu_seconds = 0.25;
  changed.batch = false;
  changed.output_path = "";
  changed.restarts = 0;
  changed.end_reported = false;
  changed.checkpointed = false;
  changed.checkpoint_in_place = false;
  changed.cancel_requested = false;
  ASSERT_TRUE(store->Update(changed).ok());
  auto got = store->Get(id);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, changed);
  // The spec is fixed when the job is added: another one, or none (a record
  // listed without its spec, written back), leaves it as it was.
  for (const std::string spec : {"new spec", ""}) {
    JobRecord other = changed;
    other.spec = spec;
    ASSERT_TRUE(store->Update(other).ok());
    EXPECT_EQ(**store->Get(id), changed) << "spec \"" << spec << "\"";
  }
}

TEST_F(SpoolStoreTest, UpdateOfMissingJobFails) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  JobRecord ghost = SampleJob();
  ghost.id = 77;
  Status s = store->Update(ghost);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("77"), std::string::npos) << s.message();
  EXPECT_EQ(CountJobs(*store), 0u);  // no row was created either
}

TEST_F(SpoolStoreTest, RemoveDeletesAndFailsTheSecondTime) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  uint64_t a = *store->Add(SampleJob());
  uint64_t b = *store->Add(SampleJob());
  ASSERT_TRUE(store->Remove(a).ok());
  EXPECT_FALSE(store->Get(a)->has_value());
  EXPECT_TRUE(store->Get(b)->has_value());
  EXPECT_FALSE(store->Remove(a).ok());
  EXPECT_EQ(CountJobs(*store), 1u);
}

TEST_F(SpoolStoreTest, ListFiltersByStateUidQueueAndPages) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  struct Row { const char* queue; uint32_t uid; JobState state; };
  const Row rows[] = {
      {"now", 1, JobState::kWaiting}, {"wait", 1, JobState::kRunning},
      {"now", 2, JobState::kDone},    {"now", 1, JobState::kWaiting},
      {"sas", 2, JobState::kFailed},  {"now", 1, JobState::kCancelled},
  };
  for (const Row& row : rows) {
    JobRecord r = SampleJob(row.queue, row.uid);
    r.state = row.state;
    ASSERT_TRUE(store->Add(r).ok());
  }
  auto ids = [&](const JobFilter& filter) {
    std::vector<uint64_t> out;
    auto listed = store->List(filter);
    EXPECT_TRUE(listed.ok()) << listed.message();
    if (listed.ok()) {
      for (const JobRecord& r : *listed) out.push_back(r.id);
    }
    return out;
  };
  using Ids = std::vector<uint64_t>;
  EXPECT_EQ(ids({}), (Ids{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(ids({.states = {JobState::kWaiting}}), (Ids{1, 4}));
  EXPECT_EQ(ids({.states = {JobState::kDone, JobState::kFailed, JobState::kDone}}),
            (Ids{3, 5}));
  EXPECT_EQ(ids({.uid = 2}), (Ids{3, 5}));
  EXPECT_EQ(ids({.queue = "now"}), (Ids{1, 3, 4, 6}));
  EXPECT_EQ(ids({.states = {JobState::kWaiting, JobState::kCancelled}, .uid = 1,
                 .queue = "now"}),
            (Ids{1, 4, 6}));
  EXPECT_EQ(ids({.queue = "missing"}), Ids{});
  EXPECT_EQ(ids({.limit = 2}), (Ids{1, 2}));
  EXPECT_EQ(ids({.after_id = 2, .limit = 2}), (Ids{3, 4}));
  EXPECT_EQ(ids({.after_id = UINT64_MAX}), Ids{});
}

TEST_F(SpoolStoreTest, BatchFieldsKeepTheirWholeRange) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  JobRecord job = SampleJob();
  job.restarts = UINT32_MAX;
  job.output_path = std::string("/tmp/out \xc3\xa9\n.o1");
  job.end_reported = false;
  job.id = *store->Add(job);
  auto got = store->Get(job.id);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, job);
}

TEST_F(SpoolStoreTest, ListFiltersByExecHostOriginBatchAndEndReported) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  struct Row {
    const char* origin_host;
    const char* exec_host;
    bool batch;
    bool end_reported;
    JobState state;
  };
  const Row rows[] = {
      {"", "alpha", false, true, JobState::kRunning},      // 1
      {"beta", "alpha", true, false, JobState::kDone},     // 2
      {"", "gamma", true, false, JobState::kDone},         // 3
      {"beta", "gamma", false, true, JobState::kFailed},   // 4
      {"", "", true, true, JobState::kWaiting},            // 5
      {"delta", "alpha", true, false, JobState::kRunning}, // 6
  };
  for (const Row& row : rows) {
    JobRecord r = SampleJob();
    r.origin_host = row.origin_host;
    r.exec_host = row.exec_host;
    r.batch = row.batch;
    r.end_reported = row.end_reported;
    r.state = row.state;
    ASSERT_TRUE(store->Add(r).ok());
  }
  auto ids = [&](const JobFilter& filter) {
    std::vector<uint64_t> out;
    auto listed = store->List(filter);
    EXPECT_TRUE(listed.ok()) << listed.message();
    if (listed.ok()) {
      for (const JobRecord& r : *listed) out.push_back(r.id);
    }
    return out;
  };
  using Ids = std::vector<uint64_t>;
  EXPECT_EQ(ids({.exec_host = "alpha"}), (Ids{1, 2, 6}));
  EXPECT_EQ(ids({.exec_host = ""}), (Ids{5}));
  EXPECT_EQ(ids({.local_origin = true}), (Ids{1, 3, 5}));
  EXPECT_EQ(ids({.local_origin = false}), (Ids{2, 4, 6}));
  EXPECT_EQ(ids({.batch = true}), (Ids{2, 3, 5, 6}));
  EXPECT_EQ(ids({.batch = false}), (Ids{1, 4}));
  EXPECT_EQ(ids({.end_reported = false}), (Ids{2, 3, 6}));
  EXPECT_EQ(ids({.end_reported = true}), (Ids{1, 4, 5}));
  // As the daemon asks: ends owed to other hosts, batch output still to deliver
  // here, and jobs on a host that went silent.
  EXPECT_EQ(ids({.states = {JobState::kDone, JobState::kFailed, JobState::kCancelled},
                 .local_origin = false,
                 .end_reported = false}),
            (Ids{2}));
  EXPECT_EQ(ids({.states = {JobState::kDone, JobState::kFailed},
                 .local_origin = true,
                 .batch = true,
                 .end_reported = false}),
            (Ids{3}));
  EXPECT_EQ(ids({.states = {JobState::kWaiting, JobState::kRunning},
                 .exec_host = "alpha",
                 .local_origin = true}),
            (Ids{1}));
  EXPECT_EQ(ids({.exec_host = "alpha", .end_reported = false, .limit = 1}), (Ids{2}));
  EXPECT_EQ(ids({.exec_host = "alpha", .end_reported = false, .after_id = 2}), (Ids{6}));
  // The same shape of query with other values reuses its statement correctly.
  EXPECT_EQ(ids({.exec_host = "gamma"}), (Ids{3, 4}));
  EXPECT_EQ(ids({.exec_host = "nowhere"}), Ids{});
}

TEST_F(SpoolStoreTest, FindByOriginReturnsTheNewestMatch) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  JobRecord r = SampleJob();
  r.origin_host = "alpha";
  r.origin_id = 5;
  uint64_t first = *store->Add(r);
  r.origin_id = 6;
  ASSERT_TRUE(store->Add(r).ok());
  r.origin_id = 5;
  uint64_t again = *store->Add(r);
  ASSERT_GT(again, first);

  auto found = store->FindByOrigin("alpha", 5);
  ASSERT_TRUE(found.ok()) << found.message();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id, again);
  EXPECT_FALSE(store->FindByOrigin("beta", 5)->has_value());
  EXPECT_FALSE(store->FindByOrigin("alpha", 7)->has_value());
}

TEST_F(SpoolStoreTest, IdsAreNeverReusedAfterRemoveAndReopen) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(store);
    EXPECT_EQ(*store->NextIdHint(), 1u);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(store->Add(SampleJob()).ok());
    ASSERT_TRUE(store->Remove(3).ok());  // the highest id
    EXPECT_EQ(*store->Add(SampleJob()), 4u);
    ASSERT_TRUE(store->Remove(4).ok());
  }
  auto store = OpenStore();
  ASSERT_TRUE(store);
  EXPECT_EQ(*store->NextIdHint(), 5u);
  EXPECT_EQ(*store->Add(SampleJob()), 5u);
}

TEST_F(SpoolStoreTest, ReopenKeepsData) {
  JobRecord job = SampleJob();
  {
    auto store = OpenStore();
    ASSERT_TRUE(store);
    job.id = *store->Add(job);
    job.state = JobState::kDone;
    ASSERT_TRUE(store->Update(job).ok());
  }
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto got = store->Get(job.id);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, job);
}

TEST_F(SpoolStoreTest, FileIsPrivate) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  struct stat info;
  ASSERT_EQ(stat(path_.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

TEST_F(SpoolStoreTest, CommittedTransactionSurvivesReopen) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(store);
    JobStore::Transaction tx = store->Begin();
    ASSERT_TRUE(tx.status().ok()) << tx.status().message();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(store->Add(SampleJob()).ok());
    ASSERT_TRUE(store->Remove(2).ok());
    Status committed = tx.Commit();
    ASSERT_TRUE(committed.ok()) << committed.message();
    EXPECT_FALSE(tx.Commit().ok());  // only once
  }
  auto store = OpenStore();
  ASSERT_TRUE(store);
  EXPECT_EQ(CountJobs(*store), 2u);
}

TEST_F(SpoolStoreTest, DroppedTransactionRollsBack) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  uint64_t kept = *store->Add(SampleJob());
  {
    JobStore::Transaction tx = store->Begin();
    ASSERT_TRUE(tx.status().ok());
    ASSERT_TRUE(store->Add(SampleJob()).ok());
    ASSERT_TRUE(store->Remove(kept).ok());
    EXPECT_EQ(CountJobs(*store), 1u);  // visible inside the transaction
  }
  EXPECT_EQ(CountJobs(*store), 1u);
  EXPECT_TRUE(store->Get(kept)->has_value());
  // The store works normally afterwards, outside any transaction.
  ASSERT_TRUE(store->Add(SampleJob()).ok());
  EXPECT_EQ(CountJobs(*store), 2u);
}

TEST_F(SpoolStoreTest, NestedTransactionsFoldIntoTheOuter) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  {
    JobStore::Transaction outer = store->Begin();
    ASSERT_TRUE(store->Add(SampleJob("outer")).ok());
    {
      JobStore::Transaction inner = store->Begin();
      ASSERT_TRUE(inner.status().ok()) << inner.status().message();
      ASSERT_TRUE(store->Add(SampleJob("inner-kept")).ok());
      ASSERT_TRUE(inner.Commit().ok());
    }
    {
      JobStore::Transaction inner = store->Begin();
      ASSERT_TRUE(store->Add(SampleJob("inner-dropped")).ok());
    }  // rolls back only its own change
    // Nothing is committed until the outer transaction is: another connection
    // sees no jobs yet.
    {
      auto observer = OpenStore();
      ASSERT_TRUE(observer);
      EXPECT_EQ(CountJobs(*observer), 0u);
    }
    ASSERT_TRUE(outer.Commit().ok());
  }
  auto listed = store->List({});
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].queue, "outer");
  EXPECT_EQ((*listed)[1].queue, "inner-kept");
}

TEST_F(SpoolStoreTest, OuterRollbackDiscardsCommittedInner) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  {
    JobStore::Transaction outer = store->Begin();
    JobStore::Transaction inner = store->Begin();
    ASSERT_TRUE(store->Add(SampleJob()).ok());
    ASSERT_TRUE(inner.Commit().ok());
  }
  EXPECT_EQ(CountJobs(*store), 0u);
}

TEST_F(SpoolStoreTest, OuterCommitWithInnerStillOpenIsRefused) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  JobStore::Transaction outer = store->Begin();
  JobStore::Transaction inner = store->Begin();
  ASSERT_TRUE(store->Add(SampleJob()).ok());
  EXPECT_FALSE(outer.Commit().ok());
  ASSERT_TRUE(inner.Commit().ok());
  ASSERT_TRUE(outer.Commit().ok());
  EXPECT_EQ(CountJobs(*store), 1u);
}

TEST_F(SpoolStoreTest, MovedTransactionCommitsOnce) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  JobStore::Transaction first = store->Begin();
  ASSERT_TRUE(store->Add(SampleJob()).ok());
  JobStore::Transaction moved(std::move(first));
  ASSERT_TRUE(moved.Commit().ok());
  EXPECT_EQ(CountJobs(*store), 1u);
}

TEST_F(SpoolStoreTest, TenThousandJobsInOneTransaction) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  JobRecord job = SampleJob();
  job.spec = std::string(512, 's');
  JobStore::Transaction tx = store->Begin();
  ASSERT_TRUE(tx.status().ok());
  for (int i = 0; i < 10000; ++i) {
    job.origin_id = static_cast<uint64_t>(i);
    ASSERT_TRUE(store->Add(job).ok());
  }
  ASSERT_TRUE(tx.Commit().ok());
  EXPECT_EQ(CountJobs(*store), 10000u);
  auto waiting = store->List({.states = {JobState::kWaiting}, .limit = 10});
  ASSERT_TRUE(waiting.ok());
  EXPECT_EQ(waiting->size(), 10u);
}

TEST_F(SpoolStoreTest, GarbageFileIsRefusedClearly) {
  std::ofstream(path_) << std::string(4096, 'x') << "this is not a database\n";
  Result<std::unique_ptr<JobStore>> store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("not a SQLite database"), std::string::npos)
      << store.message();
  EXPECT_NE(store.message().find(path_), std::string::npos) << store.message();
}

TEST_F(SpoolStoreTest, ShortGarbageFileIsRefused) {
  std::ofstream(path_) << "hello";
  Result<std::unique_ptr<JobStore>> store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find(path_), std::string::npos) << store.message();
}

TEST_F(SpoolStoreTest, OtherProgramsDatabaseIsRefused) {
  RunSql("CREATE TABLE photos (name TEXT)");
  Result<std::unique_ptr<JobStore>> store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("not a Queue job spool"), std::string::npos)
      << store.message();
}

TEST_F(SpoolStoreTest, NewerSchemaIsRefused) {
  { ASSERT_TRUE(OpenStore()); }
  RunSql("PRAGMA user_version = 99");
  Result<std::unique_ptr<JobStore>> store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("newer"), std::string::npos) << store.message();
  EXPECT_NE(store.message().find("99"), std::string::npos) << store.message();
}

TEST_F(SpoolStoreTest, ImpossibleSchemaVersionIsRefused) {
  { ASSERT_TRUE(OpenStore()); }
  RunSql("PRAGMA user_version = -3");
  Result<std::unique_ptr<JobStore>> store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("-3"), std::string::npos) << store.message();
}

TEST_F(SpoolStoreTest, Version1SpoolIsUpgradedInPlace) {
  RunSql(std::string(kVersion1Schema) + kVersion1Jobs);
  {
    auto store = OpenStore();
    ASSERT_TRUE(store);
    auto got = store->Get(1);
    ASSERT_TRUE(got.ok()) << got.message();
    ASSERT_TRUE(got->has_value());
    const JobRecord& old = **got;
    EXPECT_EQ(old.origin_host, "alpha");
    EXPECT_EQ(old.origin_id, 17u);
    EXPECT_EQ(old.state, JobState::kDone);
    EXPECT_EQ(old.spec, std::string("\x00\xff", 2));
    EXPECT_EQ(old.cpu_seconds, 1.5);
    EXPECT_EQ(old.shepherd_start_time, 99);
    // The new fields take the values that describe what a version-1 daemon did.
    EXPECT_FALSE(old.batch);
    EXPECT_EQ(old.output_path, "");
    EXPECT_EQ(old.restarts, 0u);
    EXPECT_TRUE(old.end_reported);
    EXPECT_FALSE(old.checkpointed);
    EXPECT_FALSE(old.checkpoint_in_place);
    EXPECT_FALSE(old.cancel_requested);
    auto owed = store->List({.end_reported = false});
    ASSERT_TRUE(owed.ok()) << owed.message();
    EXPECT_TRUE(owed->empty());

    // Removed ids stay used, and new records keep every field.
    JobRecord job = SampleJob();
    job.end_reported = false;
    Result<uint64_t> id = store->Add(job);
    ASSERT_TRUE(id.ok()) << id.message();
    EXPECT_EQ(*id, 3u);
    job.id = *id;
    EXPECT_EQ(**store->Get(*id), job);
  }
  EXPECT_NE(QueryColumn("PRAGMA user_version"), std::vector<std::string>{"1"});
  // Opening again finds nothing to do.
  auto store = OpenStore();
  ASSERT_TRUE(store);
  EXPECT_EQ(CountJobs(*store), 2u);
}

TEST_F(SpoolStoreTest, UpgradedSchemaMatchesANewOne) {
  { ASSERT_TRUE(OpenStore()); }
  std::vector<std::string> fresh = Schema();
  std::vector<std::string> fresh_version = QueryColumn("PRAGMA user_version");
  std::filesystem::remove_all(dir_);
  ASSERT_TRUE(std::filesystem::create_directory(dir_));
  RunSql(kVersion1Schema);
  { ASSERT_TRUE(OpenStore()); }
  EXPECT_EQ(Schema(), fresh);
  EXPECT_EQ(QueryColumn("PRAGMA user_version"), fresh_version);
  EXPECT_EQ(QueryColumn("SELECT name FROM sqlite_schema WHERE name = 'jobs_end_unreported'"),
            std::vector<std::string>{"jobs_end_unreported"});
}

TEST_F(SpoolStoreTest, FailedUpgradeLeavesTheFileAsItWas) {
  // A version-1 file that somehow already has the last column the upgrade adds:
  // the upgrade fails after adding the others, and must undo them.
  std::string schema = kVersion1Schema;
  const std::string last_column = "  message TEXT NOT NULL\n";
  size_t at = schema.find(last_column);
  ASSERT_NE(at, std::string::npos);
  schema.replace(at, last_column.size(),
                 "  message TEXT NOT NULL,\n  end_reported INTEGER NOT NULL DEFAULT 0\n");
  RunSql(schema);
  std::vector<std::string> before = Schema();

  Result<std::unique_ptr<JobStore>> store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("schema version 2"), std::string::npos) << store.message();
  EXPECT_NE(store.message().find(path_), std::string::npos) << store.message();
  EXPECT_EQ(Schema(), before);
  EXPECT_EQ(QueryColumn("PRAGMA user_version"), std::vector<std::string>{"1"});
}

TEST_F(SpoolStoreTest, CorruptFileIsRefused) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(store);
    JobStore::Transaction tx = store->Begin();
    JobRecord job = SampleJob();
    job.spec = std::string(2000, 'z');
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(store->Add(job).ok());
    ASSERT_TRUE(tx.Commit().ok());
  }  // closing checkpoints the WAL into the main file
  // Overwrite the middle of the file (the table's pages), keeping the header.
  {
    std::fstream file(path_, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(4096);
    std::string junk(64 * 1024, '\xa5');
    file.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  Result<std::unique_ptr<JobStore>> store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("corrupt"), std::string::npos) << store.message();
  EXPECT_EQ(store.message().find('\n'), std::string::npos) << store.message();
}

// An index whose keys rotted keeps its pages well formed, so quick_check
// passes it; the jobs it no longer finds would never be listed as waiting,
// and so never run.
TEST_F(SpoolStoreTest, DamagedIndexIsRefused) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(store);
    AddWaitingJobs(*store, 150);
  }
  RotWaiting(path_, /*in_rows=*/false, 10);
  EXPECT_EQ(QueryColumn("PRAGMA quick_check"), std::vector<std::string>{"ok"});
  Result<std::unique_ptr<JobStore>> store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("corrupt"), std::string::npos) << store.message();
  EXPECT_NE(store.message().find(path_), std::string::npos) << store.message();
  EXPECT_EQ(store.message().find('\n'), std::string::npos) << store.message();
}

// A job's row whose state rotted: its indexes still say waiting, and listing
// the waiting jobs would fail on it, for all of them.
TEST_F(SpoolStoreTest, DamagedRowOfAWaitingJobIsRefused) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(store);
    AddWaitingJobs(*store, 150);
  }
  RotWaiting(path_, /*in_rows=*/true, 1);
  EXPECT_EQ(QueryColumn("PRAGMA quick_check"), std::vector<std::string>{"ok"});
  Result<std::unique_ptr<JobStore>> store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("corrupt"), std::string::npos) << store.message();
  EXPECT_EQ(store.message().find('\n'), std::string::npos) << store.message();
}

class SpoolWalTest : public SpoolStoreTest {
 protected:
  static constexpr int kTransactions = 4, kJobsEach = 20;

  // The spool as a queued killed -9 leaves it: jobs committed in several
  // transactions, all still in the write-ahead log. (The files are copied
  // while the store is open, and put back once closing has removed the log.)
  void SetUp() override {
    SpoolStoreTest::SetUp();
    wal_ = path_ + "-wal";
    {
      auto store = OpenStore();
      ASSERT_TRUE(store);
      for (int i = 0; i < kTransactions; ++i) AddWaitingJobs(*store, kJobsEach);
      std::filesystem::copy_file(path_, path_ + ".kept");
      std::filesystem::copy_file(wal_, wal_ + ".kept");
    }
    std::filesystem::rename(path_ + ".kept", path_);
    std::filesystem::rename(wal_ + ".kept", wal_);
    std::filesystem::remove(path_ + "-shm");
    std::string header = ReadBytes(wal_).substr(0, 32);
    ASSERT_EQ(header.size(), 32u);
    for (int i = 8; i < 12; ++i) page_size_ = page_size_ << 8 | static_cast<uint8_t>(header[i]);  // big-endian
    frames_ = (std::filesystem::file_size(wal_) - 32) / (24 + page_size_);
    ASSERT_GT(frames_, size_t{kTransactions * 2});
  }

  // Changes a few bytes of the page image in frame `frame` (from 1).
  void DamageFrame(size_t frame) {
    std::string bytes = ReadBytes(wal_);
    size_t page = 32 + (frame - 1) * (24 + page_size_) + 24;
    for (size_t i = page + 1000; i < page + 1016; ++i) bytes[i] = static_cast<char>(~bytes[i]);
    WriteBytes(wal_, bytes);
  }

  std::string wal_;
  size_t page_size_ = 0, frames_ = 0;
};

TEST_F(SpoolWalTest, ALogLeftByAKilledDaemonKeepsEveryCommittedJob) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  EXPECT_EQ(CountJobs(*store), size_t{kTransactions * kJobsEach});
}

// SQLite reads the log up to its first damaged frame and silently drops every
// transaction committed after it: here all of them, with their jobs.
TEST_F(SpoolWalTest, ADamagedLogIsRefusedNotCutShort) {
  DamageFrame(1);
  Result<std::unique_ptr<JobStore>> store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find(wal_), std::string::npos) << store.message();
  EXPECT_NE(store.message().find("damaged"), std::string::npos) << store.message();
  EXPECT_EQ(store.message().find('\n'), std::string::npos) << store.message();
  // Refused again, not repaired: the log is left as it was.
  EXPECT_FALSE(JobStore::Open(path_).ok());
}

// A damaged header: SQLite reads none of the log.
TEST_F(SpoolWalTest, ADamagedLogHeaderIsRefused) {
  std::string bytes = ReadBytes(wal_);
  bytes[12] = static_cast<char>(~bytes[12]);  // the checkpoint sequence, under the header's checksum
  WriteBytes(wal_, bytes);
  Result<std::unique_ptr<JobStore>> store = JobStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("damaged at its header"), std::string::npos) << store.message();
}

// A power cut while the last transaction was written can tear it (it was
// never committed); that is no damage, and the jobs before it are kept.
TEST_F(SpoolWalTest, ATornLastTransactionIsDroppedAsAfterAPowerCut) {
  DamageFrame(frames_ - 1);  // the last frame is its commit
  auto store = OpenStore();
  ASSERT_TRUE(store);
  EXPECT_EQ(CountJobs(*store), size_t{(kTransactions - 1) * kJobsEach});
}

TEST_F(SpoolStoreTest, UnknownStateWrittenByHandIsReported) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->Add(SampleJob()).ok());
  }
  RunSql("UPDATE jobs SET state = 'sleeping'");
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto got = store->Get(1);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.message().find("sleeping"), std::string::npos) << got.message();
}

TEST_F(SpoolStoreTest, MissingDirectoryIsReported) {
  Result<std::unique_ptr<JobStore>> store = JobStore::Open(dir_ + "/no/such/jobs.db");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("no/such/jobs.db"), std::string::npos) << store.message();
}

}  // namespace
}  // namespace queue::spool
