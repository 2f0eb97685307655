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

// A spool that cannot commit (a full disk) fails every window the same way:
// said when it starts, again at most once a minute, and when it is over.
void GroupCommit::ReportOutcome(const Status& committed) {
  const auto now = std::chrono::steady_clock::now();
  if (committed.ok()) {
    if (!last_failure_.empty())
      std::cerr << "queued: spool: commits succeed again (" << failures_ << " failed since the first)\n";
    last_failure_.clear();
    failures_ = 0;
    return;
  }
  ++failures_;
  if (committed.message() == last_failure_ && now - last_said_ < std::chrono::minutes(1)) return;
  std::cerr << "queued: spool: commit failed: " << committed.message()
            << (failures_ > 1 ? " (" + std::to_string(failures_) + " failures so far)" : "") << "\n";
  last_failure_ = committed.message();
  last_said_ = now;
}

Status GroupCommit::Flush() {
  flush_posted_ = false;
  Status committed = Status::Ok();
  if (open_) {
    timer_.cancel();
    committed = open_->Commit();
    open_.reset();
    ReportOutcome(committed);
  }
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& then : waiting) then(committed);
  return committed;
}

}  // namespace queue::daemon
