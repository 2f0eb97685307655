// Jobs per second into the spool for a bulk submission: one `queue -r
// --array 1-20000 -- true`, and one `queue -r --from FILE` of 20,000 lines,
// against the baseline measured in the same run: single `queue -r -- true`
// submissions from parallel clients (the best the one-job path does). Every
// job waits (the host is loaded), so the figures are of the submission alone:
// from starting `queue` until it has printed the array's id, which the daemon
// sends once every record is committed. Target: 20,000 jobs/s.
//
// Usage: bench_bulk_submit [jobs] [single submissions] [clients]   (default 20000 1000 16)
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include "cluster_fixture.h"

namespace {

using Clock = std::chrono::steady_clock;
using queue::testing::CommandOptions;
using queue::testing::RunCommand;
using queue::testing::RunConcurrently;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// One run of `argv`; the seconds taken, or -1 (with its stderr said).
double RunOnce(const std::vector<std::string>& argv, const CommandOptions& options) {
  auto start = Clock::now();
  auto run = RunCommand(argv, options);
  if (run.exit_code != 0) {
    std::fprintf(stderr, "%s failed: %s\n", argv[1].c_str(), run.err.c_str());
    return -1;
  }
  return Seconds(Clock::now() - start);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace queue::testing;
  const int jobs = argc > 1 ? std::atoi(argv[1]) : 20000;
  const int singles = argc > 2 ? std::atoi(argv[2]) : 1000;
  const int clients = argc > 3 ? std::atoi(argv[3]) : 16;
  ClusterOptions cluster_options;
  cluster_options.profile_extra = "loadsched 1\n";
  cluster_options.daemon_args = {"--user-waiting-jobs", std::to_string(2 * jobs + singles + 10)};
  auto cluster = TestCluster::Start(1, cluster_options);
  cluster->SetLoad(0, 5.0);  // every job waits: the spool is what is measured
  if (!cluster->WaitForView(std::chrono::seconds(15))) {
    std::fprintf(stderr, "cluster did not come up:\n%s\n", cluster->log(0).c_str());
    return 1;
  }
  const std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  CommandOptions options{{"QUEUE_SOCKET=" + cluster->socket(0), "QMAIL=FALSE"}, "", std::chrono::seconds(600), cwd};
  std::string lines;
  for (int i = 0; i < jobs; ++i) lines += "true " + std::to_string(i) + "\n";
  WriteFile(cwd + "/jobs.txt", lines);

  const double single = RunConcurrently({BinDir() + "/queue", "-r", "--", "true"}, options, singles, clients);
  const double array = RunOnce({BinDir() + "/queue", "-r", "--array", "1-" + std::to_string(jobs), "--", "true"}, options);
  const double from = RunOnce({BinDir() + "/queue", "-r", "--from", "jobs.txt"}, options);
  if (single < 0 || array < 0 || from < 0) {
    std::fprintf(stderr, "a run failed\n%s\n", cluster->log(0).c_str());
    return 1;
  }
  const double single_rate = singles / single, array_rate = jobs / array, from_rate = jobs / from;
  std::printf("one host on loopback, every job waiting, %u cores\n", std::thread::hardware_concurrency());
  std::printf("baseline: %d x queue -r -- true, %d clients  %8.0f jobs/s\n", singles, clients, single_rate);
  std::printf("queue -r --array 1-%d -- true            %8.0f jobs/s  (ratio %.1f)  in %.2f s\n", jobs, array_rate,
              array_rate / single_rate, array);
  std::printf("queue -r --from FILE (%d lines)          %8.0f jobs/s  (ratio %.1f)  in %.2f s\n", jobs, from_rate,
              from_rate / single_rate, from);
  std::printf("target: 20000 jobs/s into the spool\n");
  return 0;
}
