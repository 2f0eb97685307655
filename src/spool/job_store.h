// JobStore: each daemon's durable record of every job it owns (SPEC §6, §9), kept
// in one SQLite file (`<spooldir>/jobs.db`) in WAL mode.
//
// Durability: a mutation is on disk when the call (or the enclosing Transaction's
// Commit) returns. The store runs with synchronous=FULL, so a committed job survives
// kill -9 of the daemon *and* a power loss; NORMAL would survive only the former and
// could silently drop a job a client was already told about. FULL costs one fsync per
// commit, so callers that make many changes at once (a burst of submissions, one
// scheduling pass) group them with Begin() ... Commit() and pay one fsync for all.
//
// Room: the store keeps room for records to come inside its own files, where
// nothing but SQLite can take it (KeepRoom; spool_reserve.h says when and why).
// So that a full file system never has to give those files a new block, the
// database never gives free pages back (auto_vacuum NONE), the WAL is written
// over from its start once it holds kCheckpointBytes (it is checkpointed then)
// and kept, blocks and all, when the store closes (SQLite would delete it).
//
// Thread-safety: none. One JobStore per daemon, used from its event loop only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace queue::spool {

enum class JobState { kWaiting, kRunning, kDone, kFailed, kCancelled };

// "waiting", "running", "done", "failed", "cancelled": the spellings stored in the
// database and shown to users.
std::string_view ToString(JobState state);
std::optional<JobState> JobStateFromString(std::string_view text);

struct JobRecord {
  uint64_t id = 0;               // assigned by the store, unique on this host
  std::string origin_host;       // submit host entry ("" = this host)
  uint64_t origin_id = 0;        // the job's id on its submit host
  uint32_t uid = 0, gid = 0;
  std::string queue, job_name;
  JobState state = JobState::kWaiting;
  std::string spec;              // the encoded wire::JobSpec blob (opaque to the store)
  std::string exec_host;
  int64_t submit_time = 0, start_time = 0, end_time = 0;  // unix seconds
  int32_t wait_status = -1;      // waitpid status when done, -1 when unknown
  double cpu_seconds = 0;
  int32_t shepherd_pid = 0;
  // The shepherd's start time (clock ticks, field 22 of /proc/PID/stat): a pid alone
  // may have been reused by the time a restarted daemon looks at it.
  int64_t shepherd_start_time = 0;
  std::string message;           // failure reason, human readable
  bool batch = false;            // submitted with -r: no stub, output to a file
  // Batch: where the output lands on the submit host ("" = discarded, QMAIL=FALSE).
  std::string output_path;
  uint32_t restarts = 0;         // times the job was run again after its host died
  // Execution side: the submit host has acknowledged the job's end (JobEndedAck),
  // so nothing about it remains to be sent. Always true for jobs submitted here.
  bool end_reported = false;
  // Execution side: it ended because it was checkpointed (to go on elsewhere);
  // its restart files, if it wrote any, wait in the spool's bundle.
  bool checkpointed = false;
  // ...for its own sake (checkpointperiod, checkpointexit), not to leave this
  // host: it may restart anywhere, here included.
  bool checkpoint_in_place = false;
  // Submit side: its owner cancelled it while it ran. Should it come back from a
  // checkpoint before the cancel reached it, it is cancelled, not placed again.
  bool cancel_requested = false;
  // Submit side: why the batch job's output could not be written where its
  // owner asked ("" when it was, or is not due yet); the spool holds it and
  // delivery is tried again.
  std::string output_held;
  // Submit side: what the checks of its kept restart files found, across its
  // runs ("" when nothing was wrong); its end's message carries them.
  std::string restart_notes;
  // Submit side: an element of a job array (`queue -r --array`, `--from`):
  // the array's id (the record id of its first element; 0 = not in an array)
  // and its index there (QUEUE_ARRAY_INDEX).
  uint64_t array_id = 0;
  uint32_t array_index = 0;

  bool operator==(const JobRecord&) const = default;
};

// Which records List() returns. Empty / unset members match everything.
struct JobFilter {
  std::vector<JobState> states;
  std::optional<uint32_t> uid;
  std::optional<uint64_t> array_id;  // the elements of this array (an index)
  std::optional<uint32_t> array_index;  // ...of this index
  std::optional<std::string> queue;
  std::optional<std::string> exec_host;
  // true: jobs submitted on this host (origin_host == ""); false: jobs sent here by
  // another host.
  std::optional<bool> local_origin;
  std::optional<bool> batch;
  std::optional<bool> end_reported;
  uint64_t after_id = 0;  // only ids greater than this, to page through a long list
  size_t limit = 0;       // at most this many records; 0 = no limit
  // false: each record's spec is left empty (a listing that shows none reads
  // none of the specs' bytes).
  bool with_spec = true;
};

// How many records of one kind have not ended for good (CountUnfinished).
struct UnfinishedCount {
  std::string queue;
  JobState state = JobState::kWaiting;
  bool offered = false;    // waiting, with an exec_host: offered to it
  bool from_peer = false;  // origin_host is another host
  uint64_t count = 0;
};

// The jobs one user submitted on this host (origin_host "") that wait, and
// their specs' bytes (CountWaitingByUser).
struct WaitingCount {
  uint64_t jobs = 0;
  uint64_t spec_bytes = 0;
  bool operator==(const WaitingCount&) const = default;
};

// The WAL is checkpointed into the database once it holds this much: a WAL
// file given twice this by KeepRoom is then written over, not grown, by
// transactions of up to this size.
inline constexpr uint64_t kCheckpointBytes = 512 << 10;

// What the store holds for records to come (see KeepRoom).
struct StoreRoom {
  uint64_t free_page_bytes = 0;  // free pages inside the database file
  uint64_t wal_bytes = 0;        // bytes the file system has given the WAL file
};

