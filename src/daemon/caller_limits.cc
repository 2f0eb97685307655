// A local client's real resource limits, from the kernel.
#include "daemon/caller_limits.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <sstream>

namespace queue::daemon {

namespace {

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; Debian 12's headers predate it
#endif

// /proc/<pid>/limits names, in RLIMIT_* order.
constexpr std::string_view kNames[] = {
    "Max cpu time",       "Max file size",       "Max data size",        "Max stack size",
    "Max core file size", "Max resident set",    "Max processes",        "Max open files",
    "Max locked memory",  "Max address space",   "Max file locks",       "Max pending signals",
    "Max msgqueue size",  "Max nice priority",   "Max realtime priority", "Max realtime timeout",
};

bool ParseValue(std::string_view word, uint64_t& out) {
  if (word == "unlimited") {
    out = wire::ResourceLimit::kUnlimited;
    return true;
  }
  auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), out);
  return ec == std::errc() && end == word.data() + word.size();
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The real uid in /proc/<pid>/status.
bool RealUidIs(pid_t pid, uid_t uid) {
  std::istringstream status(ReadText("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(status, line);) {
    if (!line.starts_with("Uid:")) continue;
    std::istringstream words(line.substr(4));
    unsigned long real = 0;
    return static_cast<bool>(words >> real) && real == uid;
  }
  return false;
}

}  // namespace

Result<std::vector<wire::ResourceLimit>> ParseProcLimits(std::string_view text) {
  std::vector<wire::ResourceLimit> limits;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    for (uint32_t resource = 0; resource < std::size(kNames); ++resource) {
      if (!line.starts_with(kNames[resource])) continue;
      // "Max open files            1024                 4096                 files"
      std::istringstream words{std::string(line.substr(kNames[resource].size()))};
      std::string soft_word, hard_word;
      wire::ResourceLimit limit{resource, 0, 0};
      if (!(words >> soft_word >> hard_word) || !ParseValue(soft_word, limit.soft) ||
          !ParseValue(hard_word, limit.hard))
        return Fail("cannot read the limit \"" + std::string(kNames[resource]) + "\"");
      limits.push_back(limit);
      break;
    }
  }
  if (limits.empty()) return Fail("no resource limits in the text");
  return limits;
}

Result<std::vector<wire::ResourceLimit>> ReadPeerLimits(int fd, pid_t pid, uid_t uid) {
  if (pid <= 0) return Fail("the kernel gives no process for this connection");
  int pidfd = -1;
  socklen_t len = sizeof pidfd;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0) {
    if (errno != ENOPROTOOPT) return Fail("process " + std::to_string(pid) + " is gone: " + ErrnoText(errno));
    pidfd = -1;  // an older kernel: the uid check below stands in
  }
  Fd owned(pidfd);
  auto limits = ParseProcLimits(ReadText("/proc/" + std::to_string(pid) + "/limits"));
  if (!limits.ok()) return Fail("cannot read the resource limits of process " + std::to_string(pid) + ": " +
                                limits.message());
  // The process read is the one that connected: not yet reaped, so its pid
  // was not reused (signal 0 only checks).
  if (owned.get() >= 0) {
    if (syscall(SYS_pidfd_send_signal, owned.get(), 0, nullptr, 0) != 0)
      return Fail("process " + std::to_string(pid) + " ended before its limits could be read");
  } else if (!RealUidIs(pid, uid)) {
    return Fail("process " + std::to_string(pid) + " ended before its limits could be read");
  }
  return limits;
}

std::vector<std::string> CapLimits(std::vector<wire::ResourceLimit>& wanted,
                                   const std::vector<wire::ResourceLimit>& real) {
  auto text = [](uint64_t v) { return v == wire::ResourceLimit::kUnlimited ? std::string("unlimited") : std::to_string(v); };
  std::vector<std::string> lowered;
  for (const auto& limit : real) {
    auto it = std::find_if(wanted.begin(), wanted.end(),
                           [&](const wire::ResourceLimit& w) { return w.resource == limit.resource; });
    if (it == wanted.end()) {
      if (limit.hard != wire::ResourceLimit::kUnlimited) wanted.push_back(limit);
      continue;
    }
    if (it->hard > limit.hard)
      lowered.push_back(std::string(kNames[limit.resource]) + ": hard " + text(it->hard) + " > " + text(limit.hard));
    it->hard = std::min(it->hard, limit.hard);
    it->soft = std::min(it->soft, it->hard);
  }
  return lowered;
}

}  // namespace queue::daemon
