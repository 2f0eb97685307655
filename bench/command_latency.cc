// Latency of short commands, each started and waited for as a shell would
// (posix_spawn + wait4), interleaved run by run so that the machine's noise
// hits all alike: `queue -i -w -n -- true` against bare `true` and the peers
// (ssh, srun, tsp -f) that scripts/bench.py names. With --cpu LABEL it then
// runs that command `--cpu-runs` times in a row, --cpu-blocks times, and
// measures the CPU of each job: the client's own (wait4), the daemon's own and
// that of the daemon's reaped children, the shepherd and its job
// (/proc/PID/stat of --daemon-pid, which must be otherwise idle).
//
// Usage: bench_command_latency [--runs N] [--warmup N] [--daemon-pid PID --cpu LABEL
//                               [--cpu-runs N] [--cpu-blocks N]] LABEL=COMMAND...
// Prints one JSON object: {"latency_ms": {LABEL: [...]}, "client_cpu_ms": {LABEL: [...]},
//                          "cpu_per_job_ms": {"client": [...], "daemon": [...], "shepherd_and_job": [...]}}
#include <nlohmann/json.hpp>
#include <fstream>
#include <iostream>
#include <thread>

#include "bench_process.h"

namespace {

using namespace queue::bench;

// utime + stime and cutime + cstime of a process, in ms, from /proc/PID/stat.
struct ProcCpu {
  double self_ms = 0, children_ms = 0;
};

std::optional<ProcCpu> ReadProcCpu(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');  // the command name may hold blanks
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(paren + 2));
  std::vector<std::string> f;
  for (std::string word; fields >> word;) f.push_back(word);
  // After the name: state is field 3; utime, stime, cutime, cstime are 14..17.
  if (f.size() < 15) return std::nullopt;
  double tick_ms = 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  return ProcCpu{(std::stod(f[11]) + std::stod(f[12])) * tick_ms, (std::stod(f[13]) + std::stod(f[14])) * tick_ms};
}

struct Options {
  int runs = 50, warmup = 5, cpu_runs = 200, cpu_blocks = 5;
  pid_t daemon_pid = -1;
  std::string cpu_label;
  std::vector<LabeledCommand> commands;
};

std::optional<Options> Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto number = [&](auto& into) {
      if (i + 1 >= argc) return false;
      into = std::atoi(argv[++i]);
      return into > 0;
    };
    if (arg == "--runs") {
      if (!number(o.runs)) return std::nullopt;
    } else if (arg == "--warmup") {
      if (!number(o.warmup)) return std::nullopt;
    } else if (arg == "--cpu-runs") {
      if (!number(o.cpu_runs)) return std::nullopt;
    } else if (arg == "--cpu-blocks") {
      if (!number(o.cpu_blocks)) return std::nullopt;
    } else if (arg == "--daemon-pid") {
      if (!number(o.daemon_pid)) return std::nullopt;
    } else if (arg == "--cpu" && i + 1 < argc) {
      o.cpu_label = argv[++i];
    } else if (auto command = ParseLabeled(arg)) {
      o.commands.push_back(*command);
    } else {
      return std::nullopt;
    }
  }
  if (o.commands.empty() || (!o.cpu_label.empty() && o.daemon_pid <= 0)) return std::nullopt;
  return o;
}

// CPU per job of `command`, in blocks of `runs` jobs each.
nlohmann::json CpuPerJob(const Options& o, const LabeledCommand& command) {
  nlohmann::json client = nlohmann::json::array(), daemon = nlohmann::json::array(),
                 shepherd = nlohmann::json::array();
  for (int block = 0; block < o.cpu_blocks; ++block) {
    auto before = ReadProcCpu(o.daemon_pid);
    double client_ms = 0;
    for (int i = 0; i < o.cpu_runs; ++i) client_ms += RunOrDie(command.label, command.argv).cpu_ms;
    // The shepherd's CPU reaches cutime when the daemon reaps it, just after
    // the client sees the job's end: wait until the count stops moving.
    std::optional<ProcCpu> after;
    for (int settle = 0; settle < 50; ++settle) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      auto now = ReadProcCpu(o.daemon_pid);
      if (now && after && now->children_ms == after->children_ms) break;
      after = now;
    }
    if (!before || !after) {
      std::fprintf(stderr, "cannot read /proc/%d/stat\n", o.daemon_pid);
      std::exit(1);
    }
    client.push_back(client_ms / o.cpu_runs);
    daemon.push_back((after->self_ms - before->self_ms) / o.cpu_runs);
    shepherd.push_back((after->children_ms - before->children_ms) / o.cpu_runs);
  }
  return {{"client", client}, {"daemon", daemon}, {"shepherd_and_job", shepherd}, {"jobs_per_block", o.cpu_runs}};
}

}  // namespace

int main(int argc, char** argv) {
  auto options = Parse(argc, argv);
  if (!options) {
    std::fprintf(stderr,
                 "usage: %s [--runs N] [--warmup N] [--daemon-pid PID --cpu LABEL [--cpu-runs N] [--cpu-blocks N]] "
                 "LABEL=COMMAND...\n",
                 argv[0]);
    return 2;
  }
  nlohmann::json latency, client_cpu;
  for (int i = 0; i < options->warmup; ++i)
    for (const auto& command : options->commands) RunOrDie(command.label, command.argv);
  for (int i = 0; i < options->runs; ++i)
    for (const auto& command : options->commands) {
      auto start = Clock::now();
      Ended ended = RunOrDie(command.label, command.argv);
      latency[command.label].push_back(Millis(Clock::now() - start));
      client_cpu[command.label].push_back(ended.cpu_ms);
    }
  nlohmann::json result{{"latency_ms", latency}, {"client_cpu_ms", client_cpu}};
  if (!options->cpu_label.empty()) {
    auto found = std::find_if(options->commands.begin(), options->commands.end(),
                              [&](const LabeledCommand& c) { return c.label == options->cpu_label; });
    if (found == options->commands.end()) {
      std::fprintf(stderr, "--cpu %s: no such label\n", options->cpu_label.c_str());
      return 2;
    }
    result["cpu_per_job_ms"] = CpuPerJob(*options, *found);
  }
  std::cout << result.dump() << "\n";
  return 0;
}
