// JobFinisher: closes a job at its submit host. It assembles a batch job's
// output as it arrives from the execution host, checks it against the size and
// SHA-256 that host sent, puts it where the user asked (`<jobname>.o<id>` in the
// submit cwd, written as the user; nowhere with QMAIL=FALSE), mails the owner
// per the queue's `mail` flags, and records the end. A job lost with its host
// or shepherd is queued to run again when the queue's profile says `restart`,
// and otherwise fails with the reason. Event-loop only.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/bundle_sender.h"
#include "daemon/job_ledger.h"
#include "daemon/metrics.h"
#include "daemon/job_names.h"
#include "daemon/job_runner.h"
#include "daemon/kept_files.h"
#include "daemon/queue_table.h"
#include "daemon/transfer_board.h"
#include "spool/file_seal.h"
#include "spool/job_store.h"
#include "spool/spool_layout.h"
#include "util/worker_thread.h"
#include "wire/messages.h"

namespace queue::daemon {

class JobFinisher {
 public:
  // `worker` writes output files home off the event loop.
  // `names` spells job ids for users and logs; it must outlive the finisher.
  JobFinisher(JobLedger& ledger, const JobNames& names, JobRunner& runner, QueueTable& queues,
              util::WorkerThread& worker, std::string spool_dir)
      : ledger_(ledger), names_(names), runner_(runner), queues_(queues), worker_(worker),
        layout_(std::move(spool_dir)) {}

  Status Prepare();

  // Called with the id of a job that must be placed again (restart, or a
  // checkpoint to go on elsewhere), and a host it should not go back to ("" = any).
  void OnRequeue(std::function<void(uint64_t record_id, const std::string& avoid)> callback) {
    on_requeue_ = std::move(callback);
  }

  // Called with the end of a run that is not the job's current one (an
  // earlier run, taken for lost, that ended after all).
  void OnStaleEnd(std::function<void(const std::string& peer, uint64_t id, uint32_t attempt)> callback) {
    on_stale_end_ = std::move(callback);
  }
  // Called with the record of every job whose end on a peer is recorded here.
  void OnClosed(std::function<void(const spool::JobRecord&)> callback) { on_closed_ = std::move(callback); }
  // Migrations, damaged arrivals and restart files found bad are counted
  // there; null: not counted.
  void CountIn(MetricsRegistry* metrics) { metrics_ = metrics; }

  // The restart files of the jobs submitted here on their way (home, and out
  // from here: Placement notes those), for queue --jobs.
  TransferBoard& transfers() { return transfers_; }
  const TransferBoard& transfers() const { return transfers_; }

  // A piece of the restart-file bundle of a job this host placed on `peer`.
  void OnBundleChunk(const std::string& peer, const wire::BundleChunk& chunk);
  // The bundle a restarted job starts from, if it has one: the restart files of
  // its last checkpoint, kept at its submit host.
  std::string RestartBundle(uint64_t record_id) const;
  // Whether the kept bundle of the waiting job `record` was checked for this
  // run already, and has not been written to since (a stat, no hashing).
  // When not, CheckRestartBundle must come before it is used.
  bool RestartBundleChecked(const spool::JobRecord& record) const;
  // Checks the kept bundle against its seal on the worker thread (a GiB takes
  // seconds); a damaged one gives way to the previous bundle, or to a fresh
  // start, and the job's record and the log say which. Calls `then` on the
  // loop once the bundle at RestartBundle is the one to use (or there is none).
  void CheckRestartBundle(const spool::JobRecord& record, std::function<void()> then);
  // Whether a bundle just sent (`size`, `sha256`, hashed as it was read) is
  // still the one that was checked; when not, it changed on disk since, and is
  // checked again before the next placement.
  bool SentAsKept(uint64_t record_id, const std::string& bundle, uint64_t size, const std::string& sha256);

  // A piece of the output of a job this host placed on `peer`.
  void OnOutput(const std::string& peer, const wire::JobOutput& output);
  // The end of a job this host placed on `peer`. `acknowledge` runs once the end
  // is on disk here (at once for an end already known); it does not run when the
  // output arrived damaged, so that the peer sends it again.
  void OnEnded(const std::string& peer, const wire::JobEnded& ended, std::function<void()> acknowledge);
  // A job submitted here that ended here (its record already says how).
  void FinishLocal(spool::JobRecord record);
  // Start-up: jobs submitted here whose end is recorded but not yet handled.
  void LoadUnfinished();
  // A batch job just started on `host`: mails the owner when the queue's `mail`
  // has `s`.
  void MailStart(const spool::JobRecord& record, const std::string& host);
  // Deletes what this host keeps for a job submitted here (output pieces,
  // restart files): call once its final state is on disk.
  void DiscardOriginFiles(uint64_t record_id);
  // A job that vanished with its host or shepherd while it ran.
  void Lost(spool::JobRecord record, const std::string& why);

