// JobRunner: the execution side of a daemon. It admits jobs that this host's
// queues can run now, records them in the spool, starts one shepherd per job
// (in its own session, so jobs outlive the daemon), re-adopts the shepherds a
// previous daemon left running, and records how each job ends.
//
// Each shepherd gets three spool files, named by the job's record id under
// `<spool>/run` and `<spool>/output`: a listening socket a restarted daemon
// connects to (`.sock`), the file the shepherd writes the job's end into before
// it says so (`.status`), and, for a batch job, its stdout+stderr (`.out`).
// Lives on the daemon's event loop; not thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <vector>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <asio.hpp>

#include "daemon/job_ledger.h"
#include "daemon/job_names.h"
#include "daemon/metrics.h"
#include "daemon/queue_table.h"
#include "migrate/criu.h"
#include "spool/job_store.h"
#include "spool/spool_layout.h"
#include "util/result.h"
#include "util/worker_thread.h"
#include "wire/channel.h"

namespace queue::daemon {

struct AdmitRequest {
  std::string origin_host;        // "" when submitted here
  uint64_t origin_job_id = 0;     // the job's id on origin_host
  uint32_t attempt = 0;           // how many times the origin has run it before
  uint64_t local_record_id = 0;   // submitted here: the waiting record to run
  wire::JobSpec spec;
  std::string bundle;             // restart files to put in its cwd first (a path), or ""
};

// A job that was running and vanished with its shepherd (host reboot, shepherd
// killed): it did start, so running it again is the `restart` keyword's call.
bool WasLost(const spool::JobRecord& record);
// A job that failed because its shepherd could not be started: nothing of it
// reached its stub.
bool HadNoShepherd(const spool::JobRecord& record);

// `checkpointperiod`: whether a job is due for its periodic checkpoint. The
// period is the job's own running time, counted from when its shepherd said it
// started (`job_started`, unset until then), not from its admission: on a
// loaded host the record's commit and the shepherd's start can take a period
// or more, and a job signalled before it has done any work saves the state it
// was restarted from, to be restarted from it again, for ever.
bool PeriodicCheckpointDue(const std::optional<std::chrono::steady_clock::time_point>& job_started,
                           std::chrono::steady_clock::time_point now, std::chrono::seconds period);

// What a run that was asked for a checkpoint (or exited with the queue's
// `checkpointexit` code) comes to, once its restart files are packed.
enum class CheckpointVerdict {
  kGoesOn,       // it wrote restart files after the signal: restarted from them
  kStartsAgain,  // it wrote none and did not finish: run again, from earlier files or the beginning
  kFinished,     // it wrote none and exited 0: its work is done, whatever it was asked
  kFailed,       // it wrote none at a periodic checkpoint, and did not exit 0
};
// `wrote_restart_files`: files written since the signal travel with it.
// `periodic`: asked for a copy of its state only (checkpointperiod).
// `self_checkpoint`: it exited with `checkpointexit` on its own.
// `interactive`: its stub was told that it moves, and only a run of it can
// give the stub an end.
CheckpointVerdict JudgeCheckpointedEnd(bool wrote_restart_files, int wait_status, bool periodic,
                                       bool self_checkpoint, bool interactive);

class JobRunner {
 public:
  using ShepherdChannel = wire::Channel<asio::local::stream_protocol::socket>;

  // `worker` packs and unpacks restart files off the event loop.
  // `names` spells job ids for users and logs; it must outlive the runner.
  JobRunner(asio::io_context& io, JobLedger& ledger, const JobNames& names, QueueTable& queues,
            util::WorkerThread& worker, std::string self_host, std::string shepherd_path, std::string spool_dir);

  // Creates the runner's spool directories.
  Status Prepare();

  // checkpointmode 1: the criu this host dumps and restores jobs with.
  void SetCriu(migrate::CriuAvailability criu) { criu_ = std::move(criu); }
  const migrate::CriuAvailability& criu() const { return criu_; }
  // Every child the daemon reaps; true when it was a CRIU dump of ours.
  bool OnChildExit(pid_t pid, int wait_status);
  // Kills a CRIU dump that has run far longer than any dump takes (hung, or
  // stopped by the job's owner, whose process it is): the job then carries on.
  void StopStuckCriuDumps();

  // Called with a notice for the queue's supervisor (a job started or ended).
  void OnNotice(std::function<void(const std::string& queue, const std::string& text)> callback) {
    on_notice_ = std::move(callback);
  }

