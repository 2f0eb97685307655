// Running a piece of work as a job's owner in a forked child process. The daemon
// runs as root, but a job's files live in directories the owner controls, so root
// never opens them: a child takes the owner's identity, does the work under the
// owner's own permissions, and sends back what it found through a pipe.
#pragma once

#include <functional>
#include <initializer_list>
#include <string>

#include "spool/output_file.h"
#include "util/result.h"

namespace queue::migrate {

// What the child does: its result (a report for the parent, or a one-line error)
// crosses back to the parent as it is.
using OwnerWork = std::function<Result<std::string>()>;

// Forks a child that keeps only `keep_fds` (plus stdin, stdout, stderr), takes the
// identity of `owner` when this process is root (effective uid, gid and groups;
// the real uid stays root so the owner cannot signal or trace it), runs `work`,
// and returns what `work` returned. The child may change its cwd and umask freely.
// Blocks until the child has ended. `what` names the work in the runner's own
// errors ("packing the restart files: could not act as uid 1000 (gid 100): ...").
// REQUIRES: this process runs as root, or as owner.uid (otherwise refused).
// May be called from a worker thread: the child allocates memory, which glibc
// makes safe after fork() in a process with threads, and the child is waited
// for through a pidfd, never by a bare pid another thread may have reaped.
Result<std::string> RunAsOwner(const spool::FileOwner& owner, std::initializer_list<int> keep_fds,
                               const std::string& what, const OwnerWork& work);

}  // namespace queue::migrate
