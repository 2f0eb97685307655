// Random host samples and the pick among their answers.
#include "sched/host_sampler.h"

#include <algorithm>
#include <unordered_set>

namespace queue::sched {

std::vector<size_t> SampleHosts(size_t hosts, size_t count, std::mt19937_64& rng) {
  std::vector<size_t> chosen;
  if (count >= hosts) {
    for (size_t i = 0; i < hosts; ++i) chosen.push_back(i);
    return chosen;
  }
  // Floyd: for j in [hosts - count, hosts), take a random t in [0, j]; if it
  // is taken already, take j instead. Every count-subset is equally likely.
  std::unordered_set<size_t> taken;
  for (size_t j = hosts - count; j < hosts; ++j) {
    size_t t = std::uniform_int_distribution<size_t>(0, j)(rng);
    size_t pick = taken.insert(t).second ? t : (taken.insert(j), j);
    chosen.push_back(pick);
  }
  return chosen;
}

size_t ProbesFor(size_t jobs, size_t d, size_t hosts) { return std::min(hosts, jobs * d); }

std::optional<size_t> LeastLoaded(const std::vector<ProbeAnswer>& answers) {
  std::optional<size_t> best;
  double best_load = 0;
  for (const auto& a : answers) {
    if (!a.accepts) continue;
    if (!best || a.load < best_load) {
      best = a.host;
      best_load = a.load;
    }
  }
  return best;
}

}  // namespace queue::sched
