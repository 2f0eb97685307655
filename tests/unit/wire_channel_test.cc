// Tests of Channel's bounds (issue 12): a payload is allocated as it arrives,
// an oversized frame closes the connection, a shared budget is charged and
// given back, and an outbox past its bound closes the connection.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <cstring>

#include <asio.hpp>

#include "wire/channel.h"

namespace queue::wire {
namespace {

using Socket = asio::local::stream_protocol::socket;

std::string Header(uint32_t payload_bytes) {
  std::string frame = EncodeFrame(MessageType::kStatusRequest, "");
  uint32_t length = htonl(payload_bytes + 2);
  std::memcpy(frame.data(), &length, 4);
  return frame;
}

struct Pair {
  asio::io_context io;
  Socket ours{io}, theirs{io};
  Pair() { asio::local::connect_pair(ours, theirs); }
  void Write(const std::string& bytes) { asio::write(theirs, asio::buffer(bytes)); }
  void RunFor(std::chrono::milliseconds ms) {
    io.restart();
    io.run_for(ms);
  }
};

TEST(ChannelLimits, AFrameLargerThanTheConnectionsLimitClosesIt) {
  Pair p;
  auto channel = std::make_shared<Channel<Socket>>(std::move(p.ours));
  channel->SetLimits(ChannelLimits{1024, SIZE_MAX, nullptr});
  std::string reason;
  channel->Start([](MessageType, std::string_view) {}, [&](const std::string& r) { reason = r; });
  p.Write(Header(2048));
  p.RunFor(std::chrono::milliseconds(200));
  EXPECT_NE(reason.find("exceeds this connection's limit of 1024"), std::string::npos) << reason;
}

TEST(ChannelLimits, APayloadIsChargedAsItArrivesAndReleasedOnceHandled) {
  Pair p;
  auto budget = std::make_shared<ByteBudget>(1 << 20, "the test");
  auto channel = std::make_shared<Channel<Socket>>(std::move(p.ours));
  channel->SetLimits(ChannelLimits{kMaxFrameBytes, SIZE_MAX, budget});
  size_t delivered = 0;
  channel->Start([&](MessageType, std::string_view payload) { delivered = payload.size(); },
                 [](const std::string&) {});
  p.Write(Header(200000));  // announces 200,000 bytes, sends none yet
  p.RunFor(std::chrono::milliseconds(100));
  EXPECT_LE(budget->used(), kReadChunk);  // one chunk at most, not the frame
  p.Write(std::string(200000, 'x'));
  p.RunFor(std::chrono::milliseconds(200));
  EXPECT_EQ(delivered, 200000u);
  EXPECT_EQ(budget->used(), 0u);
}

TEST(ChannelLimits, ASpentBudgetClosesTheConnection) {
  Pair p;
  auto budget = std::make_shared<ByteBudget>(100000, "uid 42's connections");
  ASSERT_TRUE(budget->Charge(60000));  // another connection of the same user holds this
  auto channel = std::make_shared<Channel<Socket>>(std::move(p.ours));
  channel->SetLimits(ChannelLimits{kMaxFrameBytes, SIZE_MAX, budget});
  std::string reason;
  channel->Start([](MessageType, std::string_view) {}, [&](const std::string& r) { reason = r; });
  p.Write(Header(200000) + std::string(100000, 'x'));
  p.RunFor(std::chrono::milliseconds(200));
  EXPECT_NE(reason.find("memory allowed for uid 42's connections are in use"), std::string::npos) << reason;
  channel.reset();
  p.RunFor(std::chrono::milliseconds(50));
  EXPECT_EQ(budget->used(), 60000u);  // what the closed connection held is given back
}

TEST(ChannelLimits, AnOutboxPastItsBoundClosesTheConnection) {
  Pair p;
  auto channel = std::make_shared<Channel<Socket>>(std::move(p.ours));
  channel->SetLimits(ChannelLimits{kMaxFrameBytes, 1 << 20, nullptr});
  std::string reason;
  channel->Start([](MessageType, std::string_view) {}, [&](const std::string& r) { reason = r; });
  // The other end reads nothing: the socket buffer fills, then the outbox.
  for (int i = 0; i < 64 && reason.empty(); ++i) {
    channel->SendFrame(EncodeFrame(MessageType::kStatusReply, std::string(64 * 1024, 'y')));
    p.RunFor(std::chrono::milliseconds(5));
  }
  p.RunFor(std::chrono::milliseconds(50));
  EXPECT_NE(reason.find("wait to be sent: the other end does not read them"), std::string::npos) << reason;
}

}  // namespace
}  // namespace queue::wire
