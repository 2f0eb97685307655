// Host choice: ranks the hosts that can take a job in a queue by the original's
// virtual load (profile::VirtualLoad), lower first, reading only the LoadTable (O(hosts), no network round trips).
#pragma once

#include <string>
#include <vector>

#include "cluster/hosts_file.h"
#include "load/load_table.h"

namespace queue::sched {

struct PlacementRequest {
  std::string queue;
  std::string only_host;       // -h: that host or none
  std::string preferred_host;  // -H: that host first
  std::vector<std::string> exclude;
  bool restart = false;  // a checkpointed job: only hosts whose queue takes restarts (restartmode)
};

struct Ranking {
  std::vector<std::string> candidates;  // host entries, best first
  std::vector<std::string> refusals;    // "host: reason" for every host left out
  size_t temporary_refusals = 0;        // of those, the ones that may change (down, closed, busy)
};

class HostChooser {
 public:
  HostChooser(const std::vector<cluster::HostEntry>& hosts, const std::string& self)
      : hosts_(hosts), self_(self) {}

  Ranking Rank(const load::LoadTable& table, const PlacementRequest& request,
               load::Clock::time_point now) const;

 private:
  const std::vector<cluster::HostEntry>& hosts_;
  std::string self_;
};

}  // namespace queue::sched