  // Called once for every job that ends here (done or failed), with its record
  // as the ledger wrote it (not yet committed).
  void OnJobEnded(std::function<void(const spool::JobRecord&)> callback) { on_ended_ = std::move(callback); }
  // Refused admissions are counted there, by reason; null: not counted.
  void CountIn(MetricsRegistry* metrics) { metrics_ = metrics; }

  // The job's record id here, or why this host will not take it; `permanent`
  // when it never will (no such queue, root not allowed), not just not now.
  using AdmitDone = std::function<void(const Result<uint64_t>& admitted, bool permanent)>;

  // Takes the job, or says why this host will not, through `done`: at once,
  // or, when restart files come with it, once they are unpacked into its cwd
  // (on the worker thread). A batch job's shepherd starts only once its record
  // is on disk, so a crash cannot run a job the spool does not know; an
  // interactive job starts at once (its stub waits). A job from a peer that is
  // already here, or still being unpacked here (a repeated offer), is not run again.
  // `done` runs from the event loop, never before Admit returns.
  void Admit(AdmitRequest request, double load1, AdmitDone done);

  // Start-up: takes back the jobs a previous daemon left running here, through
  // their shepherds' sockets; records the end of those that ended meanwhile, and
  // of those whose shepherd is gone.
  void Adopt();

  // Jobs whose shepherd runs here now (for the service status line).
  size_t running() const;

  // Sends one running job this action; false when it does not run here.
  bool ControlJob(uint64_t record_id, wire::ShepherdAction action, const std::string& message);

  // Asks the job for a checkpoint (the queue's checkpointsignal, once; SIGKILL
  // after checkpointgrace): it is to save its restart files and exit, to go on
  // elsewhere. In a `checkpointmode 1` queue CRIU dumps it instead, and kills it
  // once its image is complete. False when it does not run here, was already
  // asked, or cannot be checkpointed (the log says why).
  bool Checkpoint(uint64_t record_id, const std::string& reason, bool in_place = false);
  // The queue's running jobs that could be asked for a checkpoint, newest first.
  std::vector<uint64_t> CheckpointCandidates(const std::string& queue) const;
  // Running jobs of the queue asked for a periodic checkpoint now (checkpointperiod).
  std::vector<uint64_t> DueForPeriodicCheckpoint(const std::string& queue, std::chrono::seconds period) const;

  // Where a checkpointed job's restart files wait (a migrate/restart_bundle file).
  std::string BundleFile(uint64_t record_id) const;
  // Where a job's CRIU image is written when it is dumped here, and where an
  // image that came with it waits for its shepherd to restore it.
  std::string ImageDir(uint64_t record_id) const;

  // Sends every running job of the queue this action (and the user the message).
  void ControlQueue(const std::string& queue, wire::ShepherdAction action, const std::string& message);

  // Where a batch job's output is kept on this host while it runs and until
  // it has been handed to its submit host.
  std::string OutputFile(uint64_t record_id) const;
  // Deletes what the spool still holds for an ended job whose end is reported
  // (noting first whether the spool is full: see FailIfOutputMayBeCut).
  void RemoveJobFiles(uint64_t record_id);

 private:
  struct Running {
    uint64_t record_id;
    std::string queue;
    std::shared_ptr<ShepherdChannel> channel;
    bool finished = false;
    bool checkpoint_requested = false;
    bool checkpoint_in_place = false;  // asked for a periodic checkpoint, not to leave
    bool pinned = false;  // submitted with -h: the load does not move it
    bool cancelled_before_start = false;  // a batch job cancelled before its record was on disk
    pid_t shepherd_pid = 0;
    pid_t job_pid = 0;     // as the shepherd said (kStarted)
    pid_t criu_dump = 0;   // a CRIU dump of the job under way
    std::chrono::steady_clock::time_point criu_dump_began{};
    bool criu_arming = false;  // kCheckpointByDaemon sent, its kCheckpointArmed not yet come
    migrate::CriuIdentity criu_as;  // the job's owner
    bool uncheckpointable = false;  // its streams cannot be handed over (a socket, say)
    bool restoring = false;         // its shepherd was told to restore it from its CRIU image
    std::chrono::steady_clock::time_point no_checkpoint_before{};  // after a failed CRIU dump
    std::optional<wire::ShepherdEvent> held_end;  // its end, come before the dump's
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();  // admitted
    // When its shepherd said the job started (or it was re-adopted): the
    // periodic checkpoint's clock.
    std::optional<std::chrono::steady_clock::time_point> job_started;
  };

