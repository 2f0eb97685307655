// The per-daemon table of host loads.
#include "load/load_table.h"

namespace queue::load {

void LoadTable::Update(wire::LoadReport report, Clock::time_point now) {
  HostLoad& entry = hosts_[report.host];
  entry.report = std::move(report);
  entry.heard_at = now;
  entry.placements_since_report = 0;
}

void LoadTable::AddPlacement(const std::string& host) {
  auto it = hosts_.find(host);
  if (it != hosts_.end()) ++it->second.placements_since_report;
}

void LoadTable::Forget(const std::string& host) { hosts_.erase(host); }

const HostLoad* LoadTable::Fresh(const std::string& host, Clock::time_point now) const {
  auto it = hosts_.find(host);
  if (it == hosts_.end() || now - it->second.heard_at > stale_after_) return nullptr;
  return &it->second;
}

}  // namespace queue::load
