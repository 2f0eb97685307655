// The table of signal names (see signal_names.h).
#include "profile/signal_names.h"

#include <array>
#include <cctype>
#include <charconv>
#include <csignal>

namespace queue::profile {
namespace {

struct NamedSignal {
  std::string_view name;  // without SIG
  int number;
};

constexpr std::array<NamedSignal, 32> kSignals = {{
    {"HUP", SIGHUP},       {"INT", SIGINT},       {"QUIT", SIGQUIT},   {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT},     {"IOT", SIGIOT},     {"BUS", SIGBUS},
    {"FPE", SIGFPE},       {"KILL", SIGKILL},     {"USR1", SIGUSR1},   {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},     {"PIPE", SIGPIPE},     {"ALRM", SIGALRM},   {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},     {"CONT", SIGCONT},   {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU},   {"URG", SIGURG},
    {"XCPU", SIGXCPU},     {"XFSZ", SIGXFSZ},     {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"WINCH", SIGWINCH},   {"IO", SIGIO},         {"PWR", SIGPWR},     {"SYS", SIGSYS},
}};

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// A whole-string non-negative decimal, or -1.
int SmallNumber(std::string_view digits) {
  int value = -1;
  if (digits.empty() || !std::isdigit(static_cast<unsigned char>(digits.front()))) return -1;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size()) return -1;
  return value;
}

// RTMIN, RTMIN+n, RTMAX, RTMAX-n; 0 when `name` is not one of those.
int RealTimeSignal(std::string_view name) {
  const bool from_min = name.starts_with("RTMIN");
  if (!from_min && !name.starts_with("RTMAX")) return 0;
  std::string_view offset = name.substr(5);
  int number = from_min ? SIGRTMIN : SIGRTMAX;
  if (offset.empty()) return number;
  if (offset.front() != (from_min ? '+' : '-')) return 0;
  const int n = SmallNumber(offset.substr(1));
  if (n < 0 || n > SIGRTMAX - SIGRTMIN) return 0;
  return from_min ? number + n : number - n;
}

}  // namespace

Result<int> ParseSignal(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  if (!text.empty() && std::isdigit(static_cast<unsigned char>(text.front()))) {
    const int number = SmallNumber(text);
    if (number >= 1 && number <= SIGRTMAX) return number;
    return Fail(quoted + " is not a signal number (1 to " + std::to_string(SIGRTMAX) + ")");
  }
  std::string name = Upper(text);
  if (name.starts_with("SIG")) name.erase(0, 3);
  for (const NamedSignal& signal : kSignals) {
    if (name == signal.name) return signal.number;
  }
  if (const int rt = RealTimeSignal(name); rt != 0) return rt;
  return Fail(quoted + " is not a signal name (for example USR2, SIGUSR1 or 10)");
}

std::string SignalName(int signal_number) {
  for (const NamedSignal& signal : kSignals) {
    if (signal.number == signal_number) return "SIG" + std::string(signal.name);
  }
  if (signal_number >= SIGRTMIN && signal_number <= SIGRTMAX) {
    return "SIGRTMIN+" + std::to_string(signal_number - SIGRTMIN);
  }
  return "signal " + std::to_string(signal_number);
}

}  // namespace queue::profile
