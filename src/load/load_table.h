// LoadTable: what this daemon knows of every host's load and queues, kept fresh
// by the reports the daemons push to each other (never by polling per job).
// A host not heard from within the staleness limit is considered down.
//
// To avoid a herd, a placement counts at once against the chosen host
// (AddPlacement), twice over: as a running job until that host's next report
// (which then includes it), and as one unit of load that decays with the
// 1-minute load average's own time constant, as the real load catches up
// (LSF's lsplace and Grid Engine's job_load_adjustments do the same).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "wire/messages.h"

namespace queue::load {

using Clock = std::chrono::steady_clock;

struct HostLoad {
  wire::LoadReport report;
  Clock::time_point heard_at;
  uint32_t placements_since_report = 0;
  double placement_load = 0;  // at placement_load_at; decays from there
  Clock::time_point placement_load_at{};
};

// How long the load average takes to reflect a new job (its time constant).
inline constexpr std::chrono::seconds kPlacementLoadDecay{60};

class LoadTable {
 public:
  explicit LoadTable(Clock::duration stale_after) : stale_after_(stale_after) {}

  void Update(wire::LoadReport report, Clock::time_point now);
  void AddPlacement(const std::string& host, Clock::time_point now);
  // The host's reported load plus what its recent placements will add.
  static double AdjustedLoad(const HostLoad& host, Clock::time_point now);
  void Forget(const std::string& host);

  // The host's entry when it is fresh at `now`, else nullopt.
  const HostLoad* Fresh(const std::string& host, Clock::time_point now) const;
  bool IsFresh(const std::string& host, Clock::time_point now) const {
    return Fresh(host, now) != nullptr;
  }
  const std::map<std::string, HostLoad>& hosts() const { return hosts_; }

 private:
  Clock::duration stale_after_;
  std::map<std::string, HostLoad> hosts_;
};

}  // namespace queue::load
