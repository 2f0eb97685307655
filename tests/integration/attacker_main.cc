// queue-test-attacker: the attacks of issue 12, run by the security tests as
// an ordinary user (through setpriv) or as a host without the cluster key.
// Each command prints one line "ready ..." with what it achieved once its
// connections are in place, then holds them until killed (the test measures
// the daemon meanwhile), unless it is a one-shot command.
//
//   unix-headers SOCKET N           N connections, each announcing a 16 MiB frame
//   unix-partial SOCKET N BYTES     N connections, each sending BYTES of a 1 MiB frame
//   unix-noread SOCKET REQUESTS     one connection asking REQUESTS statuses, reading none
//   unix-idle SOCKET N              N idle connections
//   tcp-idle HOST PORT N            N idle TCP connections (no TLS, no key)
//   tcp-garbage HOST PORT N         N TCP connections, each sending a bad TLS hello
//   submit-limits SOCKET CWD        a hand-made batch submission claiming high hard limits
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "wire/frame.h"
#include "wire/messages.h"

namespace {

using namespace queue;

int ConnectUnix(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool WriteAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

std::string Header(uint32_t payload_bytes, wire::MessageType type) {
  std::string frame = wire::EncodeFrame(type, "");
  uint32_t length = htonl(payload_bytes + 2);
  std::memcpy(frame.data(), &length, 4);
  return frame;
}

// Whether the daemon closed `fd` (or refused it) within `ms`.
bool ClosedWithin(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, ms) <= 0) return false;
  char buffer[4096];
  for (;;) {
    ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN;
  }
}

[[noreturn]] void Hold() {
  std::cout.flush();
  for (;;) pause();
}

int UnixHeaders(const std::string& socket, int n) {
  std::vector<int> fds;
  int refused = 0;
  for (int i = 0; i < n; ++i) {
    int fd = ConnectUnix(socket);
    if (fd < 0 || !WriteAll(fd, Header(wire::kMaxFrameBytes, wire::MessageType::kSubmitRequest))) {
      ++refused;
      if (fd >= 0) close(fd);
      continue;
    }
    fds.push_back(fd);
  }
  int open = 0;
  for (int fd : fds) open += ClosedWithin(fd, 0) ? 0 : 1;
  std::cout << "ready open " << open << " refused " << refused + static_cast<int>(fds.size()) - open << std::endl;
  Hold();
}

int UnixPartial(const std::string& socket, int n, size_t bytes) {
  std::vector<int> fds;
  int refused = 0;
  const std::string chunk(bytes, 'x');
  for (int i = 0; i < n; ++i) {
    int fd = ConnectUnix(socket);
    if (fd < 0 || !WriteAll(fd, Header(1 << 20, wire::MessageType::kSubmitRequest)) || !WriteAll(fd, chunk)) {
      ++refused;
      if (fd >= 0) close(fd);
      continue;
    }
    fds.push_back(fd);
  }
  // The daemon reads what it was sent, or closes the connection: wait for
  // either before counting.
  usleep(200 * 1000);
  int open = 0;
  for (int fd : fds) open += ClosedWithin(fd, 0) ? 0 : 1;
  std::cout << "ready open " << open << " closed " << refused + static_cast<int>(fds.size()) - open << std::endl;
  Hold();
}

int UnixNoRead(const std::string& socket, int requests) {
  int fd = ConnectUnix(socket);
  if (fd < 0) return 2;
  const std::string frame = wire::MakeFrame(wire::StatusRequest{});
  int sent = 0;
  // Nonblocking: when the daemon stops reading us (or closes), we stop too.
  fcntl(fd, F_SETFL, O_NONBLOCK);
  std::string batch;
  for (int i = 0; i < 256; ++i) batch += frame;
  while (sent < requests) {
    ssize_t n = send(fd, batch.data(), batch.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, 5000) <= 0) break;  // the daemon stopped reading
      continue;
    }
    if (n <= 0) break;
    sent += static_cast<int>(n / frame.size());
  }
  // Nothing is read; the daemon closes us once its queue for us is full.
  pollfd p{fd, POLLRDHUP, 0};
  bool closed = poll(&p, 1, 20000) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
  std::cout << "ready sent " << sent << (closed ? " closed" : " open") << std::endl;
  Hold();
}

