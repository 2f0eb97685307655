// Liveness of the hosts running this host's jobs, in a large cluster. There
// the gossip sees each host's serf agent, not its daemon: a daemon that hangs
// while its agent goes on answering stays up in the gossip, and the jobs it
// ran for other hosts would never end. So the submit host asks each host that
// runs its jobs for its load every `every` (one LoadQuery: a cost per host
// with jobs from here, never per peer), and a host that has not answered for
// longer than `dead_after` since it was first watched or last answered is
// taken for silent, as a full mesh takes a host whose load reports stopped.
// Pure: the caller gives the time, does the asking and reports the answers.
// Not thread-safe: the daemon's loop owns it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace queue::daemon {

class RunHostsWatch {
 public:
  using Clock = std::chrono::steady_clock;

  RunHostsWatch(Clock::duration every, Clock::duration dead_after) : every_(every), dead_after_(dead_after) {}

  // Whether a pass is due: the caller then lists the hosts running its jobs.
  bool PassDue(Clock::time_point now) const { return now >= next_pass_; }
  // A pass over `running_on`, the hosts now running this host's jobs: hosts
  // no longer among them are forgotten, new ones are watched from `now`.
  // Returns the hosts to ask now (each asked at most once a pass).
  std::vector<std::string> Pass(const std::set<std::string>& running_on, Clock::time_point now);
  // `host` answered a question.
  void Answered(const std::string& host, Clock::time_point now);
  // The watched hosts silent for longer than dead_after, with how long (whole seconds).
  std::vector<std::pair<std::string, int64_t>> Silent(Clock::time_point now) const;
  // Stop watching `host` (its jobs were taken for lost): the next pass
  // watches it again from then if jobs from here still run there.
  void Forget(const std::string& host) { heard_.erase(host); }

 private:
  Clock::duration every_, dead_after_;
  Clock::time_point next_pass_{};
  std::map<std::string, Clock::time_point> heard_;  // watched host -> last answer, or when first watched
};

}  // namespace queue::daemon
