// HostLiveness: which peers are taken for dead, and the fences that end a lost
// run should its host come back. Pure decisions over the load table and the
// time the caller gives.
//
// Silence is counted in load reports, not by the TCP connection: a hung daemon
// (stopped, or stuck in the kernel) keeps its connections open. The jobs this
// host placed on a dead peer are lost with it and may run again elsewhere; so
// each such run (origin id, attempt) is fenced: told to end there, again every
// few seconds while the host is heard, until that run's end comes (or for
// kFenceFor at most), since a CancelJob may be lost or overtake the PlaceJob it
// is to end.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "load/load_table.h"

namespace queue::daemon {

struct Fence {
  uint64_t origin_id = 0;
  uint32_t attempt = 0;
};

class HostLiveness {
 public:
  using Clock = load::Clock;
  static constexpr auto kFenceFor = std::chrono::minutes(10);
  static constexpr auto kFenceEvery = std::chrono::seconds(5);

  // A peer never heard counts as silent from `started_at` (this daemon's start).
  HostLiveness(Clock::duration dead_after, Clock::time_point started_at)
      : dead_after_(dead_after), started_at_(started_at) {}

  // Of `peers`, those silent for longer than dead_after, with how long (whole seconds).
  std::vector<std::pair<std::string, int64_t>> Dead(const load::LoadTable& table, const std::vector<std::string>& peers,
                                                    Clock::time_point now) const;

  // The run `attempt` of job `origin_id` is taken for lost with `host`.
  void AddFence(const std::string& host, Fence fence, Clock::time_point now);
  // That run's end came from its host: it needs no fence any more.
  void RunEnded(const std::string& host, uint64_t origin_id, uint32_t attempt);
  // The fences to send to `host` (heard and connected) now: all of them, once
  // every kFenceEvery, after dropping those past kFenceFor.
  std::vector<Fence> FencesDue(const std::string& host, Clock::time_point now);
  size_t fenced(const std::string& host) const;

 private:
  struct Held {
    Fence fence;
    Clock::time_point until;
  };
  struct HostFences {
    std::vector<Held> held;
    Clock::time_point next_send{};
  };
  Clock::duration dead_after_;
  Clock::time_point started_at_;
  std::map<std::string, HostFences> fences_;
};

}  // namespace queue::daemon
