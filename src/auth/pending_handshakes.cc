// The capped set of connections still proving themselves.
#include "auth/pending_handshakes.h"

#include <utility>

namespace queue::auth {

uint64_t PendingHandshakes::Add(Close close, size_t* evicted) {
  size_t closed = 0;
  while (pending_.size() >= cap_) {
    auto oldest = pending_.begin();
    Close end = std::move(oldest->second);
    pending_.erase(oldest);
    ++closed;
    ++evicted_total_;
    if (end) end();
  }
  if (evicted != nullptr) *evicted = closed;
  uint64_t ticket = next_++;
  pending_.emplace(ticket, std::move(close));
  return ticket;
}

}  // namespace queue::auth