class JobStore {
 public:
  // Groups the store's mutations so they commit together, with one fsync.
  // Begin() inside an open Transaction nests: the inner Commit() folds its changes
  // into the outer one (nothing is durable until the outermost commits), and an
  // inner Transaction dropped without Commit() undoes only its own changes.
  // A Transaction dropped without Commit() rolls back. An id that Add() returned
  // inside a rolled-back Transaction never named a job and may be handed out again.
  // REQUIRES: Transactions finish in the reverse order they began, and before the
  // JobStore is destroyed.
  class [[nodiscard]] Transaction {
   public:
    Transaction(Transaction&& other) noexcept;
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    Transaction& operator=(Transaction&&) = delete;
    ~Transaction();

    // Why Begin() failed, or ok. A Transaction that failed to begin changes
    // nothing: mutations made under it are committed one by one.
    const Status& status() const { return begin_status_; }
    Status Commit();

   private:
    friend class JobStore;
    Transaction(JobStore* store, int depth, Status begin_status);
    void Rollback();

    JobStore* store_;  // null once finished or when Begin() failed
    int depth_;        // 1 = outermost
    Status begin_status_;
  };

  // Opens (creating if needed, mode 0600) the store at `path`. Fails with a message
  // naming the file when it is not a SQLite database, is another program's database,
  // is corrupt (an index that no longer matches its table, or a write-ahead log
  // damaged before transactions that SQLite would then drop, included), or was
  // written by a newer version of queued.
  static Result<std::unique_ptr<JobStore>> Open(const std::string& path);

  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;
  ~JobStore();

  // Stores a new job and returns its id; record.id is ignored.
  Result<uint64_t> Add(const JobRecord& record);
  // Replaces every field of the job with id record.id but its spec, which is
  // fixed when Add stores it (a record listed without its spec may be written
  // back); fails if there is none.
  Status Update(const JobRecord& record);
  Result<std::optional<JobRecord>> Get(uint64_t id);
  // Matching records in id order (submission order). On a large spool, give
  // `states`: the records read are then those in these states (an index), or, with
  // end_reported false, only those of them whose end is still owed (a smaller one).
  Result<std::vector<JobRecord>> List(const JobFilter& filter);
  // The newest record that came from job `origin_id` of `origin_host`, so that a
  // forwarded job that arrives twice is recognised.
  Result<std::optional<JobRecord>> FindByOrigin(const std::string& origin_host,
                                                uint64_t origin_id);
  // The records whose end is still owed (end_reported false: waiting, running,
  // or ended and not yet told or delivered), counted by queue, state, offer
  // and origin. Reads the jobs_end_unreported index, not the closed records.
  Result<std::vector<UnfinishedCount>> CountUnfinished();
  // Per user, the waiting jobs submitted here and their specs' bytes, summed
  // by SQLite without reading the specs.
  Result<std::unordered_map<uint32_t, WaitingCount>> CountWaitingByUser();
  // Deletes the job; fails if there is none. Its id is never given to another job.
  Status Remove(uint64_t id);

  // Deletes at most `limit` records whose job ended (and whose end nobody is
  // owed, and whose output is not held) before `before` (unix seconds),
  // oldest first; returns how many.
  Result<size_t> RemoveClosedBefore(int64_t before, size_t limit);

  Transaction Begin();
  bool in_transaction() const { return open_depth_ > 0; }
  // How many Transactions were rolled back (dropped, or a commit that failed):
  // what a cache of the store's contents must read again after.
  uint64_t rollbacks() const { return rollbacks_; }
  // Whether SQLite rolled back the open Transaction by itself (a full disk):
  // counted in rollbacks() only once that Transaction finishes.
  bool transaction_lost() const;

  // The id the next Add() will most likely return (for display only).
  Result<uint64_t> NextIdHint();

  // What the store holds now for records to come.
  Result<StoreRoom> Room();
  // Makes the store hold at least `bytes` of free pages in the database file
  // and at least `bytes` of WAL file. The free pages are the first SQLite
  // gives to new records, before it grows the file, and the WAL is written
  // over from its start after each checkpoint: with both, a transaction of
  // up to kCheckpointBytes needs no new block from the file system until the
  // free pages run out. Made by writing ballast, which grows the WAL, into
  // blocks claimed from the file system first (so that one filling meanwhile
  // fails this call, rather than leaving the database unable to take in its
  // WAL), and deleting it. Fails, with nothing changed but those blocks,
  // when the file system has no room for them.
  // REQUIRES: no Transaction open.
  Status KeepRoom(uint64_t bytes);

  const std::string& path() const { return path_; }

 private:
  enum StatementId : int;
  struct Statements;

  JobStore(std::string path, sqlite3* db);
  Status Configure();
  Status RefuseUnknownSchema(const std::string& version) const;
  Status UpgradeSchema();
  Status PrepareStatements();
  Status Exec(const char* sql, std::string_view what);
  Result<int64_t> QueryInt(const char* sql, std::string_view what);
  Status CheckpointWhole(std::string_view what);
  void KeepWalBlocks();
  Status RefuseIfTransactionLost() const;
  Error Failure(std::string_view what) const;
  Error Failure(std::string_view what, int code) const;
  sqlite3_stmt* Statement(StatementId id) const;
  Result<std::optional<JobRecord>> QueryOne(sqlite3_stmt* stmt, std::string_view what);
  Result<sqlite3_stmt*> ListStatement(const std::string& sql);

  std::string path_;
  sqlite3* db_;
  std::unique_ptr<Statements> statements_;
  int open_depth_ = 0;  // how many Transactions are open
  uint64_t rollbacks_ = 0;
  bool opened_ = false;  // Open() succeeded
};

}  // namespace queue::spool
