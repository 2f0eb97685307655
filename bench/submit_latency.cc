// Latency of `queue -i -w -n -- true` on a one-host cluster, against running
// `true` directly (fork+exec+wait), both measured here in the same run.
// SPEC §10: the overhead should stay under 2 ms median.
//
// Usage: bench_submit_latency [runs]   (default 100)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cluster_fixture.h"

namespace {

using Clock = std::chrono::steady_clock;

double MedianMs(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

double Percentile(std::vector<double> samples, double p) {
  std::sort(samples.begin(), samples.end());
  return samples[std::min(samples.size() - 1, static_cast<size_t>(p * static_cast<double>(samples.size())))];
}

template <class F>
std::vector<double> Time(int runs, F&& run) {
  std::vector<double> samples;
  for (int i = 0; i < runs; ++i) {
    auto start = Clock::now();
    if (!run()) {
      std::fprintf(stderr, "run %d failed\n", i);
      std::exit(1);
    }
    samples.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  return samples;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace queue::testing;
  int runs = argc > 1 ? std::atoi(argv[1]) : 100;
  auto cluster = TestCluster::Start(1);
  if (!cluster->WaitForView(std::chrono::seconds(10))) {
    std::fprintf(stderr, "cluster did not come up:\n%s\n", cluster->log(0).c_str());
    return 1;
  }
  const std::vector<std::string> queue_true = {queue::testing::BinDir() + "/queue", "-i", "-w", "-n", "--", "true"};
  CommandOptions env;
  env.env = {"QUEUE_SOCKET=" + cluster->socket(0)};
  // Warm up both paths (page cache, dynamic loader).
  for (int i = 0; i < 5; ++i) RunCommand({"/bin/true"}), RunCommand(queue_true, env);
  // Interleave so that machine noise hits both alike.
  std::vector<double> direct, queued;
  for (int i = 0; i < runs; ++i) {
    auto d = Time(1, [] { return RunCommand({"/bin/true"}).exit_code == 0; });
    auto q = Time(1, [&] { return RunCommand(queue_true, env).exit_code == 0; });
    direct.push_back(d[0]);
    queued.push_back(q[0]);
  }
  double d = MedianMs(direct), q = MedianMs(queued);
  std::printf("runs                         %d\n", runs);
  std::printf("true, direct: median         %.3f ms (p90 %.3f)\n", d, Percentile(direct, 0.9));
  std::printf("queue -i -w -n -- true       %.3f ms (p90 %.3f)\n", q, Percentile(queued, 0.9));
  std::printf("overhead (median difference) %.3f ms\n", q - d);
  std::printf("ratio queue/direct           %.2f\n", q / d);
  return 0;
}
