// What the command-line benchmark drivers (command_latency, submit_rate,
// stream_throughput) share: starting a command with posix_spawn (lighter than
// the test fixture's RunCommand, which starts threads and pipes, so the
// baselines stay at the machine's floor), waiting for it with its rusage, and
// parsing the LABEL=COMMAND words they take. Header-only: each driver is one
// translation unit. Not thread-safe beyond what posix_spawn and wait4 are.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace queue::bench {

using Clock = std::chrono::steady_clock;

inline double Millis(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
inline double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
inline double CpuMillis(const timeval& tv) { return static_cast<double>(tv.tv_sec) * 1e3 + tv.tv_usec / 1e3; }

// "LABEL=word word ..." : a command to measure under a name. Words are split
// on blanks (the benchmarks' commands need no quoting); argv[0] is looked up
// in PATH.
struct LabeledCommand {
  std::string label;
  std::vector<std::string> argv;
};

inline std::optional<LabeledCommand> ParseLabeled(const std::string& text) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return std::nullopt;
  LabeledCommand command{text.substr(0, eq), {}};
  std::istringstream words(text.substr(eq + 1));
  for (std::string word; words >> word;) command.argv.push_back(word);
  if (command.argv.empty()) return std::nullopt;
  return command;
}

// Starts argv with the given descriptors as its 0, 1 and 2 (-1: /dev/null).
// Returns the pid, or -1 with errno set.
inline pid_t Spawn(const std::vector<std::string>& argv, int in = -1, int out = -1, int err = -1) {
  std::vector<char*> args;
  for (const std::string& word : argv) args.push_back(const_cast<char*>(word.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const int wanted[3] = {in, out, err};
  for (int fd = 0; fd < 3; ++fd) {
    if (wanted[fd] >= 0)
      posix_spawn_file_actions_adddup2(&actions, wanted[fd], fd);
    else
      posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
  }
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  return pid;
}

struct Ended {
  int status = -1;   // wait status
  double cpu_ms = 0;  // user + system of the process (not of its own children)
  bool ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
};

inline Ended Reap(pid_t pid) {
  Ended ended;
  rusage usage{};
  while (wait4(pid, &ended.status, 0, &usage) < 0 && errno == EINTR) {
  }
  ended.cpu_ms = CpuMillis(usage.ru_utime) + CpuMillis(usage.ru_stime);
  return ended;
}

// Runs argv once with no input and output discarded; on failure, runs it
// again with stderr shown, so that the bench's log says why, and exits.
inline Ended RunOrDie(const std::string& label, const std::vector<std::string>& argv) {
  pid_t pid = Spawn(argv);
  Ended ended = pid < 0 ? Ended{} : Reap(pid);
  if (ended.ok()) return ended;
  std::fprintf(stderr, "%s: %s failed (wait status %d); again with its stderr:\n", label.c_str(), argv[0].c_str(),
               ended.status);
  if (pid_t again = Spawn(argv, -1, -1, 2); again >= 0) Reap(again);
  std::exit(1);
}

}  // namespace queue::bench
