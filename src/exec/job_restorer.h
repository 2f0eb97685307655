// The job restorer: the other way a shepherd gets its job (checkpointmode 1).
// Instead of launching the JobSpec, it has CRIU restore the job from the image
// its previous host dumped, handing it new standard streams in place of the old
// ones, so that the shepherd relays them exactly as it does a launched job's.
#pragma once

#include <string>

#include "exec/job_launcher.h"
#include "migrate/criu.h"
#include "util/result.h"
#include "wire/job_spec.h"

namespace queue::exec {

struct RestoreOptions {
  std::string image_dir;  // the daemon's, holding CRIU's images and migrate::kCriuStreamsFile
  std::string criu_path;
  migrate::CriuIdentity as;  // the job's owner: criu runs as them (migrate/criu.h)
  // As LaunchOptions::batch_output_fd: the job's stdout and stderr, stdin /dev/null.
  int batch_output_fd = -1;
};

// Restores the job as a child of this process (in its session, in a process
// group of its own, as LaunchJob with share_session does) and returns its
// streams as LaunchJob would. A job that had a terminal gets a new pty in
// its place. Fails with CRIU's own reason ("criu restore failed: Can't fork
// for 4242: File exists"); the image is left as it was.
// REQUIRES: root (CRIU restores the job's credentials from the image).
Result<LaunchedJob> RestoreJob(const RestoreOptions& options);

}  // namespace queue::exec
