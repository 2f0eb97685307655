// Blocking Unix-socket client for the local daemon.
#include "stub/daemon_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace queue::stub {

std::string ResolveSocketPath(const std::string& option) {
  if (!option.empty()) return option;
  if (const char* env = std::getenv("QUEUE_SOCKET"); env != nullptr && *env != '\0') return env;
  if (geteuid() == 0) return "/run/queue/queued.sock";
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    return std::string(home) + "/.queue/queued.sock";
  return "/run/queue/queued.sock";
}

DaemonClient::~DaemonClient() {
  if (fd_ >= 0) close(fd_);
}

Status DaemonClient::Connect(const std::string& socket_path) {
  socket_path_ = socket_path;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof address.sun_path)
    return Fail("socket path " + socket_path + " is too long");
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return Fail("cannot create a socket: " + ErrnoText(errno));
  if (connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    return Fail("cannot reach queued at " + socket_path + ": " + ErrnoText(errno) +
                " (is the daemon running? see --socket and QUEUE_SOCKET)");
  if (auto sent = Send(wire::Hello{wire::kProtocolVersion, wire::Role::kClient, ""}); !sent.ok())
    return sent;
  auto frame = Receive();
  if (!frame.ok()) return Fail(frame.message());
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

Result<wire::FrameSplitter::Frame> DaemonClient::Receive() {
  char buffer[65536];
  for (;;) {
    auto next = splitter_.Next();
    if (!next.ok()) return next.error();
    if (next->has_value()) return std::move(**next);
    ssize_t n = read(fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail("lost the connection to queued: " + ErrnoText(errno));
    if (n == 0) return Fail("queued closed the connection");
    splitter_.Feed(std::string_view(buffer, static_cast<size_t>(n)));
  }
}

int DaemonClient::ReleaseFd() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

}  // namespace queue::stub
