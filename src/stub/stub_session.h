// The stub: the local stand-in for a remote job (SPEC §4). It submits the job
// through the local daemon, waits for the job's shepherd to connect back over
// TLS keyed by a fresh per-job session key, relays stdin/stdout/stderr, signals
// and window size, and finally exits the way the job did: the same exit code,
// or death/stop by the same signal, so the user's shell cannot tell.
// A job that checkpoints to move (SPEC §7) tells the stub kMoved: the stub
// stays, holding signals and input, until the job's next shepherd connects to
// the same listener with the same key, or the daemon says it cannot restart.
#pragma once

#include <chrono>
#include <string>

#include "stub/daemon_socket.h"
#include "wire/job_spec.h"

namespace queue::stub {

struct StubOptions {
  DaemonSocket socket;
  std::string program_name = "queue";  // prefix of error messages
  wire::JobSpec spec;                  // argv, environment, terminal... already captured
  std::chrono::seconds start_timeout{60};
};

// Runs the job; returns the exit status for main(). A job killed or stopped
// by a signal makes this process die or stop by that signal instead.
// Our own stdout and stderr may be non-blocking and slow (see output_writer.h);
// when a reader of either leaves (EPIPE), the job is told as ssh tells it (its
// stream is closed there: SIGPIPE on its next write), and we exit the way the
// job then does. Any other write error is reported, and ends us with 2 when the
// job itself succeeded.
// A batch job (spec.batch, -r) is only submitted: its id is printed alone on
// stdout and this returns 0, with no listener or session key made for it.
int RunStub(StubOptions options);

}  // namespace queue::stub
