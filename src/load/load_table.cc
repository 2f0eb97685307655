// The per-daemon table of host loads.
#include "load/load_table.h"

#include <algorithm>
#include <cmath>

namespace queue::load {

void LoadTable::Update(wire::LoadReport report, Clock::time_point now) {
  HostLoad& entry = hosts_[report.host];
  entry.report = std::move(report);
  entry.heard_at = now;
  entry.placements_since_report = 0;
}

namespace {

double DecayedPlacementLoad(const HostLoad& host, Clock::time_point now) {
  double age = std::chrono::duration<double>(now - host.placement_load_at).count();
  return host.placement_load * std::exp(-std::max(0.0, age) / static_cast<double>(kPlacementLoadDecay.count()));
}

}  // namespace

void LoadTable::AddPlacement(const std::string& host, Clock::time_point now) {
  auto it = hosts_.find(host);
  if (it == hosts_.end()) return;
  ++it->second.placements_since_report;
  it->second.placement_load = DecayedPlacementLoad(it->second, now) + 1.0;
  it->second.placement_load_at = now;
}

double LoadTable::AdjustedLoad(const HostLoad& host, Clock::time_point now) {
  return host.report.load1 + DecayedPlacementLoad(host, now);
}

void LoadTable::Forget(const std::string& host) { hosts_.erase(host); }

const HostLoad* LoadTable::Fresh(const std::string& host, Clock::time_point now) const {
  auto it = hosts_.find(host);
  if (it == hosts_.end() || now - it->second.heard_at > stale_after_) return nullptr;
  return &it->second;
}

}  // namespace queue::load
