// Shepherd: the per-job process on the execution host (the original's
// queued_slave). It receives one ShepherdStart from its daemon, connects to the
// job's stub over TLS keyed by the job's session key, starts the job, relays
// stdin/stdout/stderr, signals and window size, and reports the job's fate to
// both the stub and the daemon. It lives in its own session, so the job
// outlives a restart of queued. If the stub goes away, the job gets SIGHUP and,
// after a grace period, SIGKILL: no orphan keeps running.
//
// A batch job (spec.batch) has no stub: stdin is /dev/null, stdout and stderr
// go to ShepherdStart.output_path, and the job runs to its end whatever becomes
// of the daemon.
//
// The job's end is written to ShepherdStart.status_path (see shepherd_status.h)
// before the daemon hears of it. With ShepherdStart.adoptable, fd adoption_fd
// is a listening Unix socket: a restarted daemon (root, or the user the
// shepherd started as) connects there to become the shepherd's daemon channel,
// and is told at once kStarted{pid}, then the job's end if it has come.
// The shepherd exits soon after the job ends, with or without a daemon.
//
// Checkpoint (SPEC §7, ShepherdAction::kCheckpoint): the job's process group
// gets the queue's checkpoint signal exactly once, and SIGKILL after the grace
// period if it is still there. However it then ends, its kFinished event says
// checkpointed (with the signal's time) and its stub is told kMoved instead of
// an exit status: the stub stays to wait for the job's next shepherd.
#pragma once

#include <chrono>

namespace queue::exec {

struct ShepherdOptions {
  int daemon_fd = 3;     // a connected Unix stream socket to queued
  int adoption_fd = 4;   // a listening Unix stream socket, when ShepherdStart.adoptable
  std::chrono::seconds connect_timeout{10};
  std::chrono::seconds hangup_grace{5};
  // How long the job's end may wait to reach a daemon that does not read it.
  std::chrono::seconds daemon_drain_limit{5};
};

// Runs one job to completion; returns the shepherd's own exit status.
int RunShepherd(const ShepherdOptions& options);

}  // namespace queue::exec
