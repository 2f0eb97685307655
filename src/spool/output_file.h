// Delivering a batch job's output file on its submit host: the daemon (usually
// root) holds the output in its spool, and the job's owner gets it as a file of
// their own in a directory of their choosing. No shared file system is assumed.
//
// The owner controls that directory, so root never creates or opens anything in
// it: a child process acting as the owner writes the file, and the owner's own
// permissions decide whether it may.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/result.h"

namespace queue::spool {

// Whom the output file is written as: the job's owner, with the supplementary
// groups the job had (a directory may be writable only through one of them).
struct FileOwner {
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;
};

// Copies all of `source_fd` (from offset 0; the descriptor's own offset is left
// alone) to `dest_path`, which must be absolute. The file appears whole or not at
// all: it is written to a hidden temporary file beside `dest_path` (mode 0600,
// never through a symlink), synced, then moved to `dest_path` only if nothing is
// there: another file of that name (a symlink included, never followed) is
// left alone and the delivery fails, unless it holds the very same bytes (this
// output, delivered before by a delivery that could not say so).
// Blocks until the file is on disk. Errors name `dest_path` and the reason, e.g.
// "cannot write the output to /home/ann/job.o12: Permission denied".
// REQUIRES: the process runs as root, or as owner.uid (otherwise refused).
Status DeliverOutputFile(int source_fd, const std::string& dest_path, const FileOwner& owner);

}  // namespace queue::spool
