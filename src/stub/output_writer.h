// OutputWriter: the stub's writes to its own stdout and stderr, done on a
// thread of their own. Those descriptors are the caller's (util/fd_io.h): a
// slow or non-blocking reader must neither lose a byte nor stall the event
// loop, which goes on relaying input and signals meanwhile. Writes keep the
// order they were queued in across both descriptors, so that a job's output
// and errors sent to one place (2>&1, a terminal) read as they were written.
//
// A descriptor whose write fails (EPIPE: its reader left; or an I/O error such
// as ENOSPC) is reported once to the loop, and whatever is queued for it from
// then on is dropped: nobody can read it.
//
// Thread-safety: every method but Flush is for the event loop's thread; Flush
// may be called from any thread.
#pragma once

#include <array>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <asio.hpp>

namespace queue::stub {

class OutputWriter {
 public:
  // on_failed(fd, errno) runs on the loop, once per descriptor that fails.
  using FailedHandler = std::function<void(int fd, int error)>;

  OutputWriter(asio::io_context& io, FailedHandler on_failed);
  ~OutputWriter();
  OutputWriter(const OutputWriter&) = delete;
  OutputWriter& operator=(const OutputWriter&) = delete;

  // REQUIRES: fd is 1 or 2.
  void Write(int fd, std::string bytes);
  // Bytes queued and not yet written.
  size_t pending_bytes() const;
  // Runs callback on the loop once pending_bytes() <= bytes (at once if it is).
  void WhenAtMost(size_t bytes, std::function<void()> callback);
  // Blocks until everything queued is written, or dropped for a failed descriptor.
  void Flush();
  // The errno that ended writes to fd, 0 while it works.
  int failure(int fd) const;

 private:
  void Run();
  void Notify();
  void WatchNotices();
  void OnNotice();

  asio::io_context& io_;
  FailedHandler on_failed_;
  // The writing thread tells the loop through a pipe of our own rather than by
  // posting to the io_context, which may be gone by the time it would.
  int notice_pipe_[2] = {-1, -1};
  asio::posix::stream_descriptor notices_;
  char notice_buffer_[64];

  mutable std::mutex mutex_;
  std::condition_variable queued_, flushed_;
  std::deque<std::pair<int, std::string>> queue_;  // the front is being written
  size_t pending_ = 0;
  std::array<int, 3> failed_{};    // by fd: the errno that ended it
  std::array<bool, 3> reported_{};  // loop side: on_failed has run for it
  bool stopping_ = false;
  std::vector<std::pair<size_t, std::function<void()>>> waiting_;  // loop side
  std::thread thread_;
};

}  // namespace queue::stub
