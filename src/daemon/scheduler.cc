// Jobs submitted here, until a host takes them: submission, the waiting list's passes, restarts.
#include "daemon/scheduler.h"

#include <unistd.h>

#include <ctime>
#include <iostream>

#include "daemon/caller_limits.h"
#include "util/wall_clock.h"

namespace queue::daemon {

namespace {

using util::Now;

// `<cwd>/<jobname>.o<id>`, the original's name for a batch job's output, with
// the id as the cluster spells it ("17.2"), so that jobs submitted on several
// hosts into one shared directory never share a name.
std::string OutputPathFor(const wire::JobSpec& spec, const std::string& id) {
  if (wire::DiscardsOutput(spec)) return "";
  std::string name = spec.job_name.empty() ? "job" : spec.job_name;
  for (char& c : name)
    if (c == '/') c = '_';
  return spec.cwd + (spec.cwd.ends_with('/') ? "" : "/") + name + ".o" + id;
}

}  // namespace

Result<std::string> Scheduler::ResolveHostOption(const std::string& option) const {
  const cluster::HostEntry* match = nullptr;
  int by_name = 0;
  for (const auto& h : c_.hosts) {
    if (h.entry == option) return h.entry;
    if (h.host == option) {
      match = &h;
      ++by_name;
    }
  }
  if (by_name == 1) return match->entry;
  return Fail("host " + option + " is not in the hosts file " + c_.hosts_file +
              (by_name > 1 ? " (the name is ambiguous: give its port)" : "") +
              "; authorised hosts: " + cluster::JoinEntries(c_.hosts));
}

// What every submission goes through before a record exists: credentials
// from the kernel, limits capped at the caller's, host options resolved, and
// what the user keeps in the spool with `jobs` more of this spec.
Status Scheduler::Admit(const Caller& who, wire::JobSpec& spec, size_t jobs, uint64_t spec_bytes) {
  spec.uid = who.uid;
  spec.gid = who.gid;
  spec.groups = who.groups;
  // The job's limits are the submitter's real ones at most, whatever the message says.
  if (!who.limits.ok()) return Fail("queued cannot read your resource limits: " + who.limits.message());
  if (auto lowered = CapLimits(spec.rlimits, *who.limits); !lowered.empty()) {
    std::string list;
    for (const auto& l : lowered) list += (list.empty() ? "" : "; ") + l;
    std::cerr << "queued: uid " << who.uid << " asked for resource limits above its own, lowered to them: " << list
              << "\n";
  }
  for (std::string* option : {&spec.only_host, &spec.preferred_host}) {
    if (option->empty() || *option == "+") {
      option->clear();
      continue;
    }
    auto resolved = ResolveHostOption(*option);
    if (!resolved.ok()) return resolved.error();
    *option = *resolved;
  }
  // What one user may keep in this spool (UserQuota): refused here, before a record exists.
  auto usage = MeasureUser(c_.ledger, c_.layout, who.uid);
  if (!usage.ok()) return Fail("spool: " + usage.message());
  if (spec_bytes == 0) spec_bytes = wire::EncodeStoredSpec(spec).size();
  if (Status fits = CheckSubmission(who.uid, *usage, spec_bytes, c_.user_limits, c_.self, jobs); !fits.ok()) {
    if (auto line = refusals_.Note(std::to_string(who.uid), fits.message(), RefusalLog::Clock::now()))
      std::cerr << "queued: " << *line << "\n";
    return fits;
  }
  return Status::Ok();
}

void Scheduler::Submit(const std::shared_ptr<ClientChannel>& channel, const Caller& who,
                        wire::JobSpec spec) {
  if (Status admitted = Admit(who, spec, 1, 0); !admitted.ok())
    return channel->Send(wire::ErrorReply{admitted.message()});
  if (spec.batch) return SubmitBatch(channel, std::move(spec));
  // Shepherds connect back to the stub as the job's owner; the stub must be here.
  asio::error_code ec;
  auto stub_address = asio::ip::make_address(spec.stub_address, ec);
  if (ec || stub_address != c_.own_address() || spec.stub_port == 0)
    return channel->Send(wire::ErrorReply{"the stub must listen on this host's address " +
                                          c_.own_address().to_string()});
  spool::JobRecord record;
  record.uid = spec.uid;
  record.gid = spec.gid;
  record.queue = spec.queue;
  record.job_name = spec.job_name;
  record.state = spool::JobState::kWaiting;
  record.submit_time = Now();
  record.spec = wire::EncodeStoredSpec(spec);  // kept to restart it elsewhere
  auto id = c_.ledger.Submit(std::move(record));
  if (!id.ok()) return channel->Send(wire::ErrorReply{id.message()});
  uint64_t record_id = *id;
  stubs_[record_id] = channel;
  c_.placement.Start(record_id, spec, {}, [this, channel, record_id, spec](const PlacementOutcome& outcome) {
    if (!outcome.host.empty()) return channel->Send(wire::SubmitReply{{record_id, c_.names.SelfNumber()}, outcome.host, ""});
    if (!outcome.may_wait) {
      FailRecord(record_id, outcome.why);
      return channel->Send(wire::ErrorReply{outcome.why});
    }
    waiting_.Add(record_id, false, WaitingList::WaitKey(spec), spec);
    channel->Send(wire::SubmitReply{{record_id, c_.names.SelfNumber()}, "", outcome.why});
  });
}

// A batch job is answered once it is on disk; from then on the spool, not the
// client, holds it, and the waiting list offers it to the hosts.
Status Scheduler::PrepareBatch(wire::JobSpec& spec) const {
  if (spec.cwd.empty() || spec.cwd.front() != '/') return Fail("a batch job needs an absolute working directory");
  if (c_.queues.Find(spec.queue) == nullptr && c_.hosts.size() == 1)
    return Fail("no queue \"" + spec.queue + "\" on " + c_.self);
  spec.pty = wire::PtyMode::kNone;
  spec.stub_address.clear();
  spec.stub_port = 0;
  spec.session_key.clear();
  return Status::Ok();
}

namespace {

// The record of a batch job submitted here, from its spec, as the ledger stores it.
spool::JobRecord WaitingBatchRecord(const wire::JobSpec& spec, int64_t submit_time) {
  spool::JobRecord record;
  record.uid = spec.uid;
  record.gid = spec.gid;
  record.queue = spec.queue;
  record.job_name = spec.job_name;
  record.batch = true;
  record.state = spool::JobState::kWaiting;
  record.submit_time = submit_time;
  record.spec = wire::EncodeStoredSpec(spec);
  return record;
}

}  // namespace

void Scheduler::SubmitBatch(const std::shared_ptr<ClientChannel>& channel, wire::JobSpec spec) {
  if (Status prepared = PrepareBatch(spec); !prepared.ok()) return channel->Send(wire::ErrorReply{prepared.message()});
  auto id = c_.ledger.Submit(WaitingBatchRecord(spec, Now()),
                            [this, &spec](uint64_t id) { return OutputPathFor(spec, c_.names.LocalLabel(id)); });
  if (!id.ok()) return channel->Send(wire::ErrorReply{id.message()});
  uint64_t record_id = *id;
  c_.ledger.AfterCommit([this, channel, record_id](const Status& committed) {
    if (!committed.ok()) {
      waiting_.Erase(record_id);
      return channel->Send(wire::ErrorReply{"spool: the job was not stored: " + committed.message()});
    }
    channel->Send(wire::SubmitReply{{record_id, c_.names.SelfNumber()}, "", ""});
  });
  waiting_.Add(record_id, true, WaitingList::WaitKey(spec));
  SchedulePass();
}

void Scheduler::SubmitBulk(const std::shared_ptr<ClientChannel>& channel, const Caller& who,
                           wire::BulkSubmitRequest request) {
  if (!request.ranges.empty()) {
    wire::JobSpec spec = std::move(request.spec);
    return StoreArray(channel, who, std::move(spec), ExpandIndices(request.ranges), {});
  }
  // No more lines than the user may keep waiting: a list past that is refused
  // as soon as it is, not after all its parts.
  const bool more = request.more;
  auto gathered = pending_lines_.Add(channel, std::move(request), c_.user_limits.waiting_jobs);
  if (!gathered.ok()) return channel->Send(wire::ErrorReply{gathered.message()});
  if (more) return channel->Send(wire::BulkSubmitReply{false, *gathered, {}});
  auto all = pending_lines_.Take(channel);
  std::vector<uint32_t> indices(all.lines.size());
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<uint32_t>(i + 1);
  StoreArray(channel, who, std::move(all.spec), indices, all.lines);
}

void Scheduler::StoreArray(const std::shared_ptr<ClientChannel>& channel, const Caller& who, wire::JobSpec spec,
                           const std::vector<uint32_t>& indices, const std::vector<std::string>& lines) {
  const size_t count = indices.size();
  if (count > wire::kMaxBulkJobs) return channel->Send(wire::ErrorReply{"too many jobs in one submission"});
  // The quota counts every element's spec: the common one, its index and its line.
  uint64_t spec_bytes = wire::EncodeStoredSpec(spec).size() * count + 64 * count;
  for (const auto& line : lines) spec_bytes += line.size();
  if (Status admitted = Admit(who, spec, count, spec_bytes); !admitted.ok())
    return channel->Send(wire::ErrorReply{admitted.message()});
  if (Status prepared = PrepareBatch(spec); !prepared.ok()) return channel->Send(wire::ErrorReply{prepared.message()});
  const int64_t now = Now();
  auto array_id = c_.ledger.SubmitMany(count, [&](size_t i, uint64_t array) {
    const std::string label = c_.names.LocalLabel(array);
    wire::JobSpec element = ElementSpec(spec, label, indices[i], lines.empty() ? std::string() : lines[i]);
    spool::JobRecord record = WaitingBatchRecord(element, now);
    record.array_index = indices[i];
    record.output_path = OutputPathFor(element, label + "_" + std::to_string(indices[i]));
    return record;
  });
  if (!array_id.ok()) return channel->Send(wire::ErrorReply{array_id.message()});
  const uint64_t first = *array_id;
  c_.ledger.AfterCommit([this, channel, first, count](const Status& committed) {
    if (!committed.ok()) {
      for (uint64_t id = first; id < first + count; ++id) waiting_.Erase(id);
      return channel->Send(wire::ErrorReply{"spool: none of the " + std::to_string(count) +
                                            " jobs was stored: " + committed.message()});
    }
    channel->Send(wire::BulkSubmitReply{true, count, {first, c_.names.SelfNumber()}});
  });
  const std::string key = WaitingList::WaitKey(spec);
  for (uint64_t id = first; id < first + count; ++id) waiting_.Add(id, true, key);
  SchedulePass();
}

// Ends a job that never left this host's waiting list. One that moved on
// meanwhile (placed, ended, cancelled) is someone else's to end: a placement
// that gave up because of that must not overwrite its record.
void Scheduler::FailRecord(uint64_t record_id, const std::string& why, spool::JobState state) {
  auto record = c_.ledger.Get(record_id);
  if (!record.ok() || !record->has_value() || (*record)->state != spool::JobState::kWaiting) return;
  if (Status ended = c_.ledger.EndWaiting(record_id, state, why, Now()); !ended.ok()) {
    std::cerr << "queued: " << ended.message() << "\n";
    return;
  }
  c_.ledger.OnceOnDisk([this, record_id] { c_.finisher.DiscardOriginFiles(record_id); });
}

void Scheduler::SchedulePass() {
  if (pass_posted_) return;
  pass_posted_ = true;
  asio::post(c_.io, [this] { Pass(); });
}

// Jobs no host could take wait here, at their submit host, and are offered
// again on every heartbeat and whenever a slot may have freed: a job is never
// handed from spool to spool while it waits, so it cannot be lost or run twice
// on the way. After a refusal for now, the jobs behind it with the same queue
// and host constraint wait for the next heartbeat rather than ask again.
// Only as many as may start now: a pass costs what it starts plus a step per
// queue and host constraint, however long the list (daemon/waiting_list).
// Placements may end (and change the list) before StartPlacement returns.
void Scheduler::Pass() {
  pass_posted_ = false;
  waiting_.Pass(kMaxPlacementsInFlight, [this](uint64_t record_id) { TakeWaiting(record_id); });
}

std::shared_ptr<ClientChannel> Scheduler::StubOf(uint64_t record_id) const {
  auto found = stubs_.find(record_id);
  return found == stubs_.end() ? nullptr : found->second.lock();
}

void Scheduler::AddStored(uint64_t record_id) {
  auto record = c_.ledger.Get(record_id);
  if (!record.ok() || !record->has_value()) return;
  if ((*record)->cancel_requested) return CancelAtCheckpoint(record_id);
  auto spec = wire::DecodeStoredSpec((*record)->spec);
  if (!spec.ok()) {
    std::cerr << "queued: job " << record_id << " fails: " << spec.message() << "\n";
    return FailRecord(record_id, spec.message());
  }
  waiting_.Add(record_id, true, WaitingList::WaitKey(*spec));
}

// Starts placing one waiting job, or drops it from the list when it is gone.
void Scheduler::TakeWaiting(uint64_t record_id) {
  const WaitingList::Job& job = *waiting_.Find(record_id);
  wire::JobSpec spec;
  PlacementOptions options;
  if (job.stored) {
    auto record = c_.ledger.Get(record_id);
    if (!record.ok()) return;  // the spool is failing; try again later
    if (!record->has_value() || (*record)->state != spool::JobState::kWaiting) {
      waiting_.Erase(record_id);
      return;
    }
    auto decoded = wire::DecodeStoredSpec((*record)->spec);
    if (!decoded.ok()) {
      std::cerr << "queued: job " << record_id << " fails: " << decoded.message() << "\n";
      FailRecord(record_id, decoded.message());
      waiting_.Erase(record_id);
      return;
    }
    const spool::JobRecord& r = **record;
    if (!r.batch && !StubOf(record_id)) {
      FailRecord(record_id, "withdrawn: its stub went away while it waited to go on", spool::JobState::kCancelled);
      waiting_.Erase(record_id);
      return;
    }
    // Its kept restart files are checked before they go anywhere (on the
    // worker: a GiB takes seconds); it is taken again once they are.
    if (!c_.finisher.RestartBundleChecked(r)) {
      uint64_t generation = waiting_.Take(record_id);
      return c_.finisher.CheckRestartBundle(r, [this, record_id, generation] {
        if (waiting_.Return(record_id, generation)) SchedulePass();
      });
    }
    options.offered_to = r.exec_host;
    options.attempt = r.restarts;
    std::string bundle = c_.finisher.RestartBundle(record_id);
    if (::access(bundle.c_str(), F_OK) == 0) options.bundle = bundle;
    spec = r.restarts > 0 ? RestartSpec(r, std::move(decoded.value()), !options.bundle.empty())
                          : std::move(decoded.value());
    auto now = std::chrono::steady_clock::now();
    if (auto avoid = avoid_.find(record_id); avoid != avoid_.end())
      for (const auto& [host, until] : avoid->second)
        if (until > now) options.avoid.push_back(host);
    // Where its owner asked it to move overrides where it was first pinned (-h).
    if (auto target = migrate_to_.find(record_id); target != migrate_to_.end()) {
      options.move_to = target->second;
      std::erase(options.avoid, target->second);
    }
  } else {
    auto client = StubOf(record_id);
    if (!client || client->closed()) {
      FailRecord(record_id, "withdrawn: its stub went away while it waited", spool::JobState::kCancelled);
      waiting_.Erase(record_id);
      return;
    }
    spec = job.spec;
  }
  uint64_t generation = waiting_.Take(record_id);
  c_.placement.Start(record_id, spec, options, [this, record_id, generation, key = job.key](const PlacementOutcome& outcome) {
    OnOutcome(record_id, generation, key, outcome);
  });
}

wire::JobSpec Scheduler::RestartSpec(const spool::JobRecord& record, wire::JobSpec spec, bool from_bundle) const {
  auto set_env = [&spec](const std::string& name, const std::string& value) {
    std::erase_if(spec.env, [&name](const std::string& v) { return v.starts_with(name + "="); });
    spec.env.push_back(name + "=" + value);
  };
  set_env("QUEUE_RESTART_COUNT", std::to_string(record.restarts));
  if (!from_bundle) return spec;
  set_env("RESTARTED", "1");
  const QueueState* queue = c_.queues.Find(record.queue);
  if (queue == nullptr || queue->policy.restart_flag.empty() || spec.argv.empty()) return spec;
  // Restored from its CRIU image, the job never sees its argv again; started
  // afresh when the image cannot be restored, it has no restart file to read.
  if (queue->policy.checkpoint_mode == profile::CheckpointMode::kTransparent) return spec;
  if (queue->policy.restart_flag_pos == profile::RestartFlagPosition::kLast)
    spec.argv.push_back(queue->policy.restart_flag);
  else
    spec.argv.insert(spec.argv.begin() + 1, queue->policy.restart_flag);
  return spec;
}

void Scheduler::OnOutcome(uint64_t record_id, uint64_t generation, const std::string& key,
                                  const PlacementOutcome& outcome) {
  if (!waiting_.Return(record_id, generation)) return;  // cancelled or re-queued meanwhile
  if (outcome.unresolved) return;  // asked there again on the next pass
  const bool stored = waiting_.Find(record_id)->stored;
  auto client = StubOf(record_id);
  if (outcome.host.empty()) {
    if (auto target = migrate_to_.find(record_id); target != migrate_to_.end()) {
      // The host its owner asked for cannot take it (down, busy, or the transfer
      // failed): it goes on where it can, its own host included, as if never asked.
      std::string note = "it cannot go on on " + target->second + " (" + outcome.why + "); it goes on where it can";
      std::cerr << "queued: job " << c_.names.LocalLabel(record_id) << ": " << note << "\n";
      migrate_to_.erase(target);
      avoid_.erase(record_id);
      if (client) client->Send(wire::SubmitReply{{record_id, c_.names.SelfNumber()}, "", note});
      return SchedulePass();
    }
  }
  if (outcome.host.empty() && outcome.may_wait) {
    waiting_.SetWhy(record_id, outcome.why, outcome.summary);  // shown by queue --jobs
    waiting_.Block(key);
    return;
  }
  if (outcome.host.empty()) FailRecord(record_id, outcome.why);
  if (client) {
    if (outcome.host.empty()) {
      client->Send(wire::ErrorReply{outcome.why});
    } else {
      // A job placed again after a checkpoint: say where, and from what.
      std::string note;
      if (stored)
        if (auto record = c_.ledger.Get(record_id); record.ok() && record->has_value() && (*record)->restarts > 0)
          note = "job " + c_.names.LocalLabel(record_id) + " goes on on " + outcome.host + " (" + (*record)->message + ")";
      client->Send(wire::SubmitReply{{record_id, c_.names.SelfNumber()}, outcome.host, note});
    }
  }
  waiting_.Erase(record_id);
  if (!outcome.host.empty()) {
    migrate_to_.erase(record_id);
    SchedulePass();
  }
}

// An interactive job whose shepherd could not be started: its stub hears why
// from here (out of descriptors, say) instead of waiting out its start timeout.
void Scheduler::TellStubIfNotStarted(const spool::JobRecord& record) {
  if (record.batch || !record.origin_host.empty() || !HadNoShepherd(record)) return;
  auto stub = stubs_.find(record.id);
  if (stub == stubs_.end()) return;
  if (auto client = stub->second.lock())
    client->Send(wire::ErrorReply{"job " + std::to_string(record.id) + " failed on " + record.exec_host + ": " +
                                  record.message});
}

// Its owner cancelled it while it ran, and it stopped at a checkpoint before
// the cancel reached it: it does not go on.
void Scheduler::CancelAtCheckpoint(uint64_t record_id) {
  const std::string why = "cancelled by its owner at a checkpoint";
  if (auto stub = stubs_.find(record_id); stub != stubs_.end())
    if (auto client = stub->second.lock())
      client->Send(wire::ErrorReply{"[job " + c_.names.LocalLabel(record_id) + " " + why + "]"});
  FailRecord(record_id, why, spool::JobState::kCancelled);
}

void Scheduler::Heartbeat() {
  waiting_.ClearBlocked();
  Pass();
  // Forget the stubs that left, the parts of lists whose client left, and the avoidances that expired.
  pending_lines_.ForgetClosed();
  std::erase_if(stubs_, [](const auto& entry) { return entry.second.expired(); });
  auto now = std::chrono::steady_clock::now();
  for (auto it = avoid_.begin(); it != avoid_.end();) {
    std::erase_if(it->second, [&](const auto& host) { return host.second <= now; });
    it = it->second.empty() ? avoid_.erase(it) : std::next(it);
  }
}

void Scheduler::SlotFreed() {
  waiting_.ClearBlocked();
  SchedulePass();
}

void Scheduler::Requeued(uint64_t record_id, const std::string& left) {
  if (!left.empty()) avoid_[record_id][left] = std::chrono::steady_clock::now() + kNoMoveBack;
  AddStored(record_id);
  SchedulePass();
}

void Scheduler::CancelWaiting(uint64_t record_id, const std::string& notice, const std::string& why) {
  if (waiting_.Erase(record_id))
    if (auto client = StubOf(record_id)) client->Send(wire::ErrorReply{notice});
  FailRecord(record_id, why, spool::JobState::kCancelled);
}

void Scheduler::Recover() {
  spool::JobFilter filter;
  filter.states = {spool::JobState::kWaiting};
  filter.local_origin = true;
  auto list = c_.ledger.List(filter);
  if (!list.ok()) {
    std::cerr << "queued: spool: cannot list waiting jobs: " << list.message() << "\n";
    return;
  }
  size_t batch_jobs = 0;
  for (const auto& r : *list) {
    if (r.batch) {
      AddStored(r.id);
      ++batch_jobs;
    } else {
      FailRecord(r.id, "withdrawn: queued restarted while it waited", spool::JobState::kCancelled);
    }
  }
  if (batch_jobs > 0) std::cerr << "queued: " << batch_jobs << " batch job(s) waiting in the spool\n";
}

}  // namespace queue::daemon
