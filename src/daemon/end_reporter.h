// EndReporter: the execution side's promise to a submit host. Every job that
// came from a peer and ended here is reported to that peer (a batch job's
// output first, in JobOutput chunks, then JobEnded with the output's size and
// SHA-256) and reported again, after a reconnect or a silence, until the peer
// answers JobEndedAck; only then is the spool record marked reported and the
// job's files deleted. The owed ends are found again in the spool at start-up,
// so neither side's crash loses an end or an output file. Event-loop only.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include <asio.hpp>

#include "daemon/job_ledger.h"
#include "daemon/job_runner.h"
#include "daemon/peer_link.h"
#include "spool/job_store.h"

namespace queue::daemon {

class EndReporter {
 public:
  using LinkFinder = std::function<std::shared_ptr<PeerLink>(const std::string& host)>;

  EndReporter(asio::io_context& io, JobLedger& ledger, JobRunner& runner, LinkFinder links)
      : io_(io), ledger_(ledger), runner_(runner), links_(std::move(links)), pace_(io) {}

  // An end to report: record.origin_host is a peer, and the record is ended.
  void Report(const spool::JobRecord& record);
  // Start-up: every end the spool still owes to a peer.
  void LoadOwed();
  // The link to `peer` is (again) up: whatever it was sent may be lost.
  void Resume(const std::string& peer);
  // Periodically: reports sent long ago and never acknowledged go again.
  void Tick();
  void OnAcknowledged(const std::string& peer, uint64_t origin_job_id, uint32_t attempt);

  size_t owed() const { return owed_.size(); }

 private:
  struct Owed {
    uint64_t record_id = 0;
    std::string peer;
    uint64_t origin_id = 0;
    uint32_t attempt = 0;
    bool queued = false;
    bool sending = false;  // its transfer is under way
    std::chrono::steady_clock::time_point sent_at{};
  };
  struct Transfer;

  void Enqueue(Owed& owed);
  void Pump();
  // Sends one report, pacing the output on the link; false when it must wait.
  bool Continue(Transfer& transfer);

  asio::io_context& io_;
  JobLedger& ledger_;
  JobRunner& runner_;
  LinkFinder links_;
  asio::steady_timer pace_;
  bool pacing_ = false;
  // By (peer, origin id, attempt): each run of a job has its own end.
  using Key = std::tuple<std::string, uint64_t, uint32_t>;
  std::map<Key, Owed> owed_;
  std::deque<Key> queue_;
  std::shared_ptr<Transfer> active_;
};

}  // namespace queue::daemon
