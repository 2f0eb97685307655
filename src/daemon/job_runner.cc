// Admission of jobs and the life of their shepherds.
#include "daemon/job_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "daemon/checkpoint_files.h"
#include "exec/shepherd_status.h"
#include "migrate/criu.h"
#include "migrate/restart_bundle.h"
#include "spool/output_file.h"
#include "spool/spool_dir.h"
#include "util/posted.h"
#include "util/wall_clock.h"

extern char** environ;

namespace queue::daemon {

namespace {

// wait_status of a job that vanished while it ran (no status can be known).
constexpr int32_t kLostWaitStatus = -2;
// wait_status of a job whose shepherd could not be started (out of descriptors,
// say): nothing reached its stub, which must hear why from the submit daemon.
constexpr int32_t kNoShepherdWaitStatus = -3;
// After a CRIU dump that failed, the job is not asked again sooner than this.
constexpr auto kCheckpointRetryAfter = std::chrono::seconds(60);
// Far longer than any dump takes (a 1 GiB job dumps in seconds).
constexpr auto kCriuDumpLimit = std::chrono::minutes(10);

std::string DescribeEnd(const spool::JobRecord& r, const std::string& id) {
  if (r.state == spool::JobState::kFailed) return "FAILED job " + id + ": " + r.message;
  std::string how = WIFSIGNALED(r.wait_status) ? "signal " + std::to_string(WTERMSIG(r.wait_status))
                                               : "exit " + std::to_string(WEXITSTATUS(r.wait_status));
  return "END job " + id + ": " + how + ", " + std::to_string(r.cpu_seconds).substr(0, 6) + " s CPU";
}

using util::Now;

// Process `pid`'s state letter and parent, from /proc ({"", 0} when it is gone).
std::pair<std::string, pid_t> StateAndParent(pid_t pid) {
  std::ifstream stat_file("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat_file, line);
  std::istringstream after_name(line.substr(std::min(line.size(), line.rfind(')') + 1)));
  std::string state;
  pid_t parent = 0;
  if (!(after_name >> state >> parent)) return {"", 0};
  return {state, parent};
}

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

// A listening socket at `path` for the shepherd to keep; only root (the spool
// is root's, mode 0700) can reach it.
Result<int> ListenAt(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return Fail("socket path too long: " + path);
  path.copy(address.sun_path, path.size());
  ::unlink(path.c_str());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail("socket: " + ErrnoText(errno));
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || listen(fd, 4) != 0) {
    std::string why = ErrnoText(errno);
    close(fd);
    return Fail("cannot listen on " + path + ": " + why);
  }
  return fd;
}

// The restart file a job is told about: the profile's first plain `restartfile`
// name, else `<jobname>.restart`, in the job's cwd.
std::string RestartFilePath(const wire::JobSpec& spec, const profile::QueuePolicy& policy) {
  std::string name = spec.job_name.empty() ? "job" : spec.job_name;
  for (char& c : name)
    if (c == '/') c = '_';
  name += ".restart";
  if (!policy.restart_files.empty() && policy.restart_files.front().find_first_of("*?[") == std::string::npos)
    name = policy.restart_files.front();
  if (!name.empty() && name.front() == '/') return name;
  return spec.cwd + (spec.cwd.ends_with('/') ? "" : "/") + name;
}

// What travels when the job checkpoints: the profile's `restartfile` names, or
// the file it was told about.
std::vector<std::string> RestartPatterns(const wire::JobSpec& spec, const profile::QueuePolicy& policy) {
  if (!policy.restart_files.empty()) return policy.restart_files;
  for (const auto& variable : spec.env)
    if (variable.starts_with("QUEUE_RESTART_FILE=")) {
      std::string path = variable.substr(19);
      if (path.starts_with(spec.cwd + "/")) return {path.substr(spec.cwd.size() + 1)};
      return {};
    }
  std::string path = RestartFilePath(spec, policy);
  return {path.substr(spec.cwd.size() + (spec.cwd.ends_with('/') ? 0 : 1))};
}

}  // namespace

bool WasLost(const spool::JobRecord& record) {
  return record.state == spool::JobState::kFailed && record.wait_status == kLostWaitStatus;
}

bool PeriodicCheckpointDue(const std::optional<std::chrono::steady_clock::time_point>& job_started,
                           std::chrono::steady_clock::time_point now, std::chrono::seconds period) {
  return job_started.has_value() && now - *job_started >= period;
}

CheckpointVerdict JudgeCheckpointedEnd(bool wrote_restart_files, int wait_status, bool periodic,
                                       bool self_checkpoint, bool interactive) {
  if (wrote_restart_files) return CheckpointVerdict::kGoesOn;
  // `checkpointexit` says it checkpointed: it is run again, as it asked.
  if (self_checkpoint) return CheckpointVerdict::kStartsAgain;
  // A job that exits 0 and leaves no state to go on from has finished: the
  // signal crossed its last moments (or it has nothing to save). Run again,
  // it would repeat finished work, and at every period, never end. (An
  // interactive job asked to move is the exception: its stub, told that it
  // moves, hears an end only from a run of it.)
  if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0 && (periodic || !interactive))
    return CheckpointVerdict::kFinished;
  // Asked for a copy only, it died or failed without one: it is not run
  // again for it, or it would loop for ever.
  if (periodic) return CheckpointVerdict::kFailed;
  // Asked to move, it went without its state (killed after checkpointgrace,
  // say): it goes on from its earlier restart files, or the beginning.
  return CheckpointVerdict::kStartsAgain;
}

