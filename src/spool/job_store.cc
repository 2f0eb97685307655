// JobStore on SQLite: opening and checking the file, the schema, the cached
// statements every operation runs, and transactions (savepoints when nested).
#include "spool/job_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <limits>
#include <map>
#include <set>
#include <variant>

#include "spool/wal_check.h"

namespace queue::spool {

namespace {

// Written into the file header, so that another program's SQLite file is never
// mistaken for a spool. The bytes spell "QUEU".
constexpr int64_t kApplicationId = 0x51554555;
// Bump when the schema changes, and add the step that upgrades older files to
// kSchemaSteps.
constexpr int64_t kSchemaVersion = 9;
// Someone inspecting the file with the sqlite3 shell may hold a lock briefly.
constexpr int kBusyTimeoutMs = 5000;
// After a burst, shrink the WAL back to this size at the next checkpoint.
constexpr int64_t kWalSizeLimitBytes = 16 * 1024 * 1024;
// KeepRoom writes its ballast in rows of this size (each a chain of overflow
// pages): few rows, and a size SQLite stores without fuss.
constexpr uint64_t kBallastRowBytes = 64 << 10;

// kSchemaSteps[v] turns a version-v file into a version v+1 file. A new file runs
// every step, so a new spool and an upgraded one have exactly the same schema.
// Rows always get every column from Add(); the DEFAULTs only fill rows that
// existed before their column did.
constexpr std::array<const char*, kSchemaVersion> kSchemaSteps = {
    // 0 -> 1: the jobs table.
    R"sql(
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
)sql",
    // 1 -> 2: batch jobs, restarts, and job ends owed to submit hosts. A version-1
    // daemon kept no record of ends still to report, so its rows owe nothing
    // (end_reported 1).
    // The partial index holds only the few jobs whose end is still owed, so finding
    // them does not scan every finished job; List() writes `end_reported = 0` into
    // its SQL so that the planner can see it applies.
    R"sql(
ALTER TABLE jobs ADD COLUMN batch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN output_path TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN end_reported INTEGER NOT NULL DEFAULT 1;
CREATE INDEX jobs_end_unreported ON jobs (state, id) WHERE end_reported = 0;
)sql",
    // 2 -> 3: jobs that stopped for a checkpoint, to go on elsewhere.
    R"sql(
ALTER TABLE jobs ADD COLUMN checkpointed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN checkpoint_in_place INTEGER NOT NULL DEFAULT 0;
)sql",
    // 3 -> 4: a cancel asked of a job while it ran, kept for when it comes back
    // from a checkpoint before the cancel reached it.
    R"sql(
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
)sql",
    // 4 -> 5: a batch job's output that could not be written where its owner
    // asked, held in the spool until it can (why, or '' when not held).
    R"sql(
ALTER TABLE jobs ADD COLUMN output_held TEXT NOT NULL DEFAULT '';
)sql",
    // 5 -> 6: what the checks of a job's kept restart files found across its
    // runs (a damaged bundle, and what it went on from instead).
    R"sql(
ALTER TABLE jobs ADD COLUMN restart_notes TEXT NOT NULL DEFAULT '';
)sql",
    // 6 -> 7: the ballast KeepRoom writes, to make free pages and WAL room,
    // and deletes again: empty but for the moment between the two.
    R"sql(
CREATE TABLE room_for_records (id INTEGER PRIMARY KEY, ballast BLOB NOT NULL);
)sql",
    // 7 -> 8: job arrays (`queue -r --array`, `--from`): each element names its
    // array (the record id of its first element) and its index; the index
    // finds an array's elements without touching other jobs (a whole index:
    // SQLite would not use a partial one for `array_id = ?`).
    R"sql(
ALTER TABLE jobs ADD COLUMN array_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN array_index INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_array ON jobs (array_id, array_index);
)sql",
    // 8 -> 9: specs (a job's environment among them: kilobytes) in a table of
    // their own, so that a job's row is a few hundred bytes: listing 10,000
    // jobs read 10,000 pages (one row a page) to show no spec, and each
    // transition wrote the spec's page again though a spec never changes.
    // jobs.spec stays, empty. A record's spec goes with it (the trigger).
    R"sql(
CREATE TABLE job_specs (id INTEGER PRIMARY KEY, spec BLOB NOT NULL);
INSERT INTO job_specs SELECT id, spec FROM jobs;
UPDATE jobs SET spec = x'';
CREATE TRIGGER job_spec_goes AFTER DELETE ON jobs BEGIN DELETE FROM job_specs WHERE id = OLD.id; END;
)sql",
};

// Every query reads the record's columns in this order: id first, then the 28
// fields of JobRecord as declared (see ReadRecord); the spec from job_specs,
// or left empty (kNoSpec) for a listing that needs none.
constexpr std::string_view kSpec = "(SELECT spec FROM job_specs WHERE job_specs.id = jobs.id)";
constexpr std::string_view kNoSpec = "x''";
std::string SelectColumns(std::string_view spec) {
  return "SELECT id, origin_host, origin_id, uid, gid, queue, job_name, state, coalesce(" + std::string(spec) +
         ", x''), exec_host, submit_time, start_time, end_time, wait_status, cpu_seconds, shepherd_pid, "
         "shepherd_start_time, message, batch, output_path, restarts, end_reported, checkpointed, "
         "checkpoint_in_place, cancel_requested, output_held, restart_notes, array_id, array_index FROM jobs ";
}

// A finished statement must be reset so it releases its read snapshot and can be
// reused; doing it on scope exit covers every early return.
class ResetOnExit {
 public:
  explicit ResetOnExit(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;
  ~ResetOnExit() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  sqlite3_stmt* stmt_;
};

// Binds parameters ?1, ?2, ... in order and remembers the first failure, so a
// caller binds a whole record and checks once. Values must outlive the step.
class Binder {
 public:
  explicit Binder(sqlite3_stmt* stmt) : stmt_(stmt) {}

