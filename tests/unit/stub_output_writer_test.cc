// Tests of the stub's output (stub/output_writer.h, util/fd_io.h): a
// non-blocking stdout with a slow reader loses no byte; a reader that leaves
// is reported as EPIPE; a non-blocking stdin is waited on, not ended.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <asio.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "stub/output_writer.h"
#include "util/fd_io.h"

namespace queue::stub {
namespace {

using namespace std::chrono_literals;

// Puts `fd` where the writer writes (1 or 2) for the test's length.
class Redirect {
 public:
  Redirect(int target, int fd) : target_(target), saved_(dup(target)) { dup2(fd, target); }
  ~Redirect() {
    dup2(saved_, target_);
    close(saved_);
  }

 private:
  int target_, saved_;
};

std::string Pattern(size_t bytes) {
  std::string text(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) text[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return text;
}

TEST(FdIo, WriteFullyWaitsOutANonBlockingPipe) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_NONBLOCK), 0);
  const std::string data = Pattern(4 << 20);  // far more than a pipe holds
  std::string got;
  std::thread reader([&] {
    char buffer[4096];
    for (;;) {
      std::this_thread::sleep_for(1ms);  // slow
      ssize_t n = ReadSome(p[0], buffer, sizeof buffer);
      if (n <= 0) break;
      got.append(buffer, static_cast<size_t>(n));
    }
  });
  EXPECT_EQ(WriteFully(p[1], data), 0);
  close(p[1]);
  reader.join();
  close(p[0]);
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
}

TEST(FdIo, ReadSomeWaitsForDataOnANonBlockingPipe) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_NONBLOCK), 0);
  std::thread writer([&] {
    std::this_thread::sleep_for(50ms);
    (void)WriteFully(p[1], "late");
    close(p[1]);
  });
  char buffer[16];
  ssize_t n = ReadSome(p[0], buffer, sizeof buffer);  // EAGAIN first: must wait, not end
  ASSERT_EQ(n, 4);
  EXPECT_EQ(std::string(buffer, 4), "late");
  EXPECT_EQ(ReadSome(p[0], buffer, sizeof buffer), 0);
  writer.join();
  close(p[0]);
}

TEST(FdIo, WriteFullyReportsAReaderThatLeft) {
  signal(SIGPIPE, SIG_IGN);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  close(p[0]);
  EXPECT_EQ(WriteFully(p[1], "x"), EPIPE);
  close(p[1]);
}

TEST(StubOutputWriter, KeepsOrderAndEveryByteThroughANonBlockingSlowStdout) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_NONBLOCK), 0);
  std::string got;
  std::thread reader([&] {
    char buffer[8192];
    for (;;) {
      std::this_thread::sleep_for(200us);
      ssize_t n = ReadSome(p[0], buffer, sizeof buffer);
      if (n <= 0) break;
      got.append(buffer, static_cast<size_t>(n));
    }
  });
  std::string expected;
  {
    Redirect out(1, p[1]);
    Redirect err(2, p[1]);  // 2>&1: the order of the two must hold
    asio::io_context io;
    int failures = 0;
    OutputWriter writer(io, [&](int, int) { ++failures; });
    for (int i = 0; i < 200; ++i) {
      std::string chunk = Pattern(20000 + static_cast<size_t>(i));
      writer.Write(i % 3 == 0 ? 2 : 1, chunk);
      expected += chunk;
    }
    bool drained = false;
    writer.WhenAtMost(0, [&] { drained = true; });
    for (int i = 0; i < 600 && !drained; ++i) io.run_one_for(100ms);
    EXPECT_TRUE(drained);
    writer.Flush();
    EXPECT_EQ(writer.pending_bytes(), 0U);
    EXPECT_EQ(writer.failure(1), 0);
    EXPECT_EQ(failures, 0);
  }
  close(p[1]);
  reader.join();
  close(p[0]);
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected);
}

TEST(StubOutputWriter, AReaderThatLeavesIsReportedOnceAndLaterOutputDropped) {
  signal(SIGPIPE, SIG_IGN);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  close(p[0]);
  Redirect out(1, p[1]);
  close(p[1]);
  asio::io_context io;
  std::vector<std::pair<int, int>> failures;
  OutputWriter writer(io, [&](int fd, int error) { failures.emplace_back(fd, error); });
  writer.Write(1, "lost");
  for (int i = 0; i < 100 && failures.empty(); ++i) io.run_one_for(100ms);
  writer.Write(1, "dropped");
  writer.Flush();
  io.run_for(50ms);
  ASSERT_EQ(failures.size(), 1U);
  EXPECT_EQ(failures[0], (std::pair<int, int>{1, EPIPE}));
  EXPECT_EQ(writer.failure(1), EPIPE);
  EXPECT_EQ(writer.failure(2), 0);
  EXPECT_EQ(writer.pending_bytes(), 0U);
}

}  // namespace
}  // namespace queue::stub
