// Peer daemons' connections to this one: TLS, Hello, then the dispatch table.
#include "daemon/peer_service.h"

#include <iostream>

#include "cluster/hosts_file.h"

namespace queue::daemon {

using asio::ip::tcp;

namespace {

// A peer that connects must finish its TLS handshake within this.
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

}  // namespace

Status PeerService::Open(const std::string& listen_text) {
  auto listen = cluster::ParseHostEntry(listen_text);
  if (!listen.ok()) return Fail("--listen: " + listen.message());
  asio::error_code ec;
  auto address = asio::ip::make_address(listen->host, ec);
  if (ec) {
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(listen->host, std::to_string(listen->port), ec);
    if (ec || results.empty()) return Fail("--listen: cannot resolve " + listen->host);
    address = results.begin()->endpoint().address();
  }
  tcp::endpoint endpoint(address, listen->port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Fail("cannot listen on " + listen_text + ": " + ec.message());
  return Status::Ok();
}

void PeerService::Start() {
  accept_.Start("the TCP port " + address().to_string(),
                [this](asio::ip::tcp::socket socket) { OnAccepted(std::move(socket)); });
}

void PeerService::Stop() {
  accept_.Stop();
  asio::error_code ignored;
  acceptor_.close(ignored);
}

asio::ip::address PeerService::address() const {
  asio::error_code ec;
  return acceptor_.local_endpoint(ec).address();
}

void PeerService::OnAccepted(tcp::socket socket) {
  asio::error_code ignored;
  auto remote = socket.remote_endpoint(ignored);
  const std::string host = remote.address().to_string();
  std::string address = host + ":" + std::to_string(remote.port());
  socket.set_option(tcp::no_delay(true), ignored);
  auto channel = std::make_shared<PeerChannel>(auth::TlsStream(std::move(socket), tls_.context()));
  channel->SetLimits(wire::ChannelLimits{wire::kMaxFrameBytes, kMaxPeerOutbox, nullptr});
  size_t evicted = 0;
  const uint64_t ticket = unproven_.Add(
      [weak = std::weak_ptr<PeerChannel>(channel)] {
        if (auto c = weak.lock()) c->Close("closed to make room: too many connections without a Hello");
      },
      &evicted);
  if (evicted > 0)
    LogRefusal("unproven", "more than " + std::to_string(unproven_.cap()) +
                               " connections have not said Hello; closing the oldest (" +
                               std::to_string(unproven_.evicted_total()) + " so far)");
  auto deadline = std::make_shared<asio::steady_timer>(io_, kHandshakeTimeout);
  deadline->async_wait([this, channel, ticket](const asio::error_code& e) {
    if (e) return;
    unproven_.Done(ticket);
    channel->Close("handshake timed out");
  });
  channel->stream().async_handshake(
      asio::ssl::stream_base::server, [this, channel, address, host, deadline, ticket](const asio::error_code& e) {
        deadline->cancel();
        if (e) {
          unproven_.Done(ticket);
          if (!channel->closed())
            LogRefusal(host, "refused connection from " + address + ": " + auth::DescribeHandshakeFailure(e));
          return channel->Close("handshake failed");
        }
        OnHandshake(channel, address, host, ticket);
      });
}

void PeerService::LogRefusal(const std::string& host, const std::string& line) {
  if (auto text = refusals_.Note(host, line, RefusalLog::Clock::now())) std::cerr << "queued: " << *text << "\n";
}

void PeerService::OnHandshake(const std::shared_ptr<PeerChannel>& channel, const std::string& address,
                              const std::string& host, uint64_t ticket) {
  auto peer = std::make_shared<std::string>();
  channel->Start(
      [this, weak = std::weak_ptr<PeerChannel>(channel), peer, ticket](wire::MessageType type, std::string_view p) {
        if (auto c = weak.lock()) OnFrame(c, peer, type, p, ticket);
      },
      [this, address, host, peer, ticket](const std::string& reason) {
        if (reason == "peer closed" || reason == "daemon stopping") {
          if (peer->empty()) unproven_.Done(ticket);
          return;
        }
        if (!peer->empty()) {
          std::cerr << "queued: connection from " << *peer << " closed: " << reason << "\n";
          return;
        }
        unproven_.Done(ticket);
        LogRefusal(host, "connection from " + address + " closed: " + reason);
      });
}

void PeerService::OnFrame(const std::shared_ptr<PeerChannel>& channel, const std::shared_ptr<std::string>& peer,
                          wire::MessageType type, std::string_view payload, uint64_t ticket) {
  if (type == wire::MessageType::kHello) {
    if (!peer->empty()) return channel->Close("a second Hello");
    auto hello = wire::DecodePayload<wire::Hello>(payload);
    if (!hello.ok()) return channel->Close(hello.message());
    if (hello->version != wire::kProtocolVersion)
      return channel->Close("peer speaks protocol version " + std::to_string(hello->version));
    if (!listed_(hello->name) || hello->name == self_)
      return channel->Close("peer \"" + hello->name + "\" is not in the hosts file");
    *peer = hello->name;
    unproven_.Done(ticket);  // proved: no longer among those closed to make room
    return channel->Send(wire::Hello{wire::kProtocolVersion, wire::Role::kDaemon, self_});
  }
  if (peer->empty()) return channel->Close("no Hello from peer");
  auto handler = handlers_.find(type);
  if (handler == handlers_.end())
    return channel->Close("unexpected message " + std::to_string(static_cast<int>(type)));
  handler->second(PeerFrame{channel, *peer}, payload);
}

}  // namespace queue::daemon
