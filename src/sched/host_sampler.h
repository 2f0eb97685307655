// Host sampling for large clusters (issue 13): no load table of every host;
// a placement asks a few hosts chosen at random and takes the least loaded
// that accepts (the power of d choices: with d = 2 the longest queue falls
// from O(log n / log log n) to O(log log n); Sparrow's batch sampling asks
// d x m hosts for m jobs at once). Pure: the caller owns the random source,
// so a test or a simulation replays it from a seed.
#pragma once

#include <cstddef>
#include <optional>
#include <random>
#include <vector>

namespace queue::sched {

// `count` distinct indexes of [0, hosts), each set of them equally likely
// (Floyd's algorithm: `count` draws whatever `hosts` is); all of them, in
// order, when count >= hosts.
std::vector<size_t> SampleHosts(size_t hosts, size_t count, std::mt19937_64& rng);

// How many hosts to ask for `jobs` jobs placed together: `d` per job, at
// most every host.
size_t ProbesFor(size_t jobs, size_t d, size_t hosts);

// A sampled host's answer: its load (as HostChooser ranks it, lower first),
// or no answer / a refusal.
struct ProbeAnswer {
  size_t host = 0;
  double load = 0;
  bool accepts = false;
};

// The answer to place on: the lowest load among those that accept (the
// first of equals, so that the caller's order breaks ties), or none.
std::optional<size_t> LeastLoaded(const std::vector<ProbeAnswer>& answers);

}  // namespace queue::sched