  Binder& Int(int64_t value) { return Check(sqlite3_bind_int64(stmt_, next_++, value)); }
  Binder& Id(uint64_t value) { return Int(static_cast<int64_t>(value)); }
  Binder& Real(double value) { return Check(sqlite3_bind_double(stmt_, next_++, value)); }
  // Empty views get a non-null pointer: SQLite binds a null pointer as NULL.
  Binder& Text(std::string_view value) {
    return Check(sqlite3_bind_text64(stmt_, next_++, value.empty() ? "" : value.data(),
                                     value.size(), SQLITE_STATIC, SQLITE_UTF8));
  }
  Binder& Blob(std::string_view value) {
    return Check(sqlite3_bind_blob64(stmt_, next_++, value.empty() ? "" : value.data(),
                                     value.size(), SQLITE_STATIC));
  }

  int rc() const { return rc_; }

 private:
  Binder& Check(int rc) {
    if (rc_ == SQLITE_OK) rc_ = rc;
    return *this;
  }

  sqlite3_stmt* stmt_;
  int next_ = 1;
  int rc_ = SQLITE_OK;
};

void BindRecordFields(Binder& bind, const JobRecord& r) {
  bind.Text(r.origin_host).Id(r.origin_id).Int(r.uid).Int(r.gid);
  bind.Text(r.queue).Text(r.job_name).Text(ToString(r.state)).Blob(r.spec);
  bind.Text(r.exec_host).Int(r.submit_time).Int(r.start_time).Int(r.end_time);
  bind.Int(r.wait_status).Real(r.cpu_seconds).Int(r.shepherd_pid);
  bind.Int(r.shepherd_start_time).Text(r.message);
  bind.Int(r.batch).Text(r.output_path).Int(r.restarts).Int(r.end_reported).Int(r.checkpointed).Int(r.checkpoint_in_place);
  bind.Int(r.cancel_requested).Text(r.output_held).Text(r.restart_notes);
  bind.Id(r.array_id).Int(r.array_index);
}

std::string ColumnBytes(sqlite3_stmt* stmt, int column) {
  const void* bytes = sqlite3_column_blob(stmt, column);
  int size = sqlite3_column_bytes(stmt, column);
  if (bytes == nullptr) return {};
  return std::string(static_cast<const char*>(bytes), static_cast<size_t>(size));
}

Result<JobRecord> ReadRecord(sqlite3_stmt* stmt, const std::string& path) {
  auto integer = [stmt](int column) { return sqlite3_column_int64(stmt, column); };
  JobRecord r;
  r.id = static_cast<uint64_t>(integer(0));
  r.origin_host = ColumnBytes(stmt, 1);
  r.origin_id = static_cast<uint64_t>(integer(2));
  r.uid = static_cast<uint32_t>(integer(3));
  r.gid = static_cast<uint32_t>(integer(4));
  r.queue = ColumnBytes(stmt, 5);
  r.job_name = ColumnBytes(stmt, 6);
  std::string state = ColumnBytes(stmt, 7);
  std::optional<JobState> parsed = JobStateFromString(state);
  if (!parsed) {
    return Fail("Job " + std::to_string(r.id) + " in the job spool " + path +
                " has the unknown state '" + state +
                "'; the file was changed by hand or by a newer queued.");
  }
  r.state = *parsed;
  r.spec = ColumnBytes(stmt, 8);
  r.exec_host = ColumnBytes(stmt, 9);
  r.submit_time = integer(10);
  r.start_time = integer(11);
  r.end_time = integer(12);
  r.wait_status = static_cast<int32_t>(integer(13));
  r.cpu_seconds = sqlite3_column_double(stmt, 14);
  r.shepherd_pid = static_cast<int32_t>(integer(15));
  r.shepherd_start_time = integer(16);
  r.message = ColumnBytes(stmt, 17);
  r.batch = integer(18) != 0;
  r.output_path = ColumnBytes(stmt, 19);
  r.restarts = static_cast<uint32_t>(integer(20));
  r.end_reported = integer(21) != 0;
  r.checkpointed = integer(22) != 0;
  r.checkpoint_in_place = integer(23) != 0;
  r.cancel_requested = integer(24) != 0;
  r.output_held = ColumnBytes(stmt, 25);
  r.restart_notes = ColumnBytes(stmt, 26);
  r.array_id = static_cast<uint64_t>(integer(27));
  r.array_index = static_cast<uint32_t>(integer(28));
  return r;
}

// The database file is created here, not by SQLite, so that it starts private:
// job specs hold users' environments. SQLite gives its -wal and -shm files the
// same mode as the database.
Status CreatePrivateFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Fail("Could not open the job spool " + path + ": " + ErrnoText(errno) + ".");
  }
  ::close(fd);
  return Status::Ok();
}

// integrity_check reports as "*** in database main ***\nPage 3: ..."; an error
// message must stay on one line.
std::string FirstProblem(const std::string& report) {
  size_t start = 0;
  while (start < report.size()) {
    size_t end = std::min(report.find('\n', start), report.size());
    std::string line = report.substr(start, end - start);
    if (!line.empty() && line.rfind("***", 0) != 0) return line;
    start = end + 1;
  }
  return "integrity check failed";
}

// Before SQLite opens the file: its recovery would drop, without a word, the
// transactions after a damaged frame of the log, and the first checkpoint would
// make that final.
Status RefuseDamagedWal(const std::string& path) {
  const std::string wal = path + "-wal";
  Result<std::optional<WalDamage>> damage = FindWalDamage(wal);
  if (!damage) return Fail("Could not check the job spool " + path + ": " + damage.message() + ".");
  if (!damage->has_value()) return Status::Ok();
  const WalDamage& found = **damage;
  std::string where = found.frame == 0 ? std::string("at its header")
                                       : "at frame " + std::to_string(found.frame) + " of " +
                                             std::to_string(found.frames);
  return Fail("The job spool " + path + " is corrupt: its write-ahead log " + wal + " is damaged " + where +
              ", and SQLite would silently drop the " + std::to_string(found.lost_commits) +
              " transactions committed after it, with their jobs; stop queued and keep a copy of both files, " +
              "then move them aside, or accept that loss with: sqlite3 " + path +
              " 'PRAGMA wal_checkpoint(TRUNCATE)'");
}

