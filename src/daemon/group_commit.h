// GroupCommit: batches the daemon's spool writes into one transaction per short
// window, so that durability costs one fsync per window instead of one per job
// (an fsync takes milliseconds; a busy daemon changes many jobs per window).
// A caller that must not answer before its write is durable calls Flush().
// Event-loop only.
#pragma once

#include <chrono>
#include <optional>

#include <asio.hpp>

#include "spool/job_store.h"

namespace queue::daemon {

class GroupCommit {
 public:
  GroupCommit(asio::io_context& io, spool::JobStore& store, std::chrono::milliseconds window)
      : store_(store), timer_(io), window_(window) {}
  ~GroupCommit() { (void)Flush(); }

  // Call before a write: it joins the open batch, committed within the window.
  void Join();
  // Commits the open batch now.
  Status Flush();

 private:
  spool::JobStore& store_;
  asio::steady_timer timer_;
  std::chrono::milliseconds window_;
  std::optional<spool::JobStore::Transaction> open_;
};

}  // namespace queue::daemon
