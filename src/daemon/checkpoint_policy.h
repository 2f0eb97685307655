// CheckpointPolicy: which running jobs of this host are asked to checkpoint on
// a heartbeat, and why. A pure decision over what the caller gathered (the
// load, each queue's policy and jobs, whether another host takes restarts) and
// the time it is given; it remembers only when it last sent jobs away for the
// load, since each counts against the load for a minute: the 1-minute average
// takes that long to show a job gone.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "profile/queue_policy.h"

namespace queue::daemon {

struct CheckpointQueueView {
  std::string name;
  profile::QueuePolicy policy;
  bool broken = false;            // its profile is unusable: nothing moves
  bool can_checkpoint = false;    // checkpointmode 2, or 1 with a usable CRIU
  bool others_take_restarts = false;  // some live peer accepts its restarted jobs now
  std::vector<uint64_t> due_for_period;  // ran `checkpointperiod` since their last copy
  std::vector<uint64_t> candidates;      // may move now, the one to move first first
};

struct CheckpointOrder {
  uint64_t record_id = 0;
  std::string reason;      // for the job's user; empty for a periodic copy
  bool in_place = false;   // a periodic copy: the job goes on wherever fits, here included
  bool for_load = false;   // counts against the load once sent (NoteMovedForLoad)
};

class CheckpointPolicy {
 public:
  using Clock = std::chrono::steady_clock;

  // Periodic copies of every queue; every job of a draining queue; and for the
  // load, the first candidate of the first queue at or above its
  // `loadcheckpoint` (one per heartbeat: the next sees the estimate lowered).
  // Nothing leaves unless another host takes it.
  std::vector<CheckpointOrder> Decide(double load1, unsigned cpus, const std::string& self,
                                      const std::vector<CheckpointQueueView>& queues, Clock::time_point now);
  // A job asked to move for the load did checkpoint.
  void NoteMovedForLoad(Clock::time_point now) { moved_for_load_.push_back(now); }
  // The load less what jobs sent away lately will take off it, each fading as
  // the 1-minute average forgets it.
  double LoadLessMoved(double load1, Clock::time_point now);

 private:
  std::vector<Clock::time_point> moved_for_load_;
};

}  // namespace queue::daemon
