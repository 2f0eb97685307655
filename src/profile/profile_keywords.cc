// Every profile keyword's syntax and effect (see profile_keywords.h).
#include "profile/profile_keywords.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <csignal>
#include <initializer_list>
#include <limits>
#include <string>
#include <utility>

#include "profile/profile_tokens.h"
#include "profile/signal_names.h"
#include "profile/time_spec.h"

namespace queue::profile {
namespace {

// The original allowed 0..100 jobs; today's hosts have more cores than that.
constexpr long long kMaxExecLimit = 100000;
constexpr double kMaxLoadThreshold = 100;  // inventory §3.2
constexpr double kMaxPfactor = 1e9;
constexpr long long kMaxGraceSeconds = 24 * 3600;
constexpr long long kMaxPeriodSeconds = 30LL * 24 * 3600;
constexpr size_t kMaxRestartFiles = 256;
constexpr size_t kMaxValueBytes = 4096;

Status AtMost(const Statement& s, size_t count) {
  if (s.args.size() <= count) return Status::Ok();
  return Fail("unexpected " + Quoted(s.args[count].text) +
              " after the value (quote a value that contains spaces)");
}

// The statement's single value; `expected` completes "missing value (expected ...)".
Result<std::string_view> OneValue(const Statement& s, const std::string& expected) {
  if (s.args.empty()) return Fail("missing value (expected " + expected + ")");
  if (Status extra = AtMost(s, 1); !extra) return Error{extra.message()};
  if (s.args[0].text.size() > kMaxValueBytes) {
    return Fail("the value is longer than " + std::to_string(kMaxValueBytes) + " bytes");
  }
  return std::string_view(s.args[0].text);
}

Result<long long> ParseWhole(std::string_view text, long long min, long long max) {
  long long value = 0;
  const char* end = text.data() + text.size();
  auto [stop, ec] = std::from_chars(text.data(), end, value);
  if (stop != end || text.empty() || (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    return Fail(Quoted(text) + " is not a whole number");
  }
  if (ec == std::errc::result_out_of_range || value < min || value > max) {
    return Fail(std::string(text) + " is out of range (" + std::to_string(min) + " to " +
                std::to_string(max) + ")");
  }
  return value;
}

Result<uint64_t> ParseCount(std::string_view text) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [stop, ec] = std::from_chars(text.data(), end, value);
  if (stop != end || text.empty() || ec != std::errc()) {
    return Fail(Quoted(text) + " is not a whole number from 0 to " +
                std::to_string(std::numeric_limits<uint64_t>::max() - 1));
  }
  return value;
}

Result<double> ParseDecimal(std::string_view text, double min, double max) {
  double value = 0;
  const char* end = text.data() + text.size();
  auto [stop, ec] = std::from_chars(text.data(), end, value);
  if (stop != end || text.empty() || ec != std::errc() || !std::isfinite(value)) {
    return Fail(Quoted(text) + " is not a number");
  }
  if (value < min || value > max) {
    return Fail(std::string(text) + " is out of range (" + std::to_string(static_cast<long long>(min)) +
                " to " + std::to_string(static_cast<long long>(max)) + ")");
  }
  return value;
}

template <class T>
using Choices = std::initializer_list<std::pair<std::string_view, T>>;

// Picks the choice named `text` (case-insensitive), or explains the choices.
template <class T>
Result<T> Choose(std::string_view text, Choices<T> choices) {
  const std::string lower = Lower(text);
  std::string names;
  for (const auto& [name, value] : choices) {
    if (lower == name) return value;
    names += (names.empty() ? "" : ", ") + std::string(name);
  }
  return Fail(Quoted(text) + " is not one of " + names);
}

template <class T>
Result<T> OneChoice(const Statement& s, Choices<T> choices) {
  std::string names;
  for (const auto& choice : choices) names += (names.empty() ? "" : ", ") + std::string(choice.first);
  auto value = OneValue(s, names);
  if (!value) return value.error();
  return Choose(*value, choices);
}

Result<long long> OneWhole(const Statement& s, long long min, long long max) {
  auto value = OneValue(s, "a whole number from " + std::to_string(min) + " to " + std::to_string(max));
  if (!value) return value.error();
  return ParseWhole(*value, min, max);
}

Result<double> OneDecimal(const Statement& s, double min, double max) {
  auto value = OneValue(s, "a number");
  if (!value) return value.error();
  return ParseDecimal(*value, min, max);
}

// A bare flag keyword means on; `on|off|yes|no|true|false` may follow.
Result<bool> Flag(const Statement& s) {
  if (s.args.empty()) return true;
  return OneChoice<bool>(s, {{"on", true}, {"off", false}, {"yes", true},
                             {"no", false}, {"true", true}, {"false", false}});
}

// ---- the keywords ----

Status ApplyExec(const Statement& s, QueuePolicy& p) {
  if (s.args.empty()) {
    p.exec = ExecState::kOn;
    return Status::Ok();
  }
  auto v = OneChoice<ExecState>(s, {{"on", ExecState::kOn}, {"off", ExecState::kOff},
                                    {"drain", ExecState::kDrain}});
  if (!v) return v.error();
  p.exec = *v;
  return Status::Ok();
}

Status ApplyMaxExec(const Statement& s, QueuePolicy& p) {
  auto v = OneWhole(s, 0, kMaxExecLimit);
  if (!v) return v.error();
  p.max_exec = static_cast<unsigned>(*v);
  return Status::Ok();
}

Status ApplyVmaxExec(const Statement& s, QueuePolicy& p) {
  auto v = OneWhole(s, 0, kMaxExecLimit);
  if (!v) return v.error();
  p.vmax_exec = static_cast<unsigned>(*v);
  return Status::Ok();
}

Status ApplyPfactor(const Statement& s, QueuePolicy& p) {
  auto v = OneDecimal(s, -kMaxPfactor, kMaxPfactor);
  if (!v) return v.error();
  if (*v <= 0) return Fail(s.args[0].text + " is out of range (it must be greater than 0)");
  p.pfactor = *v;
  return Status::Ok();
}

Status ApplyLoad(const Statement& s, double min, double& field) {
  auto v = OneDecimal(s, min, kMaxLoadThreshold);
  if (!v) return v.error();
  field = *v;
  return Status::Ok();
}

Status ApplyLoadSched(const Statement& s, QueuePolicy& p) { return ApplyLoad(s, 0, p.load_sched); }
Status ApplyLoadStop(const Statement& s, QueuePolicy& p) { return ApplyLoad(s, 0, p.load_stop); }
Status ApplyLoadCheckpoint(const Statement& s, QueuePolicy& p) {
  return ApplyLoad(s, 1, p.load_checkpoint);
}

Status ApplyLoadNorm(const Statement& s, QueuePolicy& p) {
  auto v = OneChoice<LoadNormalization>(
      s, {{"none", LoadNormalization::kNone}, {"cores", LoadNormalization::kCores}});
  if (!v) return v.error();
  p.load_norm = *v;
  return Status::Ok();
}

Status ApplyTime(const Statement& s, std::optional<TimeSpec>& field) {
  auto text = OneValue(s, "a time list such as Wk0900-1700,Sa,Su");
  if (!text) return text.error();
  auto spec = ParseTimeSpec(*text);
  if (!spec) return spec.error();
  field = std::move(spec.value());
  return Status::Ok();
}

Status ApplyTimeSched(const Statement& s, QueuePolicy& p) { return ApplyTime(s, p.time_sched); }
Status ApplyTimeStop(const Statement& s, QueuePolicy& p) { return ApplyTime(s, p.time_stop); }

Status ApplyNice(const Statement& s, QueuePolicy& p) {
  auto v = OneWhole(s, -40, 40);
  if (!v) return v.error();
  p.nice = static_cast<int>(*v);
  return Status::Ok();
}

Status ApplyMinFree(const Statement& s, QueuePolicy& p) {
  if (s.args.size() < 2) return Fail("missing value (expected a path and a size in kilobytes)");
  if (Status extra = AtMost(s, 2); !extra) return extra;
  const std::string& path = s.args[0].text;
  if (path.empty() || path.front() != '/' || path.size() > kMaxValueBytes) {
    return Fail(Quoted(path) + " is not an absolute path");
  }
  auto kilobytes = ParseCount(s.args[1].text);
  if (!kilobytes) return kilobytes.error();
  p.min_free = DiskSpaceFloor{path, *kilobytes};
  return Status::Ok();
}

Result<uint64_t> ParseLimit(std::string_view text) {
  const std::string lower = Lower(text);
  if (lower == "unlimited" || lower == "infinity") return ResourceLimitSetting::kUnlimited;
  auto value = ParseCount(text);
  if (!value) return Fail(Quoted(text) + " is not a limit (a whole number or unlimited)");
  return *value;
}

template <ResourceKind kKind>
Status ApplyRlimit(const Statement& s, QueuePolicy& p) {
  if (s.args.empty()) return Fail("missing value (expected a soft limit and an optional hard limit)");
  if (Status extra = AtMost(s, 2); !extra) return extra;
  auto soft = ParseLimit(s.args[0].text);
  if (!soft) return soft.error();
  ResourceLimitSetting setting{.soft = *soft};
  if (s.args.size() == 2) {
    auto hard = ParseLimit(s.args[1].text);
    if (!hard) return hard.error();
    if (*soft > *hard) {
      return Fail("the soft limit " + s.args[0].text + " is above the hard limit " + s.args[1].text);
    }
    setting.hard = *hard;
  }
  p.rlimits[kKind] = setting;
  return Status::Ok();
}

Status ApplySupervisor(const Statement& s, QueuePolicy& p) {
  auto v = OneValue(s, "a log file path, /dev/null or a user to mail");
  if (!v) return v.error();
  if (v->empty()) return Fail("the supervisor is empty (leave the line out to use the daemon's log)");
  p.supervisor = std::string(*v);
  return Status::Ok();
}

// Letters s (start), e (end), c (crash); no value, or "", means no mail.
Status ApplyMail(const Statement& s, MailEvents& field) {
  if (Status extra = AtMost(s, 1); !extra) return extra;
  MailEvents events{.start = false, .end = false, .crash = false};
  const std::string letters = s.args.empty() ? "" : Lower(s.args[0].text);
  for (char c : letters) {
    if (c == 's') events.start = true;
    else if (c == 'e') events.end = true;
    else if (c == 'c') events.crash = true;
    else return Fail(Quoted(s.args[0].text) + " is not made of the letters s (start), e (end), c (crash)");
  }
  field = events;
  return Status::Ok();
}

Status ApplyMailOwner(const Statement& s, QueuePolicy& p) { return ApplyMail(s, p.mail); }
Status ApplyMailSupervisor(const Statement& s, QueuePolicy& p) { return ApplyMail(s, p.mail_supervisor); }

Status ApplyRestart(const Statement& s, QueuePolicy& p) {
  auto v = Flag(s);
  if (!v) return v.error();
  p.restart = *v;
  return Status::Ok();
}

Status ApplyAllowRoot(const Statement& s, QueuePolicy& p) {
  auto v = Flag(s);
  if (!v) return v.error();
  p.allow_root = *v;
  return Status::Ok();
}

// The command is the rest of the line as written, so shell quoting survives;
// a single double-quoted word stands for its contents.
Status ApplyProgram(const Statement& s, QueuePolicy& p) {
  if (s.args.empty()) return Fail("missing value (expected a command)");
  if (p.program) return Fail("a queue may have only one program line; remove the others");
  std::string command = s.args.size() == 1 ? s.args[0].text : std::string(s.raw_args);
  if (command.empty()) return Fail("the command is empty");
  if (command.size() > kMaxValueBytes) {
    return Fail("the command is longer than " + std::to_string(kMaxValueBytes) + " bytes");
  }
  p.program = std::move(command);
  return Status::Ok();
}

Status ApplyCheckpointMode(const Statement& s, QueuePolicy& p) {
  auto v = OneWhole(s, 0, 2);
  if (!v) return v.error();
  p.checkpoint_mode = static_cast<CheckpointMode>(*v);
  return Status::Ok();
}

Status ApplyRestartMode(const Statement& s, QueuePolicy& p) {
  auto v = OneWhole(s, 0, 2);
  if (!v) return v.error();
  p.restart_mode = static_cast<RestartMode>(*v);
  return Status::Ok();
}

Status ApplyRestartFlag(const Statement& s, QueuePolicy& p) {
  auto v = OneValue(s, "one word, quoted if it has spaces or #");
  if (!v) return v.error();
  p.restart_flag = std::string(*v);
  return Status::Ok();
}

Status ApplyRestartFlagPos(const Statement& s, QueuePolicy& p) {
  auto v = OneChoice<RestartFlagPosition>(
      s, {{"first", RestartFlagPosition::kFirst}, {"last", RestartFlagPosition::kLast}});
  if (!v) return v.error();
  p.restart_flag_pos = *v;
  return Status::Ok();
}

Status ApplyCheckpointSignal(const Statement& s, QueuePolicy& p) {
  auto text = OneValue(s, "a signal such as USR2");
  if (!text) return text.error();
  auto signal = ParseSignal(*text);
  if (!signal) return signal.error();
  if (*signal == SIGKILL || *signal == SIGSTOP) {
    return Fail(SignalName(*signal) + " cannot be caught, so a job could not checkpoint on it");
  }
  p.checkpoint_signal = *signal;
  return Status::Ok();
}

Status ApplyCheckpointGrace(const Statement& s, QueuePolicy& p) {
  auto v = OneWhole(s, 0, kMaxGraceSeconds);
  if (!v) return v.error();
  p.checkpoint_grace_seconds = static_cast<unsigned>(*v);
  return Status::Ok();
}

// Exit code 0 already means "finished"; it cannot also mean "restart me".
Status ApplyCheckpointExit(const Statement& s, QueuePolicy& p) {
  auto v = OneWhole(s, 1, 255);
  if (!v) return v.error();
  p.checkpoint_exit = static_cast<int>(*v);
  return Status::Ok();
}

Status ApplyCheckpointPeriod(const Statement& s, QueuePolicy& p) {
  auto v = OneWhole(s, 0, kMaxPeriodSeconds);
  if (!v) return v.error();
  p.checkpoint_period_seconds = static_cast<unsigned>(*v);
  return Status::Ok();
}

// Restart files travel to another host into the job's cwd: only names below it.
Status CheckRestartFileName(const std::string& name) {
  if (name.empty()) return Fail("a restart file name is empty");
  if (name.size() > kMaxValueBytes) return Fail("a restart file name is too long");
  if (name.front() == '/') return Fail(Quoted(name) + " must be relative to the job's directory");
  size_t begin = 0;
  while (begin <= name.size()) {
    const size_t slash = std::min(name.find('/', begin), name.size());
    if (name.compare(begin, slash - begin, "..") == 0) {
      return Fail(Quoted(name) + " must not contain .. (restart files stay below the job's directory)");
    }
    begin = slash + 1;
  }
  return Status::Ok();
}

Status ApplyRestartFile(const Statement& s, QueuePolicy& p) {
  if (s.args.empty()) return Fail("missing value (expected one or more file names or globs)");
  if (s.args.size() > kMaxRestartFiles) {
    return Fail("more than " + std::to_string(kMaxRestartFiles) + " restart file names");
  }
  std::vector<std::string> names;
  for (const ProfileToken& arg : s.args) {
    if (Status valid = CheckRestartFileName(arg.text); !valid) return valid;
    names.push_back(arg.text);
  }
  p.restart_files = std::move(names);
  return Status::Ok();
}

using Apply = Status (*)(const Statement&, QueuePolicy&);

struct Keyword {
  std::string_view name;
  Apply apply;
};

constexpr std::array<Keyword, 37> kKeywords = {{
    {"exec", ApplyExec},
    {"maxexec", ApplyMaxExec},
    {"vmaxexec", ApplyVmaxExec},
    {"pfactor", ApplyPfactor},
    {"loadsched", ApplyLoadSched},
    {"loadstop", ApplyLoadStop},
    {"loadcheckpoint", ApplyLoadCheckpoint},
    {"loadnorm", ApplyLoadNorm},
    {"timesched", ApplyTimeSched},
    {"timestop", ApplyTimeStop},
    {"nice", ApplyNice},
    {"minfree", ApplyMinFree},
    {"rlimitcpu", ApplyRlimit<ResourceKind::kCpu>},
    {"cpulimit", ApplyRlimit<ResourceKind::kCpu>},
    {"rlimitfsize", ApplyRlimit<ResourceKind::kFileSize>},
    {"rlimitdata", ApplyRlimit<ResourceKind::kData>},
    {"rlimitstack", ApplyRlimit<ResourceKind::kStack>},
    {"rlimitcore", ApplyRlimit<ResourceKind::kCore>},
    {"rlimitrss", ApplyRlimit<ResourceKind::kRss>},
    {"rlimitnofile", ApplyRlimit<ResourceKind::kOpenFiles>},
    {"rlimitas", ApplyRlimit<ResourceKind::kAddressSpace>},
    {"rlimitvmem", ApplyRlimit<ResourceKind::kAddressSpace>},
    {"supervisor", ApplySupervisor},
    {"mail", ApplyMailOwner},
    {"mailsupervisor", ApplyMailSupervisor},
    {"restart", ApplyRestart},
    {"program", ApplyProgram},
    {"allowroot", ApplyAllowRoot},
    {"checkpointmode", ApplyCheckpointMode},
    {"restartmode", ApplyRestartMode},
    {"restartflag", ApplyRestartFlag},
    {"restartflagpos", ApplyRestartFlagPos},
    {"checkpointsignal", ApplyCheckpointSignal},
    {"checkpointgrace", ApplyCheckpointGrace},
    {"checkpointexit", ApplyCheckpointExit},
    {"checkpointperiod", ApplyCheckpointPeriod},
    {"restartfile", ApplyRestartFile},
}};

// Words the original's lexer reserved without giving them a meaning.
constexpr std::array<std::string_view, 3> kReservedWords = {"maxqueue", "console", "day"};

}  // namespace

std::vector<std::string_view> KeywordNames() {
  std::vector<std::string_view> names;
  for (const Keyword& keyword : kKeywords) names.push_back(keyword.name);
  return names;
}

Status ApplyStatement(const Statement& statement, QueuePolicy& policy) {
  const std::string name = Lower(statement.keyword);
  for (const Keyword& keyword : kKeywords) {
    if (name == keyword.name) return keyword.apply(statement, policy);
  }
  for (std::string_view reserved : kReservedWords) {
    if (name == reserved) return Fail("reserved word with no meaning; remove this line");
  }
  return Fail("unknown keyword");
}

}  // namespace queue::profile
