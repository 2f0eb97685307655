// Throughput of batch jobs (SPEC §10): N `queue -r -- true` submitted to one
// host of a 3-host loopback cluster by P parallel clients, then run on the 3
// hosts. The baseline, measured in the same run with the same parallelism, is
// starting N `/bin/true` directly (fork+exec+wait): the ratios say what
// fraction of the machine's raw process-start rate Queue reaches.
//
// Usage: bench_batch_throughput [jobs] [clients]   (default 10000 16)
#include <nlohmann/json.hpp>
#include <atomic>
#include <filesystem>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "cluster_fixture.h"

namespace {

using Clock = std::chrono::steady_clock;
using queue::testing::CommandOptions;
using queue::testing::RunCommand;
using queue::testing::RunConcurrently;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

size_t Unfinished(queue::testing::TestCluster& cluster) {
  auto run = cluster.Queue(0, {"--jobs", "--json"}, {{}, "", std::chrono::seconds(30), ""});
  auto jobs = nlohmann::json::parse(run.out, nullptr, false);
  return jobs.is_discarded() ? SIZE_MAX : jobs.size();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace queue::testing;
  int jobs = argc > 1 ? std::atoi(argv[1]) : 10000;
  int clients = argc > 2 ? std::atoi(argv[2]) : 16;
  auto cluster = TestCluster::Start(3);
  if (!cluster->WaitForView(std::chrono::seconds(15))) {
    std::fprintf(stderr, "cluster did not come up:\n%s\n", cluster->log(0).c_str());
    return 1;
  }
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  CommandOptions options{{"QUEUE_SOCKET=" + cluster->socket(0), "QMAIL=FALSE"}, "", std::chrono::seconds(60), cwd};

  double direct = RunConcurrently({"/bin/true"}, options, jobs, clients);
  auto start = Clock::now();
  double submit = RunConcurrently({BinDir() + "/queue", "-r", "--", "true"}, options, jobs, clients);
  if (direct < 0 || submit < 0) {
    std::fprintf(stderr, "a run failed\n%s\n", cluster->log(0).c_str());
    return 1;
  }
  size_t left = 0;
  while ((left = Unfinished(*cluster)) != 0) {
    if (Seconds(Clock::now() - start) > 1800) {
      std::fprintf(stderr, "%zu jobs still unfinished after 30 minutes\n", left);
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  double complete = Seconds(Clock::now() - start);
  double direct_rate = jobs / direct, submit_rate = jobs / submit, complete_rate = jobs / complete;
  std::printf("jobs %d, parallel clients %d, 3 hosts on loopback, %u cores\n", jobs, clients,
              std::thread::hardware_concurrency());
  std::printf("baseline: /bin/true fork+exec+wait   %8.0f /s\n", direct_rate);
  std::printf("queue -r -- true submitted           %8.0f /s  (ratio %.3f)\n", submit_rate, submit_rate / direct_rate);
  std::printf("all completed (from first submit)    %8.0f /s  (ratio %.3f)  in %.1f s\n", complete_rate,
              complete_rate / direct_rate, complete);
  return 0;
}
