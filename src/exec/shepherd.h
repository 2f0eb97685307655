// Shepherd: the per-job process on the execution host (the original's
// queued_slave). It receives one ShepherdStart from its daemon, connects to the
// job's stub over TLS keyed by the job's session key, starts the job, relays
// stdin/stdout/stderr, signals and window size, and reports the job's fate to
// both the stub and the daemon. It lives in its own session, so the job
// outlives a restart of queued. If the stub goes away, the job gets SIGHUP and,
// after a grace period, SIGKILL: no orphan keeps running.
#pragma once

#include <chrono>

namespace queue::exec {

struct ShepherdOptions {
  int daemon_fd = 3;  // a connected Unix stream socket to queued
  std::chrono::seconds connect_timeout{10};
  std::chrono::seconds hangup_grace{5};
};

// Runs one job to completion; returns the shepherd's own exit status.
int RunShepherd(const ShepherdOptions& options);

}  // namespace queue::exec
