// The command lines of `queue` and `qsh` (SPEC §2): what the user asked for,
// before any of it is checked against the cluster.
#pragma once

#include <string>
#include <vector>

#include "util/result.h"
#include "wire/job_id.h"
#include "wire/job_spec.h"

namespace queue::stub {

enum class Verb { kRun, kStatus, kJobs, kCancel, kOutput, kMigrate, kVersion, kHelp };

struct Invocation {
  Verb verb = Verb::kRun;
  std::vector<std::string> command;
  std::string only_host, preferred_host;
  std::string queue = "now";
  std::string job_name;
  wire::PtyMode pty = wire::PtyMode::kFull;
  bool batch = false;
  bool json = false;
  bool all = false;         // --jobs --all: finished jobs too
  wire::JobId cancel_id;   // --cancel ID
  wire::JobId output_id;   // --output ID: the batch job whose output to show
  wire::JobId migrate_id;  // --migrate ID [HOST]: the job to move
  std::string migrate_host; //   and where to ("" = any host that takes it)
  std::string socket_path;
  std::string help_text;
};

// `queue [-h host|-H host] [-i|-q] [-d queue] [-o|-p|-n] [-w|-r] [-j name] -- command args`,
// or one of the verbs `--status`, `--jobs`, `--cancel ID`, `--output ID` (at most one,
// and no command with it).
Result<Invocation> ParseQueueCommandLine(const std::vector<std::string>& args);

// `qsh [-l user] [-d queue] [-t|-n] [-w|-r] [-p port] [-T -x -q -o opt] host|+ [--] words...`
// The words are joined with spaces and run by `sh -c`, as rsh and ssh do.
Result<Invocation> ParseQshCommandLine(const std::vector<std::string>& args);

}  // namespace queue::stub
