// Batch submission and completion rates: COMMAND run `--calls` times from
// `--clients` threads (each call submits `--jobs-per-call` jobs: 1, or N for a
// bulk submission such as an array), then `--pending` (a sh snippet that prints
// how many of the jobs are not finished yet) polled until it prints 0 (every
// 20 ms, or twice as long as a poll takes when that is longer). The same
// driver measures queue, tsp and sbatch, so that they are timed alike.
//
// Usage: bench_submit_rate --calls N [--clients P] [--jobs-per-call K]
//                          [--timeout SECONDS] --pending 'SH' -- COMMAND...
// Prints {"jobs": J, "submit_s": S, "done_s": D, "submitted_per_s": J/S, "done_per_s": J/D}
// (done_s counts from the first submission).
#include <nlohmann/json.hpp>
#include <algorithm>
#include <atomic>
#include <iostream>
#include <thread>

#include "bench_process.h"

namespace {

using namespace queue::bench;

struct Options {
  long calls = 0, clients = 1, jobs_per_call = 1, timeout_s = 1800;
  std::string pending;
  std::vector<std::string> command;
};

std::optional<Options> Parse(int argc, char** argv) {
  Options o;
  int i = 1;
  for (; i < argc && std::string(argv[i]) != "--"; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) return std::nullopt;
    std::string value = argv[++i];
    if (arg == "--pending") {
      o.pending = value;
      continue;
    }
    long number = std::atol(value.c_str());
    if (number <= 0) return std::nullopt;
    if (arg == "--calls")
      o.calls = number;
    else if (arg == "--clients")
      o.clients = number;
    else if (arg == "--jobs-per-call")
      o.jobs_per_call = number;
    else if (arg == "--timeout")
      o.timeout_s = number;
    else
      return std::nullopt;
  }
  for (++i; i < argc; ++i) o.command.push_back(argv[i]);
  if (o.calls <= 0 || o.pending.empty() || o.command.empty()) return std::nullopt;
  return o;
}

// What the pending snippet prints, or -1 when it fails.
long Pending(const std::string& snippet) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return -1;
  pid_t pid = Spawn({"/bin/sh", "-c", snippet}, -1, out[1], 2);
  close(out[1]);
  std::string text;
  char buffer[256];
  for (ssize_t n; (n = read(out[0], buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<size_t>(n));
  close(out[0]);
  if (pid < 0 || !Reap(pid).ok() || text.empty()) return -1;
  return std::atol(text.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  auto o = Parse(argc, argv);
  if (!o) {
    std::fprintf(stderr,
                 "usage: %s --calls N [--clients P] [--jobs-per-call K] [--timeout S] --pending 'SH' -- COMMAND...\n",
                 argv[0]);
    return 2;
  }
  std::atomic<long> next{0};
  std::atomic<bool> failed{false};
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (long c = 0; c < o->clients; ++c)
    threads.emplace_back([&] {
      while (next.fetch_add(1) < o->calls && !failed) {
        pid_t pid = Spawn(o->command, -1, -1, 2);  // its stderr shows why, if it fails
        if (pid < 0 || !Reap(pid).ok()) failed = true;
      }
    });
  for (auto& t : threads) t.join();
  double submit_s = Seconds(Clock::now() - start);
  if (failed) {
    std::fprintf(stderr, "a submission failed: %s\n", o->command[0].c_str());
    return 1;
  }
  for (long left;;) {
    const auto asked = Clock::now();
    left = Pending(o->pending);
    const auto poll_took = Clock::now() - asked;
    if (left == 0) break;
    if (left < 0) {
      std::fprintf(stderr, "the pending check failed: %s\n", o->pending.c_str());
      return 1;
    }
    if (Seconds(Clock::now() - start) > static_cast<double>(o->timeout_s)) {
      std::fprintf(stderr, "%ld jobs still unfinished after %ld s\n", left, o->timeout_s);
      return 1;
    }
    // Every 20 ms, or twice the poll's time when the poll is slower: a
    // listing of a long backlog costs the system measured too, so polling it
    // back to back would measure the poll. The listing shrinks as the backlog
    // drains, so the polls near the end, which set done_s, come quickly.
    std::this_thread::sleep_for(std::max<Clock::duration>(std::chrono::milliseconds(20), 2 * poll_took));
  }
  double done_s = Seconds(Clock::now() - start);
  double jobs = static_cast<double>(o->calls * o->jobs_per_call);
  nlohmann::json result{{"jobs", o->calls * o->jobs_per_call}, {"clients", o->clients},
                        {"submit_s", submit_s},                {"done_s", done_s},
                        {"submitted_per_s", jobs / submit_s},  {"done_per_s", jobs / done_s}};
  std::cout << result.dump() << "\n";
  return 0;
}
