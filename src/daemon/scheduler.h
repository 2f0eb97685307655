// Scheduler: the jobs submitted here, from the client's request until a host
// takes them. It owns the waiting list (jobs no host could take yet), the
// stubs of interactive jobs submitted here (told where their job goes, or why
// it waits), where an owner asked a job to move, and the hosts a moved job
// avoids for a while. A batch job is answered once it is on disk and then
// waits in the spool; an interactive one waits with its stub's connection.
// Every heartbeat, and whenever a slot may have freed, a pass offers waiting
// jobs through Placement, at most kMaxPlacementsInFlight at once.
//
// Lifetime: belongs to the daemon, as does the Placement it uses; passes are
// posted to the event loop (never run inline in a caller's stack), and every
// placement's answer checks (by generation) that the job it is about still
// waits for that answer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <asio.hpp>

#include "cluster/hosts_file.h"
#include "daemon/client_service.h"
#include "daemon/job_array.h"
#include "daemon/job_finisher.h"
#include "daemon/job_ledger.h"
#include "daemon/job_names.h"
#include "daemon/placement.h"
#include "daemon/queue_table.h"
#include "daemon/accept_throttle.h"
#include "daemon/user_quota.h"
#include "daemon/waiting_list.h"

namespace queue::daemon {

struct SchedulerContext {
  asio::io_context& io;
  JobLedger& ledger;
  const JobNames& names;
  QueueTable& queues;
  JobFinisher& finisher;
  Placement& placement;
  const std::vector<cluster::HostEntry>& hosts;  // the daemon's, reloaded on SIGHUP
  std::string self;
  std::string hosts_file;
  std::function<asio::ip::address()> own_address;  // where an interactive job's stub must listen
  spool::SpoolLayout layout;  // where kept files are, for UserQuota
  UserLimits user_limits;     // what one user may keep in the spool
};

class Scheduler {
 public:
  // Placements offered at once from the waiting list: enough to fill a
  // cluster's free slots quickly, few enough that a full cluster is not asked
  // thousands of times per heartbeat.
  static constexpr size_t kMaxPlacementsInFlight = 32;
  // A job that moved off a host is not sent back there sooner than this.
  static constexpr auto kNoMoveBack = std::chrono::seconds(60);

  explicit Scheduler(SchedulerContext context) : c_(std::move(context)) {}

  // A client's SubmitRequest; uid, gid and groups come from the kernel (`who`).
  void Submit(const std::shared_ptr<ClientChannel>& channel, const Caller& who, wire::JobSpec spec);
  // A client's BulkSubmitRequest (daemon/job_array): an array, or one part of
  // a list of lines, kept until its last part. The jobs are stored all at
  // once or not at all, and the client answered once they are on disk.
  void SubmitBulk(const std::shared_ptr<ClientChannel>& channel, const Caller& who, wire::BulkSubmitRequest request);
  // Start-up: batch jobs waiting in the spool wait again; interactive ones
  // lost their stub with the old daemon and are withdrawn.
  void Recover();
  // A job stopped at a checkpoint or lost with its host waits here again
  // (record already waiting, attempt + 1), avoiding `left` for a while.
  void Requeued(uint64_t record_id, const std::string& left);
  // Every heartbeat: blocked queues may be asked again; forget what expired.
  void Heartbeat();
  // A job ended here: a slot may be free.
  void SlotFreed();
  // A job taken for lost with its host leaves the waiting list (it is
  // requeued, or failed, by the finisher).
  void Forget(uint64_t record_id) { waiting_.Erase(record_id); }
  // The owner cancels a job that waits here: its stub hears `notice`.
  void CancelWaiting(uint64_t record_id, const std::string& notice, const std::string& why);
  // Its next placement goes to `host` (queue --migrate ID HOST).
  void MoveTo(uint64_t record_id, const std::string& host) { migrate_to_[record_id] = host; }
  // An interactive job whose shepherd could not start: its stub hears why.
  void TellStubIfNotStarted(const spool::JobRecord& record);
  // An interactive job's stub (submitted here, still connected), or null.
  std::shared_ptr<ClientChannel> StubOf(uint64_t record_id) const;
  // A -h style host name (entry, or a host name that is not ambiguous).
  Result<std::string> ResolveHostOption(const std::string& option) const;

  const WaitingList& waiting() const { return waiting_; }

 private:
  // Whether `who` may submit `jobs` jobs of `spec` (whose stored specs take
  // `spec_bytes` together; 0: one spec's size), fixing its credentials,
  // limits and hosts.
  Status Admit(const Caller& who, wire::JobSpec& spec, size_t jobs, uint64_t spec_bytes);
  // A batch job's checks and the fields it does without.
  Status PrepareBatch(wire::JobSpec& spec) const;
  void SubmitBatch(const std::shared_ptr<ClientChannel>& channel, wire::JobSpec spec);
  // Stores an array's elements, one per index or per line, all or none.
  void StoreArray(const std::shared_ptr<ClientChannel>& channel, const Caller& who, wire::JobSpec spec,
                  const std::vector<uint32_t>& indices, const std::vector<std::string>& lines);
  void AddStored(uint64_t record_id);
  void SchedulePass();
  void Pass();
  void TakeWaiting(uint64_t record_id);
  void OnOutcome(uint64_t record_id, uint64_t generation, const std::string& key, const PlacementOutcome& outcome);
  // The spec a restarted job runs with: QUEUE_RESTART_COUNT, and with restart
  // files RESTARTED=1 and the queue's restartflag.
  wire::JobSpec RestartSpec(const spool::JobRecord& record, wire::JobSpec spec, bool from_bundle) const;
  void CancelAtCheckpoint(uint64_t record_id);
  // Ends a job that never left this host's waiting list.
  void FailRecord(uint64_t record_id, const std::string& why, spool::JobState state = spool::JobState::kFailed);

  SchedulerContext c_;
  WaitingList waiting_;
  std::map<uint64_t, std::weak_ptr<ClientChannel>> stubs_;
  // Hosts a moved job is not sent back to before the time given (no ping-pong).
  std::map<uint64_t, std::map<std::string, std::chrono::steady_clock::time_point>> avoid_;
  std::map<uint64_t, std::string> migrate_to_;
  bool pass_posted_ = false;
  PendingLines<ClientChannel> pending_lines_;  // --from parts before their last
  RefusalLog refusals_;  // submissions refused by a user's limits, logged once a minute per uid
};

}  // namespace queue::daemon
