// Local connections by uid, and their caps.
#include "daemon/connection_table.h"

#include <algorithm>

namespace queue::daemon {

ConnectionCaps ConnectionCaps::ForDescriptorLimit(uint64_t nofile) {
  ConnectionCaps caps;
  caps.total = static_cast<size_t>(std::clamp<uint64_t>(nofile / 4, 16, 4096));
  caps.per_uid = std::clamp<size_t>(caps.total / 4, 4, 256);
  caps.reserve = std::clamp<size_t>(caps.total / 16, 2, 64);
  return caps;
}

ConnectionTable::Admission ConnectionTable::Admit(uint32_t uid) {
  Admission admission;
  auto found = users_.find(uid);
  const size_t held = found == users_.end() ? 0 : found->second.connections;
  if (held >= caps_.per_uid) {
    admission.refusal = "uid " + std::to_string(uid) + " already holds " + std::to_string(held) +
                        " connections to queued, the most one user may";
    return admission;
  }
  // The reserve: while others hold nearly all, a user with none still gets one.
  const size_t open_to_all = caps_.total - std::min(caps_.reserve, caps_.total);
  if (total_ >= caps_.total || (held > 0 && total_ >= open_to_all)) {
    admission.refusal = "queued holds " + std::to_string(total_) + " local connections, " +
                        (total_ >= caps_.total ? "its limit" : "all but those kept for users who hold none");
    return admission;
  }
  Usage& usage = users_[uid];
  if (!usage.budget)
    usage.budget = std::make_shared<wire::ByteBudget>(caps_.uid_memory, "uid " + std::to_string(uid) + "'s connections");
  ++usage.connections;
  ++total_;
  admission.slot = std::make_shared<Slot>(shared_from_this(), uid);
  admission.budget = usage.budget;
  return admission;
}

size_t ConnectionTable::of(uint32_t uid) const {
  auto found = users_.find(uid);
  return found == users_.end() ? 0 : found->second.connections;
}

void ConnectionTable::Release(uint32_t uid) {
  auto found = users_.find(uid);
  if (found == users_.end()) return;
  --total_;
  // The budget lives on with the channels that hold it; a new one starts empty.
  if (--found->second.connections == 0) users_.erase(found);
}

}  // namespace queue::daemon