bool HadNoShepherd(const spool::JobRecord& record) {
  return record.state == spool::JobState::kFailed && record.wait_status == kNoShepherdWaitStatus;
}

JobRunner::JobRunner(asio::io_context& io, JobLedger& ledger, const JobNames& names, QueueTable& queues,
                     util::WorkerThread& worker, std::string self_host, std::string shepherd_path,
                     std::string spool_dir)
    : io_(io), ledger_(ledger), names_(names), queues_(queues), self_host_(std::move(self_host)),
      shepherd_path_(std::move(shepherd_path)), layout_(std::move(spool_dir)), worker_(worker) {}

Status JobRunner::Prepare() {
  if (Status made = layout_.MakePrivateDirs(); !made.ok()) return made;
  // Images a daemon was unpacking when it stopped, for jobs it never took.
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(layout_.CriuDir(), error))
    if (entry.path().filename().string().starts_with("incoming-")) std::filesystem::remove_all(entry.path(), error);
  return Status::Ok();
}

size_t JobRunner::running() const {
  return std::count_if(shepherds_.begin(), shepherds_.end(), [](const auto& entry) { return !entry.second.finished; });
}

std::string JobRunner::RunFile(uint64_t record_id, const char* suffix) const {
  return layout_.RunFile(record_id, suffix);
}

std::string JobRunner::OutputFile(uint64_t record_id) const {
  return layout_.Output(record_id);
}

std::string JobRunner::BundleFile(uint64_t record_id) const {
  return layout_.Bundle(record_id);
}

std::string JobRunner::ImageDir(uint64_t record_id) const {
  return layout_.CriuImages(record_id);
}

void JobRunner::RemoveJobFiles(uint64_t record_id) {
  // Full now, the spool is about to have room again: a job writing meanwhile
  // may have lost output that it will end too late to see the spool full.
  if (spool::SpoolShortOfRoom(layout_.root(), spool::kOutputFullBytes)) spool_seen_full_ = std::chrono::steady_clock::now();
  std::error_code ignored;
  std::filesystem::remove_all(ImageDir(record_id), ignored);
  ::unlink(BundleFile(record_id).c_str());
  ::unlink(RunFile(record_id, ".sock").c_str());
  ::unlink(RunFile(record_id, ".status").c_str());
  ::unlink(OutputFile(record_id).c_str());
}

void JobRunner::Admit(AdmitRequest request, double load1, AdmitDone answer) {
  // Answered from the loop, never inside the caller's stack, whether the
  // answer is known at once (a refusal) or after the disk (an unpacking).
  AdmitDone done = util::Posted(io_, std::move(answer));
  auto refuse = [this, &done](AdmissionRefusal why, const std::string& text, bool permanent) {
    if (metrics_ != nullptr) ++metrics_->admission_refusals[why];
    done(Fail(text), permanent);
  };
  const std::string key = AdmissionKey(request);
  if (!request.origin_host.empty()) {
    // An offer repeated because its answer was lost: this host already has the
    // job, whatever its queue says now; or is still unpacking its files, and
    // both offers get that one answer.
    auto existing = ledger_.FindByOrigin(request.origin_host, request.origin_job_id);
    if (existing.ok() && existing->has_value() && (*existing)->restarts == request.attempt)
      return done((*existing)->id, true);
    // An offer of an earlier run, arriving late: that run is over, and was
    // never to run twice.
    if (existing.ok() && existing->has_value() && (*existing)->restarts > request.attempt)
      return refuse(AdmissionRefusal::kStaleRun,
                    "run " + std::to_string(request.attempt) + " of the job is stale: run " +
                        std::to_string((*existing)->restarts) + " came here already",
                    true);
    if (auto unpacking = unpacking_.find(key); unpacking != unpacking_.end())
      return unpacking->second.push_back(std::move(done));
  }
  QueueState* queue = queues_.Find(request.spec.queue);
  if (queue == nullptr)
    return refuse(AdmissionRefusal::kNoQueue, "has no queue \"" + request.spec.queue + "\"", true);
  if (request.spec.uid == 0 && !queue->policy.allow_root)
    return refuse(AdmissionRefusal::kRootNotAllowed,
                  "queue \"" + queue->name + "\" does not run root's jobs (no allowroot in its profile)", true);
  if (geteuid() != 0 && request.spec.uid != geteuid())
    return refuse(AdmissionRefusal::kSingleUser,
                  "this daemon runs as a single user (uid " + std::to_string(geteuid()) +
                      ") and cannot run jobs for uid " + std::to_string(request.spec.uid),
                  true);
  if (auto refusal = queues_.Refuse(request.spec.queue, load1); refusal)
    return refuse(refusal->kind, refusal->text, false);
  // A spool that cannot record the job refuses it for now, before it logs a
  // START it cannot keep (its submit host tries elsewhere, and again later).
  if (auto full = spool::SpoolShortOfRoom(layout_.root(), spool::kSpoolReserveBytes); full)
    return refuse(AdmissionRefusal::kSpoolFull, *full, false);
  if (request.bundle.empty()) {
    bool permanent = false;
    auto admitted = Enter(std::move(request), "", &permanent);
    if (!admitted.ok()) CountEnterRefusal(permanent, false);
    return done(admitted, permanent);
  }
  if (queue->policy.restart_mode == profile::RestartMode::kRefuse)
    return refuse(AdmissionRefusal::kNoRestarts,
                  "queue \"" + queue->name + "\" takes no restarted jobs (restartmode 0)", true);
  UnpackInput input{request.bundle, request.spec,
                    queue->policy.checkpoint_mode == profile::CheckpointMode::kTransparent, criu_,
                    layout_.CriuDir()};
  // The job holds its place in the queue (maxexec) while its files are unpacked.
  ++queue->running;
  unpacking_[key].push_back(std::move(done));
  worker_.Run<Result<std::string>>(
      [input = std::move(input)] { return UnpackCheckpoint(input); },
      [this, key, request = std::move(request)](Result<std::string> unpacked) mutable {
        if (QueueState* q = queues_.Find(request.spec.queue); q != nullptr && q->running > 0) --q->running;
        auto waiting = unpacking_.extract(key);
        bool permanent = false;
        Result<uint64_t> admitted = unpacked.ok() ? Enter(std::move(request), *unpacked, &permanent)
                                                  : Result<uint64_t>(Error{unpacked.message()});
        if (!admitted.ok()) CountEnterRefusal(permanent, !unpacked.ok());
        if (!waiting.empty())
          for (auto& done : waiting.mapped()) done(admitted, permanent);
      });
}

