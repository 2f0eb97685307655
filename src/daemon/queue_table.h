// QueueTable: the queues of this host's spool (one directory each, with a
// `profile`) and their current policies. A queue whose profile is missing or
// broken is drained and remembers why, for `queue --status`.
#pragma once

#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "daemon/metrics.h"
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
  // Set by Evaluate(): why running jobs are suspended (loadstop, timestop) and
  // why no job may start (timesched); empty when not.
  std::string suspend_reason;
  std::string closed_reason;
};

// What Evaluate() found changed, for the daemon to act on.
struct QueueTransition {
  enum class Kind { kSuspend, kResume, kTerminate } kind;
  std::string queue;
  std::string message;  // for the job's user
};

// The original's words on the user's terminal (inventory §1.8).
inline constexpr char kSuspendedNotice[] =
    "[Load average on CPU server too high; process suspended. Please stand-by.]";
inline constexpr char kResumedNotice[] = "[Your process has resumed execution.]";

// The bound LoadReport::Decode (wire/messages.cc) puts on QueueLoad::refusal;
// a unit test round-trips a refusal this long.
inline constexpr size_t kMaxRefusalBytes = 1024;

// A queue's refusal as it travels in a LoadReport: at most kMaxRefusalBytes
// (a longer one, such as a profile error quoting a deep spool path, made
// every peer refuse the whole report, and the host looked down to them),
// cut with "...".
std::string ShortenedRefusal(std::string reason);

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
  struct Refusal {
    AdmissionRefusal kind;  // for the metrics
    std::string text;       // for people
  };
  std::optional<Refusal> Refuse(const std::string& name, double load1) const;
  std::optional<std::string> RefusalReason(const std::string& name, double load1) const {
    auto refusal = Refuse(name, load1);
    return refusal ? std::optional<std::string>(refusal->text) : std::nullopt;
  }

  std::vector<wire::QueueLoad> Loads(double load1) const;
  // Whether CRIU works here: a `checkpointmode 1` queue takes restarted jobs only then.
  void SetCriuUsable(bool usable) { criu_usable_ = usable; }

  // Applies loadstop, timestop, timesched and exec off at this load and local
  // time; returns what must be done to the queues' running jobs.
  // `program_verdicts` holds the last exit status of each queue's `program`.
  std::vector<QueueTransition> Evaluate(double load1, const std::tm& local_time,
                                        const std::map<std::string, int>& program_verdicts = {});

 private:
  void Load(QueueState& queue);
  std::optional<Refusal> StateRefusal(const QueueState& queue, double load1) const;

  std::string spool_dir_;
  std::string local_host_;
  unsigned cpu_count_;
  bool criu_usable_ = false;
  std::map<std::string, QueueState> queues_;
};

}  // namespace queue::daemon
