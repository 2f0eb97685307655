// One spool transaction per commit window.
#include "daemon/group_commit.h"

#include <iostream>

namespace queue::daemon {

void GroupCommit::Join() {
  if (open_) return;
  open_.emplace(store_.Begin());
  if (!open_->status().ok()) {
    std::cerr << "queued: spool: " << open_->status().message() << " (writing without batching)\n";
    open_.reset();
    return;
  }
  timer_.expires_after(window_);
  timer_.async_wait([this](const asio::error_code& ec) {
    if (!ec) (void)Flush();
  });
}

void GroupCommit::AfterCommit(std::function<void(const Status&)> then) {
  waiting_.push_back(std::move(then));
  if (flush_posted_) return;
  flush_posted_ = true;
  asio::post(io_, [this] { (void)Flush(); });
}

Status GroupCommit::Flush() {
  flush_posted_ = false;
  Status committed = Status::Ok();
  if (open_) {
    timer_.cancel();
    committed = open_->Commit();
    open_.reset();
    if (!committed.ok()) std::cerr << "queued: spool: commit failed: " << committed.message() << "\n";
  }
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& then : waiting) then(committed);
  return committed;
}

}  // namespace queue::daemon
