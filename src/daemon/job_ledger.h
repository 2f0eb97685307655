// JobLedger: the one owner of every job record's state. Every change to a job
// in the spool goes through one method here, one per transition of the state
// machine below; each reads the record as it is on the spool now (never a copy
// a caller held across an await), checks that the transition is allowed from
// there, writes it into the open group commit, and returns why not when it is
// refused or the write failed. Callers must handle that Status; what they do
// next (answer a client, acknowledge a peer, start a shepherd) waits for
// AfterCommit, which says whether the write reached disk.
//
// The phases of a record (the spool's `state` plus `end_reported` and, while
// waiting, `exec_host`):
//
//   submit host (origin_host == "")           execution host (origin_host == peer)
//   ───────────────────────────────           ────────────────────────────────────
//   Submit, SubmitMany ─► WAITING ◄─► OFFERED(H)          Admit(PlaceJob) ─► RUNNING
//               │  Offer/WithdrawOffer           │ NoteShepherd (kStarted)
//               │                                │ EndRun (shepherd's end, or lost)
//     Placed(PlaceReply ok) / AdmitLocal         ▼
//               ▼                             ENDED (done|failed, end owed)
//            RUNNING ── EndRun (local run) ─► ENDED │ Acknowledge (JobEndedAck)
//               │  NoteCancelRequested               ▼
//               │                             CLOSED (end_reported)
//    Close(JobEnded) / Close(local delivery) ─► CLOSED (done|failed, output home)
//    Requeue(checkpoint, lost + restart) ─► WAITING (attempt + 1)
//    EndWaiting(no host ever, cancel, stub gone) ─► CLOSED (failed|cancelled)
//    OutputDelivered: a held output reached its file (CLOSED ─► CLOSED)
//    NoteRestartFiles: its kept restart files were checked (WAITING ─► WAITING)
//    Expire(--keep-finished) removes CLOSED records
//
// A run is named by its attempt (`restarts`): a transition about a run that is
// no longer the job's current one is refused, so a late or repeated message
// can never end, requeue or place the job a second time.
//
// Event-loop only, like the store and the group commit it writes through.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/group_commit.h"
#include "daemon/metrics.h"
#include "spool/job_store.h"
#include "util/result.h"

namespace queue::daemon {

// The phase of a record, as drawn above.
enum class JobPhase { kWaiting, kOffered, kRunning, kEnded, kClosed };
JobPhase PhaseOf(const spool::JobRecord& record);
const char* ToString(JobPhase phase);

// How a run ended, as its shepherd (or its execution host) tells it.
struct RunEnd {
  spool::JobState state = spool::JobState::kDone;  // kDone or kFailed
  int32_t wait_status = -1;
  double cpu_seconds = 0;
  int64_t start_time = 0;  // 0: keep the record's
  int64_t end_time = 0;
  std::string message;
  bool checkpointed = false;        // it stopped to go on elsewhere
  bool checkpoint_in_place = false; // ...and may go on here too
  std::string output_held;          // Close: why its output is held in the spool ("" = delivered)
};

// The jobs one user submitted here that wait (WAITING or OFFERED), and the
// bytes of their stored specs: what UserQuota checks at every submission.
using WaitingTally = spool::WaitingCount;

class JobLedger {
 public:
  JobLedger(spool::JobStore& store, GroupCommit& batch) : store_(store), batch_(batch) {}

  // Transitions are counted there (submitted, runs started, requeued,
  // checkpointed, finished) once written; null: not counted.
  void CountIn(MetricsRegistry* metrics) { metrics_ = metrics; }

  // Reads (no transition).
  Result<std::optional<spool::JobRecord>> Get(uint64_t id) { return store_.Get(id); }
  Result<std::vector<spool::JobRecord>> List(const spool::JobFilter& filter) { return store_.List(filter); }
  Result<std::optional<spool::JobRecord>> FindByOrigin(const std::string& origin, uint64_t origin_id) {
    return store_.FindByOrigin(origin, origin_id);
  }
  // What `uid` has waiting here, in O(1): kept as each transition is written
  // (rather than read from the spool at every submission, which cost a
  // submission O(backlog)). Read whole from the spool once, and again after a
  // transaction was rolled back or lost (the spool may then hold less than
  // was written).
  Result<WaitingTally> WaitingOf(uint32_t uid);

  // Runs `then` once every transition made so far is on disk, or with why not.
  void AfterCommit(std::function<void(const Status&)> then) { batch_.AfterCommit(std::move(then)); }
  // Runs `then` once every transition made so far is on disk; not at all when
  // that commit fails (the group commit logs it, and what `then` promises
  // must not be promised).
  void OnceOnDisk(std::function<void()> then) {
    batch_.AfterCommit([then = std::move(then)](const Status& committed) {
      if (committed.ok()) then();
    });
  }

