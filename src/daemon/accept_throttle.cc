// Pauses and rate-limited log lines for failing accept loops.
#include "daemon/accept_throttle.h"

#include <algorithm>
#include <iterator>

namespace queue::daemon {

AcceptThrottle::Verdict AcceptThrottle::Failed(const std::string& error, Clock::time_point now) {
  pause_ = pause_ == Clock::duration::zero() ? Clock::duration(kFirstPause)
                                             : std::min<Clock::duration>(pause_ * 2, kLongestPause);
  Verdict verdict{pause_, std::nullopt};
  ++unlogged_;
  if (!logged_at_ || now - *logged_at_ >= kLogInterval) {
    std::string line = "cannot accept on " + what_ + ": " + error + "; pausing accepts (up to " +
                       std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(kLongestPause).count()) +
                       " ms) until it passes";
    if (unlogged_ > 1) line += " (" + std::to_string(unlogged_ - 1) + " more failures since the last report)";
    verdict.log = std::move(line);
    logged_at_ = now;
    unlogged_ = 0;
  }
  return verdict;
}

std::optional<std::string> RefusalLog::Note(const std::string& key, const std::string& line, Clock::time_point now) {
  // Keys whose interval passed are forgotten, so the map holds only recent ones.
  for (auto it = seen_.begin(); it != seen_.end();)
    it = now - it->second.logged_at >= kInterval && it->first != key ? seen_.erase(it) : std::next(it);
  auto found = seen_.find(key);
  if (found != seen_.end() && now - found->second.logged_at < kInterval) {
    ++found->second.unlogged;
    return std::nullopt;
  }
  size_t passed = found == seen_.end() ? 0 : found->second.unlogged;
  seen_[key] = Seen{now, 0};
  if (passed == 0) return line;
  return line + " (and " + std::to_string(passed) + " more like it in the last " +
         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kInterval).count()) + " s)";
}

}  // namespace queue::daemon
