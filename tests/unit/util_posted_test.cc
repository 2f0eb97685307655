// Tests that a posted completion never runs inside its caller's stack.
#include "util/posted.h"

#include <gtest/gtest.h>

#include <string>

namespace queue::util {
namespace {

TEST(Posted, ACompletionRunsFromTheLoopNotInsideTheCallThatGivesItsAnswer) {
  asio::io_context io;
  int calls = 0;
  std::string seen;
  auto done = Posted<int, std::string>(io, std::function<void(int, std::string)>([&](int n, std::string text) {
                                         calls += n;
                                         seen = text;
                                       }));
  done(2, "answer");
  EXPECT_EQ(calls, 0);  // not yet: the caller's stack is still running
  io.run();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(seen, "answer");
}

TEST(Posted, AnAnswerGivenTwiceRunsTwiceInOrder) {
  asio::io_context io;
  std::string order;
  auto done = Posted<char>(io, std::function<void(char)>([&](char c) { order += c; }));
  done('a');
  done('b');
  io.run();
  EXPECT_EQ(order, "ab");
}

}  // namespace
}  // namespace queue::util
