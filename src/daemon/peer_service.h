// PeerService: queued's TCP listener for the other daemons of the cluster.
// It owns the listening socket and the accept loop. A connection must finish
// a TLS 1.3 handshake keyed by the cluster key within 10 s, then name itself
// with a Hello whose name the hosts file lists (and is not this host); load
// reports it checks are for that host. Every other frame goes to the handler
// registered for its type, decoded: a dispatch table, not a switch. A frame
// that does not decode, or whose type has no handler, closes the connection.
//
// Bounds (issue 12): anyone who reaches the port can connect, so connections
// that have not yet said Hello are capped (PendingHandshakes: the oldest is
// closed to make room, and a real peer finishes in milliseconds); their
// refusals are logged at most once a minute per address; a failed accept
// (out of descriptors) pauses the loop instead of spinning; what waits to be
// sent to one peer is bounded (kMaxPeerOutbox), past which it is closed.
//
// Lifetime: handlers run on the event loop while this object lives. A handler
// that answers later must hold the channel through a weak_ptr: the peer may
// be gone by then.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <asio.hpp>

#include "auth/pending_handshakes.h"
#include "auth/psk_tls.h"
#include "daemon/accept_loop.h"
#include "daemon/accept_throttle.h"
#include "util/result.h"
#include "wire/channel.h"
#include "wire/messages.h"

namespace queue::daemon {

using PeerChannel = wire::Channel<auth::TlsStream>;

// A frame from a peer that said who it is.
struct PeerFrame {
  const std::shared_ptr<PeerChannel>& channel;
  const std::string& peer;  // its hosts-file entry
};

// Bytes queued for one peer connection, either way: well above what paced
// senders keep queued (8 MiB), so only a peer that stopped reading reaches it.
inline constexpr size_t kMaxPeerOutbox = 64 << 20;

class PeerService {
 public:
  // `listed`: whether a name is in the hosts file now (it may be reloaded).
  // `max_unproven`: connections at once that have not yet said Hello.
  PeerService(asio::io_context& io, auth::PskTlsContext& tls, std::string self,
              std::function<bool(const std::string&)> listed, size_t max_unproven)
      : io_(io), tls_(tls), self_(std::move(self)), listed_(std::move(listed)), acceptor_(io),
        accept_(acceptor_, "the TCP port"), unproven_(max_unproven) {}

  // Listens on `listen` (host:port as in the hosts file; a name is resolved).
  Status Open(const std::string& listen);
  void Start();
  void Stop();
  // The address peers and stubs reach this host on.
  asio::ip::address address() const;

  // Handles message M from peers; M is decoded before `handler` sees it.
  template <class M>
  void Handle(std::function<void(const PeerFrame&, M)> handler) {
    handlers_[M::kType] = [handler = std::move(handler)](const PeerFrame& frame, std::string_view payload) {
      auto message = wire::DecodePayload<M>(payload);
      if (!message.ok()) return frame.channel->Close(message.message());
      handler(frame, std::move(message.value()));
    };
  }

 private:
  void OnAccepted(asio::ip::tcp::socket socket);
  void OnHandshake(const std::shared_ptr<PeerChannel>& channel, const std::string& address, const std::string& host,
                   uint64_t ticket);
  void OnFrame(const std::shared_ptr<PeerChannel>& channel, const std::shared_ptr<std::string>& peer,
               wire::MessageType type, std::string_view payload, uint64_t ticket);
  // Logs a refusal at most once a minute per address (its host part).
  void LogRefusal(const std::string& host, const std::string& line);

  asio::io_context& io_;
  auth::PskTlsContext& tls_;
  std::string self_;
  std::function<bool(const std::string&)> listed_;
  asio::ip::tcp::acceptor acceptor_;
  AcceptLoop<asio::ip::tcp::acceptor> accept_;
  auth::PendingHandshakes unproven_;
  RefusalLog refusals_;
  std::map<wire::MessageType, std::function<void(const PeerFrame&, std::string_view)>> handlers_;
};

}  // namespace queue::daemon
