// Blocking Unix-socket client for the local daemon.
#include "stub/daemon_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace queue::stub {

DaemonClient::~DaemonClient() {
  if (fd_ >= 0) close(fd_);
}

Status DaemonClient::Connect(const DaemonSocket& where) {
  const std::string& socket_path = where.path;
  socket_path_ = socket_path;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof address.sun_path)
    return Fail("socket path " + socket_path + " is too long");
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return Fail("cannot create a socket: " + ErrnoText(errno));
  if (connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    return Fail("cannot reach queued at " + socket_path + ": " + ErrnoText(errno) + " (" +
                (where.found_by.starts_with("no daemon") ? where.found_by
                                                          : "from " + where.found_by + "; is the daemon running?") +
                ")");
  // A daemon that refuses the connection (too many from this user) says why
  // and closes: read its answer even when our Hello could not be sent.
  Status sent = Send(wire::Hello{wire::kProtocolVersion, wire::Role::kClient, ""});
  auto frame = Receive();
  if (!frame.ok()) return sent.ok() ? Fail(frame.message()) : sent;
  if (frame->type == wire::MessageType::kErrorReply) {
    auto error = wire::DecodePayload<wire::ErrorReply>(frame->payload);
    return Fail(error.ok() ? error->message : error.message());
  }
  if (frame->type != wire::MessageType::kHello) return Fail("queued did not greet us");
  auto hello = wire::DecodePayload<wire::Hello>(frame->payload);
  if (!hello.ok()) return Fail(hello.message());
  if (hello->version != wire::kProtocolVersion)
    return Fail("queued speaks protocol version " + std::to_string(hello->version) + ", we speak " +
                std::to_string(wire::kProtocolVersion));
  daemon_name_ = hello->name;
  return Status::Ok();
}

Status DaemonClient::SendFrame(const std::string& frame) {
  size_t done = 0;
  while (done < frame.size()) {
    ssize_t n = send(fd_, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail("lost the connection to queued: " + ErrnoText(errno));
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Reads exactly one frame, header then payload, never a byte beyond it: the
// socket may be handed on (ReleaseFd) right after a reply, and a frame read
// ahead into a buffer here (an error that came just behind it) would be lost.
Result<wire::FrameSplitter::Frame> DaemonClient::Receive() {
  auto read_exactly = [this](std::string& into, size_t bytes) -> Status {
    into.resize(bytes);
    for (size_t done = 0; done < bytes;) {
      ssize_t n = read(fd_, into.data() + done, bytes - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Fail("lost the connection to queued: " + ErrnoText(errno));
      if (n == 0) return Fail("queued closed the connection");
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  };
  std::string header;
  if (Status got = read_exactly(header, wire::kFrameHeaderBytes); !got.ok()) return Fail(got.message());
  auto parsed = wire::ParseFrameHeader(header);
  if (!parsed.ok()) return parsed.error();
  wire::FrameSplitter::Frame frame;
  frame.type = parsed->type;
  if (Status got = read_exactly(frame.payload, parsed->payload_bytes); !got.ok()) return Fail(got.message());
  return frame;
}

int DaemonClient::ReleaseFd() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

}  // namespace queue::stub
