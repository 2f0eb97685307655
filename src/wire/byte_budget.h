// ByteBudget: a count of bytes held in memory on behalf of someone (one
// connection, or every connection of one local user), with a ceiling. Channels
// charge it for what they buffer (a frame as its bytes arrive, replies not yet
// written) and release it when the bytes are gone, so that nobody can make the
// daemon hold more than the ceiling for them, however many frames or
// connections they open. Not thread-safe: it lives on one event loop.
#pragma once

#include <cstddef>
#include <string>

namespace queue::wire {

class ByteBudget {
 public:
  // `owner` names who the bytes are held for, in the reason a refusal gives.
  ByteBudget(size_t limit, std::string owner) : limit_(limit), owner_(std::move(owner)) {}

  // Takes `bytes` from the budget; false (and nothing taken) when that would
  // exceed the limit.
  bool Charge(size_t bytes) {
    if (bytes > limit_ - used_) return false;
    used_ += bytes;
    return true;
  }
  void Release(size_t bytes) { used_ -= bytes < used_ ? bytes : used_; }

  size_t used() const { return used_; }
  size_t limit() const { return limit_; }
  const std::string& owner() const { return owner_; }

 private:
  size_t limit_;
  size_t used_ = 0;
  std::string owner_;
};

}  // namespace queue::wire
