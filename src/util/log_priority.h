// Log priorities: the syslog level of each line of a daemon's log, written
// the sd-daemon(3) way, as "<N>" before the line's text (kLogErr and the rest,
// streamed first: `std::cerr << util::kLogWarning << "queued: ..."`).
//
// LogPriorityBuffer sits under the log stream and decides what becomes of
// that prefix where the lines go:
//   - to the journal (stderr connected to journald, see daemon/log_output.h),
//     every line carries a level: its own, or kLogInfo when it names none;
//   - anywhere else (a log file, a terminal) the prefix is removed, so that
//     the file reads as it always did.
// Only the first bytes of a line are looked at: quoted text inside a line
// (a job's name) cannot pose as a prefix, since EscapingLogBuffer keeps every
// newline it quotes from starting a line.
//
// Not thread-safe: like the stream it serves, used from one thread.
#pragma once

#include <streambuf>
#include <string>
#include <string_view>

namespace queue::util {

inline constexpr char kLogErr[] = "<3>";
inline constexpr char kLogWarning[] = "<4>";
inline constexpr char kLogNotice[] = "<5>";
inline constexpr char kLogInfo[] = "<6>";

class LogPriorityBuffer : public std::streambuf {
 public:
  enum class Prefixes { kKeep, kRemove };
  // Writes to `out`, which the caller keeps alive.
  LogPriorityBuffer(std::streambuf* out, Prefixes prefixes) : out_(out), prefixes_(prefixes) {}
  // From the next line on (the output moved: a daemon left the journal for a file).
  void set_prefixes(Prefixes prefixes) { prefixes_ = prefixes; }

 protected:
  int_type overflow(int_type c) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;
  int sync() override { return out_->pubsync(); }

 private:
  // The text of one write, with each line's prefix kept, added or removed.
  std::string Rewrite(std::string_view text);

  std::streambuf* out_;
  Prefixes prefixes_;
  bool line_start_ = true;
};

}  // namespace queue::util
