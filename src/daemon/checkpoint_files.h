// The file work of a checkpoint, at both ends: packing a stopped job's restart
// files (or its CRIU image) into its bundle on the host it leaves, and putting
// a bundle back in place on the host that takes the job.
//
// Each is a plain function of the copies it is given, for the runner's worker
// thread: a GiB of restart state takes seconds to pack or to unpack, which the
// daemon's event loop must not spend.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "migrate/criu.h"
#include "util/result.h"
#include "wire/job_spec.h"

namespace queue::daemon {

struct PackInput {
  std::string self_host;                      // named in what the user is told
  std::string bundle_path;                    // where the bundle is written
  std::string image_dir;                      // checkpointmode 1: where CRIU wrote the image
  bool transparent = false;                   // checkpointmode 1: pack the image, not restart files
  wire::JobSpec spec;                         // its cwd and owner
  std::vector<std::string> restart_patterns;  // which files in its cwd travel
  int64_t since_ms = 0;                       // a restart file must be newer than this to count
};

// Writes the job's bundle (or none, when it left nothing to go on from) and
// returns what its owner should know, e.g. "checkpointed on H with 2 restart
// file(s), 1024 bytes". The image directory is removed either way.
std::string PackCheckpoint(const PackInput& input);

struct UnpackInput {
  std::string bundle_path;
  wire::JobSpec spec;         // its cwd and owner
  bool restores_images = false;  // its queue here has checkpointmode 1
  migrate::CriuAvailability criu;
  std::string image_parent;   // where a CRIU image is unpacked (a new directory in it)
};

// Puts the bundle's restart files into the job's cwd, as its owner, and
// returns ""; or unpacks its CRIU image into a new directory of the daemon's,
// given to the owner, and returns that directory. Refused with the reason a
// user can read (missing, corrupt, an image this queue cannot restore).
Result<std::string> UnpackCheckpoint(const UnpackInput& input);

}  // namespace queue::daemon
