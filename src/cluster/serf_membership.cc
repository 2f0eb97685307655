// Serf's member list over its RPC, kept current from its member events.
#include "cluster/serf_membership.h"

#include <iostream>

namespace queue::cluster {

namespace {

using asio::ip::tcp;
constexpr std::chrono::seconds kReconnectAfter{1};
constexpr const char* kMemberEvents = "member-join,member-leave,member-failed,member-update,member-reap";

}  // namespace

std::shared_ptr<SerfMembership> SerfMembership::Create(asio::io_context& io, std::string rpc, std::string rpc_key) {
  return std::shared_ptr<SerfMembership>(new SerfMembership(io, std::move(rpc), std::move(rpc_key)));
}

SerfMembership::SerfMembership(asio::io_context& io, std::string rpc, std::string rpc_key)
    : io_(io), rpc_(std::move(rpc)), rpc_key_(std::move(rpc_key)), socket_(io), retry_(io) {}

size_t SerfMembership::CountIn(serf::MemberStatus status) const {
  size_t n = 0;
  for (const auto& [name, member] : members_) n += member.status == status;
  return n;
}

void SerfMembership::Start(OnChange on_change) {
  on_change_ = std::move(on_change);
  stopped_ = false;
  Connect();
}

void SerfMembership::Stop() {
  stopped_ = true;
  retry_.cancel();
  asio::error_code ignored;
  socket_.close(ignored);
  connected_ = false;
}

void SerfMembership::Connect() {
  auto colon = rpc_.rfind(':');
  asio::error_code ec;
  auto address = asio::ip::make_address(rpc_.substr(0, colon), ec);
  if (colon == std::string::npos || ec) return Drop("bad serf RPC address " + rpc_);
  tcp::endpoint endpoint(address, static_cast<uint16_t>(std::stoul(rpc_.substr(colon + 1))));
  std::weak_ptr<SerfMembership> weak = weak_from_this();
  socket_ = tcp::socket(io_);
  socket_.async_connect(endpoint, [weak](const asio::error_code& error) {
    auto self = weak.lock();
    if (!self || self->stopped_) return;
    if (error) return self->Drop("cannot reach the serf agent at " + self->rpc_ + ": " + error.message());
    self->OnConnected();
  });
}

void SerfMembership::OnConnected() {
  connected_ = true;
  last_error_.clear();
  reader_ = std::make_unique<serf::ReplyReader>();
  outbox_.clear();
  writing_ = false;
  handshake_seq_ = next_seq_++;
  auth_seq_ = rpc_key_.empty() ? 0 : next_seq_++;
  members_seq_ = next_seq_++;
  stream_seq_ = next_seq_++;
  reader_->Expect(handshake_seq_, serf::Body::kNone);
  if (auth_seq_ != 0) reader_->Expect(auth_seq_, serf::Body::kNone);
  reader_->Expect(members_seq_, serf::Body::kMembers);
  reader_->Expect(stream_seq_, serf::Body::kStream);
  // Subscribed before the list is asked: an event between the two is not lost
  // (an event older than the list is overwritten by it).
  Send(serf::EncodeHandshake(handshake_seq_) + (auth_seq_ != 0 ? serf::EncodeAuth(auth_seq_, rpc_key_) : "") +
       serf::EncodeStream(stream_seq_, kMemberEvents) + serf::EncodeMembers(members_seq_));
  Read();
}

void SerfMembership::Read() {
  std::weak_ptr<SerfMembership> weak = weak_from_this();
  socket_.async_read_some(asio::buffer(buffer_), [weak](const asio::error_code& error, size_t n) {
    auto self = weak.lock();
    if (!self || self->stopped_) return;
    if (error) return self->Drop("the serf agent at " + self->rpc_ + " went away: " + error.message());
    if (Status fed = self->reader_->Feed(std::string_view(self->buffer_.data(), n)); !fed.ok())
      return self->Drop(fed.message());
    for (;;) {
      auto reply = self->reader_->Next();
      if (!reply.ok()) return self->Drop(reply.message());
      if (!reply->has_value()) break;
      self->OnReply(std::move(**reply));
      if (self->stopped_ || !self->connected_) return;
    }
    self->Read();
  });
}

void SerfMembership::OnReply(serf::Reply reply) {
  if (reply.seq == handshake_seq_ && !reply.error.empty()) return Drop("the serf agent refused us: " + reply.error);
  if (auth_seq_ != 0 && reply.seq == auth_seq_ && !reply.error.empty())
    return Drop("the serf agent refused our RPC key: " + reply.error);
  if (auto waiting = pending_.find(reply.seq); waiting != pending_.end()) {
    auto done = std::move(waiting->second);
    pending_.erase(waiting);
    done(reply.error.empty() ? Status::Ok() : Status(Fail(reply.error)));
    return;
  }
  if (!reply.error.empty()) return Drop("the serf agent: " + reply.error);
  for (const auto& member : reply.members) {
    if (reply.event == "member-reap") {
      serf::Member gone = member;
      gone.status = serf::MemberStatus::kLeft;
      members_.erase(member.name);
      if (on_change_) on_change_(gone);
      continue;
    }
    Update(member);
  }
}

void SerfMembership::Update(const serf::Member& member) {
  auto [it, added] = members_.try_emplace(member.name, member);
  const bool changed = added || it->second.status != member.status || it->second.tags != member.tags ||
                       it->second.address != member.address || it->second.port != member.port;
  it->second = member;
  if (changed && on_change_) on_change_(member);
}

void SerfMembership::Join(std::vector<std::string> addresses, std::function<void(Status)> done) {
  if (!connected_) {
    asio::post(io_, [done = std::move(done), rpc = rpc_] { done(Fail("not connected to the serf agent at " + rpc)); });
    return;
  }
  uint64_t seq = next_seq_++;
  reader_->Expect(seq, serf::Body::kNone);
  pending_[seq] = std::move(done);
  Send(serf::EncodeJoin(seq, addresses));
}

void SerfMembership::Send(std::string bytes) {
  outbox_.push_back(std::move(bytes));
  if (!writing_) WriteNext();
}

void SerfMembership::WriteNext() {
  if (outbox_.empty()) {
    writing_ = false;
    return;
  }
  writing_ = true;
  std::weak_ptr<SerfMembership> weak = weak_from_this();
  asio::async_write(socket_, asio::buffer(outbox_.front()), [weak](const asio::error_code& error, size_t) {
    auto self = weak.lock();
    if (!self || self->stopped_ || !self->connected_) return;
    if (error) return self->Drop("cannot write to the serf agent: " + error.message());
    self->outbox_.pop_front();
    self->WriteNext();
  });
}

// The connection failed: said once per cause, tried again in a second.
void SerfMembership::Drop(const std::string& why) {
  if (why != last_error_) std::cerr << "queued: " << why << "\n";
  last_error_ = why;
  connected_ = false;
  asio::error_code ignored;
  socket_.close(ignored);
  for (auto& [seq, done] : std::exchange(pending_, {}))
    asio::post(io_, [done = std::move(done), why] { done(Fail(why)); });
  retry_.expires_after(kReconnectAfter);
  std::weak_ptr<SerfMembership> weak = weak_from_this();
  retry_.async_wait([weak](const asio::error_code& ec) {
    auto self = weak.lock();
    if (!self || ec || self->stopped_) return;
    self->Connect();
  });
}

}  // namespace queue::cluster
