// GroupCommit: batches the daemon's spool writes into one transaction per short
// window, so that durability costs one fsync per window instead of one per job
// (an fsync takes milliseconds; a busy daemon changes many jobs per window).
// A caller that must not act before its write is durable (answer a client,
// start a batch job, acknowledge a peer) passes that action to AfterCommit():
// the batch is then committed as soon as the event loop has run the work
// already queued, so waiting costs about one fsync, shared by everyone who
// arrived meanwhile. Event-loop only.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <asio.hpp>

#include "spool/job_store.h"

namespace queue::daemon {

class GroupCommit {
 public:
  GroupCommit(asio::io_context& io, spool::JobStore& store, std::chrono::milliseconds window)
      : io_(io), store_(store), timer_(io), window_(window) {}
  ~GroupCommit() {
    waiting_.clear();  // their owners are being torn down too
    (void)Flush();
  }

  // Call before a write: it joins the open batch, committed within the window.
  void Join();
  // Runs `then` once everything written so far is on disk (or failed to be).
  void AfterCommit(std::function<void(const Status&)> then);
  // Commits the open batch now.
  Status Flush();

 private:
  void ReportOutcome(const Status& committed);

  asio::io_context& io_;
  spool::JobStore& store_;
  std::string last_failure_;  // the last commit failure said, "" while commits succeed
  std::chrono::steady_clock::time_point last_said_{};
  uint64_t failures_ = 0;
  asio::steady_timer timer_;
  std::chrono::milliseconds window_;
  std::optional<spool::JobStore::Transaction> open_;
  std::vector<std::function<void(const Status&)>> waiting_;
  bool flush_posted_ = false;
};

}  // namespace queue::daemon
