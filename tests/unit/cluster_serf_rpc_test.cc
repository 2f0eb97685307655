// Serf's RPC codec (cluster/serf_rpc): requests as the agent reads them, and
// answers and events as the agent writes them (built here with msgpack the
// way Serf's Go codec does), fed in any pieces, within bounds.
#define MSGPACK_NO_BOOST
#include "cluster/serf_rpc.h"

#include <gtest/gtest.h>

#include <msgpack.hpp>

namespace queue::cluster::serf {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

std::string Header(uint64_t seq, const std::string& error = "") {
  msgpack::sbuffer b;
  Packer p(&b);
  p.pack_map(2);
  p.pack(std::string("Seq"));
  p.pack(seq);
  p.pack(std::string("Error"));
  p.pack(error);
  return std::string(b.data(), b.size());
}

// A member as Serf writes it: its address a 16-byte Go net.IP.
void PackMember(Packer& p, const std::string& name, uint8_t last_octet, const std::string& status) {
  p.pack_map(7);
  p.pack(std::string("Name"));
  p.pack(name);
  p.pack(std::string("Addr"));
  const char ip[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\xff', '\xff', 127, 0, 0, static_cast<char>(last_octet)};
  p.pack_bin(16);
  p.pack_bin_body(ip, 16);
  p.pack(std::string("Port"));
  p.pack(7946);
  p.pack(std::string("Tags"));
  p.pack(std::map<std::string, std::string>{{"queue", name + ":15000"}});
  p.pack(std::string("Status"));
  p.pack(status);
  p.pack(std::string("ProtocolMin"));
  p.pack(1);
  p.pack(std::string("DelegateCur"));
  p.pack(4);
}

std::string MembersBody(const std::vector<std::pair<std::string, std::string>>& members, const std::string& event = "") {
  msgpack::sbuffer b;
  Packer p(&b);
  p.pack_map(event.empty() ? 1 : 2);
  if (!event.empty()) {
    p.pack(std::string("Event"));
    p.pack(event);
  }
  p.pack(std::string("Members"));
  p.pack_array(static_cast<uint32_t>(members.size()));
  uint8_t octet = 1;
  for (const auto& [name, status] : members) PackMember(p, name, octet++, status);
  return std::string(b.data(), b.size());
}

msgpack::object_handle Unpack(const std::string& bytes, size_t& offset) {
  return msgpack::unpack(bytes.data(), bytes.size(), offset);
}

std::vector<Reply> FeedByteByByte(ReplyReader& reader, const std::string& bytes) {
  std::vector<Reply> replies;
  for (char c : bytes) {
    EXPECT_TRUE(reader.Feed(std::string_view(&c, 1)).ok());
    for (;;) {
      auto next = reader.Next();
      EXPECT_TRUE(next.ok()) << next.message();
      if (!next.ok() || !next->has_value()) break;
      replies.push_back(std::move(**next));
    }
  }
  return replies;
}

TEST(SerfRpc, RequestsAreAHeaderMapAndABodyMap) {
  std::string bytes = EncodeHandshake(0) + EncodeStream(1, "member-join") + EncodeMembers(2);
  size_t offset = 0;
  auto header = Unpack(bytes, offset);
  using Fields = std::map<std::string, msgpack::object>;
  EXPECT_EQ(header.get().as<Fields>().at("Command").as<std::string>(), "handshake");
  auto body = Unpack(bytes, offset);
  EXPECT_EQ(body.get().as<Fields>().at("Version").as<int>(), kIpcVersion);
  // Each handle owns the memory its objects point into: kept while they are read.
  auto stream_handle = Unpack(bytes, offset);
  auto stream = stream_handle.get().as<Fields>();
  EXPECT_EQ(stream.at("Command").as<std::string>(), "stream");
  EXPECT_EQ(stream.at("Seq").as<uint64_t>(), 1U);
  auto type_handle = Unpack(bytes, offset);
  EXPECT_EQ(type_handle.get().as<Fields>().at("Type").as<std::string>(), "member-join");
  auto members_handle = Unpack(bytes, offset);
  auto members = members_handle.get().as<Fields>();
  EXPECT_EQ(members.at("Command").as<std::string>(), "members");
  EXPECT_EQ(offset, bytes.size()) << "members has no body";
  std::string join = EncodeJoin(7, {"127.0.0.1:7946"});
  offset = 0;
  Unpack(join, offset);
  auto join_handle = Unpack(join, offset);
  auto join_body = join_handle.get().as<Fields>();
  EXPECT_EQ(join_body.at("Existing").as<std::vector<std::string>>(), std::vector<std::string>{"127.0.0.1:7946"});
}

TEST(SerfRpc, AnswersAndStreamEventsDecodeFromAnyPieces) {
  ReplyReader reader;
  reader.Expect(0, Body::kNone);
  reader.Expect(1, Body::kStream);
  reader.Expect(2, Body::kMembers);
  std::string bytes = Header(0) + Header(1) + Header(2) + MembersBody({{"a", "alive"}, {"b", "failed"}}) + Header(1) +
                      MembersBody({{"c", "alive"}}, "member-join") + Header(1) +
                      MembersBody({{"b", "alive"}}, "member-update");
  auto replies = FeedByteByByte(reader, bytes);
  ASSERT_EQ(replies.size(), 5U);
  EXPECT_EQ(replies[0].seq, 0U);
  EXPECT_EQ(replies[1].seq, 1U);
  EXPECT_EQ(replies[1].event, "") << "a stream's first answer is its acknowledgement";
  ASSERT_EQ(replies[2].members.size(), 2U);
  const Member& a = replies[2].members[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.address, "127.0.0.1");
  EXPECT_EQ(a.port, 7946);
  EXPECT_EQ(a.tags.at("queue"), "a:15000");
  EXPECT_EQ(a.status, MemberStatus::kAlive);
  EXPECT_EQ(replies[2].members[1].status, MemberStatus::kFailed);
  EXPECT_EQ(replies[3].event, "member-join");
  ASSERT_EQ(replies[3].members.size(), 1U);
  EXPECT_EQ(replies[3].members[0].name, "c");
  EXPECT_EQ(replies[4].event, "member-update");
}

TEST(SerfRpc, AnErrorAnswerHasNoBody) {
  ReplyReader reader;
  reader.Expect(5, Body::kMembers);
  reader.Expect(6, Body::kNone);
  auto replies = FeedByteByByte(reader, Header(5, "permission denied") + Header(6));
  ASSERT_EQ(replies.size(), 2U);
  EXPECT_EQ(replies[0].error, "permission denied");
  EXPECT_EQ(replies[1].seq, 6U);
}

TEST(SerfRpc, WhatNoAgentSendsIsAnErrorNotACrashOrAnAllocation) {
  {
    ReplyReader reader;  // an answer to nothing asked
    ASSERT_TRUE(reader.Feed(Header(9)).ok());
    EXPECT_FALSE(reader.Next().ok());
  }
  {
    ReplyReader reader;  // not msgpack at all
    ASSERT_TRUE(reader.Feed(std::string("\xc1\xc1\xc1\xc1", 4)).ok());
    EXPECT_FALSE(reader.Next().ok());
  }
  {
    ReplyReader reader;  // an array announcing 4 billion members: refused before any allocation
    reader.Expect(1, Body::kMembers);
    std::string huge = Header(1) + std::string("\x81\xa7Members\xdd\xff\xff\xff\xff", 14);
    ASSERT_TRUE(reader.Feed(huge).ok());
    EXPECT_FALSE(reader.Next().ok());
  }
  {
    ReplyReader reader;  // a member without a name
    reader.Expect(1, Body::kMembers);
    msgpack::sbuffer b;
    Packer p(&b);
    p.pack_map(1);
    p.pack(std::string("Members"));
    p.pack_array(1);
    p.pack_map(1);
    p.pack(std::string("Port"));
    p.pack(1);
    ASSERT_TRUE(reader.Feed(Header(1) + std::string(b.data(), b.size())).ok());
    EXPECT_FALSE(reader.Next().ok());
  }
  {
    ReplyReader reader;  // more than the buffer's bound without a whole message
    EXPECT_FALSE(reader.Feed(std::string(ReplyReader::kMaxBuffered + 1, '\xdb')).ok());
  }
}

}  // namespace
}  // namespace queue::cluster::serf
