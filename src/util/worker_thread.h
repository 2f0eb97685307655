// WorkerThread: one thread beside an event loop, for file work that can take
// seconds (packing or unpacking a GiB of restart files), so that the loop keeps
// answering its peers, stubs and shepherds meanwhile. A loop that stalls for
// seconds looks dead to its peers, which stop placing jobs on it.
//
// Pieces of work run one at a time, in the order given. Each result is handed
// to its `done` on the event loop. Work runs on another thread, so it must only
// use what it was given (copies), never what the loop owns.
//
// The thread starts with the first piece of work, not before: a daemon makes
// its WorkerThread, then forks to detach, and a thread does not cross a fork.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include <asio.hpp>

namespace queue::util {

class WorkerThread {
 public:
  explicit WorkerThread(asio::io_context& loop) : loop_(loop) {}
  // Drops the work not yet begun, waits for the piece under way, and never
  // calls the `done` of either. Call it on the loop's thread.
  ~WorkerThread();
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;

  template <typename T>
  void Run(std::function<T()> work, std::function<void(T)> done) {
    if (!pool_) pool_.emplace(1);
    asio::post(*pool_, [alive = alive_, &loop = loop_, work = std::move(work), done = std::move(done)]() mutable {
      auto result = std::make_shared<T>(work());
      asio::post(loop, [alive, result, done = std::move(done)] {
        if (*alive) done(std::move(*result));
      });
    });
  }

 private:
  asio::io_context& loop_;
  // Read and cleared only on the loop's thread: results that reach the loop
  // after the owner is gone are dropped.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::optional<asio::thread_pool> pool_;  // started by the first Run
};

}  // namespace queue::util