int64_t ClampToInt64(uint64_t value) {
  constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(std::min(value, kMax));
}

}  // namespace

std::string_view ToString(JobState state) {
  switch (state) {
    case JobState::kWaiting: return "waiting";
    case JobState::kRunning: return "running";
    case JobState::kDone: return "done";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::optional<JobState> JobStateFromString(std::string_view text) {
  for (JobState state : {JobState::kWaiting, JobState::kRunning, JobState::kDone,
                         JobState::kFailed, JobState::kCancelled}) {
    if (ToString(state) == text) return state;
  }
  return std::nullopt;
}

enum JobStore::StatementId : int {
  kInsert,
  kInsertSpec,
  kUpdate,
  kSelectById,
  kFindByOrigin,
  kDelete,
  kDeleteClosedBefore,
  kNextId,
  kCountUnfinished,
  kWaitingByUser,
  kStatementCount,
};

// Statements are prepared once, after the schema exists, and live as long as the
// store: every operation reuses its own. List() has one statement per combination
// of filters in use (keyed by its SQL), prepared the first time it is needed; the
// daemon uses a handful.
struct JobStore::Statements {
  std::array<sqlite3_stmt*, kStatementCount> prepared{};
  std::map<std::string, sqlite3_stmt*> lists;
  ~Statements() {
    for (sqlite3_stmt* stmt : prepared) sqlite3_finalize(stmt);
    for (auto& [sql, stmt] : lists) sqlite3_finalize(stmt);
  }

  // Parameters are bound in the order of BindRecordFields (?1..?28) where a
  // statement takes a whole record.
  static std::string Sql(StatementId id) {
    const std::string select = SelectColumns(kSpec);
    switch (id) {
      case kInsert:
        return "INSERT INTO jobs (origin_host, origin_id, uid, gid, queue, job_name, state, "
               "spec, exec_host, submit_time, start_time, end_time, wait_status, "
               "cpu_seconds, shepherd_pid, shepherd_start_time, message, batch, "
               "output_path, restarts, end_reported, checkpointed, checkpoint_in_place, cancel_requested, output_held, "
               "restart_notes, array_id, array_index) "
               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, x'', ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
               "?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)";
      case kInsertSpec:
        return "INSERT INTO job_specs (id, spec) VALUES (?1, ?2)";
      case kUpdate:
        return "UPDATE jobs SET origin_host = ?1, origin_id = ?2, uid = ?3, gid = ?4, "
               "queue = ?5, job_name = ?6, state = ?7, exec_host = ?9, "
               "submit_time = ?10, start_time = ?11, end_time = ?12, wait_status = ?13, "
               "cpu_seconds = ?14, shepherd_pid = ?15, shepherd_start_time = ?16, "
               "message = ?17, batch = ?18, output_path = ?19, restarts = ?20, "
               "end_reported = ?21, checkpointed = ?22, checkpoint_in_place = ?23, cancel_requested = ?24, "
               "output_held = ?25, restart_notes = ?26, array_id = ?27, array_index = ?28 WHERE id = ?29";
      case kSelectById:
        return select + "WHERE id = ?1";
      case kFindByOrigin:
        return select + "WHERE origin_host = ?1 AND origin_id = ?2 ORDER BY id DESC LIMIT 1";
      case kDelete:
        return "DELETE FROM jobs WHERE id = ?1";
      case kDeleteClosedBefore:
        // Through jobs_by_state: finished records only, oldest ids first.
        return "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state IN ('done', 'failed', "
               "'cancelled') AND end_reported = 1 AND output_held = '' AND end_time < ?1 ORDER BY id LIMIT ?2)";
      case kNextId:
        return "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'";
      case kCountUnfinished:
        return "SELECT queue, state, exec_host != '', origin_host != '', count(*) FROM jobs "
               "WHERE end_reported = 0 GROUP BY 1, 2, 3, 4";
      case kWaitingByUser:
        // length() of a blob reads its size, not its bytes.
        return "SELECT jobs.uid, count(*), coalesce(sum(length(job_specs.spec)), 0) FROM jobs "
               "LEFT JOIN job_specs ON job_specs.id = jobs.id WHERE jobs.state = 'waiting' AND "
               "jobs.origin_host = '' GROUP BY jobs.uid";
      case kStatementCount:
        break;
    }
    return {};
  }
};

JobStore::JobStore(std::string path, sqlite3* db)
    : path_(std::move(path)), db_(db), statements_(std::make_unique<Statements>()) {}

JobStore::~JobStore() {
  statements_.reset();
  KeepWalBlocks();
  sqlite3_close_v2(db_);
}

// Closing keeps the WAL file (SQLITE_FCNTL_PERSIST_WAL, set at open), and,
// with no size limit, its blocks too: a daemon started again on a full file
// system still has that room. Its frames would be read again at the next
// open, standing in for the database's pages (rot in them would be taken
// for the spool's), although the database has them all; so the WAL is first
// started over, by a write that changes nothing, and keeps one frame. Nothing
// is lost should either fail: the WAL keeps more frames, or closing empties
// it and KeepRoom makes its room again.
// Only for a store that opened: a file refused at open is left as it was.
void JobStore::KeepWalBlocks() {
  if (!opened_) return;
  if (open_depth_ == 0 && CheckpointWhole("checkpoint its WAL").ok()) {
    if (Result<int64_t> version = QueryInt("PRAGMA user_version", "read its schema version"); version.ok()) {
      std::string same = "PRAGMA user_version = " + std::to_string(*version);
      (void)Exec(same.c_str(), "start its WAL over");
    }
  }
  (void)Exec("PRAGMA journal_size_limit = -1", "keep its WAL");
}

Result<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  if (Status created = CreatePrivateFile(path); !created) return Fail(created.message());
  if (Status wal = RefuseDamagedWal(path); !wal) return Fail(wal.message());
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string reason = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Fail("Could not open the job spool " + path + ": " + reason + ".");
  }
  std::unique_ptr<JobStore> store(new JobStore(path, db));
  if (Status configured = store->Configure(); !configured) {
    return Fail(configured.message());
  }
  if (Status prepared = store->PrepareStatements(); !prepared) {
    return Fail(prepared.message());
  }
  store->opened_ = true;
  return Result<std::unique_ptr<JobStore>>(std::move(store));
}