void JobRunner::CountEnterRefusal(bool permanent, bool unpack_failed) {
  if (metrics_ == nullptr) return;
  // Enter refuses for good only a job that moved on meanwhile (or whose queue
  // went away); for now, when the spool cannot record it.
  AdmissionRefusal why = unpack_failed ? AdmissionRefusal::kRestartFiles
                         : permanent   ? AdmissionRefusal::kNotWaiting
                                       : AdmissionRefusal::kSpool;
  ++metrics_->admission_refusals[why];
  if (unpack_failed) ++metrics_->restart_failures;
}

std::string JobRunner::AdmissionKey(const AdmitRequest& request) {
  if (request.origin_host.empty()) return "local/" + std::to_string(request.local_record_id);
  return request.origin_host + "/" + std::to_string(request.origin_job_id) + "/" + std::to_string(request.attempt);
}

// Admission's second half, once the job's restart files (or CRIU image, in
// `staged_image`) are in place: the record and the shepherd.
Result<uint64_t> JobRunner::Enter(AdmitRequest request, std::string staged_image, bool* permanent) {
  *permanent = false;
  struct StagedImageGuard {  // removes it on every way out before it is kept
    std::string& path;
    ~StagedImageGuard() {
      std::error_code ignored;
      if (!path.empty()) std::filesystem::remove_all(path, ignored);
    }
  } staged_guard{staged_image};
  QueueState* queue = queues_.Find(request.spec.queue);
  if (queue == nullptr) {  // its profile went away meanwhile
    *permanent = true;
    return Fail("has no queue \"" + request.spec.queue + "\"");
  }
  ApplyProfileLimits(request.spec, queue->policy);

  uint64_t id = request.local_record_id;
  if (id != 0) {
    // Refused when it was cancelled (or placed elsewhere) while this placement was under way.
    if (Status admitted = ledger_.AdmitLocal(id, request.attempt, self_host_, Now());
        !admitted.ok()) {
      *permanent = true;
      return Fail("the job is no longer waiting (" + admitted.message() + ")");
    }
  } else {
    spool::JobRecord record;
    record.origin_host = request.origin_host;
    record.origin_id = request.origin_job_id;
    record.restarts = request.attempt;
    record.uid = request.spec.uid;
    record.gid = request.spec.gid;
    record.queue = request.spec.queue;
    record.job_name = request.spec.job_name;
    record.batch = request.spec.batch;
    record.spec = wire::EncodeStoredSpec(request.spec);
    auto added = ledger_.AdmitFromPeer(std::move(record), self_host_, Now());
    if (!added.ok()) return added.error();
    id = *added;
  }
  if (!staged_image.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(ImageDir(id), ignored);
    if (::rename(staged_image.c_str(), ImageDir(id).c_str()) == 0)
      staged_image.clear();
    else
      std::cerr << "queued: cannot keep the CRIU image of job record " << id << ": " << ErrnoText(errno)
                << "; it starts again from the beginning\n";
  }
  Track(id, queue->name, !request.spec.only_host.empty());
  wire::JobId job_id = request.origin_host.empty() ? wire::JobId{id, names_.SelfNumber()}
                                                  : wire::JobId{request.origin_job_id, names_.HostNumber(request.origin_host)};
  // Said once the job is on disk: a spool that cannot commit refuses the job,
  // and must not log a START for each offer it refuses.
  std::string started = "START job " + wire::FormatJobId(job_id) + " (" + request.spec.job_name + ") for uid " +
                        std::to_string(request.spec.uid) +
                        (request.origin_host.empty() ? "" : " from " + request.origin_host);
  auto notice = [this, queue_name = queue->name, started] {
    if (on_notice_) on_notice_(queue_name, started);
  };
  if (request.spec.batch) {
    ledger_.AfterCommit([this, id, job_id, notice, spec = std::move(request.spec)](const Status& committed) {
      if (committed.ok()) {
        notice();
        return StartShepherd(id, job_id, spec);
      }
      wire::ShepherdEvent failed{wire::ShepherdEventKind::kFailed, 0, 0, 0, "spool: " + committed.message()};
      OnShepherdEvent(id, failed);
    });
  } else {
    // Its stub is waiting: start at once, and have the record on disk within
    // the loop's turn rather than the commit window, for a daemon restarted
    // meanwhile to re-adopt it.
    StartShepherd(id, job_id, request.spec);
    notice();
    ledger_.AfterCommit([](const Status&) {});
  }
  return id;
}

