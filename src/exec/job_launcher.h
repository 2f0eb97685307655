// The job launcher: turns a JobSpec into a running process on the execution host.
//
// It owns everything between fork and exec (SPEC §3): a new session, the pty or
// pipes for the standard streams, the submitter's credentials, umask, nice,
// rlimits, cwd, environment and the lookup of argv[0] in the job's own PATH.
// Everything the child needs is prepared before fork, so the child runs only
// system calls (the shepherd may have threads). A failure before exec comes back
// as Fail(message) after the child has been reaped; its exit status would be 2.
//
// Thread-safety: LaunchJob and ResizePty may be called from any thread; they
// share no state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "util/result.h"
#include "wire/job_spec.h"

namespace queue::exec {

struct LaunchOptions {
  std::string job_id;         // as its owner knows it ("17.2"); QUEUE_JOBID
  std::string exec_host;      // exported as QUEUE_HOST and named in error messages
  int32_t profile_nice = 0;   // the job runs at max(spec.nice, profile_nice)
  bool allow_root = false;    // the queue profile's allowroot
  // false: the job leads a session of its own.
  // true: the job gets its own process group inside the launcher's session, and
  // a pty becomes the launcher's controlling terminal with the job in the
  // foreground. A process group whose parent sits in another session is
  // "orphaned", and the kernel discards terminal stop signals (SIGTSTP from ^Z,
  // SIGTTIN, SIGTTOU) sent to it; sharing the session keeps ^Z, suspend and
  // `fg` working. REQUIRES: the launcher leads its session and has no
  // controlling terminal (the shepherd is spawned that way).
  bool share_session = false;
  // A batch job's output: when >= 0, the job's stdout and stderr both go to
  // this fd, its stdin is /dev/null and it has no pty whatever spec.pty says.
  // The caller keeps owning the fd; the job gets its own copy.
  int batch_output_fd = -1;
};

// The parent's side of a started job. Every fd is distinct, close-on-exec and
// nonblocking, and owned by the caller, who closes each one. A batch job
// (LaunchOptions::batch_output_fd) has none: every fd here is -1. In pty modes,
// stdin_fd, stdout_fd (kFull) and pty_master all refer to the same pty master;
// in kHalf the master also carries the line discipline's echo of the input.
struct LaunchedJob {
  pid_t pid = -1;       // also the job's process group id and session id
  int stdin_fd = -1;    // write end: a pipe, or the pty master
  int stdout_fd = -1;   // read end: a pipe (kNone, kHalf), or the pty master (kFull)
  int stderr_fd = -1;   // read end of a pipe, or -1 when stderr goes through the pty
  int pty_master = -1;  // for ResizePty; -1 without a pty
};

// Starts the job described by spec; spec.terminal is read as term::ApplyTerminal
// reads it (Linux flag values, speeds as baud rates).
// When this process runs as root the job gets spec's uid, gid and groups (uid 0
// only with allow_root); otherwise spec.uid must be this process's euid.
// No fd of this process other than the job's streams survives into the job.
Result<LaunchedJob> LaunchJob(const wire::JobSpec& spec, const LaunchOptions& options);

// Sets the window size of a launched job's pty; the kernel sends SIGWINCH to its
// foreground process group.
Status ResizePty(int pty_master, uint16_t rows, uint16_t cols, uint16_t xpixel, uint16_t ypixel);

}  // namespace queue::exec
