// The command lines of `queue` and `qsh` (SPEC §2): what the user asked for,
// before any of it is checked against the cluster.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "util/result.h"
#include "wire/job_id.h"
#include "wire/job_spec.h"

namespace queue::stub {

// kPrintConfig: qsh -G, ssh's "print the configuration and exit" (git probes with it).
enum class Verb { kRun, kStatus, kJobs, kCancel, kOutput, kMigrate, kVersion, kHelp, kPrintConfig };

struct Invocation {
  Verb verb = Verb::kRun;
  std::vector<std::string> command;
  std::string only_host, preferred_host;
  std::string queue = "now";
  std::string job_name;
  wire::PtyMode pty = wire::PtyMode::kFull;
  bool force_pty = false;   // qsh -tt: a pty even when stdin is no terminal, as ssh -tt
  bool stdin_null = false;  // qsh -n: stdin from /dev/null, as ssh -n and rsh -n
  bool batch = false;
  bool json = false;
  bool all = false;         // --jobs --all: finished jobs too
  // --array INDICES / --from FILE ("-": stdin): many batch jobs at once (stub/bulk_submit).
  std::optional<std::string> array;
  std::optional<std::string> from;
  int watch_seconds = 0;    // --watch [SECONDS] with --status or --jobs: shown again every SECONDS (0: once)
  wire::JobId cancel_id;   // --cancel ID
  uint32_t cancel_element = wire::kNoElement;  //   ID_INDEX: one element of a job array
  wire::JobId output_id;   // --output ID: the batch job whose output to show
  wire::JobId migrate_id;  // --migrate ID [HOST]: the job to move
  std::string migrate_host; //   and where to ("" = any host that takes it)
  std::string socket_path;
  std::string help_text;    // kHelp; and kPrintConfig: what qsh -G prints
};

// `queue [-h host|-H host] [-i|-q] [-d queue] [-o|-p|-n] [-w|-r] [-j name] -- command args`,
// or one of the verbs `--status`, `--jobs`, `--cancel ID`, `--output ID` (at most one,
// and no command with it); `--status` and `--jobs` may take `--watch [SECONDS]`.
// `-r --array 1-100 -- command args` and `-r --from FILE` submit many batch jobs
// at once (--array and --from imply -r).
Result<Invocation> ParseQueueCommandLine(const std::vector<std::string>& args);

// Refuses a user other than the caller (`-l user`, `user@host`): Queue runs
// jobs only as the user who submits them. `how` starts the message.
Status CheckUser(const std::string& user, const std::string& how);

}  // namespace queue::stub
