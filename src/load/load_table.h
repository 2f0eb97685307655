// LoadTable: what this daemon knows of every host's load and queues, kept fresh
// by the reports the daemons push to each other (never by polling per job).
// A host not heard from within the staleness limit is considered down.
//
// To avoid a herd, a placement counts at once against the chosen host
// (AddPlacement) until that host's next report, which already includes the job.
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
};

class LoadTable {
 public:
  explicit LoadTable(Clock::duration stale_after) : stale_after_(stale_after) {}

  void Update(wire::LoadReport report, Clock::time_point now);
  void AddPlacement(const std::string& host);
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
