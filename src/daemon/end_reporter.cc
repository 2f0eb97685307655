// Reporting ends (and batch output) to submit hosts, until acknowledged.
#include "daemon/end_reporter.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>

#include "daemon/bundle_sender.h"
#include "util/sha256.h"

namespace queue::daemon {

namespace {

constexpr auto kResendAfter = std::chrono::seconds(15);

}  // namespace

struct EndReporter::Transfer {
  Key key;
  spool::JobRecord record;
  OutgoingFile output;  // fd -1 when no output travels
  OutgoingFile bundle;  // a checkpointed job's restart files; fd -1 when none travel
  StallWatch watch{kTransferStallAfter, StallWatch::Clock::now()};
  ~Transfer() {
    if (output.fd >= 0) close(output.fd);
    if (bundle.fd >= 0) close(bundle.fd);
  }
};

void EndReporter::Report(const spool::JobRecord& record) {
  if (record.origin_host.empty() || record.end_reported) return;
  Key key{record.origin_host, record.origin_id, record.restarts};
  Owed& owed = owed_[key];
  owed.record_id = record.id;
  owed.peer = record.origin_host;
  owed.origin_id = record.origin_id;
  owed.attempt = record.restarts;
  Enqueue(owed);
}

void EndReporter::LoadOwed() {
  spool::JobFilter filter;
  filter.states = {spool::JobState::kDone, spool::JobState::kFailed, spool::JobState::kCancelled};
  filter.local_origin = false;
  filter.end_reported = false;
  auto list = ledger_.List(filter);
  if (!list.ok()) {
    std::cerr << "queued: spool: cannot list the ends owed to peers: " << list.message() << "\n";
    return;
  }
  for (const auto& record : *list) Report(record);
}

void EndReporter::Resume(const std::string& peer) {
  for (auto& [key, owed] : owed_)
    if (owed.peer == peer) Enqueue(owed);
}

void EndReporter::Tick() {
  auto now = std::chrono::steady_clock::now();
  for (auto& [key, owed] : owed_)
    if (!owed.queued && !owed.sending && now - owed.sent_at > kResendAfter) Enqueue(owed);
}

void EndReporter::Enqueue(Owed& owed) {
  if (owed.queued) return;
  owed.queued = true;
  queue_.emplace_back(owed.peer, owed.origin_id, owed.attempt);
  Pump();
}

void EndReporter::Pump() {
  while (!pacing_) {
    if (!active_) {
      if (queue_.empty()) return;
      auto key = queue_.front();
      queue_.pop_front();
      auto owed = owed_.find(key);
      if (owed == owed_.end()) continue;  // acknowledged meanwhile
      owed->second.queued = false;
      auto link = links_(std::get<0>(key));
      if (!link || !link->connected()) continue;  // Resume() brings it back
      auto record = ledger_.Get(owed->second.record_id);
      if (!record.ok() || !record->has_value()) {
        owed_.erase(owed);
        continue;
      }
      active_ = std::make_shared<Transfer>();
      active_->key = key;
      active_->record = **record;
      owed->second.sending = true;
      if (active_->record.checkpointed)
        active_->bundle.fd = open(runner_.BundleFile(active_->record.id).c_str(), O_RDONLY | O_CLOEXEC);
      if (active_->record.batch && active_->record.state != spool::JobState::kCancelled) {
        auto spec = wire::DecodeStoredSpec(active_->record.spec);
        if (spec.ok() && !wire::DiscardsOutput(*spec))
          active_->output.fd = open(runner_.OutputFile(active_->record.id).c_str(), O_RDONLY | O_CLOEXEC);
      }
    }
    if (!Continue(*active_)) {
      pacing_ = true;
      pace_.expires_after(std::chrono::milliseconds(1));
      pace_.async_wait([this](const asio::error_code& ec) {
        if (ec) return;
        pacing_ = false;
        Pump();
      });
      return;
    }
    // Sent: the resend clock starts now, not when a long transfer began.
    if (auto owed = owed_.find(active_->key); owed != owed_.end()) {
      owed->second.sending = false;
      owed->second.sent_at = std::chrono::steady_clock::now();
    }
    active_.reset();
  }
}

bool EndReporter::Continue(Transfer& transfer) {
  const auto& [peer, origin_id, attempt] = transfer.key;
  auto link = links_(peer);
  if (!link || !link->connected()) {  // dropped; sent again on Resume()
    if (transfer.watch.stalled())
      std::cerr << "queued: job " << origin_id << " of " << peer << ": the link dropped after "
                << transfer.watch.bytes() << " bytes of its end had gone; all of it goes again once the link is back\n";
    return true;
  }
  // A link cut leaves the connection open and silent: whoever reads the log
  // learns of it here, not when TCP gives up minutes later.
  auto watched = [&] {
    uint64_t queued = transfer.bundle.offset + transfer.output.offset;
    uint64_t moved = queued - std::min<uint64_t>(queued, link->pending_bytes());
    const char* what = transfer.bundle.fd >= 0 ? "restart files and end" : "output and end";
    switch (transfer.watch.Observe(moved, StallWatch::Clock::now())) {
      case StallWatch::Change::kNone: break;
      case StallWatch::Change::kStalled:
        std::cerr << "queued: job " << origin_id << " of " << peer << ": its " << what << " stalled on the way to "
                  << peer << " at " << moved << " bytes: nothing moved for " << kTransferStallAfter.count()
                  << " s (the link may be cut); the transfer waits for the link, and the job waits here\n";
        break;
      case StallWatch::Change::kResumed:
        std::cerr << "queued: job " << origin_id << " of " << peer << ": its " << what << " are moving to " << peer
                  << " again (" << moved << " bytes sent)\n";
        break;
    }
  };
  // A file that cannot be read is sent as far as it could be; the size and
  // digest that follow say so, and the submit host waits for a resend.
  if (transfer.bundle.fd >= 0) {
    auto send = [&](uint64_t offset, std::string bytes) {
      link->SendBundleChunk(wire::BundleChunk{peer, origin_id, attempt, offset, std::move(bytes)});
    };
    bool full = SendChunks(transfer.bundle, *link, send) == ChunkPace::kLinkFull;
    watched();
    if (full) return false;
  }
  if (transfer.output.fd >= 0) {
    auto send = [&](uint64_t offset, std::string bytes) {
      link->SendJobOutput(wire::JobOutput{origin_id, attempt, offset, std::move(bytes)});
    };
    bool full = SendChunks(transfer.output, *link, send) == ChunkPace::kLinkFull;
    watched();
    if (full) return false;
  }
  const spool::JobRecord& r = transfer.record;
  wire::JobEnded ended;
  ended.origin_job_id = r.origin_id;
  ended.attempt = r.restarts;
  ended.failed = r.state != spool::JobState::kDone;
  ended.lost = WasLost(r);
  ended.wait_status = r.wait_status;
  ended.cpu_seconds = r.cpu_seconds;
  ended.message = r.message;
  ended.start_time = r.start_time;
  ended.end_time = r.end_time;
  if (transfer.output.fd >= 0) {
    ended.output_size = transfer.output.offset;
    ended.output_sha256 = transfer.output.digest.Final();
  }
  ended.checkpointed = r.checkpointed;
  ended.checkpoint_in_place = r.checkpoint_in_place;
  if (transfer.bundle.fd >= 0) {
    ended.bundle_size = transfer.bundle.offset;
    ended.bundle_sha256 = transfer.bundle.digest.Final();
  }
  link->SendJobEnded(ended);
  return true;
}

void EndReporter::OnAcknowledged(const std::string& peer, uint64_t origin_job_id, uint32_t attempt) {
  auto owed = owed_.find({peer, origin_job_id, attempt});
  if (owed == owed_.end()) return;
  uint64_t record_id = owed->second.record_id;
  // Still owed when the ack cannot be recorded: the end goes again, and so does the ack.
  if (Status closed = ledger_.Acknowledge(record_id); !closed.ok()) {
    std::cerr << "queued: " << closed.message() << "\n";
    return;
  }
  owed_.erase(owed);
  ledger_.OnceOnDisk([this, record_id] { runner_.RemoveJobFiles(record_id); });
}

}  // namespace queue::daemon
