// Transparent checkpoints with CRIU (`checkpointmode 1`, SPEC §7.8): whether the
// criu tool works on this host, the command lines that dump a running job into an
// image directory and restore it from one, and the little the images must say
// beside CRIU's own files: what the job's standard streams were, so that a new
// shepherd can hand it fresh ones in their place.
//
// The daemon (root) runs the dump, as only it may; the job's shepherd runs the
// restore while it is still root, with `--restore-sibling`, so that the restored
// job is the shepherd's own child, in the shepherd's session, as a launched job
// would be. The job's open files other than its streams must exist at the same
// paths on the new host (CRIU reopens them), which is true of programs and of
// files on a shared filesystem; its restart state is the image itself.
//
// An image directory is the daemon's alone (0700, root): CRIU restores the
// credentials written in it, so nothing in it may come from the job's owner.
#pragma once

#include <sys/types.h>

#include <array>
#include <string>
#include <vector>

#include "util/result.h"

namespace queue::migrate {

struct CriuAvailability {
  bool usable = false;
  std::string path;     // the criu that was checked
  std::string version;  // "4.1.1", when it runs at all
  std::string reason;   // why it is not usable, one line, when !usable
};

// Finds criu (`requested` if not empty, else in PATH, then /usr/local/sbin and
// /usr/sbin) and runs `criu check`, which needs root. Blocks about a second.
CriuAvailability ProbeCriu(const std::string& requested);

// One line for people: "criu 4.1.1 (/usr/local/sbin/criu) works here", or why not.
std::string DescribeCriu(const CriuAvailability& criu);

// Where each of the job's fds 0, 1 and 2 led when it was dumped, as
// /proc/PID/fd shows it: "pipe:[123]", "/dev/null", a file's path.
struct CriuStreams {
  std::array<std::string, 3> targets;
};

// Reads the job's streams from /proc.
Result<CriuStreams> ReadJobStreams(pid_t pid);

// The file in an image directory that holds CriuStreams (one target per line).
inline constexpr const char* kCriuStreamsFile = "queue-streams";
Status WriteCriuStreams(const std::string& image_dir, const CriuStreams& streams);
Result<CriuStreams> ReadCriuStreams(const std::string& image_dir);

// `criu dump` of the process tree led by `pid` (a process group inside its
// shepherd's session, hence --shell-job) into `image_dir`, logging to
// image_dir/dump.log. CRIU kills the tree once the images are complete.
std::vector<std::string> CriuDumpCommand(const std::string& criu, pid_t pid, const std::string& image_dir);

// A new stream for one of the dumped job's: `fd` in criu's process takes the
// place of what the job's stream `target` was.
struct InheritedStream {
  int fd = -1;
  std::string target;
};

// `criu restore` from `image_dir` as a sibling of criu (the caller's child),
// writing the restored job's pid to image_dir/restored.pid, logging to
// image_dir/restore.log. Only pipes need `inherit`; files are reopened by path.
std::vector<std::string> CriuRestoreCommand(const std::string& criu, const std::string& image_dir,
                                            const std::vector<InheritedStream>& inherit);

// The first error CRIU logged in `log_path`, its cause, one line ("Can't fork
// for 4242: File exists"), or "" when it logged none. Its complaint that it
// could not raise its own RLIMIT_NOFILE is harmless and skipped.
std::string CriuLogError(const std::string& log_path);

// Starts argv (argv[0] is a path) with fds 0-2 on /dev/null, `pass_fds[i]` as
// fd 3+i and no other fd of this process: the child's pid.
Result<pid_t> Spawn(const std::vector<std::string>& argv, const std::vector<int>& pass_fds = {});

// Spawn, then waits for the child: its wait status.
Result<int> RunAndWait(const std::vector<std::string>& argv, const std::vector<int>& pass_fds = {});

}  // namespace queue::migrate