void JobRunner::StartShepherd(uint64_t record_id, wire::JobId job_id, const wire::JobSpec& spec) {
  auto running = shepherds_.find(record_id);
  if (running == shepherds_.end() || running->second.finished) return;
  if (running->second.cancelled_before_start)
    return OnShepherdEvent(record_id, wire::ShepherdEvent{wire::ShepherdEventKind::kFailed, 0, 0, 0,
                                                          "cancelled by its owner before it started"});
  const QueueState* queue = queues_.Find(spec.queue);
  profile::QueuePolicy policy = queue != nullptr ? queue->policy : profile::QueuePolicy{};
  wire::JobSpec job = spec;
  if (policy.checkpoint_mode != profile::CheckpointMode::kOff || policy.restart_mode != profile::RestartMode::kRefuse) {
    // Where the job is to save (or find) its state, unless the user chose
    // already, and the signal that asks for it.
    bool chosen = false;
    for (const auto& variable : job.env) chosen |= variable.starts_with("QUEUE_RESTART_FILE=");
    if (!chosen) job.env.push_back("QUEUE_RESTART_FILE=" + RestartFilePath(job, policy));
    std::erase_if(job.env, [](const std::string& v) { return v.starts_with("QUEUE_CHECKPOINT_SIGNAL="); });
    job.env.push_back("QUEUE_CHECKPOINT_SIGNAL=" + std::to_string(policy.checkpoint_signal));
  }
  if (auto spawned = SpawnShepherd(record_id, job_id, job, policy); !spawned.ok())
    OnShepherdEvent(record_id,
                    wire::ShepherdEvent{wire::ShepherdEventKind::kFailed, 0, kNoShepherdWaitStatus, 0, spawned.message()});
}

Status JobRunner::SpawnShepherd(uint64_t record_id, wire::JobId job_id, const wire::JobSpec& spec,
                                const profile::QueuePolicy& policy) {
  // The shepherd creates it just before it launches the job: its absence must
  // mean that this shepherd never got that far.
  ::unlink(RunFile(record_id, ".status").c_str());
  auto adopt = ListenAt(RunFile(record_id, ".sock"));
  if (!adopt.ok()) return Fail("cannot prepare the shepherd: " + adopt.message());
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    close(*adopt);
    return Fail("cannot create the shepherd's channel: " + ErrnoText(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 3);  // dup2 clears close-on-exec
  posix_spawn_file_actions_adddup2(&actions, *adopt, 4);
  // Asio does not mark its sockets close-on-exec: without this the shepherd,
  // which outlives us, would hold our listening port and the spool open.
  posix_spawn_file_actions_addclosefrom_np(&actions, 5);
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
  close(*adopt);
  if (rc != 0) {
    close(fds[0]);
    return Fail("cannot start the shepherd " + shepherd_path_ + ": " + ErrnoText(rc));
  }
  auto channel = std::make_shared<ShepherdChannel>(
      asio::local::stream_protocol::socket(io_, asio::local::stream_protocol(), fds[0]));
  Attach(record_id, spec.queue, channel);
  shepherds_.at(record_id).shepherd_pid = pid;
  wire::ShepherdStart start{job_id, self_host_, policy.nice, policy.allow_root,
                            spec.batch ? OutputFile(record_id) : "", RunFile(record_id, ".status"), true,
                            policy.checkpoint_mode == profile::CheckpointMode::kUser && policy.checkpoint_exit
                                ? *policy.checkpoint_exit
                                : -1,
                            spec};
  const std::string image = ImageDir(record_id);
  if (criu_.usable && ::access((image + "/" + migrate::kCriuStreamsFile).c_str(), F_OK) == 0) {
    start.restore_images = image;
    start.criu_path = criu_.path;
    shepherds_.at(record_id).restoring = true;
  }
  channel->Send(start);
  return Status::Ok();
}

void JobRunner::Track(uint64_t record_id, const std::string& queue, bool pinned) {
  Running running{record_id, queue, nullptr};
  running.pinned = pinned;
  if (!shepherds_.try_emplace(record_id, running).second) return;
  if (QueueState* q = queues_.Find(queue); q != nullptr) ++q->running;
}

void JobRunner::Attach(uint64_t record_id, const std::string& queue, std::shared_ptr<ShepherdChannel> channel) {
  Track(record_id, queue);
  shepherds_.at(record_id).channel = channel;
  channel->Start(
      [this, record_id](wire::MessageType type, std::string_view payload) {
        if (type != wire::MessageType::kShepherdEvent) return;
        auto event = wire::DecodePayload<wire::ShepherdEvent>(payload);
        if (event.ok()) OnShepherdEvent(record_id, *event);
      },
      [this, record_id](const std::string& reason) { OnShepherdGone(record_id, reason); });
}

void JobRunner::Adopt() {
  spool::JobFilter filter;
  filter.states = {spool::JobState::kRunning};
  filter.exec_host = self_host_;
  auto list = ledger_.List(filter);
  if (!list.ok()) {
    std::cerr << "queued: spool: cannot list running jobs to re-adopt: " << list.message() << "\n";
    return;
  }
  size_t adopted = 0, ended = 0, lost = 0, started = 0;
  for (const auto& r : *list) {
    asio::local::stream_protocol::socket socket(io_);
    asio::error_code ec;
    socket.connect(asio::local::stream_protocol::endpoint(RunFile(r.id, ".sock")), ec);
    if (!ec) {
      auto channel = std::make_shared<ShepherdChannel>(std::move(socket));
      Attach(r.id, r.queue, channel);
      shepherds_.at(r.id).job_started = std::chrono::steady_clock::now();  // its period begins again
      // A CRIU dump the previous daemon began died with it (PR_SET_PDEATHSIG):
      // a SIGKILL from now on is no checkpoint.
      channel->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointAbandoned, ""});
      ++adopted;
      continue;
    }
    // No shepherd holds the socket any more: what it left says what happened.
    Track(r.id, r.queue);
    switch (OnShepherdAbsent(r, "its shepherd is gone (" + ec.message() + ")")) {
      case Absence::kEnded: ++ended; break;
      case Absence::kLost: ++lost; break;
      case Absence::kNeverStarted: ++started; break;
    }
  }
  if (!list->empty())
    std::cerr << "queued: re-adopted " << adopted << " running job(s); " << ended << " ended while queued was away; "
              << lost << " lost with their shepherd; " << started << " started again (they never had started)\n";
}

