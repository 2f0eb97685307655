// Serf's RPC messages to and from bytes, with msgpack-c's streaming unpacker
// under limits of its own.
#define MSGPACK_NO_BOOST
#include "cluster/serf_rpc.h"

#include <arpa/inet.h>

#include <cstring>
#include <functional>
#include <msgpack.hpp>

namespace queue::cluster::serf {

namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

void PackHeader(Packer& p, std::string_view command, uint64_t seq) {
  p.pack_map(2);
  p.pack(std::string("Command"));
  p.pack(std::string(command));
  p.pack(std::string("Seq"));
  p.pack(seq);
}

std::string Bytes(const msgpack::sbuffer& b) { return std::string(b.data(), b.size()); }

// msgpack objects as Serf's Go codec writes them: strings as str (or, from
// older agents, raw bytes), addresses as bin.
std::optional<std::string_view> Text(const msgpack::object& o, size_t max) {
  std::string_view text;
  if (o.type == msgpack::type::STR) text = std::string_view(o.via.str.ptr, o.via.str.size);
  else if (o.type == msgpack::type::BIN) text = std::string_view(o.via.bin.ptr, o.via.bin.size);
  else return std::nullopt;
  if (text.size() > max) return std::nullopt;
  return text;
}

const msgpack::object* Field(const msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP) return nullptr;
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    auto name = Text(map.via.map.ptr[i].key, ReplyReader::kMaxText);
    if (name && *name == key) return &map.via.map.ptr[i].val;
  }
  return nullptr;
}

std::optional<uint64_t> Unsigned(const msgpack::object* o) {
  if (o == nullptr || o->type != msgpack::type::POSITIVE_INTEGER) return std::nullopt;
  return o->via.u64;
}

// Go's net.IP: 4 bytes, or 16 (IPv4 ones mapped into IPv6).
std::optional<std::string> AddressText(const msgpack::object* o) {
  if (o == nullptr) return std::nullopt;
  auto raw = Text(*o, 16);
  if (!raw) return std::nullopt;
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  char text[INET6_ADDRSTRLEN] = {};
  if (raw->size() == 16 && std::memcmp(raw->data(), kMapped, 12) == 0) raw = raw->substr(12);
  if (raw->size() == 4 && inet_ntop(AF_INET, raw->data(), text, sizeof text)) return std::string(text);
  if (raw->size() == 16 && inet_ntop(AF_INET6, raw->data(), text, sizeof text)) return std::string(text);
  return std::nullopt;
}

MemberStatus StatusOf(std::string_view name) {
  if (name == "alive") return MemberStatus::kAlive;
  if (name == "leaving") return MemberStatus::kLeaving;
  if (name == "left") return MemberStatus::kLeft;
  if (name == "failed") return MemberStatus::kFailed;
  return MemberStatus::kOther;
}

Result<Member> DecodeMember(const msgpack::object& o) {
  if (o.type != msgpack::type::MAP) return Fail("a member that is not a map");
  Member m;
  auto name = Field(o, "Name");
  auto name_text = name ? Text(*name, ReplyReader::kMaxText) : std::nullopt;
  if (!name_text || name_text->empty()) return Fail("a member without a name");
  m.name = *name_text;
  auto address = AddressText(Field(o, "Addr"));
  if (!address) return Fail("member " + m.name + " has no address");
  m.address = *address;
  auto port = Unsigned(Field(o, "Port"));
  if (!port || *port > 65535) return Fail("member " + m.name + " has no port");
  m.port = static_cast<uint16_t>(*port);
  auto status = Field(o, "Status");
  auto status_text = status ? Text(*status, ReplyReader::kMaxText) : std::nullopt;
  if (!status_text) return Fail("member " + m.name + " has no status");
  m.status = StatusOf(*status_text);
  if (auto tags = Field(o, "Tags"); tags != nullptr && tags->type != msgpack::type::NIL) {
    if (tags->type != msgpack::type::MAP || tags->via.map.size > ReplyReader::kMaxTags)
      return Fail("member " + m.name + " has bad tags");
    for (uint32_t i = 0; i < tags->via.map.size; ++i) {
      auto key = Text(tags->via.map.ptr[i].key, ReplyReader::kMaxText);
      auto value = Text(tags->via.map.ptr[i].val, ReplyReader::kMaxText);
      if (!key || !value) return Fail("member " + m.name + " has bad tags");
      m.tags.emplace(*key, *value);
    }
  }
  return m;
}

Status DecodeMembers(const msgpack::object* list, std::vector<Member>& out) {
  if (list == nullptr || list->type == msgpack::type::NIL) return Status::Ok();
  if (list->type != msgpack::type::ARRAY || list->via.array.size > ReplyReader::kMaxMembers)
    return Fail("a member list that is not a list");
  out.reserve(list->via.array.size);
  for (uint32_t i = 0; i < list->via.array.size; ++i) {
    auto member = DecodeMember(list->via.array.ptr[i]);
    if (!member.ok()) return Fail(member.message());
    out.push_back(std::move(member.value()));
  }
  return Status::Ok();
}

}  // namespace

std::string_view StatusName(MemberStatus status) {
  switch (status) {
    case MemberStatus::kAlive: return "alive";
    case MemberStatus::kLeaving: return "leaving";
    case MemberStatus::kLeft: return "left";
    case MemberStatus::kFailed: return "failed";
    case MemberStatus::kOther: break;
  }
  return "other";
}

