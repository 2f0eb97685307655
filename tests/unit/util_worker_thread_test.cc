#include "util/worker_thread.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace queue::util {
namespace {

using namespace std::chrono_literals;

TEST(WorkerThread, RunsWorkOffTheLoopAndHandsTheResultBackOnIt) {
  asio::io_context loop;
  WorkerThread worker(loop);
  const auto loop_thread = std::this_thread::get_id();
  std::thread::id work_thread;
  std::thread::id done_thread;
  int got = 0;
  worker.Run<int>(
      [&] {
        work_thread = std::this_thread::get_id();
        return 42;
      },
      [&](int value) {
        done_thread = std::this_thread::get_id();
        got = value;
        loop.stop();
      });
  auto guard = asio::make_work_guard(loop);
  loop.run_for(10s);
  EXPECT_EQ(got, 42);
  EXPECT_NE(work_thread, loop_thread);
  EXPECT_EQ(done_thread, loop_thread);
}

TEST(WorkerThread, TheLoopTurnsWhileWorkIsUnderWay) {
  asio::io_context loop;
  WorkerThread worker(loop);
  std::atomic<bool> release{false};
  int timer_ticks = 0;
  bool finished = false;
  worker.Run<bool>(
      [&] {
        while (!release) std::this_thread::sleep_for(1ms);
        return true;
      },
      [&](bool) {
        finished = true;
        loop.stop();
      });
  asio::steady_timer timer(loop);
  std::function<void()> tick = [&] {
    timer.expires_after(5ms);
    timer.async_wait([&](const asio::error_code&) {
      if (++timer_ticks == 5) release = true;
      if (!finished) tick();
    });
  };
  tick();
  loop.run_for(10s);
  EXPECT_TRUE(finished);
  EXPECT_GE(timer_ticks, 5);
}

TEST(WorkerThread, RunsPiecesInTheOrderGiven) {
  asio::io_context loop;
  WorkerThread worker(loop);
  std::vector<int> order;
  for (int i = 0; i < 5; ++i)
    worker.Run<int>([i] { return i; },
                    [&](int value) {
                      order.push_back(value);
                      if (order.size() == 5) loop.stop();
                    });
  auto guard = asio::make_work_guard(loop);
  loop.run_for(10s);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(WorkerThread, AResultThatArrivesAfterTheWorkerIsGoneIsDropped) {
  asio::io_context loop;
  bool called = false;
  {
    WorkerThread worker(loop);
    worker.Run<int>([] { return 1; }, [&](int) { called = true; });
  }  // joined: the result is posted to the loop, not yet run
  loop.run_for(100ms);
  EXPECT_FALSE(called);
}

// queued makes its WorkerThread, then forks to detach: the worker must work
// in the child, where no thread of the parent exists.
TEST(WorkerThread, WorksInAChildForkedAfterItWasMade) {
  asio::io_context loop;
  WorkerThread worker(loop);
  pid_t pid = fork();
  if (pid == 0) {
    loop.notify_fork(asio::io_context::fork_child);
    bool done = false;
    worker.Run<int>([] { return 7; },
                    [&](int value) {
                      done = value == 7;
                      loop.stop();
                    });
    auto guard = asio::make_work_guard(loop);
    loop.run_for(std::chrono::seconds(10));
    _exit(done ? 0 : 1);
  }
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the work never ran in the child";
}

}  // namespace
}  // namespace queue::util
