// ClientService: queued's Unix socket, where local `queue` and `qsh` processes
// ask. It owns the listening socket and the accept loop; it learns who a
// client is from the kernel (SO_PEERCRED, SO_PEERGROUPS), never from a
// message; it answers Hello (protocol version) itself, decodes every other
// request, and hands it to the daemon's handler for it. A malformed or
// unexpected message is refused with an ErrorReply and the connection closed.
//
// Bounds (issue 12): connections are admitted per uid by a ConnectionTable
// (caps on connections, per uid and in all, with a reserve for users who hold
// none); each connection may send frames of kMaxRequestBytes at most and have
// kMaxRepliesBytes of answers waiting; all of one uid's connections share one
// memory budget. A refused or closed connection is logged with the reason, at
// most once a minute per uid. When accept() fails (out of descriptors) the
// loop pauses instead of spinning (AcceptThrottle). The caller's real
// resource limits are read from the kernel at accept (CallerLimits).
//
// Lifetime: handlers are called from the event loop only, while this object
// lives; a client channel is held by its pending reads and by whoever keeps
// it (a waiting job's stub), so a reply must go through a weak_ptr when it may
// come after the client left.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio.hpp>

#include "daemon/accept_loop.h"
#include "daemon/accept_throttle.h"
#include "daemon/connection_table.h"
#include "util/result.h"
#include "wire/channel.h"
#include "wire/job_spec.h"
#include "wire/messages.h"

namespace queue::daemon {

using LocalSocket = asio::local::stream_protocol::socket;
using ClientChannel = wire::Channel<LocalSocket>;

// Who asks, as the kernel says (or, for a forwarded request, as the peer that
// read its own socket says).
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;
  // The connecting process's real resource limits (CallerLimits), or why they
  // could not be read; a submission is refused without them. Empty for a
  // forwarded request (it submits nothing).
  Result<std::vector<wire::ResourceLimit>> limits = Fail("not a local client");
};

// An answer to a request about one job: an encoded StatusReply, OutputReply or ErrorReply.
using JobRequestReply = std::function<void(wire::MessageType type, std::string payload)>;

struct ClientHandlers {
  std::function<void(const std::shared_ptr<ClientChannel>&, const Caller&, wire::JobSpec)> submit;
  std::function<std::string(const Caller&)> status;                         // a StatusReply's JSON
  std::function<std::string(const Caller&, bool include_finished)> jobs;     // likewise
  // Cancel, migrate and output requests (undecoded: the daemon may forward them).
  std::function<void(const Caller&, wire::MessageType, std::string_view, JobRequestReply)> job_request;
  // A job array, or one part of a list of command lines (BulkSubmitRequest).
  std::function<void(const std::shared_ptr<ClientChannel>&, const Caller&, wire::BulkSubmitRequest)> bulk_submit;
};

class ClientService {
 public:
  // A request is small (a job's spec is at most ~600 KiB); an answer may hold
  // a held output (OutputReply::kMaxHeldShown) or a long job list.
  static constexpr size_t kMaxRequestBytes = wire::kMaxClientRequestBytes;
  static constexpr size_t kMaxRepliesBytes = 16 << 20;

  ClientService(asio::io_context& io, std::string self, ClientHandlers handlers, ConnectionCaps caps)
      : io_(io), self_(std::move(self)), handlers_(std::move(handlers)), acceptor_(io),
        accept_(acceptor_, "the Unix socket"), table_(ConnectionTable::Create(caps)) {}

  // Binds `path` (mode 0666: anyone local may ask). Refuses when another
  // queued answers there; a stale socket file is replaced.
  Status Open(const std::string& path);
  void Start();
  // Stops accepting and removes the socket file.
  void Stop();

 private:
  void OnAccepted(LocalSocket socket);
  // Answers a refused connection with one ErrorReply, without waiting on it.
  void Refuse(LocalSocket& socket, uint32_t uid, const std::string& why);
  // At most once a minute per key (what happened, to which uid).
  void Log(const std::string& key, const std::string& line);
  void OnFrame(const std::shared_ptr<ClientChannel>& channel, const Caller& who, wire::MessageType type,
               std::string_view payload);

  asio::io_context& io_;
  std::string self_;
  ClientHandlers handlers_;
  std::string path_;
  asio::local::stream_protocol::acceptor acceptor_;
  AcceptLoop<asio::local::stream_protocol::acceptor> accept_;
  std::shared_ptr<ConnectionTable> table_;
  RefusalLog refusals_;
};

}  // namespace queue::daemon