namespace {

// The first column of the first row of a one-off query (pragmas at open time).
Result<std::string> QueryText(sqlite3* db, const char* sql, int* rc_out) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  std::string text;
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      text = ColumnBytes(stmt, 0);
      rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
      rc = SQLITE_OK;
    }
  }
  sqlite3_finalize(stmt);
  *rc_out = rc;
  if (rc != SQLITE_OK) return Fail(sqlite3_errmsg(db));
  return text;
}

}  // namespace

Status JobStore::Configure() {
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  // The file is data, never code: no triggers or views from it run with trust.
  sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db_, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);

  int rc = SQLITE_OK;
  auto query = [&](const char* sql) { return QueryText(db_, sql, &rc); };
  Result<std::string> app_id = query("PRAGMA application_id");
  if (!app_id) return Failure("read its header", rc);
  Result<std::string> version = query("PRAGMA user_version");
  if (!version) return Failure("read its schema version", rc);
  Result<std::string> objects = query("SELECT count(*) FROM sqlite_schema");
  if (!objects) return Failure("read its schema", rc);

  bool fresh = *app_id == "0" && *version == "0" && *objects == "0";
  if (!fresh && *app_id != std::to_string(kApplicationId)) {
    return Fail(path_ + " is a SQLite database but not a Queue job spool; move it aside " +
                "or choose another spool directory.");
  }
  if (Status s = RefuseUnknownSchema(*version); !s) return s;

  // Free pages stay in the file, as room for records (KeepRoom): with
  // auto_vacuum, each commit would give them back to the file system. It can
  // be set only before the first table exists, and SQLite's default depends
  // on how it was built.
  if (fresh) {
    if (Status s = Exec("PRAGMA auto_vacuum = NONE", "turn off auto_vacuum"); !s) return s;
  }

  // WAL: readers (queue --status) never block the writer, and a commit appends to
  // one file instead of rewriting pages in place.
  Result<std::string> mode = query("PRAGMA journal_mode = WAL");
  if (!mode) return Failure("switch it to WAL mode", rc);
  if (*mode != "wal") {
    return Fail("Could not switch the job spool " + path_ + " to WAL mode (SQLite kept '" +
                *mode + "'); keep the spool on a local file system.");
  }
  if (Status s = Exec("PRAGMA synchronous = FULL", "set synchronous mode"); !s) return s;
  std::string size_limit =
      "PRAGMA journal_size_limit = " + std::to_string(kWalSizeLimitBytes);
  if (Status s = Exec(size_limit.c_str(), "limit its WAL size"); !s) return s;
  // How the store keeps its room (see job_store.h). Checkpointed every
  // kCheckpointBytes rather than SQLite's 1000 pages (4 MiB): the WAL is
  // written over from its start only after a checkpoint, and until then
  // every commit needs new blocks. On a small spool that fills, a WAL that
  // had not reached 1000 pages could never be checkpointed again.
  Result<std::string> page_size = query("PRAGMA page_size");
  if (!page_size) return Failure("read its page size", rc);
  int page_bytes = std::stoi(*page_size);
  std::string checkpoint = "PRAGMA wal_autocheckpoint = " + std::to_string(kCheckpointBytes / page_bytes);
  if (Status s = Exec(checkpoint.c_str(), "set how often its WAL is checkpointed"); !s) return s;
  // A chunk of one page changes nothing in how the file grows, but lets
  // SQLITE_FCNTL_SIZE_HINT claim blocks for it (KeepRoom).
  if (int set = sqlite3_file_control(db_, "main", SQLITE_FCNTL_CHUNK_SIZE, &page_bytes); set != SQLITE_OK)
    return Failure("set how its file grows", set);
  int persist = 1;
  if (int set = sqlite3_file_control(db_, "main", SQLITE_FCNTL_PERSIST_WAL, &persist); set != SQLITE_OK)
    return Failure("keep its WAL across restarts", set);

  if (std::stoll(*version) < kSchemaVersion) {
    if (Status s = UpgradeSchema(); !s) return s;
  }

  // integrity_check, not quick_check: it also checks every index against its
  // table. Rot in an index's keys, or in a row's indexed columns, leaves every
  // page well formed, and quick_check passes it; but the daemon finds its
  // waiting jobs, and the ends it owes, through these indexes, and a job they
  // no longer find never runs. It costs about half as much again: opening a
  // spool of 20,000 jobs (83 MB) took 100 ms, and now 150 ms.
  // (1): stop at the first problem; one is enough to refuse the file.
  Result<std::string> check = query("PRAGMA integrity_check(1)");
  if (!check) return Failure("check its integrity", rc);
  if (*check != "ok") {
    return Fail("The job spool " + path_ + " is corrupt (" + FirstProblem(*check) +
                "); stop queued, then repair it (sqlite3 " + path_ +
                " .recover) or move it aside.");
  }
  return Status::Ok();
}

