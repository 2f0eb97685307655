// File seals: what a daemon keeps in its spool for later (a restart bundle
// between a checkpoint and the restart, a batch job's output from before its
// checkpoints) can be damaged or deleted on disk meanwhile, and a bundle's own
// format carries no checksum, so a flipped byte would be restored into the
// job's cwd as if it were the job's state. A seal records the size and SHA-256
// a file had when it was kept, beside it (`<path>.sha256`), so that it is
// checked before it is used. Seals are files, not job-record columns: they
// move and go with the file they describe.
//
// Plain functions of paths, safe on any thread; the hashing ones read the
// whole file, so they belong on a worker thread.
#pragma once

#include <cstdint>
#include <string>

#include "util/result.h"

namespace queue::spool {

struct FileSeal {
  uint64_t size = 0;
  std::string sha256;  // 32 raw bytes
};

// Where the seal of the file at `path` is kept.
std::string SealPath(const std::string& path);

// Writes `seal` as the seal of the file at `path` (a temporary file renamed
// into place: a crash leaves the old seal or the new one, never half of one).
// Not synced: see SyncSealed.
Status WriteSeal(const std::string& path, const FileSeal& seal);

// Hashes the file at `path` as it is now and writes its seal.
Result<FileSeal> SealFile(const std::string& path);

// The seal kept for the file at `path` (fails when there is none, or it is
// not one).
Result<FileSeal> ReadSeal(const std::string& path);

// Renames the file at `from` and its seal to `to`. The seal goes first: a
// crash between the two leaves a seal that does not match the file under it,
// which is found out, never a file taken for sealed by an older seal.
Status RenameSealed(const std::string& from, const std::string& to);

// Removes the file at `path` and its seal (either may be gone already).
void RemoveSealed(const std::string& path);

// Puts the file at `path`, its seal and both names on disk (fsync).
// Whatever is gone meanwhile needs nothing.
void SyncSealed(const std::string& path);

// What a check found.
enum class SealVerdict {
  kGood,      // size and SHA-256 are those it was kept with
  kAbsent,    // no file and no seal: nothing was kept
  kUnsealed,  // a file with no seal (kept by a queued before seals): nothing to check it against
  kMissing,   // a seal with no file: the file was deleted
  kDamaged,   // it differs from what was kept, or cannot be read
};

struct SealCheck {
  SealVerdict verdict = SealVerdict::kAbsent;
  std::string why;  // for kMissing and kDamaged: what is wrong, for a user to read
};

// Checks the file at `path` against its seal, reading the whole file.
SealCheck CheckSeal(const std::string& path);

}  // namespace queue::spool
