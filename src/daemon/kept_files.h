// What a submit host keeps of a job between its runs: the restart bundle of
// its last checkpoint (and the one before it, to fall back on) and a batch
// job's output from each run before a checkpoint. Each is sealed with its size
// and SHA-256 when kept (spool/file_seal) and checked before it is used, so
// that a file damaged or deleted on disk meanwhile is found out: a damaged
// bundle gives way to the previous one or to a fresh start, and a damaged or
// missing output piece is reported, never silently left out.
//
// Plain functions of the paths they are given, for the finisher's worker
// thread: sealing and checking read whole files, a GiB of them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "spool/file_seal.h"

namespace queue::daemon {

struct KeepInput {
  std::string bundle;                            // the new bundle ("": the run wrote none)
  std::optional<spool::FileSeal> bundle_seal;    // as its sender hashed it; hashed here when unknown
  std::string kept_bundle;                       // where the job's bundle is kept
  std::string previous_bundle;                   // where the one before it is kept
  std::string output;                            // this run's output ("": none came)
  std::optional<spool::FileSeal> output_seal;    // likewise
  std::string piece;                             // where this run's output is kept ("": not a batch job)
};

struct Kept {
  bool bundle = false;  // the new bundle is the kept one now
  std::string note;     // what could not be done, for the job's record, or ""
};

// Keeps a checkpointed run's files, by renaming them (cheap, for the event
// loop, so that the job is queued again at once): the kept bundle becomes the
// previous one and the new bundle takes its place, the output goes into its
// piece. The bundle is unsealed until SealCheckpointFiles; the piece is sealed
// at once when its sender's digest is known (else there too).
Kept MoveCheckpointFiles(const KeepInput& input);
// Then, on the worker: seals them (hashing what the sender did not) and syncs
// them. Returns what could not be done, or "". A bundle that cannot be sealed
// is removed (unchecked, it must not be used); a piece is still delivered.
std::string SealCheckpointFiles(const KeepInput& input, bool bundle_kept);
// Both, one after the other.
Kept KeepCheckpoint(const KeepInput& input);

struct BundleChoice {
  bool checked_bad = false;  // the kept bundle was damaged or missing
  bool from_previous = false;  // ...and the previous one took its place
  std::string note;  // what was found and done, for the job's record and its owner ("" when good)
};

// Checks the kept bundle before a restart. A good one (or one kept before
// seals) stays; a damaged or missing one is replaced by the previous bundle
// when that one is good, and is otherwise removed with it, so that the job
// starts again from the beginning.
BundleChoice ChooseRestartBundle(const std::string& kept_bundle, const std::string& previous_bundle);

// One output piece to be put before the last run's output.
struct CheckedPiece {
  std::string path;
  bool include = false;  // its bytes go into the output (damaged ones too: better than nothing)
  std::string problem;   // what is wrong with it, for the record and the output ("" when good)
};

// Checks a batch job's pieces (`labels[i]` names pieces[i] for the user: "run 2").
std::vector<CheckedPiece> CheckOutputPieces(const std::vector<std::string>& pieces,
                                            const std::vector<std::string>& labels);

}  // namespace queue::daemon
