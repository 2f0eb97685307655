// Defaults, status text and load arithmetic of a queue's policy (see queue_policy.h).
#include "profile/queue_policy.h"

#include <sys/resource.h>

#include <cmath>
#include <cstdio>

#include "profile/signal_names.h"

namespace queue::profile {
namespace {

std::string Number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

std::string_view ExecName(ExecState exec) {
  switch (exec) {
    case ExecState::kOn: return "on";
    case ExecState::kOff: return "off";
    case ExecState::kDrain: return "drain";
  }
  return "?";
}

std::string MailLetters(const MailEvents& mail) {
  std::string letters;
  if (mail.start) letters += 's';
  if (mail.end) letters += 'e';
  if (mail.crash) letters += 'c';
  return letters.empty() ? "none" : letters;
}

std::string CpuLimit(const QueuePolicy& policy) {
  auto cpu = policy.rlimits.find(ResourceKind::kCpu);
  if (cpu == policy.rlimits.end() || cpu->second.soft == ResourceLimitSetting::kUnlimited) {
    return "unlimited";
  }
  return std::to_string(cpu->second.soft) + "s";
}

std::string OptionalText(const std::optional<std::string>& text) {
  return text ? "\"" + *text + "\"" : "none";
}

std::string OptionalSpec(const std::optional<TimeSpec>& spec) { return spec ? spec->text : "none"; }

std::string MinFree(const std::optional<DiskSpaceFloor>& floor) {
  return floor ? floor->path + " " + std::to_string(floor->kilobytes) + "KB" : "none";
}

}  // namespace

int RlimitResource(ResourceKind kind) {
  switch (kind) {
    case ResourceKind::kCpu: return RLIMIT_CPU;
    case ResourceKind::kFileSize: return RLIMIT_FSIZE;
    case ResourceKind::kData: return RLIMIT_DATA;
    case ResourceKind::kStack: return RLIMIT_STACK;
    case ResourceKind::kCore: return RLIMIT_CORE;
    case ResourceKind::kRss: return RLIMIT_RSS;
    case ResourceKind::kOpenFiles: return RLIMIT_NOFILE;
    case ResourceKind::kAddressSpace: return RLIMIT_AS;
  }
  return -1;
}

QueuePolicy DefaultPolicy(unsigned cpu_count) {
  QueuePolicy policy;
  policy.max_exec = cpu_count == 0 ? 1 : cpu_count;
  return policy;
}

std::string DescribePolicy(const QueuePolicy& policy) {
  std::string line = "exec " + std::string(ExecName(policy.exec));
  line += ", maxexec " + std::to_string(policy.max_exec);
  line += ", vmaxexec " + std::to_string(policy.effective_vmax_exec());
  line += ", pfactor " + Number(policy.pfactor);
  line += ", loadsched " + Number(policy.load_sched);
  line += ", loadstop " + Number(policy.load_stop);
  line += ", loadcheckpoint " + Number(policy.load_checkpoint);
  line += policy.load_norm == LoadNormalization::kCores ? ", loadnorm cores" : ", loadnorm none";
  line += ", nice " + std::to_string(policy.nice);
  line += ", minfree " + MinFree(policy.min_free);
  line += ", timesched " + OptionalSpec(policy.time_sched);
  line += ", timestop " + OptionalSpec(policy.time_stop);
  line += ", program " + OptionalText(policy.program);
  line += ", cpulimit " + CpuLimit(policy);
  line += ", mail " + MailLetters(policy.mail);
  line += ", checkpointmode " + std::to_string(static_cast<int>(policy.checkpoint_mode));
  line += ", restartmode " + std::to_string(static_cast<int>(policy.restart_mode));
  line += ", checkpointsignal " + SignalName(policy.checkpoint_signal);
  return line;
}

double VirtualLoad(double load1, unsigned vmaxexec, unsigned running, double pfactor) {
  const double free_slots = vmaxexec > running ? static_cast<double>(vmaxexec - running) : 0.0;
  const double power = (pfactor > 0 && std::isfinite(pfactor)) ? pfactor : 1.0;
  return (load1 + 1.0) / ((free_slots + 1.0) * power);
}

double NormalizedLoad(double load, LoadNormalization norm, unsigned cores) {
  if (norm == LoadNormalization::kNone) return load;
  return load / static_cast<double>(cores == 0 ? 1 : cores);
}

}  // namespace queue::profile
