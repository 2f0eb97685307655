// QueueTable: the queues of this host's spool (one directory each, with a
// `profile`) and their current policies. A queue whose profile is missing or
// broken is drained and remembers why, for `queue --status`.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "profile/queue_policy.h"
#include "wire/messages.h"

namespace queue::daemon {

struct QueueState {
  std::string name;
  profile::QueuePolicy policy;
  std::string profile_path;
  std::string error;  // why the queue is drained, when its profile is unusable
  std::filesystem::file_time_type profile_mtime{};
  uint32_t running = 0;
};

class QueueTable {
 public:
  QueueTable(std::string spool_dir, std::string local_host, unsigned cpu_count)
      : spool_dir_(std::move(spool_dir)), local_host_(std::move(local_host)), cpu_count_(cpu_count) {}

  // Re-scans the spool for queue directories and re-reads changed profiles
  // (all of them when force is set, as on SIGHUP).
  void Refresh(bool force);

  QueueState* Find(const std::string& name);
  const std::map<std::string, QueueState>& queues() const { return queues_; }

  // Why a job cannot start in this queue now, or nullopt when it can.
  std::optional<std::string> RefusalReason(const std::string& name, double load1) const;

  std::vector<wire::QueueLoad> Loads(double load1) const;

 private:
  void Load(QueueState& queue);

  std::string spool_dir_;
  std::string local_host_;
  unsigned cpu_count_;
  std::map<std::string, QueueState> queues_;
};

}  // namespace queue::daemon