Status JobStore::RefuseUnknownSchema(const std::string& version) const {
  int64_t number = std::stoll(version);
  if (number >= 0 && number <= kSchemaVersion) return Status::Ok();
  if (number < 0) {
    return Fail("The job spool " + path_ + " has the impossible schema version " + version +
                "; the file was changed by hand. Move it aside.");
  }
  return Fail("The job spool " + path_ + " has schema version " + version +
              " but this queued understands only up to version " +
              std::to_string(kSchemaVersion) +
              ": it was written by a newer queued. Run that version, or move the file aside.");
}

// Creates the schema in a new file, or brings an older file up to date in place.
// All steps commit together: a crash midway leaves the file as it was.
Status JobStore::UpgradeSchema() {
  Transaction upgrade = Begin();
  if (!upgrade.status()) return upgrade.status();
  // Read again under the write lock: another process opening the same file may
  // have upgraded it in the meantime.
  int rc = SQLITE_OK;
  Result<std::string> version = QueryText(db_, "PRAGMA user_version", &rc);
  if (!version) return Failure("read its schema version", rc);
  if (Status s = RefuseUnknownSchema(*version); !s) return s;
  for (int64_t from = std::stoll(*version); from < kSchemaVersion; ++from) {
    std::string what = from == 0 ? std::string("create its tables")
                                 : "upgrade its tables to schema version " +
                                       std::to_string(from + 1);
    if (Status s = Exec(kSchemaSteps[from], what); !s) return s;
  }
  std::string stamp = "PRAGMA application_id = " + std::to_string(kApplicationId) +
                      "; PRAGMA user_version = " + std::to_string(kSchemaVersion);
  if (Status s = Exec(stamp.c_str(), "record its schema version"); !s) return s;
  return upgrade.Commit();
}

Status JobStore::PrepareStatements() {
  for (int i = 0; i < kStatementCount; ++i) {
    std::string sql = Statements::Sql(static_cast<StatementId>(i));
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT,
                                &statements_->prepared[i], nullptr);
    if (rc != SQLITE_OK) return Failure("prepare its queries", rc);
  }
  return Status::Ok();
}

sqlite3_stmt* JobStore::Statement(StatementId id) const {
  return statements_->prepared[id];
}

Status JobStore::Exec(const char* sql, std::string_view what) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Failure(what, rc);
  return Status::Ok();
}

Result<int64_t> JobStore::QueryInt(const char* sql, std::string_view what) {
  int rc = SQLITE_OK;
  Result<std::string> text = QueryText(db_, sql, &rc);
  if (!text) return Failure(what, rc);
  int64_t value = 0;
  auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (error != std::errc() || end != text->data() + text->size() || text->empty())
    return Fail("Could not " + std::string(what) + " in the job spool " + path_ + ": SQLite said '" + *text + "'.");
  return value;
}

// A PASSIVE checkpoint that must take in the whole WAL: the daemon is the
// only connection, so no reader can hold it back.
Status JobStore::CheckpointWhole(std::string_view what) {
  int frames = 0, copied = 0;
  int rc = sqlite3_wal_checkpoint_v2(db_, "main", SQLITE_CHECKPOINT_PASSIVE, &frames, &copied);
  if (rc != SQLITE_OK) return Failure(what, rc);
  if (copied != frames) {
    return Fail("Could not " + std::string(what) + " in the job spool " + path_ + ": only " +
                std::to_string(copied) + " of the " + std::to_string(frames) +
                " pages in its WAL reached the database; another program has it open.");
  }
  return Status::Ok();
}

Error JobStore::Failure(std::string_view what) const {
  return Failure(what, sqlite3_extended_errcode(db_));
}

Error JobStore::Failure(std::string_view what, int code) const {
  std::string reason = sqlite3_errmsg(db_);
  switch (code & 0xff) {
    case SQLITE_NOTADB:
      return Fail(path_ + " is not a SQLite database, so it cannot be the job spool; " +
                  "move it aside (queued then starts an empty one) or restore it from a backup.");
    case SQLITE_CORRUPT:
      return Fail("The job spool " + path_ + " is corrupt (" + reason +
                  "); stop queued, then repair it (sqlite3 " + path_ +
                  " .recover) or move it aside.");
    default:
      return Fail("Could not " + std::string(what) + " in the job spool " + path_ + ": " +
                  reason + ".");
  }
}

// SQLite rolls a whole transaction back by itself after some errors (disk full,
// I/O error). A mutation made after that would commit on its own, outside the
// caller's transaction, so it is refused instead.
bool JobStore::transaction_lost() const { return open_depth_ > 0 && sqlite3_get_autocommit(db_) != 0; }

Status JobStore::RefuseIfTransactionLost() const {
  if (transaction_lost()) {
    return Fail("The job spool " + path_ +
                " rolled back the open transaction after an earlier error; nothing more " +
                "was changed. Begin a new transaction.");
  }
  return Status::Ok();
}

Result<uint64_t> JobStore::Add(const JobRecord& record) {
  if (Status alive = RefuseIfTransactionLost(); !alive) return Fail(alive.message());
  Transaction both = Begin();  // its row and its spec's, or neither
  if (!both.status()) return Fail(both.status().message());
  uint64_t id = 0;
  {
    sqlite3_stmt* stmt = Statement(kInsert);
    ResetOnExit reset(stmt);
    Binder bind(stmt);
    BindRecordFields(bind, record);
    if (bind.rc() != SQLITE_OK) return Failure("store a new job", bind.rc());
    if (int rc = sqlite3_step(stmt); rc != SQLITE_DONE) return Failure("store a new job", rc);
    id = static_cast<uint64_t>(sqlite3_last_insert_rowid(db_));
  }
  {
    sqlite3_stmt* stmt = Statement(kInsertSpec);
    ResetOnExit reset(stmt);
    Binder bind(stmt);
    bind.Id(id).Blob(record.spec);
    if (bind.rc() != SQLITE_OK) return Failure("store a new job's spec", bind.rc());
    if (int rc = sqlite3_step(stmt); rc != SQLITE_DONE) return Failure("store a new job's spec", rc);
  }
  if (Status done = both.Commit(); !done) return Fail(done.message());
  return id;
}

