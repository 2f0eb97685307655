// Serf's RPC protocol, as its agent speaks it on -rpc-addr: each message is
// msgpack, a request a header map {Command, Seq} and for some commands a body
// map, each answer a header map {Seq, Error} followed, for the commands that
// have one, by a body map. A stream subscription is answered once with a
// header alone, then by a header and an event body for each event.
//
// Pure: requests are encoded to bytes, and what the agent sends is decoded
// from bytes fed in any pieces, bounded (a buffer limit, and limits on every
// count and length msgpack could announce), so that a confused or hostile
// agent costs an error, never unbounded memory. msgpack stays behind this
// header. The connection is cluster/serf_membership's.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace queue::cluster::serf {

// A member's state as Serf's gossip sees it ("alive", "leaving", "left",
// "failed"; anything else, e.g. "none" in a newer agent, is kOther).
enum class MemberStatus { kAlive, kLeaving, kLeft, kFailed, kOther };
std::string_view StatusName(MemberStatus status);

struct Member {
  std::string name;
  std::string address;  // its gossip address, as text ("127.0.0.1", "::1")
  uint16_t port = 0;
  std::map<std::string, std::string> tags;
  MemberStatus status = MemberStatus::kOther;
};

// The agent's IPC version this speaks (handshake).
inline constexpr int kIpcVersion = 1;

std::string EncodeHandshake(uint64_t seq);
// The agent's RPC key (its config's rpc_auth), given right after the handshake.
std::string EncodeAuth(uint64_t seq, std::string_view key);
std::string EncodeMembers(uint64_t seq);
// Subscribes to events of the comma-separated `types` ("member-join,member-failed").
std::string EncodeStream(uint64_t seq, std::string_view types);
// Asks the agent to join the cluster through the gossip addresses given.
std::string EncodeJoin(uint64_t seq, const std::vector<std::string>& addresses);
std::string EncodeLeave(uint64_t seq);

// What follows the header of an answer, by the request it answers.
enum class Body { kNone, kMembers, kStream };

struct Reply {
  uint64_t seq = 0;
  std::string error;            // the agent's, "" on success
  std::vector<Member> members;  // a members answer, or the members an event is about
  std::string event;            // a stream's event ("member-join", ...); "" for its first answer
};

class ReplyReader {
 public:
  static constexpr size_t kMaxBuffered = 16u << 20;   // bytes held before a whole message
  static constexpr size_t kMaxMembers = 200000;       // in one answer or event
  static constexpr size_t kMaxText = 4096;            // a name, tag or address
  static constexpr size_t kMaxTags = 64;              // per member

  ReplyReader();
  ~ReplyReader();
  ReplyReader(const ReplyReader&) = delete;
  ReplyReader& operator=(const ReplyReader&) = delete;

  // Says what answers to `seq` carry; an answer to a seq not expected is an error.
  void Expect(uint64_t seq, Body body);
  void Forget(uint64_t seq);
  // More bytes from the agent; an error when they would exceed kMaxBuffered.
  Status Feed(std::string_view bytes);
  // The next whole answer, nullopt until more bytes come; an error for what
  // the protocol does not allow (the connection is then to be dropped).
  Result<std::optional<Reply>> Next();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace queue::cluster::serf