// The status file tells three cases apart: an end written there; an empty
// file, created just before the job was launched, so the job did run and is
// lost; no file, so the shepherd never got as far as launching it.
JobRunner::Absence JobRunner::OnShepherdAbsent(const spool::JobRecord& record, const std::string& why) {
  const std::string path = RunFile(record.id, ".status");
  auto status = exec::ReadShepherdStatus(path);
  if (status.ok() && status->has_value()) {
    OnShepherdEvent(record.id, **status);
    return Absence::kEnded;
  }
  struct stat info{};
  if (::stat(path.c_str(), &info) == 0) {
    EndRecord(record.id, spool::JobState::kFailed, wire::ShepherdEvent{}, why + ": the job was lost with it");
    return Absence::kLost;
  }
  auto spec = wire::DecodeStoredSpec(record.spec);
  if (record.batch && spec.ok()) {
    // Admitted and on disk, but the daemon stopped before its shepherd began:
    // it is still this host's to run.
    StartShepherd(record.id, names_.IdOf(record), *spec);
    return Absence::kNeverStarted;
  }
  wire::ShepherdEvent never{wire::ShepherdEventKind::kFailed, 0, 0, 0, ""};
  EndRecord(record.id, spool::JobState::kFailed, never, why + " before it started the job");
  return Absence::kNeverStarted;
}

void JobRunner::OnShepherdEvent(uint64_t record_id, const wire::ShepherdEvent& event) {
  switch (event.kind) {
    case wire::ShepherdEventKind::kStarted: {
      if (auto it = shepherds_.find(record_id); it != shepherds_.end()) {
        it->second.job_pid = event.pid;
        it->second.job_started = std::chrono::steady_clock::now();
        // Adopted: the shepherd is the job's parent (SO_PEERCRED would name
        // the daemon that made the socket the shepherd listens on).
        if (it->second.shepherd_pid == 0) it->second.shepherd_pid = ShepherdOf(event.pid);
        // Restored from its image: the image has served (and is big).
        if (std::exchange(it->second.restoring, false)) {
          std::error_code ignored;
          std::filesystem::remove_all(ImageDir(record_id), ignored);
        }
      }
      if (Status noted = ledger_.NoteShepherd(record_id, event.pid); !noted.ok())
        std::cerr << "queued: " << noted.message() << "\n";
      return;
    }
    case wire::ShepherdEventKind::kCheckpointArmed:
      if (auto it = shepherds_.find(record_id); it != shepherds_.end() && !it->second.finished)
        StartCriuDump(record_id, it->second);
      return;
    case wire::ShepherdEventKind::kFinished:
      // CRIU kills the job once its image is complete, and only then exits.
      if (auto it = shepherds_.find(record_id); it != shepherds_.end() && it->second.criu_dump != 0) {
        it->second.held_end = event;
        return;
      }
      return EndRecord(record_id, spool::JobState::kDone, event, "");
    case wire::ShepherdEventKind::kFailed:
      return EndRecord(record_id, spool::JobState::kFailed, event, event.message);
  }
}

void JobRunner::OnShepherdGone(uint64_t record_id, const std::string& reason) {
  auto it = shepherds_.find(record_id);
  if (it == shepherds_.end() || it->second.finished) return;
  auto record = ledger_.Get(record_id);
  if (!record.ok() || !record->has_value()) return;
  spool::JobRecord r = **record;
  r.batch = false;  // a shepherd that died under a live daemon is not started again
  OnShepherdAbsent(r, "the shepherd went away (" + reason + ")");
}

