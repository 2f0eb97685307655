// Keeping a checkpointed job's files at its submit host, sealed, and checking
// them before they are used.
#include "daemon/kept_files.h"

#include <unistd.h>

#include <cerrno>

#include "util/result.h"

namespace queue::daemon {

namespace {

using spool::SealVerdict;

void AddNote(std::string& notes, const std::string& note) {
  if (!note.empty()) notes += (notes.empty() ? "" : "; ") + note;
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Seals the file at `path` with what its sender reported, or by hashing it.
Status Seal(const std::string& path, const std::optional<spool::FileSeal>& known) {
  if (known) return spool::WriteSeal(path, *known);
  auto sealed = spool::SealFile(path);
  return sealed.ok() ? Status::Ok() : Status(sealed.error());
}

// The new bundle in the kept one's place; the kept one becomes the previous
// one first, to fall back on should the new one be damaged later.
Kept MoveBundle(const KeepInput& in) {
  Kept kept;
  if (Exists(in.kept_bundle))
    if (Status moved = spool::RenameSealed(in.kept_bundle, in.previous_bundle); !moved.ok())
      kept.note = "its previous restart files could not be kept (" + moved.message() + ")";
  // Unsealed until SealCheckpointFiles: a stale seal of the kept one goes.
  if (Status moved = spool::RenameSealed(in.bundle, in.kept_bundle); !moved.ok()) {
    ::unlink(in.bundle.c_str());
    AddNote(kept.note, "its new restart files could not be kept (" + moved.message() + ")");
    return kept;
  }
  kept.bundle = true;
  return kept;
}

}  // namespace

Kept MoveCheckpointFiles(const KeepInput& in) {
  Kept kept;
  if (!in.bundle.empty()) kept = MoveBundle(in);
  // Renamed, not copied: a GiB of it costs nothing here. Keeping it again (an
  // end sent twice) replaces the piece.
  if (in.piece.empty() || in.output.empty()) return kept;
  // Gone already (kept by an end sent before): the piece is there.
  if (!Exists(in.output)) return kept;
  if (Status moved = spool::RenameSealed(in.output, in.piece); !moved.ok()) {
    AddNote(kept.note, "its output so far is lost (" + moved.message() + ")");
    return kept;
  }
  // Sealed at once with what its sender reported (a few bytes, synced later on
  // the worker): the job goes on meanwhile, and a piece deleted before the
  // worker gets to it must read as missing, not as one never kept.
  if (in.output_seal)
    if (Status sealed = spool::WriteSeal(in.piece, *in.output_seal); !sealed.ok())
      AddNote(kept.note, "its output so far cannot be checked when it is delivered (" + sealed.message() + ")");
  return kept;
}

std::string SealCheckpointFiles(const KeepInput& in, bool bundle_kept) {
  std::string note;
  if (bundle_kept) {
    // Unsealed, it could not be checked before use: it is not kept at all.
    if (Status sealed = Seal(in.kept_bundle, in.bundle_seal); !sealed.ok()) {
      spool::RemoveSealed(in.kept_bundle);
      note = "its new restart files are not kept (" + sealed.message() + ")";
    }
    spool::SyncSealed(in.kept_bundle);
    spool::SyncSealed(in.previous_bundle);
  }
  if (!in.piece.empty() && Exists(in.piece)) {
    // A piece that cannot be sealed is still delivered, unchecked: better than lost.
    if (Status sealed = Seal(in.piece, in.output_seal); !sealed.ok())
      AddNote(note, "its output so far cannot be checked when it is delivered (" + sealed.message() + ")");
    spool::SyncSealed(in.piece);
  }
  return note;
}

Kept KeepCheckpoint(const KeepInput& in) {
  Kept kept = MoveCheckpointFiles(in);
  AddNote(kept.note, SealCheckpointFiles(in, kept.bundle));
  return kept;
}

BundleChoice ChooseRestartBundle(const std::string& kept_bundle, const std::string& previous_bundle) {
  BundleChoice choice;
  const spool::SealCheck kept = spool::CheckSeal(kept_bundle);
  if (kept.verdict != SealVerdict::kDamaged && kept.verdict != SealVerdict::kMissing) return choice;
  choice.checked_bad = true;
  const std::string bad = "the restart files kept from its last checkpoint are unusable (" + kept.why + ")";
  const spool::SealCheck previous = spool::CheckSeal(previous_bundle);
  if (previous.verdict == SealVerdict::kGood || previous.verdict == SealVerdict::kUnsealed) {
    // Renamed over the bad one: the choice is on disk, and a restart of the
    // daemon meanwhile finds the same bundle.
    Status moved = spool::RenameSealed(previous_bundle, kept_bundle);
    if (moved.ok()) {
      choice.from_previous = true;
      choice.note = bad + ": it goes on from those of the checkpoint before";
      spool::SyncSealed(kept_bundle);
      return choice;
    }
    choice.note = bad + ", and those of the checkpoint before cannot be used (" + moved.message() + ")";
  } else if (previous.verdict != SealVerdict::kAbsent) {
    choice.note = bad + ", and so are those of the checkpoint before (" + previous.why + ")";
  } else {
    choice.note = bad;
  }
  spool::RemoveSealed(kept_bundle);
  spool::RemoveSealed(previous_bundle);
  spool::SyncSealed(kept_bundle);  // the names' removal
  choice.note += ": it starts again from the beginning";
  return choice;
}

std::vector<CheckedPiece> CheckOutputPieces(const std::vector<std::string>& pieces,
                                            const std::vector<std::string>& labels) {
  std::vector<CheckedPiece> checked;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const spool::SealCheck check = spool::CheckSeal(pieces[i]);
    const std::string label = "its output from " + (i < labels.size() ? labels[i] : pieces[i]);
    switch (check.verdict) {
      case SealVerdict::kAbsent: break;  // that run kept none (lost with its host, say)
      case SealVerdict::kGood:
      case SealVerdict::kUnsealed: checked.push_back({pieces[i], true, ""}); break;
      case SealVerdict::kMissing: checked.push_back({pieces[i], false, label + " is missing: " + check.why}); break;
      case SealVerdict::kDamaged:
        checked.push_back({pieces[i], true, label + " is damaged (" + check.why + "); it is delivered as it is"});
        break;
    }
  }
  return checked;
}

}  // namespace queue::daemon
