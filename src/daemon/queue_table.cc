// Queue discovery and profile (re)loading.
#include "daemon/queue_table.h"

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

std::optional<std::string> QueueTable::RefusalReason(const std::string& name, double load1) const {
  auto it = queues_.find(name);
  if (it == queues_.end()) return "has no queue \"" + name + "\"";
  const QueueState& q = it->second;
  if (!q.error.empty()) return "queue \"" + name + "\" is drained: " + q.error;
  if (q.policy.exec != profile::ExecState::kOn) return "queue \"" + name + "\" is not accepting jobs (exec " +
                                                      (q.policy.exec == profile::ExecState::kOff ? "off" : "drain") + ")";
  if (q.running >= q.policy.max_exec)
    return "queue \"" + name + "\" is full (" + std::to_string(q.policy.max_exec) + " running)";
  double load = profile::NormalizedLoad(load1, q.policy.load_norm, cpu_count_);
  if (load >= q.policy.load_sched)
    return "load " + std::to_string(load).substr(0, 5) + " is at or above loadsched";
  return std::nullopt;
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
    l.accepting = q.error.empty() && q.policy.exec == profile::ExecState::kOn &&
                  profile::NormalizedLoad(load1, q.policy.load_norm, cpu_count_) < q.policy.load_sched;
    loads.push_back(std::move(l));
  }
  return loads;
}

}  // namespace queue::daemon
