// Option parsing for queue (CLI11); qsh's ssh grammar is in qsh_command_line.cc.
#include "stub/command_line.h"

#include <pwd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <iterator>
#include <optional>

namespace queue::stub {

namespace {

// The index of "--" or of the first word that is neither an option nor an
// option's value.
size_t FindCommandStart(const std::vector<std::string>& args) {
  static constexpr std::string_view kValued[] = {"--host", "--robust-host", "--queuedir", "--spooldir",
                                                 "--jobname", "--socket", "--username", "--cancel",
                                                 "--output", "--migrate", "--array", "--from"};
  static constexpr std::string_view kValuedShort = "hHdjl";
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--" || a.size() < 2 || a[0] != '-') return i;
    bool takes_value = false;
    if (a[1] == '-') {
      takes_value = a.find('=') == std::string::npos &&
                    std::find(std::begin(kValued), std::end(kValued), a) != std::end(kValued);
    } else {
      // In a cluster like -nh, a valued letter takes the rest or the next word.
      for (size_t k = 1; k < a.size(); ++k) {
        if (kValuedShort.find(a[k]) == std::string_view::npos) continue;
        takes_value = k + 1 == a.size();
        break;
      }
    }
    if (takes_value) ++i;
  }
  return args.size();
}

// `--watch 5` is `--watch=5`: the interval is optional, so a word after
// --watch is its value only when it is a number (CLI11 takes an optional
// flag value only after '=').
std::vector<std::string> JoinWatchInterval(std::vector<std::string> args) {
  for (size_t i = 0; i + 1 < args.size() && args[i] != "--"; ++i) {
    const std::string& next = args[i + 1];
    if (args[i] != "--watch" || next.empty() || !std::all_of(next.begin(), next.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) continue;
    args[i] += "=" + next;
    args.erase(args.begin() + static_cast<std::ptrdiff_t>(i) + 1);
  }
  return args;
}

}  // namespace

Status CheckUser(const std::string& user, const std::string& how) {
  passwd* pw = getpwuid(geteuid());
  if (pw != nullptr && user == pw->pw_name) return Status::Ok();
  if (user == std::to_string(geteuid())) return Status::Ok();
  std::string me = pw != nullptr ? pw->pw_name : "uid " + std::to_string(geteuid());
  return Fail(how + ": Queue runs jobs only as the calling user (" + me + "), not as " + user);
}

namespace {

// A job id as `queue -r` printed it ("17.2"), or a bare number for the asked host's job.
Result<wire::JobId> ParseJobId(const std::string& option, const std::string& text) {
  auto id = wire::ParseJobId(text);
  if (!id.ok()) return Fail(option + ": " + id.message());
  return id;
}

// At most one of --status, --jobs, --cancel, --output and --migrate; none of
// them takes a command, so a stray word (`--cancel 12 13`) is an error, not
// ignored. --migrate alone takes one more word: the host to move to.
Result<Verb> ChooseVerb(bool status, bool jobs, bool cancel, bool output, bool migrate, const Invocation& inv) {
  int verbs = static_cast<int>(status) + static_cast<int>(jobs) + static_cast<int>(cancel) + static_cast<int>(output) +
              static_cast<int>(migrate);
  if (verbs > 1) return Fail("--status, --jobs, --cancel, --output and --migrate exclude each other");
  if (verbs == 0) {
    if (inv.command.empty() && !inv.from) return Fail("no command given (usage: queue [options] -- command args; see --help)");
    return Verb::kRun;
  }
  if (migrate) {
    if (inv.command.size() > 1) return Fail("--migrate ID [HOST] takes one host (\"" + inv.command[1] + "\" given)");
    return Verb::kMigrate;
  }
  std::string name = status ? "--status" : jobs ? "--jobs" : cancel ? "--cancel" : "--output";
  if (!inv.command.empty()) return Fail(name + " takes no command (\"" + inv.command.front() + "\" given)");
  return status ? Verb::kStatus : jobs ? Verb::kJobs : cancel ? Verb::kCancel : Verb::kOutput;
}

}  // namespace

Result<Invocation> ParseQueueCommandLine(const std::vector<std::string>& given) {
  const std::vector<std::string> args = JoinWatchInterval(given);
  Invocation inv;
  CLI::App app{"queue: run a command on the least-loaded host of the cluster, as if it ran here."};
  app.set_help_flag("--help", "print this help");
  bool immediate = false, wait_queue = false, full = false, half = false, none = false;
  bool wait = false, version = false, status = false;
  std::string user;
  app.add_option("-h,--host", inv.only_host, "run only on HOST (as named in the hosts file)");
  app.add_option("-H,--robust-host", inv.preferred_host, "prefer HOST, fall back to the least-loaded host");
  app.add_flag("-i,--immediate", immediate, "use the `now` queue (default)");
  app.add_flag("-q,--queue", wait_queue, "use the `wait` queue");
  app.add_option("-d,--queuedir,--spooldir", inv.queue, "use the named queue");
  app.add_option("-j,--jobname", inv.job_name, "name the job (in listings and mail)");
  app.add_flag("-p,--full-pty", full, "remote pty for input and output (default when stdin is a tty)");
  app.add_flag("-o,--half-pty", half, "remote pty for input only; output through sockets");
  app.add_flag("-n,--no-pty", none, "no pty: stdin, stdout, stderr through sockets");
  app.add_flag("-w,--wait", wait, "stay attached until the job ends (default)");
  app.add_flag("-r,--batch", inv.batch, "return at once and print the job id");
  app.add_flag("-v,--version", version, "print the version");
  app.add_flag("--status", status, "show hosts, loads, queues and your jobs");
  bool jobs = false;
  app.add_flag("--jobs", jobs, "list your waiting and running jobs");
  app.add_flag("--all", inv.all, "with --jobs: finished jobs too (exit code, host, times, CPU)");
  // Job ids are read as text: CLI11 would wrap "-5" round to a huge id.
  std::optional<std::string> cancel, output, migrate;
  app.add_option("--cancel", cancel, "cancel your job ID (SIGTERM, then SIGKILL)")->type_name("ID");
  app.add_option("--output", output, "print the output of your finished batch (-r) job ID")
      ->type_name("ID");
  app.add_option("--migrate", migrate,
                 "move your running job ID (checkpoint it and restart it elsewhere); a host may follow the ID")
      ->type_name("ID");
  app.add_option("--array", inv.array,
                 "with -r: one job per index (1-100, 0-98:2, 1,3,5-9), QUEUE_ARRAY_INDEX set in each")
      ->type_name("INDICES");
  app.add_option("--from", inv.from,
                 "with -r: one job per line of FILE (- for stdin), each run by /bin/sh -c; blank lines and # "
                 "comments skipped; all or none are submitted")
      ->type_name("FILE");
  app.add_flag("--json", inv.json, "with --status or --jobs: machine-readable JSON (docs/json-schema.md)");
  app.add_flag("--watch{2}", inv.watch_seconds,
               "with --status or --jobs: show it again every SECONDS (default 2), in place on a terminal")
      ->type_name("[SECONDS]");
  app.add_option("--socket", inv.socket_path,
                 "the local queued's socket (default: $QUEUE_SOCKET, else /run/queue/queued.sock, "
                 "${QUEUE_HOME:-~/.queue}/queued.sock, then `socket PATH` in ~/.config/queue/config)");
  app.add_option("-l,--username", user, "accepted for rsh compatibility; must be you");
  // The command starts after "--" or at the first word that is not an option;
  // none of it goes through option parsing.
  size_t options_end = FindCommandStart(args);
  size_t command_start = options_end < args.size() && args[options_end] == "--" ? options_end + 1 : options_end;
  inv.command.assign(args.begin() + static_cast<std::ptrdiff_t>(command_start), args.end());
  std::vector<std::string> reversed(args.rend() - static_cast<std::ptrdiff_t>(options_end), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    inv.verb = Verb::kHelp;
    inv.help_text = app.help();
    return inv;
  } catch (const CLI::ParseError& e) {
    return Fail(std::string(e.what()) + " (see queue --help)");
  }

  if (version) {
    inv.verb = Verb::kVersion;
  } else {
    auto verb = ChooseVerb(status, jobs, cancel.has_value(), output.has_value(), migrate.has_value(), inv);
    if (!verb.ok()) return verb.error();
    inv.verb = *verb;
    if (cancel) {
      // An element of a job array too: 17.2_5.
      auto ref = wire::ParseJobRef(*cancel);
      if (!ref.ok()) return Fail("--cancel: " + ref.message());
      inv.cancel_id = ref->job;
      inv.cancel_element = ref->element;
    }
    if (output) {
      auto id = ParseJobId("--output", *output);
      if (!id.ok()) return id.error();
      inv.output_id = *id;
    }
    if (migrate) {
      auto id = ParseJobId("--migrate", *migrate);
      if (!id.ok()) return id.error();
      inv.migrate_id = *id;
      if (!inv.command.empty()) inv.migrate_host = inv.command.front();
      inv.command.clear();
    }
  }
  if (inv.watch_seconds != 0 && inv.verb != Verb::kStatus && inv.verb != Verb::kJobs)
    return Fail("--watch goes with --status or --jobs");
  if (inv.watch_seconds < 0 || inv.watch_seconds > 86400) return Fail("--watch: SECONDS must be 1 to 86400");
  if (immediate && wait_queue) return Fail("-i and -q exclude each other");
  if (wait_queue && inv.queue == "now") inv.queue = "wait";
  if (static_cast<int>(full) + static_cast<int>(half) + static_cast<int>(none) > 1)
    return Fail("-p, -o and -n exclude each other");
  if (half) inv.pty = wire::PtyMode::kHalf;
  if (none) inv.pty = wire::PtyMode::kNone;
  if (inv.array || inv.from) {
    if (inv.verb != Verb::kRun && !(inv.verb == Verb::kHelp || inv.verb == Verb::kVersion))
      return Fail("--array and --from submit jobs; they take no other verb");
    if (inv.array && inv.from) return Fail("--array and --from exclude each other");
    if (inv.from && !inv.command.empty())
      return Fail("--from takes its commands from the file, not the command line (\"" + inv.command.front() +
                  "\" given)");
    if (wait) return Fail("--array and --from submit batch jobs: -w does not go with them");
    inv.batch = true;
  }
  if (wait && inv.batch) return Fail("-w and -r exclude each other");
  if (!inv.only_host.empty() && !inv.preferred_host.empty()) return Fail("-h and -H exclude each other");
  if (!user.empty()) {
    if (auto ok = CheckUser(user, "-l " + user); !ok.ok()) return Fail(ok.message());
  }
  if (!wire::IsValidQueueName(inv.queue)) return Fail("\"" + inv.queue + "\" is not a queue name");
  return inv;
}


}  // namespace queue::stub
