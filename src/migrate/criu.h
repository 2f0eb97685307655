// Transparent checkpoints with CRIU (`checkpointmode 1`, SPEC §7.8): whether the
// criu tool works on this host, the command lines that dump a running job into an
// image directory and restore it from one, and the little the images must say
// beside CRIU's own files: what the job's standard streams were, so that a new
// shepherd can hand it fresh ones in their place.
//
// The daemon starts the dump; the job's shepherd starts the restore while it is
// still root, with `--restore-sibling`, so that the restored job is the
// shepherd's own child, in the shepherd's session, as a launched job would be.
// Either way criu runs as the job's owner with only the capabilities it needs
// (`--unprivileged`, CriuIdentity): CRIU reopens the job's files by path, and
// as root it would open whatever a path leads to by then (the owner may have
// put a symbolic link to /etc/shadow where their file was). The job's open files other than its streams must exist at the same
// paths on the new host (CRIU reopens them), which is true of programs and of
// files on a shared filesystem; its restart state is the image itself.
//
// An image directory lives in the daemon's spool, out of the owner's reach; it
// is the owner's (criu writes and reads it as the owner) and criu is handed it
// as an open directory (/proc/self/fd/3). Only a root job is dumped and
// restored by criu as root.
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

// Who criu runs as: the job's owner, or root for a root job.
struct CriuIdentity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  bool unprivileged() const { return uid != 0; }
};

enum class CriuStep { kDump, kRestore };

// Where criu finds the image directory passed to it as fd 3.
inline constexpr const char* kCriuImageDirFd = "/proc/self/fd/3";

// `criu dump` of the process tree led by `pid` (a process group inside its
// shepherd's session, hence --shell-job) into `image_dir`, logging to
// image_dir/dump.log. CRIU kills the tree once the images are complete.
std::vector<std::string> CriuDumpCommand(const std::string& criu, pid_t pid, const std::string& image_dir,
                                         bool unprivileged = false);

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
                                            const std::vector<InheritedStream>& inherit, bool unprivileged = false);

// Starts criu (argv[0]) as `as` with `pass_fds[i]` as fd 3+i, `stdin_fd` (or
// /dev/null) as fd 0, fds 1 and 2 on /dev/null, no other fd, a bare environment and no configuration file of
// anyone's. For an unprivileged identity it keeps only the capabilities `step`
// needs: CAP_CHECKPOINT_RESTORE, and CAP_SETPCAP to restore (CRIU drops from
// the restored job's bounding set what its image says it had dropped). A child
// that cannot become `as` exits 125; one that cannot run criu, 127.
// REQUIRES: root.
Result<pid_t> SpawnCriu(const std::vector<std::string>& argv, const std::vector<int>& pass_fds,
                        const CriuIdentity& as, CriuStep step, int stdin_fd = -1);

// Gives the image directory (and what is in it) to `as`.
Status GiveImageTo(const std::string& image_dir, const CriuIdentity& as);

// The first error CRIU logged in `log_path`, its cause, one line ("Can't fork
// for 4242: File exists"), or "" when it logged none. Its complaint that it
// could not raise its own RLIMIT_NOFILE is harmless and skipped.
std::string CriuLogError(const std::string& log_path);

}  // namespace queue::migrate
