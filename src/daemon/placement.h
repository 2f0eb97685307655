// Placement: offers one job to the hosts, best first, until one takes it or
// every one has refused. Hosts are ranked from the load table (no round trips;
// sched/host_chooser); this host is asked through the JobRunner, a peer with
// PlaceJob over its PeerLink, restart files first. Every offer to a peer is
// recorded (JobLedger::Offer: "offered to H") before it leaves, since H's end
// of the job may arrive before H's answer. A batch job, or any job restarted
// from the spool, is handed off in two phases: the offer is on disk before it
// leaves, and an offer whose answer never came is asked of that host again,
// and of no other, until it answers.
//
// Lifetime: every callback this starts (admission, the link's answer, the
// bundle transfer, the commit) runs on the event loop and may come after the
// job changed (cancelled, ended, queued again): each reads the job's record
// again before it acts. A Placement belongs to the daemon and outlives the
// event loop's run; its callbacks are never run once the loop has stopped.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio.hpp>

#include "cluster/hosts_file.h"
#include "daemon/client_service.h"
#include "daemon/job_finisher.h"
#include "daemon/job_ledger.h"
#include "daemon/job_names.h"
#include "daemon/job_runner.h"
#include "daemon/metrics.h"
#include "daemon/peer_link.h"
#include "load/load_table.h"
#include "wire/job_spec.h"

namespace queue::daemon {

struct PlacementOutcome {
  std::string host;       // where it runs; empty when no host took it
  bool may_wait = false;  // every refusal was for now, not for good
  std::string why;
  bool unresolved = false;  // offered to a host whose answer never came
  std::string summary;  // why, in a few words (daemon/wait_reason), when no host took it
};

struct PlacementOptions {
  uint32_t attempt = 0;     // the job's restarts so far
  std::string offered_to;   // an earlier offer went there unanswered: ask there only
  std::string bundle;       // restart files that go with it (a path), or ""
  // Hosts it left lately: a preference, never a reason not to place it.
  std::vector<std::string> avoid;
  // Where its owner asked it to move (queue --migrate ID HOST), for this
  // placement only: the job's own spec keeps what was submitted.
  std::string move_to;
};

// What a placement needs of the rest of the daemon.
struct PlacementContext {
  asio::io_context& io;
  JobLedger& ledger;
  const JobNames& names;
  JobRunner& runner;
  JobFinisher& finisher;
  load::LoadTable& table;
  const std::vector<cluster::HostEntry>& hosts;  // the daemon's, reloaded on SIGHUP
  std::string self;
  std::chrono::milliseconds place_timeout;
  std::function<std::shared_ptr<PeerLink>(const std::string& host)> link_to;  // null when not a peer
  std::function<double()> current_load;
  std::function<void()> count_own_running;  // after a job starts here: this host's load report is exact
  std::function<std::shared_ptr<ClientChannel>(uint64_t record_id)> stub_of;  // an interactive job's stub, or null
  MetricsRegistry* metrics = nullptr;  // placements and failed offers are counted there
};

class Placement {
 public:
  using Done = std::function<void(const PlacementOutcome&)>;

  explicit Placement(PlacementContext context) : c_(std::move(context)) {}

  // Offers record `record_id` (spec `spec`) to the hosts; `done` hears where
  // it went, or why nowhere. `done` may run before Start returns.
  void Start(uint64_t record_id, const wire::JobSpec& spec, const PlacementOptions& options, Done done);

  // A large cluster (issue 13) keeps no load table of every host: before a
  // placement ranks, `prober` asks a few hosts (the one the job names, if
  // any) for their load, and calls back, from the loop, with the hosts that
  // answered and this host; only those are ranked. Unset: every host is.
  using Prober = std::function<void(const std::string& named, const std::string& preferred,
                                    std::function<void(std::vector<std::string>)> answered)>;
  void ProbeFirst(Prober prober) { prober_ = std::move(prober); }

 private:
  struct Attempt {
    uint64_t record_id = 0;
    uint32_t attempt = 0;
    bool resolving = false;  // asking again where an earlier offer went unanswered
    std::string bundle;
    wire::JobSpec spec;
    std::vector<std::string> candidates;
    size_t next = 0;
    std::vector<std::string> refusals;
    bool any_temporary = false;
  };
  // Ranks `hosts` (of c_.hosts) for the job and offers it, best first.
  void RankAndTry(const std::shared_ptr<Attempt>& attempt, const std::vector<cluster::HostEntry>& hosts,
                  const PlacementOptions& options, Done done);
  void TryNextHost(const std::shared_ptr<Attempt>& attempt, Done done);
  // Sends the offer (and its restart files first) to peer `host`.
  void OfferToPeer(const std::shared_ptr<Attempt>& attempt, const std::string& host,
                   const std::shared_ptr<PeerLink>& link, Done done,
                   std::function<void(const std::string&, bool)> refused);
  void Placed(uint64_t record_id, const std::string& host, uint32_t attempt);
  // A job cancelled, ended, queued again or offered elsewhere meanwhile has no
  // offer of this placement's to withdraw: the record says where it is now.
  void WithdrawOffer(uint64_t record_id, const std::string& host, uint32_t attempt);
  // The job is still waiting, in the same run: a cancel or a restart may have
  // come while its placement was under way.
  bool StillWaiting(const Attempt& attempt);
  // A restart-file transfer stalled, moves again, or was given up: said in the
  // log, to an interactive job's stub, and in a batch job's record.
  void TellOfTransfer(const Attempt& attempt, const std::string& text);
  void Count(PlacementResult result);
  void Count(OfferFailure failure);

  PlacementContext c_;
  Prober prober_;
};

}  // namespace queue::daemon
