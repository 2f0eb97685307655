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

Status GroupCommit::Flush() {
  if (!open_) return Status::Ok();
  timer_.cancel();
  Status committed = open_->Commit();
  open_.reset();
  if (!committed.ok()) std::cerr << "queued: spool: commit failed: " << committed.message() << "\n";
  return committed;
}

}  // namespace queue::daemon
