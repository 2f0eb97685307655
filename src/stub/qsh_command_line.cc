// ssh's option grammar for qsh, by hand: getopt's clusters, and options again
// after the host, as OpenSSH's ssh.c reads them.
#include "stub/qsh_command_line.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <string_view>

namespace queue::stub {

namespace {

// ssh's options that take a value and mean nothing to Queue.
constexpr std::string_view kIgnoredValued = "BbcDEeFIiJLmOPQRSW";
// ssh's flags that mean nothing to Queue.
constexpr std::string_view kIgnoredFlags = "46AaCfgKkMNqsXxYy";

constexpr const char* kUsage =
    "usage: qsh [-l user] [-p port] [-d queue] [-j name] [-t|-tt|-T] [-n] [-w|-r] [-G] [-v]\n"
    "           [user@]host|+|ssh://[user@]host[:port] [--] command words...\n"
    "Runs the command words with sh -c on host (the least-loaded host for +), as ssh does,\n"
    "through the local queued; the user must be you, -p PORT names the entry host:PORT.\n"
    "-n: stdin from /dev/null. -t: a pty when stdin is a terminal, -tt: always, -T: never.\n"
    "-G: print the configuration and exit. Accepted and ignored for ssh compatibility:\n"
    "-4 -6 -A -a -C -f -g -K -k -M -N -q -s -X -x -Y -y, and -B -b -c -D -E -e -F -I -i -J\n"
    "-L -m -O -o OPTION -P -Q -R -S -W with their value (-o Port=N and -o User=U are read).\n";

struct QshState {
  Invocation inv;
  std::string port;
  std::string host;
  int t_flags = 0;
  bool print_config = false;
};

Status CheckPort(const std::string& port, const std::string& how) {
  bool digits = !port.empty() && port.size() <= 5 &&
                std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
  if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535) return Fail(how + ": not a port number");
  return Status::Ok();
}

// -o Key=Value or -o "Key Value": Port and User matter; the rest is ssh's.
Status ApplySshOption(QshState& state, const std::string& option) {
  size_t split = option.find_first_of("= \t");
  if (split == std::string::npos) return Status::Ok();
  std::string key = option.substr(0, split);
  size_t value_start = option.find_first_not_of("= \t", split);
  std::string value = value_start == std::string::npos ? "" : option.substr(value_start);
  std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return std::tolower(c); });
  if (key == "port") {
    if (auto ok = CheckPort(value, "-o " + option); !ok.ok()) return ok;
    state.port = value;
  } else if (key == "user") {
    return CheckUser(value, "-o " + option);
  }
  return Status::Ok();
}

Status ApplyValued(QshState& state, char letter, const std::string& value) {
  switch (letter) {
    case 'l': return CheckUser(value, "-l " + value);
    case 'p':
      if (auto ok = CheckPort(value, "-p " + value); !ok.ok()) return ok;
      state.port = value;
      return Status::Ok();
    case 'd': state.inv.queue = value; return Status::Ok();
    case 'j': state.inv.job_name = value; return Status::Ok();
    case 'o': return ApplySshOption(state, value);
    default: return Status::Ok();  // one of kIgnoredValued
  }
}

Status ApplyFlag(QshState& state, char letter) {
  switch (letter) {
    case 't': ++state.t_flags; return Status::Ok();
    case 'T': state.t_flags = -1; return Status::Ok();
    case 'n': state.inv.stdin_null = true; return Status::Ok();
    case 'w': state.inv.batch = false; return Status::Ok();
    case 'r': state.inv.batch = true; return Status::Ok();
    case 'v':
    case 'V': state.inv.verb = Verb::kVersion; return Status::Ok();
    case 'G': state.print_config = true; return Status::Ok();
    default:
      if (kIgnoredFlags.find(letter) != std::string_view::npos) return Status::Ok();
      return Fail(std::string("unknown option -") + letter + " (see qsh --help)");
  }
}