int UnixIdle(const std::string& socket, int n) {
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = ConnectUnix(socket);
    if (fd >= 0) fds.push_back(fd);
  }
  usleep(200 * 1000);
  int open = 0;
  for (int fd : fds) open += ClosedWithin(fd, 0) ? 0 : 1;
  std::cout << "ready open " << open << " refused " << n - open << std::endl;
  Hold();
}

// A TCP connection, or -1 when it is not made within `ms` (a full backlog
// drops the SYN, and the kernel would retry for seconds).
int ConnectTcp(const std::string& host, int port, int ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  int error = 0;
  socklen_t len = sizeof error;
  if (poll(&p, 1, ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, 0);
  return fd;
}

int TcpIdle(const std::string& host, int port, int n) {
  rlimit enough{static_cast<rlim_t>(n + 64), static_cast<rlim_t>(n + 64)};
  setrlimit(RLIMIT_NOFILE, &enough);
  int made = 0;
  for (int i = 0; i < n; ++i) made += ConnectTcp(host, port, 100) >= 0;
  std::cout << "ready connected " << made << std::endl;
  Hold();
}

int TcpGarbage(const std::string& host, int port, int n) {
  int made = 0;
  for (int i = 0; i < n; ++i) {
    int fd = ConnectTcp(host, port, 100);
    if (fd < 0) continue;
    // A TLS record header announcing a handshake, then nonsense.
    WriteAll(fd, std::string("\x16\x03\x01\x00\x20") + std::string(32, 'z'));
    close(fd);
    ++made;
  }
  std::cout << "ready sent " << made << std::endl;
  Hold();
}

int SubmitLimits(const std::string& socket, const std::string& cwd) {
  int fd = ConnectUnix(socket);
  if (fd < 0) return 2;
  wire::SubmitRequest request;
  request.spec.argv = {"/bin/sh", "-c", "ulimit -Hn; ulimit -Sn; ulimit -Hl"};
  request.spec.env = {"PATH=/usr/bin:/bin"};
  request.spec.cwd = cwd;
  request.spec.batch = true;
  request.spec.job_name = "limits";
  // Far above what setpriv left us, and one limit not sent at all (core).
  request.spec.rlimits = {{RLIMIT_NOFILE, 20000, 20000}, {RLIMIT_MEMLOCK, 8 << 20, 8 << 20}};
  wire::FrameSplitter splitter;
  auto call = [&](const std::string& frame) -> std::optional<wire::FrameSplitter::Frame> {
    if (!WriteAll(fd, frame)) return std::nullopt;
    char buffer[65536];
    for (;;) {
      auto next = splitter.Next();
      if (!next.ok()) return std::nullopt;
      if (next->has_value()) return std::move(**next);
      ssize_t n = recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) return std::nullopt;
      splitter.Feed(std::string_view(buffer, static_cast<size_t>(n)));
    }
  };
  if (!call(wire::MakeFrame(wire::Hello{wire::kProtocolVersion, wire::Role::kClient, ""}))) return 2;
  auto reply = call(wire::MakeFrame(request));
  if (!reply) return 2;
  if (reply->type == wire::MessageType::kErrorReply) {
    auto error = wire::DecodePayload<wire::ErrorReply>(reply->payload);
    std::cout << "refused " << (error.ok() ? error->message : "?") << std::endl;
    return 1;
  }
  auto submitted = wire::DecodePayload<wire::SubmitReply>(reply->payload);
  if (!submitted.ok()) return 2;
  std::cout << "submitted " << submitted->job.number << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 3 && a[0] == "unix-headers") return UnixHeaders(a[1], std::stoi(a[2]));
  if (a.size() == 4 && a[0] == "unix-partial") return UnixPartial(a[1], std::stoi(a[2]), std::stoul(a[3]));
  if (a.size() == 3 && a[0] == "unix-noread") return UnixNoRead(a[1], std::stoi(a[2]));
  if (a.size() == 3 && a[0] == "unix-idle") return UnixIdle(a[1], std::stoi(a[2]));
  if (a.size() == 4 && a[0] == "tcp-idle") return TcpIdle(a[1], std::stoi(a[2]), std::stoi(a[3]));
  if (a.size() == 4 && a[0] == "tcp-garbage") return TcpGarbage(a[1], std::stoi(a[2]), std::stoi(a[3]));
  if (a.size() == 3 && a[0] == "submit-limits") return SubmitLimits(a[1], a[2]);
  std::cerr << "usage: see the comment at the top of attacker_main.cc\n";
  return 64;
}
