// QueuePolicy: what one queue's `profile` file says, as values with their
// defaults (SPEC §5 and §7, inventory §3.2). The parser (profile_parser.h)
// fills it; the scheduler, the executor and the checkpoint code read it.
// Errors are not part of the policy: parsing returns them instead.
//
// Also here, because every host-choice caller needs them next to the policy:
// the virtual load of §1.5 and the optional per-core normalisation.
//
// A QueuePolicy is a plain value; copy it freely between threads.
#pragma once

#include <csignal>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "profile/time_spec.h"

namespace queue::profile {

enum class ExecState {
  kOn,     // run jobs normally
  kOff,    // abort running jobs and start no new ones
  kDrain,  // start no new jobs; running jobs finish
};

// `loadnorm`: whether load thresholds compare the raw load or load per core.
enum class LoadNormalization { kNone, kCores };

// `restartflagpos`: where the restart flag goes in a restarted job's argv.
enum class RestartFlagPosition {
  kFirst,  // inserted as argv[1] (the original's behaviour)
  kLast,   // appended, for programs with sub-commands
};

// Which events send mail (`mail`, `mailsupervisor`: letters s, e, c).
struct MailEvents {
  bool start = false;
  bool end = true;
  bool crash = true;
  bool operator==(const MailEvents&) const = default;
};

// The resource limits a profile may set on its jobs (`rlimit*` keywords).
enum class ResourceKind {
  kCpu,           // rlimitcpu, cpulimit: seconds
  kFileSize,      // rlimitfsize: bytes
  kData,          // rlimitdata: bytes
  kStack,         // rlimitstack: bytes
  kCore,          // rlimitcore: bytes
  kRss,           // rlimitrss: bytes (Linux no longer enforces it)
  kOpenFiles,     // rlimitnofile: a count
  kAddressSpace,  // rlimitas, rlimitvmem: bytes
};

// The Linux RLIMIT_* number of `kind`, for setrlimit() and the wire.
int RlimitResource(ResourceKind kind);

struct ResourceLimitSetting {
  static constexpr uint64_t kUnlimited = UINT64_MAX;  // written `unlimited`
  uint64_t soft = kUnlimited;
  // nullopt: keep the hard limit the job inherits (the original's one-number form).
  std::optional<uint64_t> hard;
  bool operator==(const ResourceLimitSetting&) const = default;
};

// `minfree PATH KB`: start no new jobs while PATH's file system has less free.
struct DiskSpaceFloor {
  std::string path;  // absolute
  uint64_t kilobytes = 0;
  bool operator==(const DiskSpaceFloor&) const = default;
};

enum class CheckpointMode { kOff = 0, kTransparent = 1, kUser = 2 };  // checkpointmode
enum class RestartMode { kRefuse = 0, kTransparent = 1, kUser = 2 };  // restartmode

inline constexpr int kDefaultCheckpointSignal = SIGUSR2;
inline constexpr unsigned kDefaultCheckpointGraceSeconds = 60;

struct QueuePolicy {
  ExecState exec = ExecState::kOn;
  unsigned max_exec = 1;                // maxexec; DefaultPolicy() sets the CPU count
  std::optional<unsigned> vmax_exec;    // vmaxexec; nullopt: same as max_exec
  double pfactor = 1.0;                 // > 0; divides the virtual load
  double load_sched = 25.0;             // loadsched: no new jobs at or above (1-min load)
  double load_stop = 50.0;              // loadstop: suspend running jobs at or above
  double load_checkpoint = 26.0;        // loadcheckpoint: migrate at or above
  LoadNormalization load_norm = LoadNormalization::kNone;
  std::optional<TimeSpec> time_sched;   // start jobs only inside; nullopt: always
  std::optional<TimeSpec> time_stop;    // suspend running jobs outside; nullopt: never
  int nice = 0;                         // -40..40, the least niceness of a job
  std::optional<DiskSpaceFloor> min_free;
  std::map<ResourceKind, ResourceLimitSetting> rlimits;
  std::optional<std::string> supervisor;  // nullopt: the daemon's log
  MailEvents mail;                        // to the job's owner
  MailEvents mail_supervisor;
  bool restart = false;                   // re-run interrupted batch jobs
  std::optional<std::string> program;     // shell command run on every pass
  bool allow_root = false;                // may root's jobs run in this queue
  CheckpointMode checkpoint_mode = CheckpointMode::kOff;
  RestartMode restart_mode = RestartMode::kRefuse;
  std::string restart_flag;               // empty: none
  RestartFlagPosition restart_flag_pos = RestartFlagPosition::kFirst;
  int checkpoint_signal = kDefaultCheckpointSignal;
  unsigned checkpoint_grace_seconds = kDefaultCheckpointGraceSeconds;  // then SIGKILL
  std::optional<int> checkpoint_exit;     // 0..255: "I checkpointed, restart me"
  unsigned checkpoint_period_seconds = 0; // 0: no periodic checkpoints
  std::vector<std::string> restart_files; // relative names or globs; empty: the default file

  unsigned effective_vmax_exec() const { return vmax_exec.value_or(max_exec); }
};

// The policy of a queue whose profile sets nothing, on a host with
// `cpu_count` CPUs (0, when unknown, counts as 1).
QueuePolicy DefaultPolicy(unsigned cpu_count);

// One line for status output and the supervisor, like the top line of the
// original's queuestat: "exec on, maxexec 4, vmaxexec 4, pfactor 1, ...".
std::string DescribePolicy(const QueuePolicy& policy);

// The virtual ("apparent") load a host reports for a queue (SPEC §5, §1.5):
// (load1 + 1) / ((max(0, vmaxexec - running) + 1) * pfactor). Lower is better.
// A pfactor that is not positive counts as 1.
double VirtualLoad(double load1, unsigned vmaxexec, unsigned running, double pfactor);

// The load compared with the thresholds: `load` itself, or per core under
// `loadnorm cores` (0 cores counts as 1).
double NormalizedLoad(double load, LoadNormalization norm, unsigned cores);

}  // namespace queue::profile