void JobRunner::EndRecord(uint64_t record_id, spool::JobState state, const wire::ShepherdEvent& event,
                          const std::string& message) {
  auto it = shepherds_.find(record_id);
  if (it == shepherds_.end() || it->second.finished) return;  // already recorded
  const bool asked_in_place = it->second.checkpoint_in_place;
  const auto started = it->second.started;
  Release(record_id);
  auto record = ledger_.Get(record_id);
  if (!record.ok() || !record->has_value()) return;
  spool::JobRecord& r = **record;
  if (r.state != spool::JobState::kRunning) return;
  r.state = state;
  r.end_time = Now();
  r.message = message;
  r.cpu_seconds = event.cpu_seconds;
  if (state == spool::JobState::kDone) r.wait_status = event.wait_status;
  // Lost: it ran (the shepherd was started) and its end cannot be known.
  if (state == spool::JobState::kFailed && event.kind != wire::ShepherdEventKind::kFailed) r.wait_status = kLostWaitStatus;
  if (state == spool::JobState::kFailed && event.wait_status == kNoShepherdWaitStatus) r.wait_status = kNoShepherdWaitStatus;
  // A job that stops after a checkpoint request, or exits with the queue's
  // `checkpointexit` code on its own, goes on elsewhere from its restart files.
  const QueueState* queue = queues_.Find(r.queue);
  bool self_checkpoint = state == spool::JobState::kDone && queue != nullptr &&
                         queue->policy.checkpoint_mode == profile::CheckpointMode::kUser && queue->policy.checkpoint_exit &&
                         WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) == *queue->policy.checkpoint_exit;
  r.checkpointed = state == spool::JobState::kDone && (event.checkpointed || self_checkpoint);
  r.checkpoint_in_place = r.checkpointed && (self_checkpoint || asked_in_place);
  if (!r.checkpointed) {
    FailIfOutputMayBeCut(r, started);
    return FinishEnd(std::move(r));
  }
  // File times come from the kernel's coarse clock, which may lag the
  // shepherd's by a tick: a file written just after the signal must count.
  constexpr int64_t kClockSlackMs = 50;
  int64_t since = (event.checkpointed ? event.signal_time_ms : r.start_time * 1000) - kClockSlackMs;
  auto spec = wire::DecodeStoredSpec(r.spec);
  if (!spec.ok()) {
    r.message = "checkpointed, but " + spec.message();
    return FinishEnd(std::move(r));
  }
  const profile::QueuePolicy policy = queue != nullptr ? queue->policy : profile::QueuePolicy{};
  PackInput input{self_host_, BundleFile(r.id), ImageDir(r.id),
                  policy.checkpoint_mode == profile::CheckpointMode::kTransparent, *spec,
                  RestartPatterns(*spec, policy), since};
  // Until packed, the record stays running in the spool: a daemon that stops
  // meanwhile finds the end in the shepherd's status file and packs again.
  bool periodic = asked_in_place && !self_checkpoint;
  packing_.insert(r.id);
  worker_.Run<std::string>(
      [input = std::move(input)] { return PackCheckpoint(input); },
      [this, r = std::move(r), periodic, self_checkpoint, started](std::string packed) mutable {
        OnCheckpointPacked(std::move(r), std::move(packed), periodic, self_checkpoint, started);
      });
}

// A batch job writes its output into this spool as it runs. If the file
// system is full when it ends, or was while it ran, writes may have failed
// (the job is told, and may well ignore it, or exit for it): its output is
// not known whole, and the job does not count as done. Jobs cannot free room
// in the spool; this daemon does, above all by removing the outputs of ended
// jobs (RemoveJobFiles), and notes there whether it was full just before. So
// a job that met a full spool is caught even when it ends after room came
// back, unless the daemon was started again since it took the job
// (`started`), or the room came from elsewhere.
void JobRunner::FailIfOutputMayBeCut(spool::JobRecord& r, std::chrono::steady_clock::time_point started) {
  if (!r.batch || r.state != spool::JobState::kDone) return;
  if (auto full = spool::SpoolShortOfRoom(layout_.root(), spool::kOutputFullBytes); full) {
    r.message = "its output may be incomplete: " + *full + " on " + self_host_ + " as it ended";
  } else if (spool_seen_full_ >= started) {
    r.message = "its output may be incomplete: the spool " + layout_.root() + " on " + self_host_ + " was full while it ran";
  } else {
    return;
  }
  r.state = spool::JobState::kFailed;
}

void JobRunner::OnCheckpointPacked(spool::JobRecord r, std::string packed, bool periodic, bool self_checkpoint,
                                   std::chrono::steady_clock::time_point started) {
  packing_.erase(r.id);
  auto current = ledger_.Get(r.id);
  if (!current.ok() || !current->has_value() || (*current)->state != spool::JobState::kRunning) {
    ::unlink(BundleFile(r.id).c_str());  // its record went meanwhile
    return;
  }
  r.message = std::move(packed);
  const bool wrote = ::access(BundleFile(r.id).c_str(), F_OK) == 0;
  switch (JudgeCheckpointedEnd(wrote, r.wait_status, periodic, self_checkpoint, !r.batch)) {
    case CheckpointVerdict::kGoesOn:
    case CheckpointVerdict::kStartsAgain: break;
    case CheckpointVerdict::kFinished:
      r.checkpointed = r.checkpoint_in_place = false;
      r.message = "it exited 0 at its checkpoint without writing a restart file: it has finished";
      std::cerr << "queued: job " << names_.Label(r) << ": " << r.message << "\n";
      break;
    case CheckpointVerdict::kFailed:
      r.checkpointed = r.checkpoint_in_place = false;
      r.state = spool::JobState::kFailed;
      r.message = "it ended at its periodic checkpoint without writing a restart file";
      break;
  }
  if (!r.checkpointed) FailIfOutputMayBeCut(r, started);
  FinishEnd(std::move(r));
}