namespace {

// A request: its header, then its body when it has one (`body` packs it).
std::string Request(std::string_view command, uint64_t seq, const std::function<void(Packer&)>& body = nullptr) {
  msgpack::sbuffer b;
  Packer p(&b);
  PackHeader(p, command, seq);
  if (body) body(p);
  return Bytes(b);
}

}  // namespace

std::string EncodeHandshake(uint64_t seq) {
  return Request("handshake", seq, [](Packer& p) {
    p.pack_map(1);
    p.pack(std::string("Version"));
    p.pack(kIpcVersion);
  });
}

std::string EncodeAuth(uint64_t seq, std::string_view key) {
  return Request("auth", seq, [key](Packer& p) {
    p.pack_map(1);
    p.pack(std::string("AuthKey"));
    p.pack(std::string(key));
  });
}

std::string EncodeMembers(uint64_t seq) { return Request("members", seq); }

std::string EncodeStream(uint64_t seq, std::string_view types) {
  return Request("stream", seq, [types](Packer& p) {
    p.pack_map(1);
    p.pack(std::string("Type"));
    p.pack(std::string(types));
  });
}

std::string EncodeJoin(uint64_t seq, const std::vector<std::string>& addresses) {
  return Request("join", seq, [&addresses](Packer& p) {
    p.pack_map(2);
    p.pack(std::string("Existing"));
    p.pack(addresses);
    p.pack(std::string("Replay"));
    p.pack(false);
  });
}

std::string EncodeLeave(uint64_t seq) { return Request("leave", seq); }

struct ReplyReader::Impl {
  // Limits msgpack checks as it parses, before it allocates: no count or
  // length it reads may exceed what a whole buffer could hold anyway.
  msgpack::unpacker unpacker{nullptr, nullptr, MSGPACK_UNPACKER_INIT_BUFFER_SIZE,
                             msgpack::unpack_limit(kMaxMembers, 4 * kMaxTags, kMaxBuffered, kMaxBuffered, 0, 16)};
  struct Expected {
    Body body = Body::kNone;
    bool acknowledged = false;  // a stream's first answer came
  };
  std::map<uint64_t, Expected> expected;
  std::optional<Reply> header;  // a header whose body is still to come

  Result<std::optional<msgpack::object_handle>> NextObject() {
    msgpack::object_handle handle;
    try {
      if (!unpacker.next(handle)) return std::optional<msgpack::object_handle>();
    } catch (const std::exception& e) {
      return Fail(std::string("unreadable message from the serf agent: ") + e.what());
    }
    return std::optional<msgpack::object_handle>(std::move(handle));
  }
};

ReplyReader::ReplyReader() : impl_(std::make_unique<Impl>()) {}
ReplyReader::~ReplyReader() = default;

void ReplyReader::Expect(uint64_t seq, Body body) { impl_->expected[seq] = Impl::Expected{body, false}; }
void ReplyReader::Forget(uint64_t seq) { impl_->expected.erase(seq); }

Status ReplyReader::Feed(std::string_view bytes) {
  if (impl_->unpacker.nonparsed_size() + bytes.size() > kMaxBuffered)
    return Fail("the serf agent sent more than " + std::to_string(kMaxBuffered >> 20) + " MiB in one message");
  impl_->unpacker.reserve_buffer(bytes.size());
  std::memcpy(impl_->unpacker.buffer(), bytes.data(), bytes.size());
  impl_->unpacker.buffer_consumed(bytes.size());
  return Status::Ok();
}

Result<std::optional<Reply>> ReplyReader::Next() {
  auto& d = *impl_;
  for (;;) {
    auto object = d.NextObject();
    if (!object.ok()) return Fail(object.message());
    if (!object->has_value()) return std::optional<Reply>();
    const msgpack::object& o = (*object)->get();
    if (!d.header) {
      // A header: {Seq, Error}.
      auto seq = Unsigned(Field(o, "Seq"));
      if (!seq) return Fail("a message from the serf agent without a Seq");
      auto found = d.expected.find(*seq);
      if (found == d.expected.end()) return Fail("an answer from the serf agent to nothing asked (seq " + std::to_string(*seq) + ")");
      Reply reply;
      reply.seq = *seq;
      if (auto error = Field(o, "Error"); error != nullptr && error->type != msgpack::type::NIL) {
        auto text = Text(*error, kMaxText);
        if (!text) return Fail("a bad Error from the serf agent");
        reply.error = *text;
      }
      Impl::Expected& what = found->second;
      bool body = reply.error.empty() &&
                  (what.body == Body::kMembers || (what.body == Body::kStream && what.acknowledged));
      if (what.body == Body::kStream) what.acknowledged = true;
      if (what.body != Body::kStream) d.expected.erase(found);
      if (!body) return std::optional<Reply>(std::move(reply));
      d.header = std::move(reply);
      continue;
    }
    Reply reply = std::move(*d.header);
    d.header.reset();
    if (o.type != msgpack::type::MAP) return Fail("a body from the serf agent that is not a map");
    if (auto event = Field(o, "Event"); event != nullptr) {
      auto text = Text(*event, kMaxText);
      if (!text || text->empty()) return Fail("a bad Event from the serf agent");
      reply.event = *text;
    }
    if (Status members = DecodeMembers(Field(o, "Members"), reply.members); !members.ok()) return Fail(members.message());
    return std::optional<Reply>(std::move(reply));
  }
}

}  // namespace queue::cluster::serf
