// Local clients on queued's Unix socket.
#include "daemon/client_service.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>

#include "daemon/caller_limits.h"

namespace queue::daemon {

namespace {

// Who is on the other end of a Unix socket, from the kernel.
Result<Caller> ReadCaller(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return Fail("SO_PEERCRED failed: " + ErrnoText(errno));
  Caller who{cred.uid, cred.gid, {}, ReadPeerLimits(fd, cred.pid, cred.uid)};
  std::vector<gid_t> groups(256);
  socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
    groups.resize(bytes / sizeof(gid_t));
    who.groups.assign(groups.begin(), groups.end());
  }
  return who;
}

// A reason without its numbers: each kind of close is logged once a minute
// per uid, however the numbers in it vary.
std::string KindOf(const std::string& reason) {
  std::string kind;
  for (char c : reason)
    if (c < '0' || c > '9') kind += c;
  return kind;
}

}  // namespace

Status ClientService::Open(const std::string& path) {
  LocalSocket probe(io_);
  asio::error_code ec;
  probe.connect(asio::local::stream_protocol::endpoint(path), ec);
  if (!ec) return Fail("another queued is already serving " + path);
  ::unlink(path.c_str());
  acceptor_.open(asio::local::stream_protocol(), ec);
  if (!ec) acceptor_.bind(asio::local::stream_protocol::endpoint(path), ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Fail("cannot listen on " + path + ": " + ec.message());
  path_ = path;
  // Anyone local may ask; who they are comes from the kernel, not from them.
  ::chmod(path.c_str(), 0666);
  return Status::Ok();
}

void ClientService::Start() {
  accept_.Start("the Unix socket " + path_, [this](LocalSocket socket) { OnAccepted(std::move(socket)); });
}

void ClientService::Stop() {
  accept_.Stop();
  asio::error_code ignored;
  acceptor_.close(ignored);
  if (!path_.empty()) ::unlink(path_.c_str());
}

void ClientService::OnAccepted(LocalSocket socket) {
  auto who = ReadCaller(socket.native_handle());
  if (!who.ok()) {
    std::cerr << "queued: refused a local client: " << who.message() << "\n";
    return;
  }
  Caller caller = std::move(who.value());
  ConnectionTable::Admission admission = table_->Admit(caller.uid);
  if (!admission.slot) return Refuse(socket, caller.uid, admission.refusal);
  auto channel = std::make_shared<ClientChannel>(std::move(socket));
  channel->SetLimits(wire::ChannelLimits{kMaxRequestBytes, kMaxRepliesBytes, admission.budget});
  const uint32_t uid = caller.uid;
  channel->Start(
      [this, weak = std::weak_ptr<ClientChannel>(channel), caller = std::move(caller)](wire::MessageType type,
                                                                                       std::string_view p) {
        if (auto c = weak.lock()) OnFrame(c, caller, type, p);
      },
      // The slot is given back when this handler is destroyed: after it ran,
      // or with the channel.
      [this, uid, slot = admission.slot](const std::string& reason) {
        if (reason != "peer closed") Log("closed uid " + std::to_string(uid) + ": " + KindOf(reason), "closed a connection from uid " + std::to_string(uid) + ": " + reason);
      });
}

void ClientService::Refuse(LocalSocket& socket, uint32_t uid, const std::string& why) {
  Log("refused uid " + std::to_string(uid), "refused a connection from uid " + std::to_string(uid) + ": " + why);
  // One small frame fits the socket's buffer; a client that does not read
  // it loses only its own answer.
  std::string frame = wire::MakeFrame(wire::ErrorReply{"queued refuses the connection: " + why});
  (void)::send(socket.native_handle(), frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  asio::error_code ignored;
  socket.close(ignored);
}

void ClientService::Log(const std::string& key, const std::string& line) {
  if (auto text = refusals_.Note(key, line, RefusalLog::Clock::now()))
    std::cerr << "queued: " << *text << "\n";
}

void ClientService::OnFrame(const std::shared_ptr<ClientChannel>& channel, const Caller& who, wire::MessageType type,
                            std::string_view payload) {
  auto refuse = [&](const std::string& why) {
    channel->Send(wire::ErrorReply{why});
    channel->CloseAfterFlush(why);
  };
  switch (type) {
    case wire::MessageType::kHello: {
      auto hello = wire::DecodePayload<wire::Hello>(payload);
      if (!hello.ok()) return refuse(hello.message());
      if (hello->version != wire::kProtocolVersion)
        return refuse("client speaks protocol version " + std::to_string(hello->version) + ", queued speaks " +
                      std::to_string(wire::kProtocolVersion));
      return channel->Send(wire::Hello{wire::kProtocolVersion, wire::Role::kDaemon, self_});
    }
    case wire::MessageType::kSubmitRequest: {
      auto request = wire::DecodePayload<wire::SubmitRequest>(payload);
      if (!request.ok()) return refuse(request.message());
      return handlers_.submit(channel, who, std::move(request->spec));
    }
    case wire::MessageType::kBulkSubmitRequest: {
      auto request = wire::DecodePayload<wire::BulkSubmitRequest>(payload);
      if (!request.ok()) return refuse(request.message());
      return handlers_.bulk_submit(channel, who, std::move(request.value()));
    }
    case wire::MessageType::kStatusRequest:
      return channel->Send(wire::StatusReply{handlers_.status(who)});
    case wire::MessageType::kJobsRequest: {
      auto request = wire::DecodePayload<wire::JobsRequest>(payload);
      if (!request.ok()) return refuse(request.message());
      return channel->Send(wire::StatusReply{handlers_.jobs(who, request->include_finished)});
    }
    case wire::MessageType::kCancelRequest:
    case wire::MessageType::kMigrateRequest:
    case wire::MessageType::kOutputRequest: {
      std::weak_ptr<ClientChannel> weak = channel;  // the client may leave before a forwarded answer
      return handlers_.job_request(who, type, payload, [weak](wire::MessageType reply_type, std::string reply) {
        if (auto client = weak.lock()) client->SendFrame(wire::EncodeFrame(reply_type, reply));
      });
    }
    default:
      return refuse("unexpected message " + std::to_string(static_cast<int>(type)));
  }
}

}  // namespace queue::daemon