  // Outputs that could not be written where their owners asked are held in the
  // spool (`record.output_held` says why); this tries them again, every few
  // seconds at most. Call it often (every heartbeat).
  void RetryHeldOutputs();
  // The bytes of a job's held output, if there are at most `limit`.
  Result<std::string> ReadHeldOutput(uint64_t record_id, size_t limit) const;

 private:
  std::string IncomingFile(uint64_t record_id) const;
  std::string IncomingBundle(uint64_t record_id) const;
  // The bundle kept before RestartBundle, to fall back on should that one be damaged.
  std::string PreviousBundle(uint64_t record_id) const;
  std::string PartialOutput(uint64_t record_id) const;
  // The output of run `attempt` of a batch job, kept from its checkpoint until
  // the job ends: one file per run, so that keeping it again (an end sent twice,
  // a crash before the end was recorded) replaces it instead of adding to it.
  std::string OutputPiece(uint64_t record_id, uint32_t attempt) const;
  // Every piece the job may have, in order (some may not exist).
  std::vector<std::string> OutputPieces(const spool::JobRecord& record) const;
  // What a checkpointed run left: its new restart files ("" when it wrote
  // none) and its output so far ("" when none came), with their seals when a
  // peer sent them (unknown ones are hashed when they are kept).
  struct CheckpointFiles {
    std::string bundle;
    std::optional<spool::FileSeal> bundle_seal;
    std::string output;
    std::optional<spool::FileSeal> output_seal;
  };
  // The job stopped on `from_host` to go on elsewhere: keeps its files (the
  // bundle as the kept one, the output moved into its piece; sealed on the
  // worker thread) and queues it; `then` runs once all that is on disk.
  // `in_place`: it checkpointed for its own sake and may restart anywhere.
  void Checkpointed(spool::JobRecord record, const std::string& from_host, const CheckpointFiles& files,
                    bool in_place, std::function<void()> then);
  // Records what the check of a waiting job's kept bundle found.
  void NoteBundleChoice(uint64_t record_id, uint32_t attempt, const BundleChoice& choice);
  void Requeue(spool::JobRecord record, const std::string& from_host, bool wrote_bundle, bool in_place,
               std::function<void()> then);
  struct Delivered {
    std::string note;  // what could not be done, or ""
    std::string held;  // why the output is held in the spool, or ""
  };
  std::string HeldOutput(uint64_t record_id) const;
  void RetryHeld(const spool::JobRecord& record);
  // Delivers the output in the file at `source` ("": none came), after what
  // was kept from before its checkpoints, on the worker thread (which opens
  // it, and removes it when `remove_source`); then mails the owner and calls
  // `then` with what could not be done, and whether the output is held.
  void DeliverThen(const spool::JobRecord& record, const std::string& source, bool remove_source,
                   std::function<void(Delivered)> then);
  // Stores the end of a job whose output is home (with `note`, what could not
  // be done), and once that is on disk drops its files here and calls `then`
  // (to acknowledge it to its execution host, say).
  void RecordEnd(spool::JobRecord record, const std::string& note, const std::function<void()>& then);
  void Mail(const spool::JobRecord& record, int fd);

  JobLedger& ledger_;
  const JobNames& names_;
  JobRunner& runner_;
  QueueTable& queues_;
  util::WorkerThread& worker_;
  spool::SpoolLayout layout_;
  std::set<uint64_t> delivering_;  // output on its way home on the worker thread
  // Jobs whose kept bundle was checked: for which run, and the bundle's inode,
  // size and change time then. A placement tried again every heartbeat must
  // not hash a GiB each time, but one written to since is checked again.
  struct CheckedBundle {
    uint32_t attempt = 0;
    std::string stamp;
  };
  std::map<uint64_t, CheckedBundle> checked_bundles_;
  IncomingFiles incoming_;  // outputs and restart bundles coming home
  TransferBoard transfers_;
  std::function<void(uint64_t, const std::string&)> on_requeue_;
  std::function<void(const spool::JobRecord&)> on_closed_;
  std::function<void(const std::string&, uint64_t, uint32_t)> on_stale_end_;
  std::chrono::steady_clock::time_point next_held_retry_{};
  MetricsRegistry* metrics_ = nullptr;
};

}  // namespace queue::daemon
