// Capture of the submitting process's context into a JobSpec, and the pty choice.
#include "stub/local_context.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <utility>

#include "term/terminal_settings.h"

extern char** environ;

namespace queue::stub {
namespace {

// The decoder on the daemon enforces these limits; saying so here gives the user
// a reason instead of a rejected frame.
Status CheckLimits(const std::vector<std::string>& list, size_t max_count, size_t max_bytes,
                   const std::string& what) {
  if (list.size() > max_count)
    return Fail("The " + what + " has " + std::to_string(list.size()) +
                " entries; a job may carry at most " + std::to_string(max_count) + ".");
  for (const auto& entry : list)
    if (entry.size() > max_bytes)
      return Fail("An entry of the " + what + " is " + std::to_string(entry.size()) +
                  " bytes long; a job may carry at most " + std::to_string(max_bytes) +
                  " bytes per entry.");
  return Status::Ok();
}

// Entries without '=' can be planted by execve but name no variable; the job
// could not use them and the daemon would refuse them.
std::vector<std::string> CaptureEnvironment() {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string var(*entry);
    if (var.find('=') != std::string::npos) env.push_back(std::move(var));
  }
  return env;
}

Result<std::string> CaptureCwd() {
  std::unique_ptr<char, decltype(&std::free)> path(getcwd(nullptr, 0), &std::free);
  if (!path)
    return Fail("Cannot determine the current directory (" + ErrnoText(errno) +
                "); change to an existing directory and submit the job again.");
  std::string cwd(path.get());
  if (cwd.size() > wire::kMaxPathBytes)
    return Fail("The current directory's path is longer than " +
                std::to_string(wire::kMaxPathBytes) + " bytes; run the job from a shorter path.");
  return cwd;
}

// POSIX offers no way to read the umask without setting it.
uint32_t ReadUmask() {
  mode_t mask = umask(0);
  umask(mask);
  return static_cast<uint32_t>(mask & 0777);
}

// -1 is a valid priority, so only errno tells failure apart.
Result<int32_t> ReadNice() {
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, 0);
  if (nice == -1 && errno != 0)
    return Fail("Cannot read this process's nice value: " + ErrnoText(errno) + ".");
  return static_cast<int32_t>(nice);
}

Result<std::vector<uint32_t>> CaptureGroups() {
  // The list can grow between the two calls (EINVAL); try again then.
  for (int attempt = 0; attempt < 4; ++attempt) {
    int count = getgroups(0, nullptr);
    if (count < 0) break;
    std::vector<gid_t> groups(static_cast<size_t>(count));
    int got = getgroups(count, groups.data());
    if (got < 0 && errno == EINVAL) continue;
    if (got < 0) break;
    return std::vector<uint32_t>(groups.begin(), groups.begin() + got);
  }
  return Fail("Cannot read this process's supplementary groups: " + ErrnoText(errno) + ".");
}

uint64_t LimitValue(rlim_t value) {
  return value == RLIM_INFINITY ? wire::ResourceLimit::kUnlimited : static_cast<uint64_t>(value);
}

Result<std::vector<wire::ResourceLimit>> CaptureRlimits() {
  std::vector<wire::ResourceLimit> limits;
  for (int resource = 0; resource < RLIM_NLIMITS && resource < int{wire::kMaxRlimits};
       ++resource) {
    rlimit limit{};
    if (getrlimit(resource, &limit) != 0) {
      if (errno == EINVAL) continue;  // a resource this kernel does not know
      return Fail("Cannot read resource limit " + std::to_string(resource) + ": " +
                  ErrnoText(errno) + ".");
    }
    limits.push_back({static_cast<uint32_t>(resource), LimitValue(limit.rlim_cur),
                      LimitValue(limit.rlim_max)});
  }
  return limits;
}

}  // namespace

Result<wire::JobSpec> CaptureLocalContext(std::vector<std::string> argv) {
  wire::JobSpec spec;
  if (argv.empty()) return Fail("No command was given; name the program the job should run.");
  spec.argv = std::move(argv);
  spec.env = CaptureEnvironment();
  if (Status s = CheckLimits(spec.argv, wire::kMaxArgs, wire::kMaxArgBytes, "command line"); !s)
    return Error{s.message()};
  if (Status s = CheckLimits(spec.env, wire::kMaxEnvVars, wire::kMaxEnvBytes, "environment"); !s)
    return Error{s.message()};

  auto cwd = CaptureCwd();
  if (!cwd) return cwd.error();
  spec.cwd = std::move(*cwd);
  spec.umask = ReadUmask();
  auto nice = ReadNice();
  if (!nice) return nice.error();
  spec.nice = *nice;

  spec.uid = static_cast<uint32_t>(geteuid());
  spec.gid = static_cast<uint32_t>(getegid());
  auto groups = CaptureGroups();
  if (!groups) return groups.error();
  spec.groups = std::move(*groups);
  auto rlimits = CaptureRlimits();
  if (!rlimits) return rlimits.error();
  spec.rlimits = std::move(*rlimits);

  spec.stderr_is_tty = isatty(STDERR_FILENO) == 1;
  if (isatty(STDIN_FILENO) == 1) {
    auto terminal = term::CaptureTerminal(STDIN_FILENO);
    if (!terminal) return terminal.error();
    spec.terminal = std::move(*terminal);
  }
  return spec;
}

wire::PtyMode ChoosePtyMode(wire::PtyMode requested, bool stdin_tty, bool stdout_tty) {
  if (requested == wire::PtyMode::kNone || !stdin_tty) return wire::PtyMode::kNone;
  if (requested == wire::PtyMode::kFull && stdout_tty) return wire::PtyMode::kFull;
  return wire::PtyMode::kHalf;
}

}  // namespace queue::stub
