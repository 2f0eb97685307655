// Migration latency (SPEC §7): a job that checkpoints (queue-example-counter)
// runs on host 0 of a two-host loopback cluster whose queues say
// `loadcheckpoint 3`; host 0's load (its --loadavg-file) is set to 5, and the
// clock runs until the job runs again on host 1, in two steps:
//   - scheduled: host 0's `queue --jobs` names host 1 as the job's host;
//   - resumed:   the job's own output says it resumed from its restart file.
// Each run starts a fresh job (a job never goes back to a host it left) and
// cancels it at the end. No baseline: nothing else moves a running job.
//
// Usage: bench_migrate_latency [runs]   (default 5)
// Prints {"scheduled_ms": [...], "resumed_ms": [...]}.
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cluster_fixture.h"

namespace {

using namespace queue::testing;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const char* kCheckpointing = "checkpointmode 2\nloadcheckpoint 3\nrestartflag --resume\nrestartmode 1\n";

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Moved {
  double scheduled_ms = -1, resumed_ms = -1;
};

// One job, started on host 0 and moved by its load; nullopt (saying why) on failure.
std::optional<Moved> MoveOnce(TestCluster& cluster, uint64_t id, const std::string& cwd) {
  std::string out = cwd + "/stub.out", err = cwd + "/stub.err";
  auto stub = StartStub(cluster, cwd,
                        {"-n", "-H", cluster.entry(0), "--", BinDir() + "/queue-example-counter", "1000000", "0.01"});
  bool started = WaitUntil(
      [&] { return RunningOn(cluster, id) == cluster.entry(0) && ReadFile(out).find("start at") != std::string::npos; },
      20s);
  if (!started) {
    std::fprintf(stderr, "job %s did not start on host 0\n%s\n", JobLabel(id).c_str(), ReadFile(err).c_str());
    return std::nullopt;
  }
  Moved moved;
  auto crossed = Clock::now();
  cluster.SetLoad(0, 5.0);
  bool arrived = WaitUntil(
      [&] {
        if (moved.scheduled_ms < 0 && RunningOn(cluster, id) == cluster.entry(1)) moved.scheduled_ms = MillisSince(crossed);
        if (ReadFile(out).find("resumed at") == std::string::npos) return false;
        moved.resumed_ms = MillisSince(crossed);
        return true;
      },
      60s);
  cluster.SetLoad(0, 0.0);
  cluster.Queue(0, {"--cancel", JobLabel(id)});
  WaitChild(stub.pid, 30s);
  if (!arrived) {
    std::fprintf(stderr, "job %s did not resume on host 1\n%s\n%s\n", JobLabel(id).c_str(), ReadFile(err).c_str(),
                 cluster.log(0).c_str());
    return std::nullopt;
  }
  if (moved.scheduled_ms < 0) moved.scheduled_ms = moved.resumed_ms;  // both seen in the same poll
  return moved;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 5;
  if (runs <= 0 || access((BinDir() + "/queue-example-counter").c_str(), X_OK) != 0) {
    std::fprintf(stderr, "usage: %s [runs]   (needs %s/queue-example-counter)\n", argv[0], BinDir().c_str());
    return 2;
  }
  ClusterOptions options;
  options.profile_extra = kCheckpointing;
  auto cluster = TestCluster::Start(2, options);
  if (!cluster->WaitForView(15s)) {
    std::fprintf(stderr, "cluster did not come up\n%s\n", cluster->log(0).c_str());
    return 1;
  }
  nlohmann::json scheduled = nlohmann::json::array(), resumed = nlohmann::json::array();
  for (int run = 0; run < runs; ++run) {
    std::string cwd = cluster->dir() + "/work" + std::to_string(run);
    std::filesystem::create_directories(cwd);
    // Host 0 must know that its load is low again before the next job comes.
    if (!cluster->WaitForLoads(0, 15s)) {
      std::fprintf(stderr, "host 0 did not hear the loads\n");
      return 1;
    }
    auto moved = MoveOnce(*cluster, static_cast<uint64_t>(run + 1), cwd);
    if (!moved) return 1;
    scheduled.push_back(moved->scheduled_ms);
    resumed.push_back(moved->resumed_ms);
  }
  std::cout << nlohmann::json{{"scheduled_ms", scheduled}, {"resumed_ms", resumed}}.dump() << "\n";
  return 0;
}
