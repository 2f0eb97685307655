// What the submitting shell contributes to a job (SPEC §3): the command, the
// whole environment, cwd, umask, nice, credentials, resource limits and the
// terminal, captured once by `queue` before it sends the job; and the choice of
// pty mode from what the user asked for and where stdin/stdout lead.
//
// CaptureLocalContext reads the process umask by setting and resetting it, so it
// must not run while another thread of the stub creates files.
#pragma once

#include <string>
#include <vector>

#include "util/result.h"
#include "wire/job_spec.h"

namespace queue::stub {

// A JobSpec with argv, env, cwd, umask, nice, uid/gid/groups (effective ids; the
// daemon replaces them with the peer's credentials), every Linux resource limit,
// stderr_is_tty = isatty(2), and the terminal of fd 0 when it is a tty. The
// fields that are not local context (pty, queue, hosts, stub address, session key,
// batch, job name) keep their defaults for the caller to set; pty comes from
// ChoosePtyMode. Fails, with a message for the user, when the current directory
// cannot be determined or argv or the environment exceed the wire's limits.
Result<wire::JobSpec> CaptureLocalContext(std::vector<std::string> argv);

// The pty mode a job really gets. A pty only makes sense to carry a terminal's
// input, and pty output only when it ends on a terminal (GNU Queue §1.8):
//
//   requested | stdin tty | stdout tty | result
//   ----------+-----------+------------+-------
//   kNone     |    any    |    any     | kNone
//   kHalf     |    no     |    any     | kNone
//   kHalf     |    yes    |    any     | kHalf
//   kFull     |    no     |    any     | kNone
//   kFull     |    yes    |    no      | kHalf
//   kFull     |    yes    |    yes     | kFull
wire::PtyMode ChoosePtyMode(wire::PtyMode requested, bool stdin_tty, bool stdout_tty);

}  // namespace queue::stub