Status JobStore::Update(const JobRecord& record) {
  if (Status alive = RefuseIfTransactionLost(); !alive) return alive;
  sqlite3_stmt* stmt = Statement(kUpdate);
  ResetOnExit reset(stmt);
  Binder bind(stmt);
  BindRecordFields(bind, record);  // ?8, the spec, is not in the statement: it stays as Add stored it
  bind.Id(record.id);
  std::string what = "update job " + std::to_string(record.id);
  if (bind.rc() != SQLITE_OK) return Failure(what, bind.rc());
  if (int rc = sqlite3_step(stmt); rc != SQLITE_DONE) return Failure(what, rc);
  if (sqlite3_changes(db_) == 0) {
    return Fail("Could not update job " + std::to_string(record.id) +
                ": the job spool " + path_ + " has no such job.");
  }
  return Status::Ok();
}

Result<std::unordered_map<uint32_t, WaitingCount>> JobStore::CountWaitingByUser() {
  sqlite3_stmt* stmt = Statement(kWaitingByUser);
  ResetOnExit reset(stmt);
  std::unordered_map<uint32_t, WaitingCount> counts;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
    counts[static_cast<uint32_t>(sqlite3_column_int64(stmt, 0))] = {
        static_cast<uint64_t>(sqlite3_column_int64(stmt, 1)), static_cast<uint64_t>(sqlite3_column_int64(stmt, 2))};
  if (rc != SQLITE_DONE) return Failure("count the waiting jobs by user", rc);
  return counts;
}

Result<std::optional<JobRecord>> JobStore::QueryOne(sqlite3_stmt* stmt,
                                                    std::string_view what) {
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_DONE) return std::optional<JobRecord>();
  if (rc != SQLITE_ROW) return Failure(what, rc);
  Result<JobRecord> record = ReadRecord(stmt, path_);
  if (!record) return record.error();
  return std::optional<JobRecord>(std::move(record).value());
}

Result<std::optional<JobRecord>> JobStore::Get(uint64_t id) {
  sqlite3_stmt* stmt = Statement(kSelectById);
  ResetOnExit reset(stmt);
  Binder bind(stmt);
  bind.Id(id);
  std::string what = "read job " + std::to_string(id);
  if (bind.rc() != SQLITE_OK) return Failure(what, bind.rc());
  return QueryOne(stmt, what);
}

Result<std::optional<JobRecord>> JobStore::FindByOrigin(const std::string& origin_host,
                                                        uint64_t origin_id) {
  sqlite3_stmt* stmt = Statement(kFindByOrigin);
  ResetOnExit reset(stmt);
  Binder bind(stmt);
  bind.Text(origin_host).Id(origin_id);
  std::string what = "look up job " + std::to_string(origin_id) + " of host '" +
                     origin_host + "'";
  if (bind.rc() != SQLITE_OK) return Failure(what, bind.rc());
  return QueryOne(stmt, what);
}

namespace {

// One List() query: SQL that depends only on which filters are set, never on their
// values (so that one prepared statement serves every call of the same shape), and
// the values for its parameters in order. The values view the filter and static
// strings, which outlive the query.
struct ListQuery {
  std::string sql;
  std::vector<std::variant<int64_t, std::string_view>> values;
};

ListQuery BuildListQuery(const JobFilter& filter) {
  ListQuery query{SelectColumns(filter.with_spec ? kSpec : kNoSpec) + "WHERE id > ?",
                  {ClampToInt64(filter.after_id)}};
  auto equals = [&query](std::string_view column, std::variant<int64_t, std::string_view> value) {
    query.sql.append(" AND ").append(column).append(" = ?");
    query.values.push_back(value);
  };
  if (filter.uid) equals("uid", int64_t{*filter.uid});
  if (filter.array_id) equals("array_id", ClampToInt64(*filter.array_id));
  if (filter.array_index) equals("array_index", int64_t{*filter.array_index});
  if (filter.queue) equals("queue", std::string_view(*filter.queue));
  if (filter.exec_host) equals("exec_host", std::string_view(*filter.exec_host));
  // Flags are spelled out rather than bound: the planner uses the partial index
  // jobs_end_unreported only when the SQL itself says `end_reported = 0`.
  if (filter.local_origin) {
    query.sql += *filter.local_origin ? " AND origin_host = ''" : " AND origin_host <> ''";
  }
  if (filter.batch) query.sql += *filter.batch ? " AND batch = 1" : " AND batch = 0";
  if (filter.end_reported) {
    query.sql += *filter.end_reported ? " AND end_reported = 1" : " AND end_reported = 0";
  }
  std::set<JobState> states(filter.states.begin(), filter.states.end());
  if (!states.empty()) {
    query.sql += " AND state IN (";
    const char* separator = "";
    for (JobState state : states) {
      query.sql.append(separator).append("?");
      separator = ", ";
      query.values.push_back(ToString(state));
    }
    query.sql += ")";
  }
  query.sql += " ORDER BY id LIMIT ?";
  query.values.push_back(filter.limit == 0 ? int64_t{-1} : ClampToInt64(filter.limit));
  return query;
}

}  // namespace

Result<sqlite3_stmt*> JobStore::ListStatement(const std::string& sql) {
  auto found = statements_->lists.find(sql);
  if (found != statements_->lists.end()) return found->second;
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return Failure("prepare a job listing", rc);
  statements_->lists.emplace(sql, stmt);
  return stmt;
}