  std::string RunFile(uint64_t record_id, const char* suffix) const;
  void FailIfOutputMayBeCut(spool::JobRecord& r, std::chrono::steady_clock::time_point started);
  // Writes `end` again in a while (its commit failed). The timer owns itself
  // (its handler holds it) and the handler uses `this`: the daemon keeps its
  // JobRunner until the event loop has stopped, and a handler still pending
  // then is destroyed with the loop, never run. It reads the record again
  // before it acts, so an end that came meanwhile is never written twice.
  void RecordEndAgainLater(const spool::JobRecord& end);
  void StartShepherd(uint64_t record_id, wire::JobId job_id, const wire::JobSpec& spec);
  Status SpawnShepherd(uint64_t record_id, wire::JobId job_id, const wire::JobSpec& spec,
                       const profile::QueuePolicy& policy);
  // Counts the job against its queue, once.
  void Track(uint64_t record_id, const std::string& queue, bool pinned = false);
  void Attach(uint64_t record_id, const std::string& queue, std::shared_ptr<ShepherdChannel> channel);
  void OnShepherdEvent(uint64_t record_id, const wire::ShepherdEvent& event);
  void OnShepherdGone(uint64_t record_id, const std::string& reason);
  enum class Absence { kEnded, kLost, kNeverStarted };
  Absence OnShepherdAbsent(const spool::JobRecord& record, const std::string& why);
  void EndRecord(uint64_t record_id, spool::JobState state, const wire::ShepherdEvent& event,
                 const std::string& message);
  // A job that stopped to go on elsewhere, once its restart files are packed
  // into its bundle (`packed` says how that went); `periodic` when it was only
  // asked for a copy of its state, `self_checkpoint` when it exited with
  // `checkpointexit`.
  void OnCheckpointPacked(spool::JobRecord record, std::string packed, bool periodic, bool self_checkpoint,
                          std::chrono::steady_clock::time_point started);
  // Stores the record of a job that ended here, and tells whoever is to know.
  void FinishEnd(const spool::JobRecord& record);
  // Names one admission, so that an offer repeated while the first is still
  // unpacking waits for the first one's answer.
  static std::string AdmissionKey(const AdmitRequest& request);
  // A refusal of Enter (or of the unpacking before it), counted by reason.
  void CountEnterRefusal(bool permanent, bool unpack_failed);
  // The record and shepherd, once the job's files (or CRIU image, staged in
  // that directory) are in place.
  Result<uint64_t> Enter(AdmitRequest request, std::string staged_image, bool* permanent);
  bool CheckpointWithCriu(uint64_t record_id, Running& running, const std::string& reason);
  // The shepherd counts a SIGKILL as the checkpoint now: CRIU may begin.
  void StartCriuDump(uint64_t record_id, Running& running);
  // The dump failed (`why`): the job carries on here, and is asked again later.
  void AbandonCriuCheckpoint(uint64_t record_id, Running& running, const std::string& why);
  pid_t ShepherdOf(pid_t job) const;
  bool StillShepherdsChild(const Running& running) const;
  void Release(uint64_t record_id);

  asio::io_context& io_;
  JobLedger& ledger_;  // every change to a job record goes through it
  const JobNames& names_;
  QueueTable& queues_;
  std::string self_host_;
  std::string shepherd_path_;
  spool::SpoolLayout layout_;
  std::map<uint64_t, Running> shepherds_;  // by spool record id
  // When the spool was last found full as files were removed from it (never: epoch).
  std::chrono::steady_clock::time_point spool_seen_full_{};
  std::map<pid_t, uint64_t> criu_dumps_;   // CRIU dumps under way: the job's record id
  migrate::CriuAvailability criu_;
  std::function<void(const spool::JobRecord&)> on_ended_;
  std::function<void(const std::string&, const std::string&)> on_notice_;
  std::set<uint64_t> packing_;  // checkpointed jobs whose restart files are being packed
  std::map<std::string, std::vector<AdmitDone>> unpacking_;  // by AdmissionKey: who waits for its answer
  util::WorkerThread& worker_;
  MetricsRegistry* metrics_ = nullptr;
};

}  // namespace queue::daemon
