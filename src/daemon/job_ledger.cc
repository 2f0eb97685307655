// The job record's state machine: one checked method per transition.
#include "daemon/job_ledger.h"

#include <algorithm>

namespace queue::daemon {

namespace {

using spool::JobState;

std::string JobText(uint64_t id) { return "job record " + std::to_string(id); }

// Whether a record counts in its user's WaitingTally: submitted here, and
// WAITING or OFFERED.
bool Waits(const spool::JobRecord& r) { return r.origin_host.empty() && r.state == JobState::kWaiting; }

void AddTo(std::unordered_map<uint32_t, WaitingTally>& tally, const spool::JobRecord& r) {
  WaitingTally& t = tally[r.uid];
  ++t.jobs;
  t.spec_bytes += r.spec.size();
}

}  // namespace

JobPhase PhaseOf(const spool::JobRecord& r) {
  switch (r.state) {
    case JobState::kWaiting: return r.exec_host.empty() ? JobPhase::kWaiting : JobPhase::kOffered;
    case JobState::kRunning: return JobPhase::kRunning;
    default: return r.end_reported ? JobPhase::kClosed : JobPhase::kEnded;
  }
}

const char* ToString(JobPhase phase) {
  switch (phase) {
    case JobPhase::kWaiting: return "waiting";
    case JobPhase::kOffered: return "offered";
    case JobPhase::kRunning: return "running";
    case JobPhase::kEnded: return "ended";
    case JobPhase::kClosed: return "closed";
  }
  return "?";
}

Result<spool::JobRecord> JobLedger::Expect(uint64_t id, std::initializer_list<JobPhase> allowed,
                                           std::optional<uint32_t> attempt, const char* what) {
  auto found = store_.Get(id);
  if (!found.ok()) return Fail("spool: " + found.message());
  if (!found->has_value()) return Fail(JobText(id) + ": cannot " + what + ": no such record");
  spool::JobRecord& r = **found;
  const JobPhase phase = PhaseOf(r);
  if (std::find(allowed.begin(), allowed.end(), phase) == allowed.end())
    return Fail(JobText(id) + ": cannot " + what + " a job that is " + ToString(phase));
  if (attempt && *attempt != r.restarts)
    return Fail(JobText(id) + ": cannot " + what + " run " + std::to_string(*attempt) + ": the job is on run " +
                std::to_string(r.restarts));
  return std::move(r);
}

Status JobLedger::Write(const spool::JobRecord& record, bool was_waiting, const char* what) {
  batch_.Join();
  if (Status written = store_.Update(record); !written.ok())
    return Fail("spool: cannot record that " + JobText(record.id) + " " + what + ": " + written.message());
  // A transition changes neither the owner nor the spec, only whether it waits.
  if (!waiting_ || Waits(record) == was_waiting) return Status::Ok();
  if (!was_waiting) {
    AddTo(*waiting_, record);
    return Status::Ok();
  }
  WaitingTally& t = (*waiting_)[record.uid];
  --t.jobs;
  t.spec_bytes -= record.spec.size();
  if (t.jobs == 0) waiting_->erase(record.uid);
  return Status::Ok();
}

void JobLedger::Tally(const spool::JobRecord& added) {
  if (waiting_ && Waits(added)) AddTo(*waiting_, added);
}

Result<WaitingTally> JobLedger::WaitingOf(uint32_t uid) {
  if (store_.rollbacks() != rollbacks_seen_ || store_.transaction_lost()) waiting_.reset();
  if (!waiting_) {
    const uint64_t rollbacks = store_.rollbacks();
    auto counts = store_.CountWaitingByUser();
    if (!counts.ok()) return Fail("spool: " + counts.message());
    waiting_ = std::move(counts.value());
    rollbacks_seen_ = rollbacks;
  }
  auto found = waiting_->find(uid);
  return found == waiting_->end() ? WaitingTally{} : found->second;
}

Result<uint64_t> JobLedger::Submit(spool::JobRecord record,
                                   const std::function<std::string(uint64_t id)>& output_path) {
  record.state = JobState::kWaiting;
  record.exec_host.clear();
  record.restarts = 0;
  record.end_reported = false;
  batch_.Join();
  // The record and its output's name (known from its id), or neither.
  spool::JobStore::Transaction both = store_.Begin();
  if (!both.status().ok()) return Fail("spool: " + both.status().message());
  auto id = store_.Add(record);
  if (!id.ok()) return Fail("spool: " + id.message());
  record.id = *id;
  if (output_path) {
    record.output_path = output_path(*id);
    if (Status written = store_.Update(record); !written.ok())
      return Fail("spool: cannot record that " + JobText(*id) + " was submitted: " + written.message());
  }
  if (Status committed = both.Commit(); !committed.ok()) return Fail("spool: " + committed.message());
  Tally(record);
  if (metrics_ != nullptr) ++metrics_->jobs_submitted[record.queue];
  return *id;
}

Result<uint64_t> JobLedger::SubmitMany(size_t count,
                                       const std::function<spool::JobRecord(size_t i, uint64_t array_id)>& make) {
  if (count == 0) return Fail("a job array has at least one job");
  batch_.Join();
  // The ids are known before the records are written (the store numbers them
  // one after another), so that each record names its array in one write.
  auto first = store_.NextIdHint();
  if (!first.ok()) return Fail("spool: " + first.message());
  spool::JobStore::Transaction all = store_.Begin();
  if (!all.status().ok()) return Fail("spool: " + all.status().message());
  std::unordered_map<uint32_t, WaitingTally> added;
  for (size_t i = 0; i < count; ++i) {
    spool::JobRecord record = make(i, *first);
    record.state = JobState::kWaiting;
    record.exec_host.clear();
    record.restarts = 0;
    record.end_reported = false;
    record.array_id = *first;
    auto id = store_.Add(record);
    if (!id.ok())
      return Fail("spool: job " + std::to_string(i + 1) + " of " + std::to_string(count) +
                  " could not be stored, so none was: " + id.message());
    if (*id != *first + i)
      return Fail("spool: job " + std::to_string(i + 1) + " of " + std::to_string(count) + " was numbered " +
                  std::to_string(*id) + ", not " + std::to_string(*first + i) + ", so none was stored");
    if (Waits(record)) AddTo(added, record);
  }
  if (Status committed = all.Commit(); !committed.ok()) return Fail("spool: none of the jobs was stored: " + committed.message());
  // Counted once all are in: a failed element rolled back every one.
  if (waiting_)
    for (const auto& [uid, more] : added) {
      WaitingTally& t = (*waiting_)[uid];
      t.jobs += more.jobs;
      t.spec_bytes += more.spec_bytes;
    }
  return *first;
}

Status JobLedger::Offer(uint64_t id, const std::string& host, uint32_t attempt) {
  auto r = Expect(id, {JobPhase::kWaiting, JobPhase::kOffered}, attempt, "offer");
  if (!r.ok()) return r.error();
  const bool was = Waits(*r);
  r->exec_host = host;
  return Write(*r, was, "was offered");
}

Status JobLedger::WithdrawOffer(uint64_t id, const std::string& host, uint32_t attempt) {
  auto r = Expect(id, {JobPhase::kWaiting, JobPhase::kOffered}, attempt, "withdraw the offer of");
  if (!r.ok()) return r.error();
  const bool was = Waits(*r);
  if (r->exec_host.empty()) return Status::Ok();
  if (r->exec_host != host)
    return Fail(JobText(id) + ": cannot withdraw its offer to " + host + ": it is offered to " + r->exec_host + " now");
  r->exec_host.clear();
  return Write(*r, was, "is no longer offered");
}

Status JobLedger::Placed(uint64_t id, const std::string& host, uint32_t attempt, int64_t now) {
  auto r = Expect(id, {JobPhase::kWaiting, JobPhase::kOffered}, attempt, "place");
  if (!r.ok()) return r.error();
  const bool was = Waits(*r);
  r->state = JobState::kRunning;
  r->exec_host = host;
  r->start_time = now;
  return Write(*r, was, "was placed");
}

Status JobLedger::EndWaiting(uint64_t id, JobState final_state, const std::string& why, int64_t now) {
  if (final_state != JobState::kFailed && final_state != JobState::kCancelled)
    return Fail(JobText(id) + ": a job that never ran can only fail or be cancelled");
  auto r = Expect(id, {JobPhase::kWaiting, JobPhase::kOffered}, std::nullopt, "end");
  if (!r.ok()) return r.error();
  const bool was = Waits(*r);
  r->state = final_state;
  r->message = why;
  r->end_time = now;
  r->end_reported = true;
  if (Status written = Write(*r, was, "ended before it ran"); !written.ok()) return written;
  CountFinished(*r);
  return Status::Ok();
}

Status JobLedger::NoteCancelRequested(uint64_t id) {
  auto r = Expect(id, {JobPhase::kRunning}, std::nullopt, "note the cancel of");
  if (!r.ok()) return r.error();
  const bool was = Waits(*r);
  r->cancel_requested = true;
  return Write(*r, was, "was cancelled");
}

Status JobLedger::NoteRestartFiles(uint64_t id, uint32_t attempt, const std::string& note) {
  auto r = Expect(id, {JobPhase::kWaiting, JobPhase::kOffered}, attempt, "note the restart files of");
  if (!r.ok()) return r.error();
  const bool was = Waits(*r);
  // In its message for now, and in its notes for its end's message, which
  // replaces this one.
  r->message += (r->message.empty() ? "" : "; ") + note;
  r->restart_notes += (r->restart_notes.empty() ? "" : "; ") + note;
  return Write(*r, was, "had its restart files checked");
}

Status JobLedger::NoteWhileWaiting(uint64_t id, uint32_t attempt, const std::string& message) {
  auto r = Expect(id, {JobPhase::kWaiting, JobPhase::kOffered}, attempt, "note why it waits");
  if (!r.ok()) return r.error();
  const bool was = Waits(*r);
  r->message = message;
  return Write(*r, was, "noted why it waits");
}

Status JobLedger::Requeue(uint64_t id, uint32_t attempt, const std::string& message) {
  // From OFFERED too: an offer whose host died unanswered may have run there.
  auto r = Expect(id, {JobPhase::kOffered, JobPhase::kRunning, JobPhase::kEnded}, attempt, "requeue");
  if (!r.ok()) return r.error();
  const bool was = Waits(*r);
  if (!r->origin_host.empty()) return Fail(JobText(id) + ": only its submit host requeues a job");
  r->state = JobState::kWaiting;
  r->exec_host.clear();
  r->checkpointed = false;
  r->checkpoint_in_place = false;
  ++r->restarts;
  r->start_time = r->end_time = 0;
  r->wait_status = -1;
  r->shepherd_pid = 0;
  r->shepherd_start_time = 0;
  r->message = message;
  r->end_reported = false;
  if (Status written = Write(*r, was, "was queued again"); !written.ok()) return written;
  if (metrics_ != nullptr) ++metrics_->jobs_requeued[r->queue];
  return Status::Ok();
}

Status JobLedger::Close(uint64_t id, uint32_t attempt, const RunEnd& end) {
  if (end.state != JobState::kDone && end.state != JobState::kFailed)
    return Fail(JobText(id) + ": a run ends done or failed");
  auto r = Expect(id, {JobPhase::kOffered, JobPhase::kRunning, JobPhase::kEnded}, attempt, "close");
  if (!r.ok()) return r.error();
  const bool was = Waits(*r);
  r->state = end.state;
  r->wait_status = end.wait_status;
  r->cpu_seconds = end.cpu_seconds;
  if (end.start_time != 0) r->start_time = end.start_time;
  r->end_time = end.end_time;
  r->message = end.message;
  r->checkpointed = r->checkpoint_in_place = false;
  r->output_held = end.output_held;
  r->end_reported = true;
  if (Status written = Write(*r, was, "ended"); !written.ok()) return written;
  CountFinished(*r);
  return Status::Ok();
}

Status JobLedger::OutputDelivered(uint64_t id) {
  auto r = Expect(id, {JobPhase::kClosed}, std::nullopt, "note the output of");
  if (!r.ok()) return r.error();
  const bool was = Waits(*r);
  if (r->output_held.empty()) return Status::Ok();
  r->output_held.clear();
  return Write(*r, was, "had its output delivered");
}

Status JobLedger::AdmitLocal(uint64_t id, uint32_t attempt, const std::string& self, int64_t now) {
  auto r = Expect(id, {JobPhase::kWaiting, JobPhase::kOffered}, attempt, "admit");
  if (!r.ok()) return r.error();
  const bool was = Waits(*r);
  r->state = JobState::kRunning;
  r->exec_host = self;
  r->start_time = now;
  r->end_time = 0;
  r->wait_status = -1;
  r->shepherd_pid = 0;
  r->end_reported = false;
  r->checkpointed = r->checkpoint_in_place = false;
  if (Status written = Write(*r, was, "was admitted"); !written.ok()) return written;
  if (metrics_ != nullptr) ++metrics_->runs_started[r->queue];
  return Status::Ok();
}

Result<uint64_t> JobLedger::AdmitFromPeer(spool::JobRecord record, const std::string& self, int64_t now) {
  if (record.origin_host.empty() || record.origin_id == 0) return Fail("a peer's job names its origin");
  record.state = JobState::kRunning;
  record.exec_host = self;
  record.submit_time = record.start_time = now;
  record.end_time = 0;
  record.wait_status = -1;
  record.shepherd_pid = 0;
  record.end_reported = false;
  record.checkpointed = record.checkpoint_in_place = false;
  batch_.Join();
  auto id = store_.Add(record);
  if (!id.ok()) return Fail("spool: " + id.message());
  if (metrics_ != nullptr) ++metrics_->runs_started[record.queue];
  return *id;
}

Status JobLedger::NoteShepherd(uint64_t id, int32_t pid) {
  auto r = Expect(id, {JobPhase::kRunning}, std::nullopt, "note the shepherd of");
  if (!r.ok()) return r.error();
  const bool was = Waits(*r);
  r->shepherd_pid = pid;
  return Write(*r, was, "started");
}

Result<spool::JobRecord> JobLedger::EndRun(uint64_t id, uint32_t attempt, const RunEnd& end) {
  if (end.state != JobState::kDone && end.state != JobState::kFailed)
    return Fail(JobText(id) + ": a run ends done or failed");
  auto r = Expect(id, {JobPhase::kRunning}, attempt, "end the run of");
  if (!r.ok()) return r.error();
  const bool was = Waits(*r);
  r->state = end.state;
  r->wait_status = end.wait_status;
  r->cpu_seconds = end.cpu_seconds;
  r->end_time = end.end_time;
  r->message = end.message;
  r->checkpointed = end.checkpointed;
  r->checkpoint_in_place = end.checkpointed && end.checkpoint_in_place;
  // A local interactive job has nobody else to tell.
  r->end_reported = r->origin_host.empty() && !r->batch && !r->checkpointed;
  if (Status written = Write(*r, was, "ended its run"); !written.ok()) return Fail(written.message());
  if (metrics_ != nullptr && r->checkpointed) ++metrics_->checkpoints;
  if (r->end_reported) CountFinished(*r);
  return std::move(r.value());
}

Status JobLedger::Acknowledge(uint64_t id) {
  auto r = Expect(id, {JobPhase::kEnded, JobPhase::kClosed}, std::nullopt, "close");
  if (!r.ok()) return r.error();
  const bool was = Waits(*r);
  if (r->end_reported) return Status::Ok();
  if (r->origin_host.empty()) return Fail(JobText(id) + ": only a peer acknowledges an end");
  r->end_reported = true;
  return Write(*r, was, "had its end acknowledged");
}

void JobLedger::CountFinished(const spool::JobRecord& record) {
  if (metrics_ == nullptr || !record.origin_host.empty()) return;
  ++metrics_->jobs_finished[{record.queue, std::string(spool::ToString(record.state))}];
}

Result<size_t> JobLedger::Expire(int64_t before, size_t limit) {
  // A record whose output is still held stays: the spool still has its output.
  batch_.Join();
  return store_.RemoveClosedBefore(before, limit);
}

}  // namespace queue::daemon
