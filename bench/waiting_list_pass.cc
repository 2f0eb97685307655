// The cost of one scheduling pass over the waiting list (daemon/waiting_list)
// as the backlog grows: 10 and 10,000 waiting jobs in a few queues, every key
// blocked (each queue refused for now this heartbeat), as on a full cluster
// between heartbeats. The ratio of the two must stay near 1: a pass costs what
// it offers plus one step per key, not one per waiting job. The baseline, in
// the same run, is the walk the daemon did before: one map by record id,
// walked whole on every pass (its ratio grows with the backlog).
//
// A second case offers 32 jobs per pass from open queues (as jobs drain),
// each taken and returned, so the list stays as long: 100 against 10,000
// waiting jobs (with 10 a pass would offer only 10).
//
// Usage: bench_waiting_list_pass [Google Benchmark flags]
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "daemon/waiting_list.h"

namespace {

using queue::daemon::WaitingList;

constexpr size_t kMaxInFlight = 32;  // daemon.cc's kMaxPlacementsInFlight
const char* const kKeys[] = {"now|", "batch|", "batch|h2", "night|"};

std::string KeyOf(uint64_t id) { return kKeys[id % std::size(kKeys)]; }

WaitingList Backlog(int64_t jobs, bool blocked) {
  WaitingList list;
  for (int64_t id = 1; id <= jobs; ++id) list.Add(static_cast<uint64_t>(id), true, KeyOf(id));
  if (blocked)
    for (const char* key : kKeys) list.Block(key);
  return list;
}

void BM_PassAllBlocked(benchmark::State& state) {
  WaitingList list = Backlog(state.range(0), true);
  size_t taken = 0;
  for (auto _ : state) list.Pass(kMaxInFlight, [&](uint64_t) { ++taken; });
  if (taken != 0) state.SkipWithError("a blocked job was offered");
}
BENCHMARK(BM_PassAllBlocked)->Arg(10)->Arg(10000);

void BM_PassStarts32(benchmark::State& state) {
  WaitingList list = Backlog(state.range(0), false);
  std::vector<std::pair<uint64_t, uint64_t>> taken;
  for (auto _ : state) {
    taken.clear();
    list.Pass(kMaxInFlight, [&](uint64_t id) { taken.emplace_back(id, list.Take(id)); });
    for (const auto& [id, generation] : taken) list.Return(id, generation);
  }
}
BENCHMARK(BM_PassStarts32)->Arg(100)->Arg(10000);

// The baseline: the list as one map by record id, walked whole (before).
struct WholeWalk {
  struct Job {
    std::string key;
    bool in_flight = false;
  };
  std::map<uint64_t, Job> jobs;
  std::set<std::string> blocked;
  size_t Pass() {
    size_t in_flight = 0;
    std::vector<uint64_t> ready;
    for (const auto& [id, job] : jobs) in_flight += job.in_flight;
    for (const auto& [id, job] : jobs) {
      if (ready.size() + in_flight >= kMaxInFlight) break;
      if (!job.in_flight && !blocked.count(job.key)) ready.push_back(id);
    }
    return ready.size();
  }
};

void BM_WholeWalkAllBlocked(benchmark::State& state) {
  WholeWalk list;
  for (int64_t id = 1; id <= state.range(0); ++id) list.jobs[static_cast<uint64_t>(id)] = {KeyOf(id), false};
  for (const char* key : kKeys) list.blocked.insert(key);
  for (auto _ : state) benchmark::DoNotOptimize(list.Pass());
}
BENCHMARK(BM_WholeWalkAllBlocked)->Arg(10)->Arg(10000);

// Prints as usual, and keeps each benchmark's time per iteration.
class KeepingReporter : public benchmark::ConsoleReporter {
 public:
  KeepingReporter() : ConsoleReporter(OO_Tabular) {}  // no colours: the output goes to logs
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs)
      if (!run.error_occurred && run.aggregate_name.empty()) times[run.benchmark_name()] = run.GetAdjustedRealTime();
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, double> times;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  KeepingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  auto ratio = [&](const std::string& name, const std::string& small_jobs) {
    auto small = reporter.times.find(name + "/" + small_jobs), large = reporter.times.find(name + "/10000");
    if (small == reporter.times.end() || large == reporter.times.end() || small->second <= 0) return;
    std::printf("ratio %-22s 10000 jobs / %s jobs: %.2f\n", name.c_str(), small_jobs.c_str(),
                large->second / small->second);
  };
  ratio("BM_PassAllBlocked", "10");
  ratio("BM_PassStarts32", "100");
  ratio("BM_WholeWalkAllBlocked", "10");
  return 0;
}
