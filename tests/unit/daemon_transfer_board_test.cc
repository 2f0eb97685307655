// Tests of the board of restart files in transit (queue --jobs "transfer").
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "daemon/transfer_board.h"

namespace queue::daemon {
namespace {

using namespace std::chrono_literals;
using Dir = Transfer::Direction;

TEST(TransferBoard, FollowsOneTransferToItsEnd) {
  TransferBoard board;
  auto t0 = TransferBoard::Clock::now();
  board.Moved(7, Dir::kHome, "h:1", 2, 1 << 20, 0, t0);
  board.Moved(7, Dir::kHome, "h:1", 2, 3 << 20, 0, t0 + 1s);
  const Transfer* t = board.Find(7);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->bytes, 3U << 20);
  EXPECT_EQ(t->size, 0U);
  EXPECT_FALSE(t->complete);
  EXPECT_DOUBLE_EQ(t->seconds(t0 + 2s), 2.0);
  board.Completed(7, Dir::kHome, 4 << 20, t0 + 3s);
  EXPECT_TRUE(t->complete);
  EXPECT_EQ(t->size, 4U << 20);
  EXPECT_DOUBLE_EQ(t->seconds(t0 + 100s), 3.0) << "a finished transfer's time stops at its end";
}

TEST(TransferBoard, AnotherDirectionHostRunOrAResendStartsAfresh) {
  TransferBoard board;
  auto t0 = TransferBoard::Clock::now();
  board.Moved(1, Dir::kHome, "a:1", 0, 100, 0, t0);
  board.Completed(1, Dir::kHome, 100, t0 + 1s);
  board.Moved(1, Dir::kOut, "b:1", 0, 10, 100, t0 + 2s);
  EXPECT_EQ(board.Find(1)->direction, Dir::kOut);
  EXPECT_EQ(board.Find(1)->bytes, 10U);
  EXPECT_EQ(board.Find(1)->started, t0 + 2s);
  board.Moved(1, Dir::kOut, "b:1", 0, 5, 100, t0 + 3s);  // a resend after a broken link
  EXPECT_EQ(board.Find(1)->started, t0 + 3s);
  board.Completed(1, Dir::kHome, 100, t0 + 4s);  // not the transfer under way: ignored
  EXPECT_FALSE(board.Find(1)->complete);
}

TEST(TransferBoard, IsBounded) {
  TransferBoard board;
  auto t0 = TransferBoard::Clock::now();
  for (uint64_t id = 1; id <= TransferBoard::kMaxJobs + 10; ++id)
    board.Moved(id, Dir::kOut, "h:1", 0, 1, 1, t0 + std::chrono::milliseconds(id));
  EXPECT_EQ(board.size(), TransferBoard::kMaxJobs);
  EXPECT_EQ(board.Find(1), nullptr) << "the least lately moved gives way";
  EXPECT_NE(board.Find(TransferBoard::kMaxJobs + 10), nullptr);
}

// The listener hears of a start, of a completion, and in between at most
// once per kNewsEvery, whatever the number of chunks.
TEST(TransferBoard, NewsComesAtTheStartTheEndAndAFewTimesASecondBetween) {
  TransferBoard board;
  std::vector<std::pair<uint64_t, Transfer>> heard;
  board.OnNews([&](uint64_t id, const Transfer& t) { heard.emplace_back(id, t); });
  auto t0 = TransferBoard::Clock::now();
  for (int ms = 0; ms < 1000; ms += 10)  // 100 chunks in a second
    board.Moved(3, Dir::kHome, "h:1", 1, (ms + 10) * 1000, 0, t0 + std::chrono::milliseconds(ms));
  ASSERT_EQ(heard.size(), 4U) << "at 0, 250, 500 and 750 ms";
  EXPECT_EQ(heard[0].second.bytes, 10000U);
  EXPECT_EQ(heard[1].second.bytes, 260000U);
  board.Completed(3, Dir::kHome, 1000000, t0 + 1000ms);
  ASSERT_EQ(heard.size(), 5U) << "the end is always told";
  EXPECT_TRUE(heard.back().second.complete);
  board.Moved(3, Dir::kOut, "g:1", 1, 10, 1000000, t0 + 1001ms);
  ASSERT_EQ(heard.size(), 6U) << "a new transfer is told at once";
  EXPECT_EQ(heard.back().second.direction, Dir::kOut);
  EXPECT_EQ(heard.back().first, 3U);
}

}  // namespace
}  // namespace queue::daemon
