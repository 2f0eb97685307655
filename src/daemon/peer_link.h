// PeerLink: this daemon's outgoing, authenticated and encrypted connection to
// one other daemon. It reconnects with backoff, pushes this host's LoadReport,
// carries PlaceJob requests, matching each PlaceReply to its callback, and
// carries the ends (and batch output) of jobs that came from that daemon.
// A request outstanding when the link drops fails at once. Event-loop only.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <asio.hpp>
#include <asio/ssl.hpp>

#include "auth/psk_tls.h"
#include "cluster/hosts_file.h"
#include "daemon/metrics.h"
#include "util/result.h"
#include "wire/channel.h"

namespace queue::daemon {

class PeerLink : public std::enable_shared_from_this<PeerLink> {
 public:
  enum class PlaceFate {
    kAnswered,  // the reply is the peer's
    kNotSent,   // the link was down: the peer never saw the request
    kUnknown,   // sent, but the link dropped or the peer did not answer in time:
                // the peer may or may not have taken the job
  };
  using PlaceCallback = std::function<void(const wire::PlaceReply& reply, PlaceFate fate)>;

  PeerLink(asio::io_context& io, auth::PskTlsContext& tls, cluster::HostEntry peer, std::string self_name)
      : io_(io), tls_(tls), peer_(std::move(peer)), self_name_(std::move(self_name)), retry_timer_(io) {}

  void Start() { Connect(); }
  void Stop();
  bool connected() const { return channel_ != nullptr && ready_; }
  const cluster::HostEntry& peer() const { return peer_; }

  void SendLoad(const wire::LoadReport& report);
  // Best effort: dropped (and false) when the link is down. Ends are sent
  // again until the peer acknowledges them (OnEndAcknowledged).
  bool SendJobEnded(const wire::JobEnded& ended);
  bool SendJobOutput(wire::JobOutput output);
  bool SendBundleChunk(wire::BundleChunk chunk);
  bool SendMigrate(const wire::MigrateJob& migrate);
  bool SendCancel(const wire::CancelJob& cancel);
  // Bytes queued on the link and not yet written: senders of bulk output pace on it.
  size_t pending_bytes() const;
  // Called when the peer acknowledges a job's end.
  void OnEndAcknowledged(std::function<void(uint64_t origin_job_id, uint32_t attempt)> callback) {
    on_end_ack_ = std::move(callback);
  }
  // Called each time the link comes up (again).
  void OnReady(std::function<void()> callback) { on_ready_ = std::move(callback); }
  // Output and restart-file bytes sent are counted there; null: not counted.
  void CountIn(MetricsRegistry* metrics) { metrics_ = metrics; }
  // Calls back exactly once, never from inside this call: with the peer's
  // reply, or a refusal if the link is down, drops, or the peer does not
  // answer within `timeout`. The link holds itself alive (shared_from_this)
  // until then; what the callback captures is the caller's to keep valid.
  void Place(wire::PlaceJob request, std::chrono::milliseconds timeout, PlaceCallback callback);
  // A user's request about a job submitted on the peer. Calls back exactly
  // once, never from inside this call: with the peer's answer, or an ErrorReply
  // when the link is down, drops, or the peer does not answer within `timeout`.
  // A link still making its first connection holds it until it is up.
  using ForwardCallback = std::function<void(wire::MessageType type, std::string payload)>;
  void Forward(wire::ForwardRequest request, std::chrono::milliseconds timeout, ForwardCallback callback);
  // A large cluster's probe (LoadQuery): the peer's load as of now. Calls back
  // exactly once, from the loop: with the peer's report, or an error when the
  // peer does not answer within `timeout`. A link that is not up yet (made on
  // demand a moment ago) holds the question until it is, within that time.
  using LoadCallback = std::function<void(Result<wire::LoadReport> report)>;
  void QueryLoad(std::chrono::milliseconds timeout, LoadCallback callback);
  // Nothing is waiting on the link (no offer, forward, probe or unsent
  // bytes): a link made on demand may be closed.
  bool idle() const { return pending_.empty() && forwards_.empty() && probes_.empty() && pending_bytes() == 0; }

 private:
  using Channel = wire::Channel<auth::TlsStream>;

  void Connect();
  void OnConnected(asio::ip::tcp::socket socket);
  void OnFrame(wire::MessageType type, std::string_view payload);
  void OnClosed(const std::string& reason);
  void RetryLater();
  void Complete(uint64_t request_id, const wire::PlaceReply& reply, PlaceFate fate);
  void CompleteForward(uint64_t request_id, wire::MessageType type, std::string payload);
  // Ends every forwarded request still waiting, with an error saying `why`.
  void FailForwards(const std::string& why);
  void CompleteProbe(uint64_t request_id, Result<wire::LoadReport> report);
  void SendHeldProbes();
  void SendHeldForwards();

  asio::io_context& io_;
  auth::PskTlsContext& tls_;
  cluster::HostEntry peer_;
  std::string self_name_;
  asio::steady_timer retry_timer_;
  std::shared_ptr<Channel> channel_;
  bool ready_ = false;
  bool stopped_ = false;
  std::chrono::milliseconds backoff_{200};
  std::string last_failure_;
  uint64_t next_request_ = 1;
  struct Pending {
    PlaceCallback callback;
    std::shared_ptr<asio::steady_timer> timer;
  };
  std::map<uint64_t, Pending> pending_;
  struct PendingForward {
    ForwardCallback callback;
    std::shared_ptr<asio::steady_timer> timer;
    std::optional<wire::ForwardRequest> held;  // not sent yet: the link was not up
  };
  std::map<uint64_t, PendingForward> forwards_;
  struct PendingProbe {
    LoadCallback callback;
    std::shared_ptr<asio::steady_timer> timer;
    bool sent = false;
  };
  std::map<uint64_t, PendingProbe> probes_;
  std::function<void(uint64_t, uint32_t)> on_end_ack_;
  std::function<void()> on_ready_;
  MetricsRegistry* metrics_ = nullptr;
};

}  // namespace queue::daemon
