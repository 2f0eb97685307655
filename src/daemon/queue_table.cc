// Queue discovery and profile (re)loading.
#include "daemon/queue_table.h"

#include <sys/statvfs.h>

#include "profile/profile_parser.h"
#include "spool/spool_dir.h"

namespace queue::daemon {

namespace fs = std::filesystem;

void QueueTable::Refresh(bool force) {
  auto names = spool::ListQueueDirs(spool_dir_);
  if (!names.ok()) return;  // keep what we had; the spool root is checked at start-up
  std::map<std::string, QueueState> next;
  for (const auto& name : *names) {
    auto it = queues_.find(name);
    QueueState state = it != queues_.end() ? std::move(it->second) : QueueState{};
    state.name = name;
    state.profile_path = spool_dir_ + "/" + name + "/profile";
    std::error_code ec;
    auto mtime = fs::last_write_time(state.profile_path, ec);
    if (force || it == queues_.end() || ec || mtime != state.profile_mtime) {
      state.profile_mtime = ec ? fs::file_time_type{} : mtime;
      Load(state);
    }
    next.emplace(name, std::move(state));
  }
  queues_ = std::move(next);
}

void QueueTable::Load(QueueState& queue) {
  std::error_code ec;
  if (!fs::exists(queue.profile_path, ec)) {
    queue.policy = profile::DefaultPolicy(cpu_count_);
    queue.policy.exec = profile::ExecState::kDrain;
    queue.error = queue.profile_path + ": missing; the queue is drained";
    return;
  }
  auto policy = profile::LoadProfileFile(queue.profile_path, {queue.profile_path, local_host_, cpu_count_});
  if (policy.ok()) {
    queue.policy = std::move(policy.value());
    queue.error.clear();
    return;
  }
  queue.policy = profile::DefaultPolicy(cpu_count_);
  queue.policy.exec = profile::ExecState::kDrain;
  queue.error = policy.message() + " (the queue is drained)";
}

QueueState* QueueTable::Find(const std::string& name) {
  auto it = queues_.find(name);
  return it == queues_.end() ? nullptr : &it->second;
}

// Why the queue takes no job now, whatever its number of running jobs.
std::optional<QueueTable::Refusal> QueueTable::StateRefusal(const QueueState& q, double load1) const {
  using K = AdmissionRefusal;
  const std::string& name = q.name;
  if (!q.error.empty()) return Refusal{K::kQueueNotAccepting, "queue \"" + name + "\" is drained: " + q.error};
  if (q.policy.exec != profile::ExecState::kOn)
    return Refusal{K::kQueueNotAccepting, "queue \"" + name + "\" is not accepting jobs (exec " +
                                              (q.policy.exec == profile::ExecState::kOff ? "off" : "drain") + ")"};
  if (!q.closed_reason.empty()) return Refusal{K::kQueueClosed, "queue \"" + name + "\" is closed: " + q.closed_reason};
  if (!q.suspend_reason.empty())
    return Refusal{K::kQueueSuspended, "queue \"" + name + "\" is suspended: " + q.suspend_reason};
  double load = profile::NormalizedLoad(load1, q.policy.load_norm, cpu_count_);
  if (load >= q.policy.load_sched)
    return Refusal{K::kLoad, "load " + std::to_string(load).substr(0, 5) + " is at or above loadsched"};
  if (q.policy.min_free) {
    struct statvfs fs {};
    const auto& floor = *q.policy.min_free;
    if (statvfs(floor.path.c_str(), &fs) != 0)
      return Refusal{K::kMinFree, "minfree: cannot check " + floor.path + ": " + ErrnoText(errno)};
    uint64_t free_kb = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize / 1024;
    if (free_kb < floor.kilobytes)
      return Refusal{K::kMinFree, "only " + std::to_string(free_kb) + " KB free on " + floor.path + " (minfree " +
                                      std::to_string(floor.kilobytes) + ")"};
  }
  return std::nullopt;
}

std::optional<QueueTable::Refusal> QueueTable::Refuse(const std::string& name, double load1) const {
  auto it = queues_.find(name);
  if (it == queues_.end()) return Refusal{AdmissionRefusal::kNoQueue, "has no queue \"" + name + "\""};
  if (auto refusal = StateRefusal(it->second, load1)) return refusal;
  if (it->second.running >= it->second.policy.max_exec)
    return Refusal{AdmissionRefusal::kQueueFull, "queue \"" + name + "\" is full (" +
                                                     std::to_string(it->second.policy.max_exec) + " running)"};
  return std::nullopt;
}

std::string ShortenedRefusal(std::string reason) {
  constexpr size_t kMax = kMaxRefusalBytes;
  if (reason.size() <= kMax) return reason;
  // Cut on a character boundary (UTF-8 continuation bytes are 10xxxxxx).
  static constexpr std::string_view kEllipsis = "...";
  size_t cut = kMax - kEllipsis.size();
  while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
  reason.resize(cut);
  return reason + std::string(kEllipsis);
}

std::vector<wire::QueueLoad> QueueTable::Loads(double load1) const {
  std::vector<wire::QueueLoad> loads;
  for (const auto& [name, q] : queues_) {
    wire::QueueLoad l;
    l.name = name;
    l.running = q.running;
    l.maxexec = q.policy.max_exec;
    l.vmaxexec = q.policy.effective_vmax_exec();
    l.pfactor = q.policy.pfactor > 0 ? q.policy.pfactor : 1.0;
    auto refusal = StateRefusal(q, load1);
    l.accepting = !refusal.has_value();
    l.refusal = ShortenedRefusal(refusal ? refusal->text : "");
    l.takes_restarts = q.policy.restart_mode != profile::RestartMode::kRefuse &&
                       (q.policy.checkpoint_mode != profile::CheckpointMode::kTransparent || criu_usable_);
    loads.push_back(std::move(l));
  }
  return loads;
}

std::vector<QueueTransition> QueueTable::Evaluate(double load1, const std::tm& local_time,
                                                  const std::map<std::string, int>& program_verdicts) {
  std::vector<QueueTransition> transitions;
  for (auto& [name, q] : queues_) {
    const profile::QueuePolicy& p = q.policy;
    double load = profile::NormalizedLoad(load1, p.load_norm, cpu_count_);
    auto verdict = program_verdicts.find(name);
    int program = p.program && verdict != program_verdicts.end() ? verdict->second : 0;
    std::string suspend;
    if (load >= p.load_stop)
      suspend = "load " + std::to_string(load).substr(0, 5) + " is at or above loadstop";
    else if (p.time_stop && !p.time_stop->Matches(local_time))
      suspend = "outside the timestop hours";
    else if (program == 1)
      suspend = "its program says stop";
    q.closed_reason = p.time_sched && !p.time_sched->Matches(local_time) ? "outside the timesched hours"
                      : program == 2 || program == 4                       ? "its program says drain"
                      : program != 0 && program != 1
                          ? "its program failed (exit " + std::to_string(program) + "); fix the profile to retry"
                          : "";
    bool was_suspended = !q.suspend_reason.empty();
    q.suspend_reason = suspend;
    if (!was_suspended && !suspend.empty())
      transitions.push_back({QueueTransition::Kind::kSuspend, name, kSuspendedNotice});
    if (was_suspended && suspend.empty())
      transitions.push_back({QueueTransition::Kind::kResume, name, kResumedNotice});
    if (p.exec == profile::ExecState::kOff && q.running > 0)
      transitions.push_back({QueueTransition::Kind::kTerminate, name,
                             "[queue " + name + " was turned off (exec off); your job is being terminated.]"});
  }
  return transitions;
}

}  // namespace queue::daemon
