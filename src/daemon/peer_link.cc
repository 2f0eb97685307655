// Outgoing daemon-to-daemon connection.
#include "daemon/peer_link.h"

#include <iostream>

#include "daemon/peer_service.h"

namespace queue::daemon {

using asio::ip::tcp;

void PeerLink::Stop() {
  stopped_ = true;
  retry_timer_.cancel();
  if (channel_) channel_->Close("daemon stopping");
}

void PeerLink::Connect() {
  if (stopped_) return;
  auto self = shared_from_this();
  auto resolver = std::make_shared<tcp::resolver>(io_);
  resolver->async_resolve(peer_.host, std::to_string(peer_.port),
                          [self, resolver](const asio::error_code& ec, tcp::resolver::results_type results) {
                            if (ec) {
                              self->last_failure_ = "cannot resolve: " + ec.message();
                              return self->RetryLater();
                            }
                            auto socket = std::make_shared<tcp::socket>(self->io_);
                            asio::async_connect(*socket, results,
                                                [self, socket](const asio::error_code& e, const tcp::endpoint&) {
                                                  if (e) {
                                                    self->last_failure_ = e.message();
                                                    return self->RetryLater();
                                                  }
                                                  self->OnConnected(std::move(*socket));
                                                });
                          });
}

void PeerLink::OnConnected(tcp::socket socket) {
  socket.set_option(tcp::no_delay(true));
  channel_ = std::make_shared<Channel>(auth::TlsStream(std::move(socket), tls_.context()));
  // A peer that stops reading (hung, stopped) is dropped, not buffered for
  // without end: the link reconnects, and what was owed is sent again.
  channel_->SetLimits(wire::ChannelLimits{wire::kMaxFrameBytes, kMaxPeerOutbox, nullptr});
  auto self = shared_from_this();
  auto channel = channel_;
  channel_->stream().async_handshake(asio::ssl::stream_base::client, [self, channel](const asio::error_code& ec) {
    if (self->channel_ != channel) return;
    if (ec) {
      std::string why = auth::DescribeHandshakeFailure(ec);
      if (why != self->last_failure_)
        std::cerr << "queued: peer " << self->peer_.entry << " refused: " << why << "\n";
      self->last_failure_ = why;
      self->channel_.reset();
      return self->RetryLater();
    }
    channel->Start([self](wire::MessageType type, std::string_view payload) { self->OnFrame(type, payload); },
                   [self, channel](const std::string& reason) {
                     if (self->channel_ == channel) self->OnClosed(reason);
                   });
    channel->Send(wire::Hello{wire::kProtocolVersion, wire::Role::kDaemon, self->self_name_});
  });
}

void PeerLink::OnFrame(wire::MessageType type, std::string_view payload) {
  switch (type) {
    case wire::MessageType::kHello: {
      auto hello = wire::DecodePayload<wire::Hello>(payload);
      if (!hello.ok() || hello->version != wire::kProtocolVersion)
        return channel_->Close(hello.ok() ? "peer speaks protocol version " + std::to_string(hello->version)
                                          : hello.message());
      ready_ = true;
      backoff_ = std::chrono::milliseconds(200);
      if (!last_failure_.empty()) std::cerr << "queued: connected to peer " << peer_.entry << "\n";
      last_failure_.clear();
      SendHeldProbes();
      SendHeldForwards();
      if (on_ready_) on_ready_();
      return;
    }
    case wire::MessageType::kLoadAnswer: {
      auto answer = wire::DecodePayload<wire::LoadAnswer>(payload);
      if (!answer.ok()) return channel_->Close(answer.message());
      if (answer->report.host != peer_.entry) return channel_->Close("load answer for another host");
      return CompleteProbe(answer->request_id, std::move(answer->report));
    }
    case wire::MessageType::kPlaceReply: {
      auto reply = wire::DecodePayload<wire::PlaceReply>(payload);
      if (!reply.ok()) return channel_->Close(reply.message());
      return Complete(reply->request_id, *reply, PlaceFate::kAnswered);
    }
    case wire::MessageType::kForwardReply: {
      auto reply = wire::DecodePayload<wire::ForwardReply>(payload);
      if (!reply.ok()) return channel_->Close(reply.message());
      return CompleteForward(reply->request_id, reply->type, std::move(reply->payload));
    }
    case wire::MessageType::kJobEndedAck: {
      auto ack = wire::DecodePayload<wire::JobEndedAck>(payload);
      if (!ack.ok()) return channel_->Close(ack.message());
      if (on_end_ack_) on_end_ack_(ack->origin_job_id, ack->attempt);
      return;
    }
    default:
      return channel_->Close("unexpected message " + std::to_string(static_cast<int>(type)));
  }
}

void PeerLink::OnClosed(const std::string& reason) {
  ready_ = false;
  channel_.reset();
  if (last_failure_ != reason && !stopped_)
    std::cerr << "queued: link to " << peer_.entry << " closed: " << reason << "\n";
  last_failure_ = reason;
  FailForwards("the connection to " + peer_.entry + " was lost: " + reason);
  // A question already sent is lost with the connection; one still held
  // waits for the next (its timer ends it otherwise).
  std::vector<uint64_t> lost;
  for (const auto& [id, probe] : probes_)
    if (probe.sent) lost.push_back(id);
  for (uint64_t id : lost)
    asio::post(io_, [self = shared_from_this(), id, reason] {
      self->CompleteProbe(id, Fail("the connection was lost: " + reason));
    });
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, p] : pending) {
    p.timer->cancel();
    p.callback(wire::PlaceReply{id, false, false, "connection lost: " + reason}, PlaceFate::kUnknown);
  }
  RetryLater();
}

