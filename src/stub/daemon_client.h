// DaemonClient: the blocking request/reply link from a command-line program
// to its local queued, over the daemon's Unix socket.
#pragma once

#include <string>

#include "stub/daemon_socket.h"
#include "util/result.h"
#include "wire/frame.h"

namespace queue::stub {

class DaemonClient {
 public:
  DaemonClient() = default;
  DaemonClient(const DaemonClient&) = delete;
  DaemonClient& operator=(const DaemonClient&) = delete;
  ~DaemonClient();

  // Connects and exchanges Hello; daemon_name() is then the daemon's host entry.
  // A failure to connect says how the socket was found (daemon_socket.h).
  Status Connect(const DaemonSocket& where);
  const std::string& daemon_name() const { return daemon_name_; }

  template <class M>
  Status Send(const M& message) {
    return SendFrame(wire::MakeFrame(message));
  }
  Status SendFrame(const std::string& frame);
  Result<wire::FrameSplitter::Frame> Receive();

  // Hands the connected socket over (e.g. to an event loop); -1 if none.
  int ReleaseFd();

 private:
  int fd_ = -1;
  std::string socket_path_;
  std::string daemon_name_;
};

// Waits for the reply to a request already sent; an ErrorReply becomes an Error.
template <class Reply>
Result<Reply> ReceiveReply(DaemonClient& client) {
  auto frame = client.Receive();
  if (!frame.ok()) return frame.error();
  if (frame->type == wire::MessageType::kErrorReply) {
    auto error = wire::DecodePayload<wire::ErrorReply>(frame->payload);
    return Fail(error.ok() ? error->message : error.message());
  }
  if (frame->type != Reply::kType) return Fail("unexpected reply from the daemon");
  return wire::DecodePayload<Reply>(frame->payload);
}

// Sends one request and returns the reply; an ErrorReply becomes an Error.
template <class Reply, class Request>
Result<Reply> Call(DaemonClient& client, const Request& request) {
  if (auto sent = client.Send(request); !sent.ok()) return Fail(sent.message());
  return ReceiveReply<Reply>(client);
}

}  // namespace queue::stub
