// AcceptThrottle: what an accept loop does when accept() fails. Out of
// descriptors (EMFILE, ENFILE) or kernel memory, the waiting connection stays
// in the backlog and the listening socket stays readable: accepting again at
// once would spin a core and log a line per try. Instead the loop pauses,
// longer each time up to a ceiling, and logs once per interval with how many
// failures it passed over. Pure: the caller gives it the time.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>

namespace queue::daemon {

class AcceptThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kFirstPause = std::chrono::milliseconds(50);
  static constexpr auto kLongestPause = std::chrono::milliseconds(1000);
  static constexpr auto kLogInterval = std::chrono::seconds(60);

  struct Verdict {
    Clock::duration pause;            // before the next accept
    std::optional<std::string> log;   // a line to log now, if any
  };

  // `what` names the listener in the log ("the Unix socket /run/q.sock").
  explicit AcceptThrottle(std::string what) : what_(std::move(what)) {}

  // An accept failed with `error` (its message) at `now`.
  Verdict Failed(const std::string& error, Clock::time_point now);
  // An accept worked: the next failure starts with a short pause again.
  void Succeeded() { pause_ = Clock::duration::zero(); }

 private:
  std::string what_;
  Clock::duration pause_ = Clock::duration::zero();
  std::optional<Clock::time_point> logged_at_;
  size_t unlogged_ = 0;  // failures since the last line
};

// Log lines about refused connections, at most one per key (a uid, an
// address) per interval, each saying how many were passed over since.
class RefusalLog {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kInterval = std::chrono::seconds(60);

  // The line to log now for a refusal of `key`, or nullopt to stay quiet.
  std::optional<std::string> Note(const std::string& key, const std::string& line, Clock::time_point now);

 private:
  struct Seen {
    Clock::time_point logged_at;
    size_t unlogged = 0;
  };
  std::map<std::string, Seen> seen_;
};

}  // namespace queue::daemon