void PeerLink::RetryLater() {
  if (stopped_) return;
  ready_ = false;
  retry_timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(2000));
  auto self = shared_from_this();
  retry_timer_.async_wait([self](const asio::error_code& ec) {
    if (!ec) self->Connect();
  });
}

void PeerLink::SendLoad(const wire::LoadReport& report) {
  if (connected()) channel_->Send(report);
}

bool PeerLink::SendJobEnded(const wire::JobEnded& ended) {
  if (!connected()) return false;
  channel_->Send(ended);
  return true;
}

bool PeerLink::SendJobOutput(wire::JobOutput output) {
  if (!connected()) return false;
  if (metrics_ != nullptr) metrics_->bytes_sent[TransferKind::kOutput] += output.bytes.size();
  channel_->Send(output);
  return true;
}

bool PeerLink::SendBundleChunk(wire::BundleChunk chunk) {
  if (!connected()) return false;
  if (metrics_ != nullptr) metrics_->bytes_sent[TransferKind::kRestartFiles] += chunk.bytes.size();
  channel_->Send(chunk);
  return true;
}

bool PeerLink::SendMigrate(const wire::MigrateJob& migrate) {
  if (!connected()) return false;
  channel_->Send(migrate);
  return true;
}

size_t PeerLink::pending_bytes() const { return connected() ? channel_->pending_bytes() : 0; }

bool PeerLink::SendCancel(const wire::CancelJob& cancel) {
  if (!connected()) return false;
  channel_->Send(cancel);
  return true;
}

void PeerLink::Place(wire::PlaceJob request, std::chrono::milliseconds timeout, PlaceCallback callback) {
  if (!connected()) {
    // From the loop, never from inside this call: the caller may still be
    // setting up what the callback touches.
    asio::post(io_, [callback = std::move(callback),
                     why = "not connected" + (last_failure_.empty() ? "" : " (" + last_failure_ + ")")] {
      callback(wire::PlaceReply{0, false, false, why}, PlaceFate::kNotSent);
    });
    return;
  }
  uint64_t id = next_request_++;
  request.request_id = id;
  auto timer = std::make_shared<asio::steady_timer>(io_, timeout);
  pending_[id] = Pending{std::move(callback), timer};
  auto self = shared_from_this();
  timer->async_wait([self, id](const asio::error_code& ec) {
    if (!ec) self->Complete(id, wire::PlaceReply{id, false, false, "no answer in time"}, PlaceFate::kUnknown);
  });
  channel_->Send(request);
}

