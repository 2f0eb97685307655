// CallerLimits: a local client's real resource limits, as the kernel reports
// them for the process that connected (/proc/<pid>/limits of the SO_PEERCRED
// pid), and the capping of a submitted job's limits by them. A job's limits
// are the submitter's to lower, never to raise: the message's claims are
// capped by the real hard limits, and a limit the message leaves out is set
// to the real one, since the job would otherwise inherit the daemon's (root's).
//
// The pid is read at accept, before the client can exit; a pidfd taken from
// the socket (SO_PEERPIDFD) proves afterwards that the pid was not reused by
// another process meanwhile. Where the kernel has no SO_PEERPIDFD, the
// process's real uid must still be the caller's.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"
#include "wire/job_spec.h"

namespace queue::daemon {

// Parses the text of /proc/<pid>/limits: one limit per resource the kernel
// lists (RLIMIT_CPU ... RLIMIT_RTTIME), "unlimited" as kUnlimited.
Result<std::vector<wire::ResourceLimit>> ParseProcLimits(std::string_view text);

// The limits of the process on the other end of Unix socket `fd`, whose
// SO_PEERCRED said `pid` and `uid`.
Result<std::vector<wire::ResourceLimit>> ReadPeerLimits(int fd, pid_t pid, uid_t uid);

// Caps `wanted` (a spec's limits) by `real`: each hard limit at most the real
// hard one, each soft limit at most its hard one; a resource with a finite
// real hard limit that `wanted` leaves out gets the real soft and hard limits.
// Returns what was lowered ("nofile hard 20000 > 256"), for the log.
std::vector<std::string> CapLimits(std::vector<wire::ResourceLimit>& wanted,
                                   const std::vector<wire::ResourceLimit>& real);

}  // namespace queue::daemon
