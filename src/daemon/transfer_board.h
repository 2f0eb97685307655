// TransferBoard: how far the restart files of each job submitted here have
// travelled, for `queue --jobs` (and so for `queue --migrate`'s progress bar,
// which reads it there): the last transfer of each job, coming home from the
// host it left or going out to the host it goes on on, with its bytes so far,
// its size when known and how long it has taken.
//
// In memory only, and not in the job's record: it says what is happening now,
// a daemon restarted in the middle of a transfer starts it again anyway, and
// the job ledger stays the only writer of job records. Bounded: the entries
// of the jobs least lately moved give way past kMaxJobs. Pure data, no clock
// of its own; the daemon's event loop is its only user.
//
// News: a listener (the daemon, which tells an interactive job's stub, for a
// bar on the user's terminal) hears of a transfer when it starts, when it
// completes, and in between at most once per kNewsEvery: a 1 GiB bundle
// arrives in thousands of chunks, and a terminal needs a few lines a second.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace queue::daemon {

struct Transfer {
  enum class Direction { kHome, kOut };  // to this (submit) host, or from it to the next one
  Direction direction = Direction::kHome;
  std::string host;         // the other end
  uint32_t attempt = 0;     // the run whose end (kHome) or start (kOut) it is
  uint64_t bytes = 0;       // moved so far
  uint64_t size = 0;        // 0: not known yet (a bundle coming home says its size at its end)
  bool complete = false;
  std::chrono::steady_clock::time_point started{}, updated{};
  std::chrono::steady_clock::time_point told{};  // when the listener last heard of it
  double seconds(std::chrono::steady_clock::time_point now) const {
    return std::chrono::duration<double>((complete ? updated : now) - started).count();
  }
};

class TransferBoard {
 public:
  static constexpr size_t kMaxJobs = 4096;
  static constexpr std::chrono::milliseconds kNewsEvery{250};
  using Clock = std::chrono::steady_clock;
  using Listener = std::function<void(uint64_t record_id, const Transfer&)>;

  // Called from Moved and Completed, as said above; it may not call back in.
  void OnNews(Listener listener) { listener_ = std::move(listener); }

  // Bytes moved for `record_id`'s transfer: a new one when the direction,
  // host or attempt differ from the last, the last was complete, or `bytes`
  // went back (a resend starts over).
  void Moved(uint64_t record_id, Transfer::Direction direction, const std::string& host, uint32_t attempt,
             uint64_t bytes, uint64_t size, Clock::time_point now);
  // The transfer arrived or left whole, `size` bytes.
  void Completed(uint64_t record_id, Transfer::Direction direction, uint64_t size, Clock::time_point now);
  void Forget(uint64_t record_id) { transfers_.erase(record_id); }
  const Transfer* Find(uint64_t record_id) const;
  size_t size() const { return transfers_.size(); }

 private:
  void Tell(uint64_t record_id, Transfer& transfer, bool fresh, Clock::time_point now);

  std::map<uint64_t, Transfer> transfers_;
  Listener listener_;
};

}  // namespace queue::daemon
