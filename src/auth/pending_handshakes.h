// PendingHandshakes: connections accepted from the network that have not yet
// proved they hold the key (TLS handshake, then Hello). Anyone who can reach
// the port can open them, so they are capped: when the cap is reached the
// oldest is closed to make room. A real peer (or shepherd) finishes in
// milliseconds, so a flood of idle connections cannot keep it out; each also
// has its own deadline (the caller's timer). Not thread-safe (event loop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>

namespace queue::auth {

class PendingHandshakes {
 public:
  using Close = std::function<void()>;

  explicit PendingHandshakes(size_t cap) : cap_(cap == 0 ? 1 : cap) {}

  // Registers a new connection; `close` ends it. When the cap is reached the
  // oldest pending one is closed first (its `close` is called, then it is
  // forgotten). Returns the new one's ticket, and how many were evicted.
  uint64_t Add(Close close, size_t* evicted = nullptr);
  // The connection finished (proved itself, failed, or timed out).
  void Done(uint64_t ticket) { pending_.erase(ticket); }

  size_t size() const { return pending_.size(); }
  size_t cap() const { return cap_; }
  // Connections closed to make room, since the start.
  uint64_t evicted_total() const { return evicted_total_; }

 private:
  size_t cap_;
  uint64_t next_ = 1;
  uint64_t evicted_total_ = 0;
  std::map<uint64_t, Close> pending_;  // by ticket: the oldest first
};

}  // namespace queue::auth