  // ---- Submit host ----
  // A new job, WAITING. `output_path` names a batch job's output file from its id.
  Result<uint64_t> Submit(spool::JobRecord record,
                          const std::function<std::string(uint64_t id)>& output_path = nullptr);
  // `count` new jobs, WAITING, as one job array: every one of them or none
  // (one nested transaction inside the group commit's, rolled back whole when
  // any record cannot be written). They get consecutive record ids; the first
  // is the array's id, returned. `make(i, array_id)` builds the i-th record
  // (its spec and output path may name the array); its array_id is set here.
  // REQUIRES: count >= 1.
  Result<uint64_t> SubmitMany(size_t count,
                              const std::function<spool::JobRecord(size_t i, uint64_t array_id)>& make);
  // WAITING ─► OFFERED(host) for run `attempt`: recorded before a two-phase
  // offer leaves.
  Status Offer(uint64_t id, const std::string& host, uint32_t attempt);
  // OFFERED(host) run `attempt` ─► WAITING: the host refused, or never saw the
  // offer. An offer made since (another run, or another host) stands.
  Status WithdrawOffer(uint64_t id, const std::string& host, uint32_t attempt);
  // WAITING|OFFERED ─► RUNNING on a peer that accepted run `attempt`.
  Status Placed(uint64_t id, const std::string& host, uint32_t attempt, int64_t now);
  // WAITING|OFFERED ─► CLOSED (kFailed or kCancelled): it never ran.
  Status EndWaiting(uint64_t id, spool::JobState final_state, const std::string& why, int64_t now);
  // RUNNING: its owner cancelled it; kept should it come back from a checkpoint.
  Status NoteCancelRequested(uint64_t id);
  // WAITING|OFFERED run `attempt`: what the check of its kept restart files
  // found before they were used (a damaged bundle, and what it starts from
  // instead), added to its message and its restart notes for its owner to see.
  Status NoteRestartFiles(uint64_t id, uint32_t attempt, const std::string& note);

  // WAITING|OFFERED run `attempt`: what holds it up now (a restart-file
  // transfer that stalled, say), shown with the job. The phase stays.
  Status NoteWhileWaiting(uint64_t id, uint32_t attempt, const std::string& message);
  // RUNNING|ENDED run `attempt` ─► WAITING, attempt + 1 (a checkpoint, or a
  // lost run of a job that restarts), with `message` saying why.
  Status Requeue(uint64_t id, uint32_t attempt, const std::string& message);
  // RUNNING (on a peer) or ENDED (here) run `attempt` ─► CLOSED: the end is
  // known, and a batch job's output is home (or `end.message` says why not).
  Status Close(uint64_t id, uint32_t attempt, const RunEnd& end);
  // CLOSED with its output held ─► CLOSED: the held output reached its file.
  Status OutputDelivered(uint64_t id);

  // ---- Execution host ----
  // The local WAITING|OFFERED record `id` (run `attempt`) ─► RUNNING here. Its
  // spec stays as submitted: each restart is derived from it afresh (one
  // restartflag, no pin from an earlier move).
  Status AdmitLocal(uint64_t id, uint32_t attempt, const std::string& self, int64_t now);
  // A peer's job ─► RUNNING here: a new record, returned.
  Result<uint64_t> AdmitFromPeer(spool::JobRecord record, const std::string& self, int64_t now);
  // RUNNING: its shepherd says the job started as `pid`.
  Status NoteShepherd(uint64_t id, int32_t pid);
  // RUNNING run `attempt` ─► ENDED (a peer's job, or a local batch job whose
  // output must still be delivered), or straight to CLOSED for a local
  // interactive job that has nobody else to tell.
  Result<spool::JobRecord> EndRun(uint64_t id, uint32_t attempt, const RunEnd& end);
  // ENDED (a peer's) ─► CLOSED: its submit host acknowledged the end.
  Status Acknowledge(uint64_t id);

  // Removes CLOSED records that ended before `before` (unix seconds), at most
  // `limit` of them; returns how many went.
  Result<size_t> Expire(int64_t before, size_t limit);

 private:
  // The record `id` in one of `allowed` phases (and of run `attempt`, unless
  // nullopt), or why the transition `what` is refused.
  Result<spool::JobRecord> Expect(uint64_t id, std::initializer_list<JobPhase> allowed,
                                  std::optional<uint32_t> attempt, const char* what);
  // Writes a transition of `record`, which waited before it iff `was_waiting`
  // (the tally's update).
  Status Write(const spool::JobRecord& record, bool was_waiting, const char* what);
  // A new record was written (Add): it waits.
  void Tally(const spool::JobRecord& added);
  // A job submitted here that reached CLOSED.
  void CountFinished(const spool::JobRecord& record);

  MetricsRegistry* metrics_ = nullptr;
  // WaitingOf's tally by uid (empty: not read yet, or to be read again: the
  // store rolled back since it was right), and the store's rollbacks() then.
  // A write that fails changes nothing by itself (one statement, or a nested
  // transaction rolled back); what SQLite undoes beyond it, the store counts.
  std::optional<std::unordered_map<uint32_t, WaitingTally>> waiting_;
  uint64_t rollbacks_seen_ = 0;

  spool::JobStore& store_;
  GroupCommit& batch_;
};

}  // namespace queue::daemon