Result<std::vector<JobRecord>> JobStore::List(const JobFilter& filter) {
  ListQuery query = BuildListQuery(filter);
  Result<sqlite3_stmt*> prepared = ListStatement(query.sql);
  if (!prepared) return prepared.error();
  sqlite3_stmt* stmt = *prepared;
  ResetOnExit reset(stmt);
  Binder bind(stmt);
  for (const auto& value : query.values) {
    if (const int64_t* number = std::get_if<int64_t>(&value)) {
      bind.Int(*number);
    } else {
      bind.Text(std::get<std::string_view>(value));
    }
  }
  if (bind.rc() != SQLITE_OK) return Failure("list jobs", bind.rc());

  std::vector<JobRecord> records;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    Result<JobRecord> record = ReadRecord(stmt, path_);
    if (!record) return record.error();
    records.push_back(std::move(record).value());
  }
  if (rc != SQLITE_DONE) return Failure("list jobs", rc);
  return records;
}

Status JobStore::Remove(uint64_t id) {
  if (Status alive = RefuseIfTransactionLost(); !alive) return alive;
  sqlite3_stmt* stmt = Statement(kDelete);
  ResetOnExit reset(stmt);
  Binder bind(stmt);
  bind.Id(id);
  std::string what = "remove job " + std::to_string(id);
  if (bind.rc() != SQLITE_OK) return Failure(what, bind.rc());
  if (int rc = sqlite3_step(stmt); rc != SQLITE_DONE) return Failure(what, rc);
  if (sqlite3_changes(db_) == 0) {
    return Fail("Could not remove job " + std::to_string(id) + ": the job spool " + path_ +
                " has no such job.");
  }
  return Status::Ok();
}

Result<size_t> JobStore::RemoveClosedBefore(int64_t before, size_t limit) {
  if (Status alive = RefuseIfTransactionLost(); !alive) return Fail(alive.message());
  sqlite3_stmt* stmt = Statement(kDeleteClosedBefore);
  ResetOnExit reset(stmt);
  Binder bind(stmt);
  bind.Int(before);
  bind.Int(static_cast<int64_t>(std::min<size_t>(limit, std::numeric_limits<int64_t>::max())));
  if (bind.rc() != SQLITE_OK) return Failure("remove old finished jobs", bind.rc());
  if (int rc = sqlite3_step(stmt); rc != SQLITE_DONE) return Failure("remove old finished jobs", rc);
  return static_cast<size_t>(sqlite3_changes(db_));
}

Result<std::vector<UnfinishedCount>> JobStore::CountUnfinished() {
  sqlite3_stmt* stmt = Statement(kCountUnfinished);
  ResetOnExit reset(stmt);
  std::vector<UnfinishedCount> counts;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    auto state = JobStateFromString(ColumnBytes(stmt, 1));
    if (!state) return Fail(path_ + ": a job record has an unknown state \"" + ColumnBytes(stmt, 1) + "\"");
    counts.push_back(UnfinishedCount{ColumnBytes(stmt, 0), *state, sqlite3_column_int(stmt, 2) != 0,
                                     sqlite3_column_int(stmt, 3) != 0,
                                     static_cast<uint64_t>(sqlite3_column_int64(stmt, 4))});
  }
  if (rc != SQLITE_DONE) return Failure("count unfinished jobs", rc);
  return counts;
}

Result<uint64_t> JobStore::NextIdHint() {
  sqlite3_stmt* stmt = Statement(kNextId);
  ResetOnExit reset(stmt);
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_DONE) return uint64_t{1};  // no job was ever added
  if (rc != SQLITE_ROW) return Failure("read the next job id", rc);
  return static_cast<uint64_t>(sqlite3_column_int64(stmt, 0)) + 1;
}

// ---- Room for records ----

Result<StoreRoom> JobStore::Room() {
  Result<int64_t> page_size = QueryInt("PRAGMA page_size", "read its page size");
  if (!page_size) return page_size.error();
  Result<int64_t> free_pages = QueryInt("PRAGMA freelist_count", "count its free pages");
  if (!free_pages) return free_pages.error();
  StoreRoom room;
  room.free_page_bytes = static_cast<uint64_t>(*free_pages) * static_cast<uint64_t>(*page_size);
  // What the file system has given it, not its size: a sparse stretch would
  // still need blocks.
  struct stat wal {};
  const std::string wal_path = path_ + "-wal";
  if (::stat(wal_path.c_str(), &wal) == 0) {
    room.wal_bytes = static_cast<uint64_t>(wal.st_blocks) * 512;
  } else if (errno != ENOENT) {
    return Fail("Could not tell the size of " + wal_path + ": " + ErrnoText(errno) + ".");
  }
  return room;
}

