// Which jobs checkpoint on a heartbeat: the load, drains and periods.
#include "daemon/checkpoint_policy.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace queue::daemon {

namespace {

// How long a job moved away for the load counts against it (the 1-minute load's memory).
constexpr double kMovedLoadSeconds = 60;
// After this, what a moved job counts is negligible: forgotten.
constexpr auto kMovedForgottenAfter = std::chrono::minutes(5);

}  // namespace

double CheckpointPolicy::LoadLessMoved(double load1, Clock::time_point now) {
  std::erase_if(moved_for_load_, [&](const auto& at) { return now - at > kMovedForgottenAfter; });
  double moved = 0;
  for (const auto& at : moved_for_load_)
    moved += std::exp(-std::chrono::duration<double>(now - at).count() / kMovedLoadSeconds);
  return std::max(0.0, load1 - moved);
}

std::vector<CheckpointOrder> CheckpointPolicy::Decide(double load1, unsigned cpus, const std::string& self,
                                                      const std::vector<CheckpointQueueView>& queues,
                                                      Clock::time_point now) {
  const double load = LoadLessMoved(load1, now);
  std::vector<CheckpointOrder> orders;
  bool moved_one_for_load = false;
  for (const CheckpointQueueView& q : queues) {
    const profile::QueuePolicy& p = q.policy;
    if (!q.can_checkpoint || q.broken) continue;
    if (p.checkpoint_period_seconds > 0)
      for (uint64_t id : q.due_for_period) orders.push_back(CheckpointOrder{id, "", true, false});
    if (!q.others_take_restarts) continue;
    if (p.exec == profile::ExecState::kDrain) {
      for (uint64_t id : q.candidates)
        orders.push_back(CheckpointOrder{id, "[" + self + " is draining: the job moves to another host]", false, false});
      continue;
    }
    if (moved_one_for_load || q.candidates.empty()) continue;
    if (profile::NormalizedLoad(load, p.load_norm, cpus) < p.load_checkpoint) continue;
    std::ostringstream why;
    why << "[load " << load1 << " on " << self << " reached loadcheckpoint " << p.load_checkpoint
        << ": the job moves to another host]";
    orders.push_back(CheckpointOrder{q.candidates.front(), why.str(), false, true});
    moved_one_for_load = true;
  }
  return orders;
}

}  // namespace queue::daemon
