// Offering a job to the hosts, best first.
#include "daemon/placement.h"

#include <algorithm>
#include <iostream>

#include "daemon/bundle_sender.h"
#include "daemon/wait_reason.h"
#include "sched/host_chooser.h"
#include "util/wall_clock.h"

namespace queue::daemon {

namespace {

using util::Now;

// The host unpacks restart files before it answers: a GiB takes seconds.
constexpr uint64_t kSlowestUnpackBytesPerMs = 32 << 10;  // 32 MB/s, a loaded host's disk

}  // namespace

void Placement::Start(uint64_t record_id, const wire::JobSpec& spec, const PlacementOptions& options, Done done) {
  auto placement = std::make_shared<Attempt>();
  placement->record_id = record_id;
  placement->attempt = options.attempt;
  placement->spec = spec;
  placement->bundle = options.bundle;
  if (!options.offered_to.empty()) {
    // An earlier offer's answer was lost: that host may have the job, so it is
    // asked again before any other host is.
    placement->candidates = {options.offered_to};
    placement->resolving = true;
    return TryNextHost(placement, std::move(done));
  }
  if (!prober_) return RankAndTry(placement, c_.hosts, options, std::move(done));
  const std::string& named = options.move_to.empty() ? spec.only_host : options.move_to;
  prober_(named, spec.preferred_host,
          [this, placement, options, named, done = std::move(done)](std::vector<std::string> answered) mutable {
            // A named host that did not answer is ranked too: its refusal
            // ("not responding") is what the user reads.
            std::vector<cluster::HostEntry> asked;
            for (const auto& h : c_.hosts)
              if (h.entry == named || std::find(answered.begin(), answered.end(), h.entry) != answered.end())
                asked.push_back(h);
            RankAndTry(placement, asked, options, std::move(done));
          });
}

void Placement::RankAndTry(const std::shared_ptr<Attempt>& placement, const std::vector<cluster::HostEntry>& hosts,
                           const PlacementOptions& options, Done done) {
  const wire::JobSpec& spec = placement->spec;
  sched::HostChooser chooser(hosts, c_.self);
  sched::PlacementRequest request{spec.queue, options.move_to.empty() ? spec.only_host : options.move_to,
                                  spec.preferred_host, options.avoid, !options.bundle.empty()};
  auto ranking = chooser.Rank(c_.table, request, load::Clock::now());
  if (ranking.candidates.empty() && !request.exclude.empty()) {
    request.exclude.clear();  // only hosts it left can take it: better there than nowhere
    ranking = chooser.Rank(c_.table, request, load::Clock::now());
  }
  placement->candidates = std::move(ranking.candidates);
  placement->refusals = std::move(ranking.refusals);
  placement->any_temporary = ranking.temporary_refusals > 0;
  // A batch job may wait for its named host to come back.
  if (spec.batch && !spec.only_host.empty()) placement->any_temporary = true;
  TryNextHost(placement, std::move(done));
}

void Placement::TryNextHost(const std::shared_ptr<Attempt>& attempt, Done done) {
  if (attempt->next == attempt->candidates.size()) {
    PlacementOutcome outcome{"", attempt->any_temporary, "no host can run the job now"};
    for (size_t i = 0; i < attempt->refusals.size(); ++i)
      outcome.why += (i == 0 ? ": " : "; ") + attempt->refusals[i];
    Count(PlacementResult::kNoHost);
    outcome.summary = SummarizeRefusals(attempt->refusals);
    return done(outcome);
  }
  const std::string host = attempt->candidates[attempt->next++];
  auto refused = [this, attempt, done, host](const std::string& why, bool permanent) {
    attempt->refusals.push_back(host + ": " + why);
    attempt->any_temporary |= !permanent;
    TryNextHost(attempt, done);
  };
  if (host == c_.self) {
    return c_.runner.Admit(AdmitRequest{"", 0, attempt->attempt, attempt->record_id, attempt->spec, attempt->bundle},
                           c_.current_load(),
                           [this, attempt, done, host, refused](const Result<uint64_t>& admitted, bool permanent) {
                             if (!admitted.ok()) return refused(admitted.message(), permanent);
                             Placed(attempt->record_id, host, attempt->attempt);
                             Count(PlacementResult::kHere);
                             done(PlacementOutcome{host, false, ""});
                           });
  }
  auto link = c_.link_to(host);
  if (!link) {
    Count(OfferFailure::kNotAPeer);
    return refused("not in the hosts file any more", false);
  }
  // Counted at once, not when the answer comes: the submissions of a burst
  // that arrive meanwhile must already see this host as busier.
  c_.table.AddPlacement(host, load::Clock::now());
  OfferToPeer(attempt, host, link, std::move(done), std::move(refused));
}

void Placement::OfferToPeer(const std::shared_ptr<Attempt>& attempt, const std::string& host,
                            const std::shared_ptr<PeerLink>& link, Done done,
                            std::function<void(const std::string&, bool)> refused) {
  // A batch job, or any job restarted from the spool: the offer is two-phase.
  const bool batch = attempt->spec.batch || attempt->attempt > 0;
  auto send = [this, attempt, done, host, refused, batch, link](const SentBundle& bundle) {
    if (batch && !StillWaiting(*attempt)) return refused("the job is no longer waiting", true);
    wire::PlaceJob place{0, c_.self, attempt->record_id, attempt->attempt, bundle.size, bundle.sha256, attempt->spec};
    auto timeout = c_.place_timeout + std::chrono::milliseconds(bundle.size / kSlowestUnpackBytesPerMs);
    link->Place(std::move(place), timeout,
                [this, attempt, done, host, refused, batch](const wire::PlaceReply& reply, PeerLink::PlaceFate fate) {
                  // Whether the host has the job is unknown until it answers.
                  if (batch && (fate == PeerLink::PlaceFate::kUnknown ||
                                (fate == PeerLink::PlaceFate::kNotSent && attempt->resolving))) {
                    Count(PlacementResult::kUnanswered);
                    return done(PlacementOutcome{"", true, host + " did not answer (" + reply.reason + ")", true});
                  }
                  if (!reply.accepted) {
                    Count(OfferFailure::kDeclined);
                    WithdrawOffer(attempt->record_id, host, attempt->attempt);
                    return refused(reply.reason, reply.permanent);
                  }
                  Placed(attempt->record_id, host, attempt->attempt);
                  Count(PlacementResult::kPeer);
                  done(PlacementOutcome{host, false, ""});
                });
  };
  // Restart files go first, so that the host has them when it takes the job.
  auto ship = [this, attempt, send, refused, host, link] {
    if (attempt->bundle.empty()) return send(SentBundle{});
    // Bytes sent when the transfer last stalled, if it is stalled now.
    auto stalled_at = std::make_shared<std::optional<BundleProgress>>();
    SendBundle(
        c_.io, link, c_.self, attempt->record_id, attempt->attempt, attempt->bundle,
        [this, attempt, send, refused, host, stalled_at](Result<SentBundle> sent) {
          if (!sent.ok()) {
            if (*stalled_at)
              TellOfTransfer(*attempt, "its restart files did not reach " + host + " (" + sent.message() + ") after " +
                                           std::to_string((*stalled_at)->bytes) + " of " +
                                           std::to_string((*stalled_at)->size) +
                                           " bytes; the job is offered to another host, or waits here for one");
            WithdrawOffer(attempt->record_id, host, attempt->attempt);  // the host never saw an offer
            Count(OfferFailure::kRestartFilesFailed);
            if (c_.metrics != nullptr) ++c_.metrics->transfer_failures[TransferKind::kRestartFiles];
            return refused(sent.message(), false);
          }
          // Hashed as it was read: damaged since it was checked, it goes
          // nowhere, and is checked again (and given up) on the next pass.
          if (!c_.finisher.SentAsKept(attempt->record_id, attempt->bundle, sent->size, sent->sha256)) {
            WithdrawOffer(attempt->record_id, host, attempt->attempt);
            Count(OfferFailure::kRestartFilesChanged);
            return refused("its restart files changed on disk since they were checked", false);
          }
          // Every byte is queued on the link: its reader's pace is the link's now.
          auto& transfers = c_.finisher.transfers();
          auto now = TransferBoard::Clock::now();
          transfers.Moved(attempt->record_id, Transfer::Direction::kOut, host, attempt->attempt, sent->size, sent->size, now);
          transfers.Completed(attempt->record_id, Transfer::Direction::kOut, sent->size, now);
          send(*sent);
        },
        [this, attempt, host, stalled_at](const BundleProgress& progress) {
          const std::string sent = std::to_string(progress.bytes) + " of " + std::to_string(progress.size) + " bytes";
          if (progress.change == StallWatch::Change::kStalled) {
            *stalled_at = progress;
            return TellOfTransfer(*attempt, "its restart files stalled on the way to " + host + " at " + sent +
                                                ": nothing moved for " + std::to_string(kTransferStallAfter.count()) +
                                                " s (the link may be cut); the transfer waits for the link");
          }
          stalled_at->reset();
          TellOfTransfer(*attempt, "its restart files are moving to " + host + " again (" + sent + " sent)");
        },
        [this, attempt, host](const BundleProgress& progress) {
          c_.finisher.transfers().Moved(attempt->record_id, Transfer::Direction::kOut, host, attempt->attempt,
                                        progress.bytes, progress.size, TransferBoard::Clock::now());
        });
  };
  // The record says where the job was offered before the offer leaves: the
  // host's end of the job travels on another connection than its answer, and
  // may come first; the end is taken only from the host the job is offered to.
  if (Status offered = c_.ledger.Offer(attempt->record_id, host, attempt->attempt); !offered.ok()) {
    Count(OfferFailure::kSpool);
    return refused(offered.message(), false);
  }
  // An interactive job's stub holds it (it does not outlive this daemon): the
  // offer leaves at once.
  if (!batch) return ship();
  // Two-phase hand-off: the offer is on disk before it leaves, so that after
  // a crash it is asked there first, never twice.
  c_.ledger.AfterCommit([this, ship, refused](const Status& committed) {
    if (committed.ok()) return ship();
    Count(OfferFailure::kSpool);
    refused("spool: " + committed.message(), false);
  });
}

bool Placement::StillWaiting(const Attempt& attempt) {
  auto record = c_.ledger.Get(attempt.record_id);
  return record.ok() && record->has_value() && (*record)->state == spool::JobState::kWaiting &&
         (*record)->restarts == attempt.attempt;
}

void Placement::TellOfTransfer(const Attempt& attempt, const std::string& text) {
  std::cerr << "queued: job " << c_.names.LocalLabel(attempt.record_id) << ": " << text << "\n";
  if (!attempt.spec.batch) {
    if (auto client = c_.stub_of(attempt.record_id))
      client->Send(wire::SubmitReply{{attempt.record_id, c_.names.SelfNumber()}, "", text});
    return;
  }
  // A job that moved on meanwhile (cancelled, placed, lost) is not noted.
  if (!StillWaiting(attempt)) return;
  if (Status noted = c_.ledger.NoteWhileWaiting(attempt.record_id, attempt.attempt, text); !noted.ok())
    std::cerr << "queued: " << noted.message() << "\n";
}

void Placement::Count(PlacementResult result) {
  if (c_.metrics != nullptr) ++c_.metrics->placements[result];
}

void Placement::Count(OfferFailure failure) {
  if (c_.metrics != nullptr) ++c_.metrics->offer_failures[failure];
}

void Placement::WithdrawOffer(uint64_t record_id, const std::string& host, uint32_t attempt) {
  if (Status withdrawn = c_.ledger.WithdrawOffer(record_id, host, attempt); !withdrawn.ok())
    std::cerr << "queued: " << withdrawn.message() << "\n";
}

void Placement::Placed(uint64_t record_id, const std::string& host, uint32_t attempt) {
  if (host == c_.self) {  // a remote placement was counted when offered
    c_.table.AddPlacement(host, load::Clock::now());
    c_.count_own_running();
  }
  auto record = c_.ledger.Get(record_id);
  if (!record.ok() || !record->has_value()) return;
  spool::JobRecord& r = **record;
  if (host != c_.self) {
    // Cancelled while the offer was out: the host must not run it.
    if (r.state == spool::JobState::kCancelled) {
      if (auto link = c_.link_to(host)) link->SendCancel(wire::CancelJob{record_id});
      return;
    }
    // Its end may have come first (the answer to an earlier offer was lost),
    // or it was queued again meanwhile: a stale acceptance changes nothing.
    if (r.state != spool::JobState::kWaiting || r.restarts != attempt) return;
    // The execution host keeps its own record too; this one says where the job went.
    if (Status placed = c_.ledger.Placed(record_id, host, attempt, Now()); !placed.ok()) {
      std::cerr << "queued: " << placed.message() << "\n";
      return;
    }
    r.exec_host = host;
  }
  c_.finisher.MailStart(r, host);
}

}  // namespace queue::daemon