// Records the end, and tells whoever is to know once it is on disk: an end
// reported before its commit (to a submit host that then forgets the job) and
// lost with it would leave this host's record running for ever.
void JobRunner::FinishEnd(const spool::JobRecord& end) {
  const uint64_t record_id = end.id;
  auto written = ledger_.EndRun(record_id, end.restarts,
                                RunEnd{end.state, end.wait_status, end.cpu_seconds, 0, end.end_time, end.message,
                                       end.checkpointed, end.checkpoint_in_place});
  if (!written.ok()) {
    // The shepherd's status file stays: a restarted daemon reads the end from it.
    std::cerr << "queued: " << written.message() << "\n";
    return;
  }
  ledger_.AfterCommit([this, end, r = *written](const Status& committed) {
    if (!committed.ok()) return RecordEndAgainLater(end);
    ::unlink(RunFile(r.id, ".sock").c_str());
    ::unlink(RunFile(r.id, ".status").c_str());
    if (on_ended_) on_ended_(r);
    // mailsupervisor: `e` for ends, `c` for failures (crashes).
    if (const QueueState* q = queues_.Find(r.queue); q != nullptr && on_notice_ &&
        ((r.state == spool::JobState::kDone && q->policy.mail_supervisor.end) ||
         (r.state == spool::JobState::kFailed && q->policy.mail_supervisor.crash)))
      on_notice_(r.queue, DescribeEnd(r, names_.Label(r)));
  });
}

// The commit that held the end failed (the group commit logged why; a full
// spool whose room for records, spool/spool_reserve.h, ran out, most likely):
// the record is still running on disk, so the end is written again in a
// while, as often as it takes.
void JobRunner::RecordEndAgainLater(const spool::JobRecord& end) {
  constexpr auto kRetryEndAfter = std::chrono::seconds(5);
  auto timer = std::make_shared<asio::steady_timer>(io_, kRetryEndAfter);
  timer->async_wait([this, timer, end](const asio::error_code& ec) {
    if (ec) return;
    auto current = ledger_.Get(end.id);
    if (current.ok() && current->has_value() && (*current)->state == spool::JobState::kRunning &&
        (*current)->restarts == end.restarts)
      FinishEnd(end);
  });
}

void JobRunner::Release(uint64_t record_id) {
  auto it = shepherds_.find(record_id);
  if (it == shepherds_.end() || it->second.finished) return;
  it->second.finished = true;
  if (QueueState* queue = queues_.Find(it->second.queue); queue != nullptr && queue->running > 0)
    --queue->running;
  auto channel = it->second.channel;
  shepherds_.erase(it);
  if (channel) asio::post(io_, [channel] { channel->Close("released"); });
}

bool JobRunner::ControlJob(uint64_t record_id, wire::ShepherdAction action, const std::string& message) {
  // Stopped at its checkpoint, its files being packed: it is already on its
  // way home, where its submit host cancels it (so a cancel is taken).
  if (packing_.contains(record_id)) return action == wire::ShepherdAction::kTerminate;
  auto it = shepherds_.find(record_id);
  if (it == shepherds_.end() || it->second.finished) return false;
  if (!it->second.channel) {
    // Admitted, its shepherd not yet started (its record is being written).
    if (action != wire::ShepherdAction::kTerminate) return false;
    it->second.cancelled_before_start = true;
    return true;
  }
  it->second.channel->Send(wire::ShepherdControl{action, message});
  return true;
}

bool JobRunner::Checkpoint(uint64_t record_id, const std::string& reason, bool in_place) {
  auto it = shepherds_.find(record_id);
  if (it == shepherds_.end() || it->second.finished || !it->second.channel || it->second.checkpoint_requested)
    return false;
  const QueueState* queue = queues_.Find(it->second.queue);
  if (queue == nullptr || queue->policy.checkpoint_mode == profile::CheckpointMode::kOff) return false;
  if (queue->policy.checkpoint_mode == profile::CheckpointMode::kTransparent) {
    if (!CheckpointWithCriu(record_id, it->second, reason)) return false;
  } else {
    it->second.channel->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpoint, reason,
                                                   queue->policy.checkpoint_signal,
                                                   queue->policy.checkpoint_grace_seconds});
  }
  it->second.checkpoint_requested = true;
  it->second.checkpoint_in_place = in_place;
  return true;
}

// The job's parent, if it is a queue-shepherd (0 otherwise).
pid_t JobRunner::ShepherdOf(pid_t job) const {
  auto [state, parent] = StateAndParent(job);
  if (parent <= 1) return 0;
  std::error_code error;
  auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(parent) + "/exe", error);
  auto shepherd = std::filesystem::weakly_canonical(shepherd_path_, error);
  return !error && exe == shepherd ? parent : 0;
}

// The job's pid is trusted only while it is still its shepherd's child: a pid
// read from an event may have been reused once the shepherd reaped the job.
bool JobRunner::StillShepherdsChild(const Running& running) const {
  auto [state, parent] = StateAndParent(running.job_pid);
  return parent == running.shepherd_pid && state != "Z";
}

bool JobRunner::CheckpointWithCriu(uint64_t record_id, Running& running, const std::string& reason) {
  auto refuse = [&](const std::string& why) {
    std::cerr << "queued: job record " << record_id << " cannot be checkpointed with CRIU: " << why << "\n";
    return false;
  };
  if (!criu_.usable) return refuse(criu_.reason);
  if (running.job_pid <= 0 || running.shepherd_pid <= 0) return refuse("its process is not known yet");
  if (!StillShepherdsChild(running)) return refuse("it has already ended");
  auto record = ledger_.Get(record_id);
  auto spec = record.ok() && record->has_value() ? wire::DecodeStoredSpec((*record)->spec)
                                                 : Result<wire::JobSpec>(Fail("its record is gone"));
  if (!spec.ok()) return refuse(spec.message());
  running.criu_as = migrate::CriuIdentity{spec->uid, spec->gid, spec->groups};
  auto streams = migrate::ReadJobStreams(running.job_pid);
  if (!streams.ok()) return refuse(streams.message());
  // What a new shepherd can hand over: pipes, a terminal, files (reopened by path).
  for (const auto& target : streams->targets)
    if (!target.empty() && target.front() != '/' && !target.starts_with("pipe:")) {
      running.uncheckpointable = true;  // said once, not at every heartbeat
      return refuse("one of its standard streams is " + target + ", which a new host cannot hand it");
    }
  const std::string dir = ImageDir(record_id);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  if (mkdir(dir.c_str(), 0700) != 0) return refuse("cannot create " + dir + ": " + ErrnoText(errno));
  if (auto written = migrate::WriteCriuStreams(dir, *streams); !written.ok()) return refuse(written.message());
  if (auto given = migrate::GiveImageTo(dir, running.criu_as); !given.ok()) return refuse(given.message());
  // The dump waits for the shepherd's word: CRIU's SIGKILL must never reach a
  // shepherd that would take it for the job's death.
  running.channel->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointByDaemon, reason});
  running.criu_arming = true;
  return true;
}