// Reads options from args[i] on, as getopt does, until a word that is not an
// option; a `--` is consumed and ends them. Returns whether `--` ended them.
Result<bool> ParseOptions(QshState& state, const std::vector<std::string>& args, size_t& i) {
  for (; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word == "--") {
      ++i;
      return true;
    }
    if (word.size() < 2 || word[0] != '-') return false;
    if (word == "--help") {
      state.inv.verb = Verb::kHelp;
      return false;
    }
    for (size_t k = 1; k < word.size(); ++k) {
      char letter = word[k];
      bool valued = letter == 'l' || letter == 'p' || letter == 'd' || letter == 'j' || letter == 'o' ||
                    kIgnoredValued.find(letter) != std::string_view::npos;
      if (!valued) {
        if (auto ok = ApplyFlag(state, letter); !ok.ok()) return Fail(ok.message());
        continue;
      }
      std::string value;
      if (k + 1 < word.size()) {
        value = word.substr(k + 1);  // -p19371, -oBatchMode=yes
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return Fail(std::string("-") + letter + " needs a value");
      }
      if (auto ok = ApplyValued(state, letter, value); !ok.ok()) return Fail(ok.message());
      break;
    }
  }
  return false;
}

// [user@]host, or ssh's URI form ssh://[user@]host[:port].
Status ParseDestination(QshState& state, std::string destination) {
  constexpr std::string_view kScheme = "ssh://";
  bool uri = destination.starts_with(kScheme);
  if (uri) {
    destination.erase(0, kScheme.size());
    if (!destination.empty() && destination.back() == '/') destination.pop_back();
    if (destination.find('/') != std::string::npos)
      return Fail("ssh://" + destination + ": a destination names a host, not a path");
  }
  if (auto at = destination.rfind('@'); at != std::string::npos) {
    std::string user = destination.substr(0, at);
    if (auto ok = CheckUser(user, destination); !ok.ok()) return ok;
    destination.erase(0, at + 1);
  }
  if (uri) {
    if (auto colon = destination.rfind(':'); colon != std::string::npos && destination.find(':') == colon) {
      std::string port = destination.substr(colon + 1);
      if (auto ok = CheckPort(port, "ssh://" + destination); !ok.ok()) return ok;
      state.port = port;
      destination.resize(colon);
    }
  }
  if (destination.empty()) return Fail("no host given (usage: qsh [options] host|+ command words...)");
  state.host = destination;
  return Status::Ok();
}

// What ssh -G would print that matters here, in its "keyword value" form.
std::string ConfigText(const QshState& state) {
  passwd* pw = getpwuid(geteuid());
  std::string text = "user " + (pw != nullptr ? std::string(pw->pw_name) : std::to_string(geteuid())) + "\n";
  text += "hostname " + state.host + "\n";
  if (!state.port.empty()) text += "port " + state.port + "\n";
  return text;
}

}  // namespace

Result<Invocation> ParseQshCommandLine(const std::vector<std::string>& args) {
  QshState state;
  state.inv.pty = wire::PtyMode::kNone;
  size_t i = 0;
  auto before = ParseOptions(state, args, i);
  if (!before.ok()) return before.error();
  if (state.inv.verb == Verb::kHelp) {
    state.inv.help_text = kUsage;
    return state.inv;
  }
  if (i >= args.size()) {
    if (state.inv.verb == Verb::kVersion) return state.inv;
    return Fail("no host given (usage: qsh [options] host|+ command words...)");
  }
  if (auto ok = ParseDestination(state, args[i++]); !ok.ok()) return Fail(ok.message());
  // As ssh: options may follow the host, unless `--` came before it.
  if (!*before) {
    auto after = ParseOptions(state, args, i);
    if (!after.ok()) return after.error();
    if (state.inv.verb == Verb::kHelp) {
      state.inv.help_text = kUsage;
      return state.inv;
    }
  }
  if (state.inv.verb == Verb::kVersion) return state.inv;
  if (state.host != "+") state.inv.only_host = state.port.empty() ? state.host : state.host + ":" + state.port;
  if (state.print_config) {
    state.inv.verb = Verb::kPrintConfig;
    state.inv.help_text = ConfigText(state);
    return state.inv;
  }
  if (state.t_flags > 0) state.inv.pty = wire::PtyMode::kFull;
  state.inv.force_pty = state.t_flags > 1;
  std::string line;
  for (; i < args.size(); ++i) line += (line.empty() ? "" : " ") + args[i];
  if (line.empty()) return Fail("no command given: qsh does not offer interactive logins");
  state.inv.command = {"/bin/sh", "-c", line};
  if (!wire::IsValidQueueName(state.inv.queue)) return Fail("\"" + state.inv.queue + "\" is not a queue name");
  return state.inv;
}

}  // namespace queue::stub
