// Which peers are dead, and the fences of the runs lost with them.
#include "daemon/host_liveness.h"

#include <algorithm>

namespace queue::daemon {

std::vector<std::pair<std::string, int64_t>> HostLiveness::Dead(const load::LoadTable& table,
                                                                const std::vector<std::string>& peers,
                                                                Clock::time_point now) const {
  std::vector<std::pair<std::string, int64_t>> dead;
  for (const std::string& host : peers) {
    if (table.Fresh(host, now) != nullptr) continue;
    auto heard = table.hosts().find(host);
    auto last = std::max(started_at_, heard == table.hosts().end() ? started_at_ : heard->second.heard_at);
    if (now - last < dead_after_) continue;
    dead.emplace_back(host, std::chrono::duration_cast<std::chrono::seconds>(now - last).count());
  }
  return dead;
}

void HostLiveness::AddFence(const std::string& host, Fence fence, Clock::time_point now) {
  fences_[host].held.push_back(Held{fence, now + kFenceFor});
}

void HostLiveness::RunEnded(const std::string& host, uint64_t origin_id, uint32_t attempt) {
  auto found = fences_.find(host);
  if (found == fences_.end()) return;
  std::erase_if(found->second.held,
                [&](const Held& h) { return h.fence.origin_id == origin_id && h.fence.attempt == attempt; });
  if (found->second.held.empty()) fences_.erase(found);
}

std::vector<Fence> HostLiveness::FencesDue(const std::string& host, Clock::time_point now) {
  auto found = fences_.find(host);
  if (found == fences_.end()) return {};
  HostFences& f = found->second;
  std::erase_if(f.held, [&](const Held& h) { return h.until <= now; });
  if (f.held.empty()) {
    fences_.erase(found);
    return {};
  }
  if (now < f.next_send) return {};
  f.next_send = now + kFenceEvery;
  std::vector<Fence> due;
  for (const Held& h : f.held) due.push_back(h.fence);
  return due;
}

size_t HostLiveness::fenced(const std::string& host) const {
  auto found = fences_.find(host);
  return found == fences_.end() ? 0 : found->second.held.size();
}

}  // namespace queue::daemon