void PeerLink::Forward(wire::ForwardRequest request, std::chrono::milliseconds timeout, ForwardCallback callback) {
  uint64_t id = next_request_++;
  // A link still making its first connection (made on demand a moment ago,
  // in a large cluster) holds the request until it is up; one known to be
  // down answers at once.
  const bool hold = !connected() && last_failure_.empty() && !stopped_;
  auto timer = std::make_shared<asio::steady_timer>(io_, connected() || hold ? timeout : std::chrono::milliseconds(0));
  request.request_id = id;
  forwards_[id] = PendingForward{std::move(callback), timer, hold ? std::optional(request) : std::nullopt};
  auto self = shared_from_this();
  const std::string why = connected() ? peer_.entry + " did not answer in time"
                                      : peer_.entry + " cannot be reached now" +
                                            (last_failure_.empty() ? "" : " (" + last_failure_ + ")");
  // Also when not connected: the answer comes from the loop, not from here.
  timer->async_wait([self, id, why](const asio::error_code& ec) {
    if (!ec) self->CompleteForward(id, wire::MessageType::kErrorReply, wire::EncodePayload(wire::ErrorReply{why}));
  });
  if (connected()) channel_->Send(request);
}

void PeerLink::SendHeldForwards() {
  if (!connected()) return;
  for (auto& [id, forward] : forwards_) {
    if (!forward.held) continue;
    channel_->Send(*forward.held);
    forward.held.reset();
  }
}

void PeerLink::CompleteForward(uint64_t request_id, wire::MessageType type, std::string payload) {
  auto it = forwards_.find(request_id);
  if (it == forwards_.end()) return;
  auto pending = std::move(it->second);
  forwards_.erase(it);
  pending.timer->cancel();
  pending.callback(type, std::move(payload));
}

void PeerLink::FailForwards(const std::string& why) {
  auto forwards = std::move(forwards_);
  forwards_.clear();
  for (auto& [id, f] : forwards) {
    f.timer->cancel();
    // From the loop: the caller (a closing channel) may be deep in its own stack.
    asio::post(io_, [callback = std::move(f.callback), why] {
      callback(wire::MessageType::kErrorReply, wire::EncodePayload(wire::ErrorReply{why}));
    });
  }
}

void PeerLink::Complete(uint64_t request_id, const wire::PlaceReply& reply, PlaceFate fate) {
  auto it = pending_.find(request_id);
  if (it == pending_.end()) return;
  auto pending = std::move(it->second);
  pending_.erase(it);
  pending.timer->cancel();
  pending.callback(reply, fate);
}

void PeerLink::QueryLoad(std::chrono::milliseconds timeout, LoadCallback callback) {
  uint64_t id = next_request_++;
  auto timer = std::make_shared<asio::steady_timer>(io_, timeout);
  probes_[id] = PendingProbe{std::move(callback), timer, false};
  auto self = shared_from_this();
  timer->async_wait([self, id](const asio::error_code& ec) {
    if (!ec)
      self->CompleteProbe(id, Fail(self->peer_.entry + " did not answer in time" +
                                    (self->last_failure_.empty() ? "" : " (" + self->last_failure_ + ")")));
  });
  SendHeldProbes();
}

void PeerLink::SendHeldProbes() {
  if (!connected()) return;
  for (auto& [id, probe] : probes_) {
    if (probe.sent) continue;
    probe.sent = true;
    channel_->Send(wire::LoadQuery{id});
  }
}

void PeerLink::CompleteProbe(uint64_t request_id, Result<wire::LoadReport> report) {
  auto it = probes_.find(request_id);
  if (it == probes_.end()) return;
  auto probe = std::move(it->second);
  probes_.erase(it);
  probe.timer->cancel();
  probe.callback(std::move(report));
}

}  // namespace queue::daemon
