// Ends of jobs at their submit host: output home, mail, record, restart.
#include "daemon/job_finisher.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <sstream>

#include "daemon/bundle_sender.h"
#include "daemon/job_mail.h"
#include "daemon/kept_files.h"
#include "daemon/mailer.h"
#include "spool/file_seal.h"
#include "spool/output_file.h"
#include "util/sha256.h"
#include "util/wall_clock.h"

namespace queue::daemon {

namespace {

// How often held outputs are tried again.
constexpr auto kHeldRetry = std::chrono::seconds(10);

std::string UserName(uint32_t uid) {
  passwd entry{};
  passwd* found = nullptr;
  char buffer[4096];
  if (getpwuid_r(uid, &entry, buffer, sizeof buffer, &found) == 0 && found != nullptr) return entry.pw_name;
  return std::to_string(uid);
}

// What changes when a file is written to or replaced: its inode, size and
// change time ("" when there is no file).
std::string FileStamp(const std::string& path) {
  struct stat info{};
  if (::stat(path.c_str(), &info) != 0) return "";
  return std::to_string(info.st_ino) + ":" + std::to_string(info.st_size) + ":" + std::to_string(info.st_ctim.tv_sec) +
         "." + std::to_string(info.st_ctim.tv_nsec);
}

using util::Now;

// Running on `peer`, or offered to it with the answer lost: either way that
// host's word on the job is the one to take.
// `attempt` is the run the message is about: an earlier run's end (sent again
// after its ack was lost) is not this run's.
bool IsPlacedOn(const spool::JobRecord& record, const std::string& peer, uint32_t attempt) {
  return record.exec_host == peer && record.restarts == attempt &&
         (record.state == spool::JobState::kRunning || record.state == spool::JobState::kWaiting);
}

// Appends all of `from` (read from offset 0) to `to`, which is open O_APPEND
// (sendfile refuses such a target).
Status AppendFile(int to, int from) {
  std::string buffer(1 << 16, '\0');
  for (off_t offset = 0;;) {
    ssize_t n = pread(from, buffer.data(), buffer.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail("cannot read output: " + ErrnoText(errno));
    if (n == 0) return Status::Ok();
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(to, buffer.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Fail("cannot keep output: " + ErrnoText(errno));
      done += w;
    }
    offset += n;
  }
}

// On the worker thread: puts a file's data and its name in its directory on
// disk. A file that is gone (its job was cancelled meanwhile) needs nothing.
void SyncFile(const std::string& path) {
  if (int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW); fd >= 0) {
    fsync(fd);
    close(fd);
  }
  std::string dir = std::filesystem::path(path).parent_path();
  if (int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

// What the worker thread needs to bring a batch job's output home.
struct OutputDelivery {
  // This run's output ("" when none came), opened on the worker: a backlog of
  // deliveries holds no descriptors. Removed once delivered (or held) when
  // `remove_source`.
  std::string source;
  bool remove_source = false;
  int fd = -1;                      // source, once opened there
  std::vector<std::string> pieces;  // the output of its runs before its checkpoints, in order
  std::vector<std::string> labels;  // which run each piece is, for the user
  std::string whole_path;           // where pieces and fd are put together (a scratch file)
  std::string output_path;          // where its owner wants it ("" = nowhere)
  std::string held_path;            // where it is kept when output_path cannot be written
  spool::FileOwner owner;
};

struct DeliveredOutput {
  std::string note;     // what could not be done, or ""
  bool written = true;  // false when the owner's file could not be written (then no mail)
  std::string held;     // why it is held at held_path instead ("" = not held)
  int whole_fd = -1;    // the whole output (for the mail), to be closed by the caller
};

void AddNote(std::string& notes, const std::string& note) {
  if (!note.empty()) notes += (notes.empty() ? "" : "; ") + note;
}

// The pieces kept from before its checkpoints, then this run's output, in one
// scratch file, built afresh each time (a delivery done again after a crash
// must not add to a half-done one). A piece that is damaged or missing is
// said so in the output itself, where it would have been, and in `note`.
// Returns its fd, or delivery.fd when it cannot be made (that run's output at
// least goes home).
int JoinOutput(const OutputDelivery& delivery, const std::vector<CheckedPiece>& pieces, std::string& note) {
  int whole = open(delivery.whole_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (whole < 0) {
    AddNote(note, "its output from before its checkpoints is lost: " + ErrnoText(errno));
    return delivery.fd;
  }
  for (const CheckedPiece& piece : pieces) {
    AddNote(note, piece.problem);
    const std::string marker = piece.problem.empty() ? "" : "[queue: " + piece.problem + "]\n";
    if (!marker.empty() && write(whole, marker.data(), marker.size()) != static_cast<ssize_t>(marker.size()))
      AddNote(note, "cannot say so in its output: " + ErrnoText(errno));
    if (!piece.include) continue;
    int fd = open(piece.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      AddNote(note, "its output kept in " + piece.path + " cannot be read: " + ErrnoText(errno));
      continue;
    }
    if (auto appended = AppendFile(whole, fd); !appended.ok()) AddNote(note, appended.message());
    close(fd);
  }
  if (delivery.fd >= 0) {
    if (auto appended = AppendFile(whole, delivery.fd); !appended.ok()) AddNote(note, appended.message());
    close(delivery.fd);
  }
  return whole;
}

// On the worker thread: puts this run's output after what came before, and
// writes the whole as the owner's file. When that file cannot be written (a
// full disk, a directory gone), the whole output is kept at held_path instead
// of being lost, and delivered.held says why.
DeliveredOutput DeliverOutput(const OutputDelivery& in) {
  OutputDelivery delivery = in;
  DeliveredOutput delivered;
  if (!delivery.source.empty()) {
    delivery.fd = open(delivery.source.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (delivery.fd < 0) delivered.note = "its output is lost: cannot open " + delivery.source + ": " + ErrnoText(errno);
  }
  // The file that holds the whole output: the scratch file when earlier runs'
  // pieces go first, else this run's own file.
  delivered.whole_fd = delivery.fd;
  std::string whole = delivery.fd >= 0 ? delivery.source : "";
  // Checked here, as they are used: each against the seal it was kept with.
  const std::vector<CheckedPiece> pieces = CheckOutputPieces(delivery.pieces, delivery.labels);
  if (!pieces.empty()) {
    std::string joined_note;
    delivered.whole_fd = JoinOutput(delivery, pieces, joined_note);
    if (delivered.whole_fd != delivery.fd) whole = delivery.whole_path;
    AddNote(delivered.note, joined_note);
  }
  auto drop = [&](bool keep_whole) {
    if (whole == delivery.whole_path && !keep_whole) ::unlink(delivery.whole_path.c_str());
    if (delivery.remove_source && !(keep_whole && whole == delivery.source)) ::unlink(delivery.source.c_str());
  };
  if (delivery.output_path.empty() || delivered.whole_fd < 0) {
    drop(false);
    return delivered;
  }
  auto written = spool::DeliverOutputFile(delivered.whole_fd, delivery.output_path, delivery.owner);
  if (written.ok()) {
    drop(false);
    return delivered;
  }
  delivered.written = false;
  if (::rename(whole.c_str(), delivery.held_path.c_str()) == 0) {
    delivered.held = written.message();
    SyncFile(delivery.held_path);
    drop(true);
    return delivered;
  }
  AddNote(delivered.note, written.message() + "; and its output cannot be held in the spool (" +
                              ErrnoText(errno) + "): it is lost");
  drop(false);
  return delivered;
}

}  // namespace

Status JobFinisher::Prepare() {
  return layout_.MakePrivateDirs();
}

std::string JobFinisher::IncomingFile(uint64_t record_id) const {
  return layout_.IncomingOutput(record_id);
}

std::string JobFinisher::IncomingBundle(uint64_t record_id) const {
  return layout_.IncomingBundle(record_id);
}

std::string JobFinisher::RestartBundle(uint64_t record_id) const {
  return layout_.RestartBundle(record_id);
}

std::string JobFinisher::PreviousBundle(uint64_t record_id) const { return RestartBundle(record_id) + ".previous"; }

std::string JobFinisher::PartialOutput(uint64_t record_id) const {
  return layout_.PartialOutput(record_id);
}

std::string JobFinisher::OutputPiece(uint64_t record_id, uint32_t attempt) const {
  return PartialOutput(record_id) + "." + std::to_string(attempt);
}

std::vector<std::string> JobFinisher::OutputPieces(const spool::JobRecord& record) const {
  std::vector<std::string> pieces{PartialOutput(record.id)};  // kept in one file by queued before 2026-11
  for (uint32_t attempt = 0; attempt < record.restarts; ++attempt) pieces.push_back(OutputPiece(record.id, attempt));
  return pieces;
}

void JobFinisher::DiscardOriginFiles(uint64_t record_id) {
  checked_bundles_.erase(record_id);
  for (const std::string& path : {IncomingFile(record_id), IncomingBundle(record_id)}) ::unlink(path.c_str());
  for (const std::string& path : {RestartBundle(record_id), PreviousBundle(record_id)}) spool::RemoveSealed(path);
  auto record = ledger_.Get(record_id);
  if (!record.ok() || !record->has_value()) return;
  for (const std::string& piece : OutputPieces(**record)) spool::RemoveSealed(piece);
}

void JobFinisher::OnBundleChunk(const std::string& peer, const wire::BundleChunk& chunk) {
  auto record = ledger_.Get(chunk.origin_job_id);
  if (!record.ok() || !record->has_value() || !IsPlacedOn(**record, peer, chunk.attempt)) return;
  if (auto stored = incoming_.Store(IncomingBundle(chunk.origin_job_id), chunk.offset, chunk.bytes); !stored.ok()) {
    std::cerr << "queued: job " << chunk.origin_job_id << ": " << stored.message() << "\n";
    return;
  }
  // Its size is said only by the JobEnded that follows the last chunk.
  transfers_.Moved(chunk.origin_job_id, Transfer::Direction::kHome, peer, chunk.attempt,
                   chunk.offset + chunk.bytes.size(), 0, TransferBoard::Clock::now());
}

void JobFinisher::Checkpointed(spool::JobRecord r, const std::string& from_host, const CheckpointFiles& files,
                               bool in_place, std::function<void()> then) {
  // The output so far stays here, one piece per run, and is put before the
  // rest when the job ends. Renamed here, so that the job is queued again at
  // once (it must not show as ended meanwhile); sealed and synced on the
  // worker, ahead of any check of its bundle there, and before `then`, which
  // lets the execution host drop its copy.
  KeepInput input{files.bundle,       files.bundle_seal, RestartBundle(r.id), PreviousBundle(r.id),
                  files.output,       files.output_seal, r.batch ? OutputPiece(r.id, r.restarts) : ""};
  Kept kept = MoveCheckpointFiles(input);
  if (!kept.note.empty()) std::cerr << "queued: job " << names_.Label(r) << ": " << kept.note << "\n";
  AddNote(r.message, kept.note);
  worker_.Run<std::string>([input, bundle = kept.bundle] { return SealCheckpointFiles(input, bundle); },
                           [this, id = r.id, then = std::move(then)](const std::string& note) {
                             if (!note.empty()) std::cerr << "queued: job " << names_.LocalLabel(id) << ": " << note << "\n";
                             ledger_.OnceOnDisk(then);  // the requeue, too
                           });
  if (metrics_ != nullptr && !in_place) ++metrics_->migrations;
  Requeue(std::move(r), from_host, kept.bundle, in_place, [] {});
}

bool JobFinisher::RestartBundleChecked(const spool::JobRecord& record) const {
  auto checked = checked_bundles_.find(record.id);
  return checked != checked_bundles_.end() && checked->second.attempt == record.restarts &&
         checked->second.stamp == FileStamp(RestartBundle(record.id));
}

// Checked once per run, not once per placement: a job may wait for a host for
// hours, and each pass would hash its bundle again. A write to it after the
// check changes its stamp (RestartBundleChecked), and what the stamp cannot
// see is caught by SentAsKept as the bundle is sent to a peer.
void JobFinisher::CheckRestartBundle(const spool::JobRecord& record, std::function<void()> then) {
  const uint64_t id = record.id;
  const uint32_t attempt = record.restarts;
  worker_.Run<BundleChoice>(
      [kept = RestartBundle(id), previous = PreviousBundle(id)] { return ChooseRestartBundle(kept, previous); },
      [this, id, attempt, then = std::move(then)](BundleChoice choice) {
        // Stamped after the check, which may have put the previous bundle in its place.
        checked_bundles_[id] = CheckedBundle{attempt, FileStamp(RestartBundle(id))};
        if (choice.checked_bad) NoteBundleChoice(id, attempt, choice);
        then();
      });
}

void JobFinisher::NoteBundleChoice(uint64_t record_id, uint32_t attempt, const BundleChoice& choice) {
  if (metrics_ != nullptr) ++metrics_->restart_failures;
  std::cerr << "queued: job " << names_.LocalLabel(record_id) << ": " << choice.note << " (" << RestartBundle(record_id) << ")\n";
  // Refused when the job moved on meanwhile (cancelled, say): nothing to tell then.
  if (Status noted = ledger_.NoteRestartFiles(record_id, attempt, choice.note); !noted.ok())
    std::cerr << "queued: " << noted.message() << "\n";
}

bool JobFinisher::SentAsKept(uint64_t record_id, const std::string& bundle, uint64_t size,
                             const std::string& sha256) {
  auto seal = spool::ReadSeal(bundle);
  if (!seal.ok() || (seal->size == size && seal->sha256 == sha256)) return true;  // unsealed: nothing to check
  std::cerr << "queued: job " << names_.LocalLabel(record_id) << ": its restart files " << bundle
            << " changed on disk since they were checked; they are checked again\n";
  checked_bundles_.erase(record_id);
  return false;
}

void JobFinisher::Requeue(spool::JobRecord r, const std::string& from_host, bool wrote_bundle, bool in_place,
                          std::function<void()> then) {
  const bool has_bundle = ::access(RestartBundle(r.id).c_str(), F_OK) == 0;
  if (r.message.empty()) r.message = "checkpointed on " + from_host;
  if (!wrote_bundle)
    r.message += has_bundle ? "; it goes on from its previous restart files" : "; it starts again from the beginning";
  if (Status requeued = ledger_.Requeue(r.id, r.restarts, r.message); !requeued.ok()) {
    std::cerr << "queued: " << requeued.message() << "\n";
    return;
  }
  std::cerr << "queued: job " << names_.Label(r) << ": " << r.message << "\n";
  ledger_.OnceOnDisk(std::move(then));
  if (on_requeue_) on_requeue_(r.id, in_place ? "" : from_host);
}

void JobFinisher::OnOutput(const std::string& peer, const wire::JobOutput& output) {
  auto record = ledger_.Get(output.origin_job_id);
  if (!record.ok() || !record->has_value()) return;
  const spool::JobRecord& r = **record;
  if (!r.batch || !IsPlacedOn(r, peer, output.attempt)) return;
  // Pieces come in order on one link; one that does not follow on is stale.
  if (auto stored = incoming_.Store(IncomingFile(r.id), output.offset, output.bytes); !stored.ok())
    std::cerr << "queued: cannot store the output of job " << names_.Label(r) << ": " << stored.message() << "\n";
}

void JobFinisher::OnEnded(const std::string& peer, const wire::JobEnded& ended, std::function<void()> acknowledge) {
  auto record = ledger_.Get(ended.origin_job_id);
  if (!record.ok()) return;  // the spool is failing: no ack, the peer asks again
  // Unknown, already ended, or moved elsewhere since: nothing to keep, but the
  // peer must stop sending it.
  if (!record->has_value() || !IsPlacedOn(**record, peer, ended.attempt)) {
    if (on_stale_end_) on_stale_end_(peer, ended.origin_job_id, ended.attempt);
    // Known already, but perhaps not yet on disk: the peer forgets it on the ack.
    return ledger_.OnceOnDisk(acknowledge);
  }
  spool::JobRecord r = **record;
  if (ended.lost) {
    Lost(r, "it was lost on " + peer + " (" + ended.message + ")");
    return ledger_.OnceOnDisk(acknowledge);
  }
  // Its output is already on its way home: the peer asks again, and is
  // answered once the end is recorded.
  if (delivering_.contains(r.id)) return;
  if (ended.checkpointed) {
    std::string bundle = IncomingBundle(r.id);
    if (!ended.bundle_sha256.empty() && !incoming_.Matches(bundle, ended.bundle_size, ended.bundle_sha256)) {
      std::cerr << "queued: job " << names_.Label(r) << ": its restart files from " << peer
                << " arrived incomplete or damaged; waiting for them to be sent again\n";
      if (metrics_ != nullptr) ++metrics_->transfer_failures[TransferKind::kRestartFiles];
      return;
    }
    if (!ended.bundle_sha256.empty())
      transfers_.Completed(r.id, Transfer::Direction::kHome, ended.bundle_size, TransferBoard::Clock::now());
    // Both arrived whole: what they are sealed with when kept.
    CheckpointFiles files;
    if (!ended.bundle_sha256.empty()) {
      files.bundle = bundle;
      files.bundle_seal = spool::FileSeal{ended.bundle_size, ended.bundle_sha256};
    }
    if (r.batch && !ended.output_sha256.empty()) {
      files.output = IncomingFile(r.id);
      if (!incoming_.Matches(files.output, ended.output_size, ended.output_sha256)) return;
      files.output_seal = spool::FileSeal{ended.output_size, ended.output_sha256};
    }
    r.message = ended.message;
    return Checkpointed(r, peer, files, ended.checkpoint_in_place, acknowledge);
  }
  std::string incoming = IncomingFile(r.id);
  std::string source;
  std::string note;
  if (r.batch && !ended.output_sha256.empty()) {
    if (!incoming_.Matches(incoming, ended.output_size, ended.output_sha256)) {
      std::cerr << "queued: job " << names_.Label(r) << ": its output from " << peer
                << " arrived incomplete or damaged; waiting for it to be sent again\n";
      if (metrics_ != nullptr) ++metrics_->transfer_failures[TransferKind::kOutput];
      return;
    }
    // Delivered from another name: the same output sent again (its end's ack
    // was late) is written to a new file, not over this one. Should this
    // daemon stop before the end is recorded, the peer sends it again anyway.
    source = incoming + ".delivering";
    if (::rename(incoming.c_str(), source.c_str()) != 0) {
      std::cerr << "queued: job " << names_.Label(r) << ": cannot take its output from " << peer << ": " << ErrnoText(errno)
                << "; waiting for it to be sent again\n";
      return;
    }
  } else if (r.batch && !r.output_path.empty()) {
    note = "its output was lost on " + peer;
  }
  r.state = ended.failed ? spool::JobState::kFailed : spool::JobState::kDone;
  r.wait_status = ended.wait_status;
  r.cpu_seconds = ended.cpu_seconds;
  r.start_time = ended.start_time;
  r.end_time = ended.end_time != 0 ? ended.end_time : Now();
  r.message = ended.message;
  if (!r.batch) return RecordEnd(std::move(r), note, acknowledge);
  delivering_.insert(r.id);
  DeliverThen(r, source, true, [this, r, note, acknowledge, peer, attempt = ended.attempt](Delivered delivered) mutable {
    delivering_.erase(r.id);
    auto current = ledger_.Get(r.id);
    if (!current.ok()) return;  // the spool is failing: no ack, the peer asks again
    // Cancelled or taken for lost meanwhile: acknowledged once that is on disk,
    // for a crash before it would leave the job placed on a host that forgot it.
    if (!current->has_value() || !IsPlacedOn(**current, peer, attempt))
      return ledger_.OnceOnDisk(acknowledge);
    AddNote(note, delivered.note);
    r.output_held = delivered.held;
    RecordEnd(std::move(r), note, acknowledge);
  });
}

void JobFinisher::RecordEnd(spool::JobRecord r, const std::string& note, const std::function<void()>& then) {
  // Its end's message replaces the one it waited with: what was found wrong
  // with its restart files on the way is said again here.
  AddNote(r.message, r.restart_notes);
  AddNote(r.message, note);
  RunEnd end{r.state, r.wait_status, r.cpu_seconds, r.start_time, r.end_time, r.message};
  end.output_held = r.output_held;
  if (Status closed = ledger_.Close(r.id, r.restarts, end); !closed.ok()) {
    std::cerr << "queued: " << closed.message() << "\n";
    return;
  }
  if (!r.output_held.empty())
    std::cerr << "queued: job " << names_.Label(r) << ": its output is held in the spool, as " << r.output_path
              << " cannot be written (" << r.output_held << "); delivery is tried again every "
              << std::chrono::duration_cast<std::chrono::seconds>(kHeldRetry).count() << " s\n";
  uint64_t id = r.id;
  if (on_closed_) on_closed_(r);
  ledger_.OnceOnDisk([this, then, id] {
    DiscardOriginFiles(id);
    then();
  });
}

void JobFinisher::FinishLocal(spool::JobRecord r) {
  if (r.checkpointed) {
    // Packed and written here: sealed by hashing them as they are kept.
    CheckpointFiles files;
    if (std::string bundle = runner_.BundleFile(r.id); ::access(bundle.c_str(), F_OK) == 0) files.bundle = bundle;
    if (r.batch) files.output = runner_.OutputFile(r.id);
    return Checkpointed(r, r.exec_host, files, r.checkpoint_in_place, [] {});
  }
  if (!r.batch || r.end_reported) return;
  if (WasLost(r)) return Lost(r, r.message);
  if (!delivering_.insert(r.id).second) return;
  DeliverThen(r, runner_.OutputFile(r.id), false, [this, r](Delivered delivered) mutable {
    delivering_.erase(r.id);
    auto current = ledger_.Get(r.id);
    if (!current.ok() || !current->has_value() || (*current)->end_reported) return;
    uint64_t id = r.id;
    r.output_held = delivered.held;
    RecordEnd(std::move(r), delivered.note, [this, id] { runner_.RemoveJobFiles(id); });
  });
}

void JobFinisher::LoadUnfinished() {
  spool::JobFilter filter;
  filter.states = {spool::JobState::kDone, spool::JobState::kFailed};
  filter.local_origin = true;
  filter.end_reported = false;
  filter.batch = true;
  auto list = ledger_.List(filter);
  if (!list.ok()) {
    std::cerr << "queued: spool: cannot list unfinished batch jobs: " << list.message() << "\n";
    return;
  }
  for (auto& r : *list) FinishLocal(std::move(r));
}

void JobFinisher::Lost(spool::JobRecord r, const std::string& why) {
  const QueueState* queue = queues_.Find(r.queue);
  // A job with restart files kept here (a checkpointperiod copy, or an earlier
  // move) goes on from them: at most one period of work is lost with the host.
  bool has_copy = ::access(RestartBundle(r.id).c_str(), F_OK) == 0;
  bool restart = r.batch && ((queue != nullptr && queue->policy.restart) || has_copy);
  Status recorded;
  if (restart) {
    r.message = "run again after " + why;
    recorded = ledger_.Requeue(r.id, r.restarts, r.message);
  } else {
    r.state = spool::JobState::kFailed;
    r.end_time = Now();
    r.message = why + (r.batch ? " (not run again: the queue's profile has no `restart`)" : "");
    recorded = ledger_.Close(r.id, r.restarts, RunEnd{r.state, r.wait_status, r.cpu_seconds, 0, r.end_time, r.message});
  }
  if (!recorded.ok()) {
    std::cerr << "queued: " << recorded.message() << "\n";
    return;
  }
  std::cerr << "queued: job " << names_.Label(r) << ": " << r.message << "\n";
  uint64_t id = r.id;
  // Once that is on disk: a partial output of the lost run is not the job's.
  ledger_.OnceOnDisk([this, id, restart] {
    runner_.RemoveJobFiles(id);
    if (!restart) DiscardOriginFiles(id);
  });
  if (r.batch) Mail(r, -1);
  if (restart && on_requeue_) on_requeue_(r.id, "");
}

void JobFinisher::DeliverThen(const spool::JobRecord& record, const std::string& source, bool remove_source,
                              std::function<void(Delivered)> then) {
  auto spec = wire::DecodeStoredSpec(record.spec);
  if (!spec.ok()) return then(Delivered{spec.message(), ""});
  // Only the runs that kept a piece (or its seal, when the piece went since).
  std::vector<std::string> pieces, labels;
  const std::vector<std::string> all = OutputPieces(record);
  for (size_t i = 0; i < all.size(); ++i) {
    if (::access(all[i].c_str(), F_OK) != 0 && ::access(spool::SealPath(all[i]).c_str(), F_OK) != 0) continue;
    pieces.push_back(all[i]);
    labels.push_back(i == 0 ? "its earlier runs" : "run " + std::to_string(i - 1));
  }
  OutputDelivery delivery{source,
                          remove_source,
                          -1,
                          std::move(pieces),
                          std::move(labels),
                          PartialOutput(record.id) + ".whole",
                          record.output_path,
                          HeldOutput(record.id),
                          spool::FileOwner{spec->uid, spec->gid, spec->groups}};
  worker_.Run<DeliveredOutput>([delivery = std::move(delivery)] { return DeliverOutput(delivery); },
                               [this, record, then = std::move(then)](DeliveredOutput delivered) {
                                 if (delivered.written) Mail(record, delivered.whole_fd);
                                 if (delivered.whole_fd >= 0) close(delivered.whole_fd);
                                 then(Delivered{delivered.note, delivered.held});
                               });
}

std::string JobFinisher::HeldOutput(uint64_t record_id) const {
  return layout_.HeldOutput(record_id);
}

// Held outputs are tried again on a timer: a full disk gives no sign when it
// has room again. One at a time per job; the log spoke when it was held.
void JobFinisher::RetryHeldOutputs() {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_held_retry_) return;
  next_held_retry_ = now + kHeldRetry;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(layout_.HeldDir(), error)) {
    const std::string name = entry.path().filename();
    uint64_t id = 0;
    if (!name.ends_with(".out") || !(std::istringstream(name) >> id) || delivering_.contains(id)) continue;
    auto record = ledger_.Get(id);
    if (!record.ok()) return;  // the spool is failing: next time
    if (!record->has_value() || (PhaseOf(**record) == JobPhase::kClosed && (*record)->output_held.empty())) {
      ::unlink(entry.path().c_str());  // its job is gone, or its output was delivered
      continue;
    }
    if (PhaseOf(**record) == JobPhase::kClosed) RetryHeld(**record);
  }
}

void JobFinisher::RetryHeld(const spool::JobRecord& record) {
  auto spec = wire::DecodeStoredSpec(record.spec);
  if (!spec.ok()) return;
  delivering_.insert(record.id);
  std::string held = HeldOutput(record.id), path = record.output_path;
  spool::FileOwner owner{spec->uid, spec->gid, spec->groups};
  worker_.Run<Status>(
      [held, path, owner] {
        int fd = open(held.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) return Status(Fail("cannot open " + held + ": " + ErrnoText(errno)));
        Status written = spool::DeliverOutputFile(fd, path, owner);
        close(fd);
        return written;
      },
      [this, id = record.id, held, path](Status written) {
        delivering_.erase(id);
        if (!written.ok()) return;  // still held; said once already
        if (Status noted = ledger_.OutputDelivered(id); !noted.ok()) {
          std::cerr << "queued: " << noted.message() << "\n";
          return;
        }
        std::cerr << "queued: job " << names_.LocalLabel(id) << ": its held output was written to " << path << "\n";
        ledger_.OnceOnDisk([held] { ::unlink(held.c_str()); });
      });
}

Result<std::string> JobFinisher::ReadHeldOutput(uint64_t record_id, size_t limit) const {
  const std::string path = HeldOutput(record_id);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Fail("its held output cannot be read: " + ErrnoText(errno));
  struct stat info{};
  if (fstat(fd, &info) != 0 || static_cast<uint64_t>(info.st_size) > limit) {
    close(fd);
    return Fail("its held output is " + std::to_string(info.st_size) + " bytes, more than can be shown here");
  }
  std::string bytes(static_cast<size_t>(info.st_size), '\0');
  ssize_t n = pread(fd, bytes.data(), bytes.size(), 0);
  close(fd);
  if (n != info.st_size) return Fail("its held output cannot be read: " + ErrnoText(errno));
  return bytes;
}

void JobFinisher::MailStart(const spool::JobRecord& record, const std::string& host) {
  const QueueState* queue = queues_.Find(record.queue);
  auto spec = wire::DecodeStoredSpec(record.spec);
  if (!record.batch || queue == nullptr || !spec.ok() || wire::DiscardsOutput(*spec)) return;
  JobMailInput input;
  input.job_name = record.job_name;
  input.queue = record.queue;
  input.host = host;
  input.job_id = names_.Label(record);
  auto mail = ComposeStartMail(input, queue->policy.mail);
  if (!mail) return;
  std::string user = UserName(record.uid);
  if (!SendMail(user, mail->subject, mail->body))
    std::cerr << "queued: (no sendmail to mail " << user << ") " << mail->subject << "\n";
}

void JobFinisher::Mail(const spool::JobRecord& record, int fd) {
  const QueueState* queue = queues_.Find(record.queue);
  auto spec = wire::DecodeStoredSpec(record.spec);
  if (queue == nullptr || !spec.ok() || wire::DiscardsOutput(*spec)) return;
  JobMailInput input;
  input.job_name = record.job_name;
  input.queue = record.queue;
  input.host = record.exec_host;
  input.job_id = names_.Label(record);
  input.crashed = record.state != spool::JobState::kDone;
  input.wait_status = record.wait_status;
  input.cpu_seconds = record.cpu_seconds;
  input.failure = record.message;
  if (fd >= 0) {
    std::string excerpt(kMaxMailedOutput + 1, '\0');
    ssize_t n = pread(fd, excerpt.data(), excerpt.size(), 0);
    excerpt.resize(n > 0 ? static_cast<size_t>(n) : 0);
    input.output_truncated = excerpt.size() > kMaxMailedOutput;
    if (input.output_truncated) excerpt.resize(kMaxMailedOutput);
    input.output = std::move(excerpt);
  }
  auto mail = ComposeJobMail(input, queue->policy.mail);
  if (!mail) return;
  std::string user = UserName(record.uid);
  if (!SendMail(user, mail->subject, mail->body))
    std::cerr << "queued: (no sendmail to mail " << user << ") " << mail->subject << "\n";
}

}  // namespace queue::daemon
