// Packing a job's restart files into a restart bundle on the host it leaves, and
// unpacking them into the same cwd path on the host it moves to (SPEC §7.2-7.3).
// The format itself is in restart_bundle_format.h.
//
// The daemon runs as root but the files live in the job owner's directory, so
// root never opens them: every read and write of them happens in a child process
// acting as the owner (RunAsOwner), under the owner's own permissions. Only the
// bundle, a file of the daemon's spool, is opened by the daemon, and the child
// inherits that descriptor.
//
// Both calls block until the work is done (a 1 GiB restart file is streamed, never
// held in memory, but copying it takes its time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "migrate/restart_bundle_format.h"
#include "spool/output_file.h"
#include "util/result.h"

namespace queue::migrate {

struct PackResult {
  size_t files = 0;    // entries in the bundle (names.size())
  uint64_t bytes = 0;  // of the files' contents, not counting the bundle's headers
  // Some packed file's mtime is at or after `since_ms`.
  bool any_modified_since = false;
  std::vector<std::string> names;  // the bundle's paths, in bundle order
  // Matched but not packed because they are no regular files, or are reached
  // through a symbolic link (at most kMaxSkippedNames are named).
  std::vector<std::string> skipped;
};

inline constexpr size_t kMaxSkippedNames = 100;

// As `owner`, resolves `patterns` relative to the absolute directory `cwd` and
// writes the bundle to `bundle_fd` (truncated first, then written from offset 0
// with explicit offsets; it must not be O_APPEND). Not synced: a caller that must
// keep the bundle across a crash fsyncs it.
//
// A pattern is a plain name, a glob(3) pattern or a directory (whose files are
// taken recursively, hidden ones included), relative to `cwd` and normalised like a
// bundle path. A pattern that matches nothing is skipped; empty `patterns` give an
// empty bundle. Symbolic links below `cwd` are never followed, neither as a match
// nor as a directory on the way to one: such names land in `skipped`, as do FIFOs,
// sockets and devices. Files are packed with their permission bits.
//
// `any_modified_since`: the daemon's "the job wrote its restart file after the
// checkpoint signal". File times come from the kernel's coarse clock, which may lag
// CLOCK_REALTIME by a scheduler tick, so take `since_ms` from CLOCK_REALTIME_COARSE.
//
// `kind` is written as the bundle's magic: kCriuImage only for a daemon's own
// CRIU image directory, packed as root.
//
// Errors name the path: "restart file ckpt/state.bin: Permission denied".
// REQUIRES: this process runs as root, or as owner.uid (otherwise refused).
Result<PackResult> PackRestartFiles(int bundle_fd, const std::string& cwd,
                                    const std::vector<std::string>& patterns,
                                    const spool::FileOwner& owner, int64_t since_ms,
                                    BundleKind kind = BundleKind::kRestartFiles);

// Writes every file of the bundle at `bundle_fd` (read with pread) into the absolute
// directory `cwd`, as `owner`. The whole bundle is validated first (ScanBundle): a
// truncated or corrupt one writes nothing, and says why. Missing directories are
// created (mode 0700: the bundle does not carry directory modes); a symbolic link
// where a directory is expected is refused, not followed. Each file is written to a
// hidden temporary file beside its place, synced and given the bundle's mode; once
// all of them are written they are renamed into place, replacing what was there.
// A failure before the renames leaves no file behind (only directories it created).
// REQUIRES: this process runs as root, or as owner.uid (otherwise refused).
Status UnpackRestartFiles(int bundle_fd, const std::string& cwd, const spool::FileOwner& owner);

}  // namespace queue::migrate