void JobRunner::StartCriuDump(uint64_t record_id, Running& running) {
  if (!running.criu_arming) return;
  running.criu_arming = false;
  if (!StillShepherdsChild(running)) return;  // ended meanwhile: its kFinished is on its way
  int dir = open(ImageDir(record_id).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  auto dump = dir < 0 ? Result<pid_t>(Fail("cannot open " + ImageDir(record_id) + ": " + ErrnoText(errno)))
                      : migrate::SpawnCriu(migrate::CriuDumpCommand(criu_.path, running.job_pid, migrate::kCriuImageDirFd,
                                                                    running.criu_as.unprivileged()),
                                           {dir}, running.criu_as, migrate::CriuStep::kDump);
  if (dir >= 0) close(dir);
  if (!dump.ok()) return AbandonCriuCheckpoint(record_id, running, dump.message());
  running.criu_dump = *dump;
  running.criu_dump_began = std::chrono::steady_clock::now();
  criu_dumps_[*dump] = record_id;
}

void JobRunner::StopStuckCriuDumps() {
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [id, running] : shepherds_)
    if (running.criu_dump > 0 && now - running.criu_dump_began > kCriuDumpLimit) {
      std::cerr << "queued: job record " << id << ": its CRIU dump has run for "
                << std::chrono::duration_cast<std::chrono::seconds>(now - running.criu_dump_began).count()
                << " s; stopping it\n";
      kill(running.criu_dump, SIGKILL);  // our unreaped child: the pid is still its
    }
}

void JobRunner::AbandonCriuCheckpoint(uint64_t record_id, Running& running, const std::string& why) {
  std::cerr << "queued: job record " << record_id << ": CRIU could not checkpoint it: " << why << "\n";
  running.channel->Send(wire::ShepherdControl{wire::ShepherdAction::kCheckpointAbandoned,
                                              "[CRIU could not checkpoint the job on " + self_host_ + " (" + why +
                                                  "); it carries on there]"});
  running.checkpoint_requested = running.checkpoint_in_place = false;
  running.no_checkpoint_before = std::chrono::steady_clock::now() + kCheckpointRetryAfter;
}

bool JobRunner::OnChildExit(pid_t pid, int wait_status) {
  auto dump = criu_dumps_.find(pid);
  if (dump == criu_dumps_.end()) return false;
  const uint64_t record_id = dump->second;
  criu_dumps_.erase(dump);
  auto it = shepherds_.find(record_id);
  if (it == shepherds_.end() || it->second.finished) return true;
  Running& running = it->second;
  running.criu_dump = 0;
  if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
    // The log stays for PackImage, should the job have died meanwhile.
    std::string why = migrate::CriuLogError(ImageDir(record_id) + "/dump.log");
    AbandonCriuCheckpoint(record_id, running, why.empty() ? "criu dump failed" : why);
  }
  if (running.held_end) {
    wire::ShepherdEvent end = *std::exchange(running.held_end, std::nullopt);
    OnShepherdEvent(record_id, end);
  }
  return true;
}

std::vector<uint64_t> JobRunner::CheckpointCandidates(const std::string& queue) const {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::pair<std::chrono::steady_clock::time_point, uint64_t>> jobs;
  for (const auto& [id, running] : shepherds_)
    if (running.queue == queue && !running.finished && running.channel && !running.checkpoint_requested &&
        !running.pinned && !running.uncheckpointable && now >= running.no_checkpoint_before)
      jobs.emplace_back(running.started, id);
  std::sort(jobs.begin(), jobs.end(), [](const auto& a, const auto& b) { return a > b; });
  std::vector<uint64_t> ids;
  for (const auto& [started, id] : jobs) ids.push_back(id);
  return ids;
}

std::vector<uint64_t> JobRunner::DueForPeriodicCheckpoint(const std::string& queue, std::chrono::seconds period) const {
  std::vector<uint64_t> due;
  auto now = std::chrono::steady_clock::now();
  for (const auto& [id, running] : shepherds_)
    if (running.queue == queue && !running.finished && running.channel && !running.checkpoint_requested &&
        !running.uncheckpointable && now >= running.no_checkpoint_before &&
        PeriodicCheckpointDue(running.job_started, now, period))
      due.push_back(id);
  return due;
}

void JobRunner::ControlQueue(const std::string& queue, wire::ShepherdAction action, const std::string& message) {
  for (auto& [id, running] : shepherds_)
    if (running.queue == queue && !running.finished && running.channel)
      running.channel->Send(wire::ShepherdControl{action, message});
}

}  // namespace queue::daemon
