// In-process simulation of placement in a large cluster (issue 13): N hosts
// of `slots` job slots each, jobs arriving as a Poisson stream at a given
// utilisation with exponential run times (mean 1), each placed by
//   - the omniscient placer (the least loaded host of all: what a full load
//     table gives, at the cost of every host reporting to every other),
//   - a random host (d = 1), or
//   - the power of d choices (sched/host_sampler: ask d random hosts, take
//     the least loaded), d = 2 and 3.
// A job that finds its host full waits there, first come first served. The
// figures: mean and 99th-percentile wait (in mean run times), each policy's
// mean response time (wait and run) over the omniscient placer's (whose jobs
// hardly ever wait: it always sees a free slot while there is one), and the
// messages each costs a host
// per second (sampling: a probe and its answer per host asked, and the offer
// and its answer; the full table: a load report to and from every peer each
// second, and the offer). Seeded and replayable: --seed.
// Usage: bench_placement_sim [--hosts N,...] [--jobs-per-host J] [--seed S]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "sched/host_sampler.h"

namespace {

struct Outcome {
  double mean_wait = 0, p99_wait = 0;
  size_t longest_queue = 0;
};

// d = 0: omniscient.
Outcome Simulate(size_t hosts, int slots, double utilisation, size_t jobs, int d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(utilisation * hosts * slots), run(1.0);
  std::vector<int> running(hosts, 0);
  std::vector<std::deque<double>> waiting(hosts);
  std::set<std::pair<size_t, size_t>> by_load;  // (jobs at the host, host), for the omniscient placer
  for (size_t h = 0; h < hosts; ++h) by_load.insert({0, h});
  auto load = [&](size_t h) { return running[h] + waiting[h].size(); };
  auto change = [&](size_t h, auto&& f) {
    if (d == 0) by_load.erase({load(h), h});
    f();
    if (d == 0) by_load.insert({load(h), h});
  };
  using Event = std::pair<double, size_t>;  // a job's end: (time, host)
  std::priority_queue<Event, std::vector<Event>, std::greater<>> ends;
  std::vector<double> waits;
  waits.reserve(jobs);
  Outcome o;
  double now = 0, next_arrival = gap(rng);
  size_t arrived = 0;
  const size_t warm_up = jobs / 5;  // the first jobs find an empty cluster: not counted
  while (arrived < jobs || !ends.empty()) {
    if (arrived < jobs && (ends.empty() || next_arrival < ends.top().first)) {
      now = next_arrival;
      next_arrival += gap(rng);
      size_t host;
      if (d == 0) {
        host = by_load.begin()->second;
      } else {
        std::vector<queue::sched::ProbeAnswer> answers;
        for (size_t h : queue::sched::SampleHosts(hosts, static_cast<size_t>(d), rng))
          answers.push_back({h, static_cast<double>(load(h)), true});
        host = *queue::sched::LeastLoaded(answers);
      }
      const bool counted = arrived++ >= warm_up;
      change(host, [&] {
        if (running[host] < slots) {
          ++running[host];
          ends.push({now + run(rng), host});
          if (counted) waits.push_back(0);
        } else {
          waiting[host].push_back(counted ? now : -1);
          o.longest_queue = std::max(o.longest_queue, waiting[host].size());
        }
      });
      continue;
    }
    auto [t, host] = ends.top();
    ends.pop();
    now = t;
    change(host, [&] {
      --running[host];
      if (waiting[host].empty()) return;
      double since = waiting[host].front();
      waiting[host].pop_front();
      if (since >= 0) waits.push_back(now - since);
      ++running[host];
      ends.push({now + run(rng), host});
    });
  }
  double sum = 0;
  for (double w : waits) sum += w;
  o.mean_wait = waits.empty() ? 0 : sum / waits.size();
  std::sort(waits.begin(), waits.end());
  o.p99_wait = waits.empty() ? 0 : waits[waits.size() * 99 / 100];
  return o;
}

std::vector<size_t> ParseList(const char* text) {
  std::vector<size_t> out;
  for (const char* p = text; *p;) {
    out.push_back(std::strtoull(p, const_cast<char**>(&p), 10));
    if (*p == ',') ++p;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<size_t> sizes{1000, 10000};
  size_t jobs_per_host = 100;
  uint64_t seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--hosts")) sizes = ParseList(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--jobs-per-host")) jobs_per_host = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--seed")) seed = std::strtoull(argv[i + 1], nullptr, 10);
  }
  const int slots = 4;
  std::printf("| hosts | utilisation | placer | mean wait | p99 wait | longest queue | mean response / omniscient's | "
              "messages per host per second |\n|---|---|---|---|---|---|---|---|\n");
  for (size_t hosts : sizes) {
    for (double utilisation : {0.7, 0.9}) {
      const double arrivals_per_host = utilisation * slots;  // per second, run times of mean 1 s
      Outcome best = Simulate(hosts, slots, utilisation, hosts * jobs_per_host, 0, seed);
      for (int d : {0, 1, 2, 3}) {
        Outcome o = d == 0 ? best : Simulate(hosts, slots, utilisation, hosts * jobs_per_host, d, seed);
        // Each placement: d probes and d answers, the offer and its answer,
        // spread over the hosts; the full table adds 2 (N - 1) reports a second.
        double messages = d == 0 ? 2.0 * (hosts - 1) + 2 * arrivals_per_host : (2.0 * d + 2) * arrivals_per_host;
        std::printf("| %zu | %.1f | %s | %.3f | %.3f | %zu | %s | %.1f |\n", hosts, utilisation,
                    d == 0 ? "omniscient (full load table)" : d == 1 ? "random host" : d == 2 ? "best of 2" : "best of 3",
                    o.mean_wait, o.p99_wait, o.longest_queue,
                    std::to_string((1 + o.mean_wait) / (1 + best.mean_wait)).substr(0, 5).c_str(),
                    messages);
      }
    }
  }
  std::printf("\nslots per host %d; run times exponential, mean 1 s; %zu jobs per host, the first fifth not counted; seed %llu\n",
              slots, jobs_per_host, static_cast<unsigned long long>(seed));
  return 0;
}