Status JobStore::KeepRoom(uint64_t bytes) {
  const std::string failed = "Could not keep room for records in the job spool " + path_ + ": ";
  if (open_depth_ > 0) return Fail(failed + "a transaction is open.");
  Result<int64_t> vacuum = QueryInt("PRAGMA auto_vacuum", "read its auto_vacuum mode");
  if (!vacuum) return vacuum.error();
  if (*vacuum == 1) {
    return Fail(failed + "it gives its free pages back to the file system at every commit (auto_vacuum " +
                "FULL); stop queued and run: sqlite3 " + path_ + " 'PRAGMA auto_vacuum = NONE; VACUUM'");
  }
  Result<int64_t> page_size = QueryInt("PRAGMA page_size", "read its page size");
  if (!page_size) return page_size.error();
  Result<int64_t> pages = QueryInt("PRAGMA page_count", "count its pages");
  if (!pages) return pages.error();

  // The blocks for the ballast's pages (overflow chains, a leaf for each
  // row's start, the b-tree above them) are claimed before it is written.
  // Were they claimed by the checkpoint that takes the ballast in, a file
  // system that filled meanwhile would fail that checkpoint, and every one
  // after it, and the WAL would grow until commits failed.
  const uint64_t page = static_cast<uint64_t>(*page_size);
  const uint64_t rows = (bytes + kBallastRowBytes - 1) / kBallastRowBytes;
  const uint64_t ballast_pages = rows * (kBallastRowBytes / (page - 4) + 2) + 2;
  sqlite3_int64 claim = static_cast<sqlite3_int64>((static_cast<uint64_t>(*pages) + ballast_pages) * page);
  if (int rc = sqlite3_file_control(db_, "main", SQLITE_FCNTL_SIZE_HINT, &claim); rc != SQLITE_OK) {
    return Fail(failed + "the file system did not give it " + std::to_string(ballast_pages * page) +
                " bytes (" + sqlite3_errstr(rc) + ").");
  }

  // The ballast, in a transaction of its own: its pages reach the WAL (which
  // grows to hold them, if it must) whatever SQLite's secure_delete says.
  {
    Transaction ballast = Begin();
    if (!ballast.status()) return ballast.status();
    sqlite3_stmt* insert = nullptr;
    int rc = sqlite3_prepare_v2(db_, "INSERT INTO room_for_records (ballast) VALUES (zeroblob(?1))", -1, &insert,
                                nullptr);
    for (uint64_t row = 0; rc == SQLITE_OK && row < rows; ++row) {
      rc = sqlite3_bind_int64(insert, 1, static_cast<sqlite3_int64>(kBallastRowBytes));
      if (rc != SQLITE_OK) break;
      int step = sqlite3_step(insert);
      rc = step == SQLITE_DONE ? sqlite3_reset(insert) : step;
    }
    sqlite3_finalize(insert);
    if (rc != SQLITE_OK) return Failure("write room for records", rc);
    if (Status committed = ballast.Commit(); !committed) return committed;
  }
  // Deleted, its pages are free: SQLite hands them to new records before it
  // grows the file, and nothing else can have them. Without secure_delete
  // for this (Debian's SQLite has it on): zeroing zeros would write all the
  // ballast through the WAL a second time.
  {
    Result<int64_t> secure = QueryInt("PRAGMA secure_delete", "read its secure_delete mode");
    if (!secure) return secure.error();
    if (Status s = Exec("PRAGMA secure_delete = 0", "free the room for records"); !s) return s;
    Transaction cleared = Begin();
    Status deleted = cleared.status();
    if (deleted.ok()) deleted = Exec("DELETE FROM room_for_records", "free the room for records");
    if (deleted.ok()) deleted = cleared.Commit();
    std::string restore = "PRAGMA secure_delete = " + std::to_string(*secure);
    if (Status s = Exec(restore.c_str(), "restore its secure_delete mode"); !s) return s;
    if (!deleted.ok()) return deleted;
  }
  if (Status s = CheckpointWhole("write room for records into the database"); !s) return s;

  Result<StoreRoom> room = Room();
  if (!room) return room.error();
  if (room->free_page_bytes < bytes || room->wal_bytes < bytes) {
    return Fail(failed + "it holds " + std::to_string(room->free_page_bytes) + " bytes of free pages and " +
                std::to_string(room->wal_bytes) + " bytes of WAL, not " + std::to_string(bytes) + " of each.");
  }
  return Status::Ok();
}

// ---- Transactions ----

JobStore::Transaction JobStore::Begin() {
  if (Status alive = RefuseIfTransactionLost(); !alive) return Transaction(nullptr, 0, alive);
  int depth = open_depth_ + 1;
  // IMMEDIATE takes the write lock now, so Commit() cannot fail for want of it.
  Status begun = depth == 1 ? Exec("BEGIN IMMEDIATE", "begin a transaction")
                            : Exec("SAVEPOINT nested", "begin a nested transaction");
  if (!begun) return Transaction(nullptr, 0, begun);
  open_depth_ = depth;
  return Transaction(this, depth, Status::Ok());
}

JobStore::Transaction::Transaction(JobStore* store, int depth, Status begin_status)
    : store_(store), depth_(depth), begin_status_(std::move(begin_status)) {}

JobStore::Transaction::Transaction(Transaction&& other) noexcept
    : store_(other.store_), depth_(other.depth_), begin_status_(other.begin_status_) {
  other.store_ = nullptr;
}

JobStore::Transaction::~Transaction() {
  if (store_ != nullptr) Rollback();
}

Status JobStore::Transaction::Commit() {
  if (!begin_status_) return begin_status_;
  if (store_ == nullptr) return Fail("This job spool transaction was already committed.");
  JobStore& store = *store_;
  if (depth_ != store.open_depth_) {
    return Fail("A job spool transaction was committed while a transaction begun inside it "
                "was still open; finish the inner one first.");
  }
  if (Status alive = store.RefuseIfTransactionLost(); !alive) {
    store_ = nullptr;
    store.open_depth_ = depth_ - 1;
    ++store.rollbacks_;  // SQLite rolled it back by itself
    return alive;
  }
  Status done = depth_ == 1 ? store.Exec("COMMIT", "commit a transaction")
                            : store.Exec("RELEASE nested", "commit a nested transaction");
  if (!done) {
    Rollback();
    return done;
  }
  store_ = nullptr;
  store.open_depth_ = depth_ - 1;
  return Status::Ok();
}

// Errors here are not reported: the changes are gone either way, and SQLite may
// already have rolled back by itself.
void JobStore::Transaction::Rollback() {
  JobStore& store = *store_;
  store_ = nullptr;
  store.open_depth_ = depth_ - 1;
  ++store.rollbacks_;
  if (sqlite3_get_autocommit(store.db_) != 0) return;  // nothing left to undo
  if (depth_ == 1) {
    (void)store.Exec("ROLLBACK", "roll back a transaction");
  } else {
    (void)store.Exec("ROLLBACK TO nested", "roll back a nested transaction");
    (void)store.Exec("RELEASE nested", "close a nested transaction");
  }
}

}  // namespace queue::spool
