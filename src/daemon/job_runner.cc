// Admission of jobs and the life of their shepherds.
#include "daemon/job_runner.h"

#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>
#include <iostream>

extern char** environ;

namespace queue::daemon {

namespace {

std::string DescribeEnd(const spool::JobRecord& r) {
  std::string id = std::to_string(r.origin_id != 0 ? r.origin_id : r.id);
  if (r.state == spool::JobState::kFailed) return "FAILED job " + id + ": " + r.message;
  std::string how = WIFSIGNALED(r.wait_status) ? "signal " + std::to_string(WTERMSIG(r.wait_status))
                                               : "exit " + std::to_string(WEXITSTATUS(r.wait_status));
  return "END job " + id + ": " + how + ", " + std::to_string(r.cpu_seconds).substr(0, 6) + " s CPU";
}

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

// The job's limits: the submitter's, capped by the profile's (SPEC §3).
void ApplyProfileLimits(wire::JobSpec& spec, const profile::QueuePolicy& policy) {
  for (const auto& [kind, setting] : policy.rlimits) {
    uint32_t resource = static_cast<uint32_t>(profile::RlimitResource(kind));
    wire::ResourceLimit* limit = nullptr;
    for (auto& l : spec.rlimits)
      if (l.resource == resource) limit = &l;
    if (limit == nullptr) {
      spec.rlimits.push_back({resource, wire::ResourceLimit::kUnlimited, wire::ResourceLimit::kUnlimited});
      limit = &spec.rlimits.back();
    }
    limit->soft = std::min(limit->soft, setting.soft);
    if (setting.hard) limit->hard = std::min(limit->hard, *setting.hard);
    limit->soft = std::min(limit->soft, limit->hard);
  }
}

}  // namespace

Result<uint64_t> JobRunner::Admit(AdmitRequest request, double load1, bool* permanent) {
  QueueState* queue = queues_.Find(request.spec.queue);
  *permanent = true;
  if (queue == nullptr) return Fail("has no queue \"" + request.spec.queue + "\"");
  if (request.spec.uid == 0 && !queue->policy.allow_root)
    return Fail("queue \"" + queue->name + "\" does not run root's jobs (no allowroot in its profile)");
  if (geteuid() != 0 && request.spec.uid != geteuid())
    return Fail("this daemon runs as a single user (uid " + std::to_string(geteuid()) +
                ") and cannot run jobs for uid " + std::to_string(request.spec.uid));
  *permanent = false;
  if (auto refusal = queues_.RefusalReason(request.spec.queue, load1); refusal) return Fail(*refusal);
  ApplyProfileLimits(request.spec, queue->policy);

  spool::JobRecord record;
  record.origin_host = request.origin_host;
  record.origin_id = request.origin_job_id;
  record.uid = request.spec.uid;
  record.gid = request.spec.gid;
  record.queue = request.spec.queue;
  record.job_name = request.spec.job_name;
  record.state = spool::JobState::kRunning;
  record.spec = wire::EncodePayload(wire::SubmitRequest{request.spec});
  record.exec_host = self_host_;
  record.submit_time = record.start_time = Now();
  batch_.Join();
  auto id = store_.Add(record);
  if (!id.ok()) return Fail("spool: " + id.message());

  uint64_t job_id = request.origin_job_id != 0 ? request.origin_job_id : *id;
  if (auto spawned = SpawnShepherd(*id, job_id, request.spec, queue->policy); !spawned.ok()) {
    record.id = *id;
    record.state = spool::JobState::kFailed;
    record.message = spawned.message();
    (void)store_.Update(record);
    return Fail(spawned.message());
  }
  ++queue->running;
  if (on_notice_)
    on_notice_(queue->name, "START job " + std::to_string(job_id) + " (" + request.spec.job_name + ") for uid " +
                                std::to_string(request.spec.uid) +
                                (request.origin_host.empty() ? "" : " from " + request.origin_host));
  return *id;
}

Status JobRunner::SpawnShepherd(uint64_t record_id, uint64_t job_id, const wire::JobSpec& spec,
                                const profile::QueuePolicy& policy) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return Fail("cannot create the shepherd's channel: " + ErrnoText(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 3);  // dup2 clears close-on-exec
  // Asio does not mark its sockets close-on-exec: without this the shepherd,
  // which outlives us, would hold our listening port and the spool open.
  posix_spawn_file_actions_addclosefrom_np(&actions, 4);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &all);
  std::string fd_arg = "--fd=3";
  char* argv[] = {const_cast<char*>(shepherd_path_.c_str()), fd_arg.data(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawn(&pid, shepherd_path_.c_str(), &actions, &attributes, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return Fail("cannot start the shepherd " + shepherd_path_ + ": " + ErrnoText(rc));
  }
  auto channel = std::make_shared<ShepherdChannel>(
      asio::local::stream_protocol::socket(io_, asio::local::stream_protocol(), fds[0]));
  shepherds_[record_id] = Running{record_id, spec.queue, channel};
  channel->Start(
      [this, record_id](wire::MessageType type, std::string_view payload) {
        if (type == wire::MessageType::kShepherdEvent) OnShepherdEvent(record_id, payload);
      },
      [this, record_id](const std::string& reason) { OnShepherdGone(record_id, reason); });
  channel->Send(wire::ShepherdStart{job_id, self_host_, policy.nice, policy.allow_root, spec});
  return Status::Ok();
}

void JobRunner::OnShepherdEvent(uint64_t record_id, std::string_view payload) {
  auto event = wire::DecodePayload<wire::ShepherdEvent>(payload);
  batch_.Join();
  auto record = store_.Get(record_id);
  if (!event.ok() || !record.ok() || !record->has_value()) return;
  spool::JobRecord& r = **record;
  switch (event->kind) {
    case wire::ShepherdEventKind::kStarted:
      r.shepherd_pid = event->pid;
      break;
    case wire::ShepherdEventKind::kFinished:
      r.state = spool::JobState::kDone;
      r.wait_status = event->wait_status;
      r.cpu_seconds = event->cpu_seconds;
      r.end_time = Now();
      Release(record_id);
      break;
    case wire::ShepherdEventKind::kFailed:
      r.state = spool::JobState::kFailed;
      r.message = event->message;
      r.end_time = Now();
      Release(record_id);
      break;
  }
  if (auto updated = store_.Update(r); !updated.ok())
    std::cerr << "queued: spool: " << updated.message() << "\n";
  if (event->kind != wire::ShepherdEventKind::kStarted && on_ended_) on_ended_(r);
  // mailsupervisor: `e` for ends, `c` for failures (crashes).
  if (const QueueState* q = queues_.Find(r.queue); q != nullptr && on_notice_ &&
      ((event->kind == wire::ShepherdEventKind::kFinished && q->policy.mail_supervisor.end) ||
       (event->kind == wire::ShepherdEventKind::kFailed && q->policy.mail_supervisor.crash)))
    on_notice_(r.queue, DescribeEnd(r));
}

void JobRunner::OnShepherdGone(uint64_t record_id, const std::string& reason) {
  auto it = shepherds_.find(record_id);
  if (it == shepherds_.end() || it->second.finished) return;
  batch_.Join();
  auto record = store_.Get(record_id);
  if (record.ok() && record->has_value()) {
    spool::JobRecord& r = **record;
    r.state = spool::JobState::kFailed;
    r.message = "the shepherd went away (" + reason + ")";
    r.end_time = Now();
    (void)store_.Update(r);
    if (on_ended_) on_ended_(r);
  }
  Release(record_id);
}

void JobRunner::Release(uint64_t record_id) {
  auto it = shepherds_.find(record_id);
  if (it == shepherds_.end() || it->second.finished) return;
  it->second.finished = true;
  if (QueueState* queue = queues_.Find(it->second.queue); queue != nullptr && queue->running > 0)
    --queue->running;
  auto channel = it->second.channel;
  shepherds_.erase(it);
  asio::post(io_, [channel] { channel->Close("released"); });
}

bool JobRunner::ControlJob(uint64_t record_id, wire::ShepherdAction action, const std::string& message) {
  auto it = shepherds_.find(record_id);
  if (it == shepherds_.end() || it->second.finished) return false;
  it->second.channel->Send(wire::ShepherdControl{action, message});
  return true;
}

void JobRunner::ControlQueue(const std::string& queue, wire::ShepherdAction action, const std::string& message) {
  for (auto& [id, running] : shepherds_)
    if (running.queue == queue && !running.finished) running.channel->Send(wire::ShepherdControl{action, message});
}

}  // namespace queue::daemon
