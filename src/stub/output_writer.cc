// The stub's output thread and its notices to the loop.
#include "stub/output_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include "util/fd_io.h"

namespace queue::stub {

OutputWriter::OutputWriter(asio::io_context& io, FailedHandler on_failed)
    : io_(io), on_failed_(std::move(on_failed)), notices_(io) {
  // Our own pipe, so non-blocking is ours to set. If it cannot be made, writes
  // still happen; only failures and drains go unnoticed until Flush.
  if (pipe2(notice_pipe_, O_CLOEXEC | O_NONBLOCK) == 0) {
    notices_.assign(notice_pipe_[0]);
    WatchNotices();
  }
  thread_ = std::thread([this] { Run(); });
}

OutputWriter::~OutputWriter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  queued_.notify_all();
  // A write blocked on a reader that never reads would keep us here; the stub
  // flushes before it ends and leaves with _exit, so only tests wait here.
  if (thread_.joinable()) thread_.join();
  asio::error_code ignored;
  notices_.close(ignored);
  if (notice_pipe_[1] >= 0) close(notice_pipe_[1]);
}

void OutputWriter::Write(int fd, std::string bytes) {
  if (bytes.empty()) return;
  {
    std::lock_guard lock(mutex_);
    if (failed_[fd] != 0) return;
    pending_ += bytes.size();
    queue_.emplace_back(fd, std::move(bytes));
  }
  queued_.notify_one();
}

size_t OutputWriter::pending_bytes() const {
  std::lock_guard lock(mutex_);
  return pending_;
}

void OutputWriter::WhenAtMost(size_t bytes, std::function<void()> callback) {
  if (pending_bytes() <= bytes) return callback();
  waiting_.emplace_back(bytes, std::move(callback));
}

void OutputWriter::Flush() {
  std::unique_lock lock(mutex_);
  flushed_.wait(lock, [this] { return queue_.empty(); });
}

int OutputWriter::failure(int fd) const {
  std::lock_guard lock(mutex_);
  return failed_[fd];
}

void OutputWriter::Run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    queued_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left
    auto& [fd, bytes] = queue_.front();
    int error = failed_[fd];
    if (error == 0) {
      // The front stays queued while it is written, so Flush waits for it.
      lock.unlock();
      error = WriteFully(fd, bytes);
      lock.lock();
      if (error != 0) failed_[fd] = error;
    }
    pending_ -= bytes.size();
    queue_.pop_front();
    if (queue_.empty()) flushed_.notify_all();
    lock.unlock();
    Notify();
    lock.lock();
  }
}

void OutputWriter::Notify() {
  if (notice_pipe_[1] < 0) return;
  // A full pipe already holds a notice the loop has yet to read.
  ssize_t ignored = write(notice_pipe_[1], "n", 1);
  (void)ignored;
}

void OutputWriter::WatchNotices() {
  notices_.async_read_some(asio::buffer(notice_buffer_), [this](const asio::error_code& e, size_t) {
    if (e) return;  // closed: we are being destroyed
    OnNotice();
    WatchNotices();
  });
}

void OutputWriter::OnNotice() {
  std::vector<std::pair<int, int>> newly_failed;
  size_t pending = 0;
  {
    std::lock_guard lock(mutex_);
    for (int fd : {1, 2})
      if (failed_[fd] != 0 && !reported_[fd]) {
        reported_[fd] = true;
        newly_failed.emplace_back(fd, failed_[fd]);
      }
    pending = pending_;
  }
  for (auto [fd, error] : newly_failed) on_failed_(fd, error);
  std::vector<std::function<void()>> ready;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (pending > it->first) {
      ++it;
      continue;
    }
    ready.push_back(std::move(it->second));
    it = waiting_.erase(it);
  }
  for (auto& callback : ready) callback();
}

}  // namespace queue::stub
