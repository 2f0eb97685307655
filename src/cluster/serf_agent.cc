// Starting, watching and stopping Serf's agent; its command line and keyring.
#include "cluster/serf_agent.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "auth/derived_key.h"
#include "util/child_wait.h"

namespace queue::cluster {

namespace {

// What the gossip key is for, so that no other use of the cluster key shares it.
constexpr std::string_view kGossipPurpose = "queue serf gossip key v1";

std::string DescribeEnd(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

}  // namespace

std::vector<std::string> SerfAgentArgv(const SerfAgentConfig& c) {
  std::vector<std::string> argv{c.program,           "agent",     "-node",    c.node,     "-bind",
                                c.bind,              "-rpc-addr", c.rpc,      "-profile", c.profile,
                                "-log-level",        "warn"};
  if (!c.keyring_file.empty()) argv.insert(argv.end(), {"-keyring-file", c.keyring_file});
  if (!c.config_file.empty()) argv.insert(argv.end(), {"-config-file", c.config_file});
  if (!c.snapshot_file.empty()) argv.insert(argv.end(), {"-snapshot", c.snapshot_file});
  for (const auto& address : c.join) argv.insert(argv.end(), {"-retry-join", address});
  if (!c.join.empty()) argv.insert(argv.end(), {"-retry-interval", "5s"});
  for (const auto& [key, value] : c.tags) argv.insert(argv.end(), {"-tag", key + "=" + value});
  return argv;
}

Result<std::string> GossipKey(const std::string& key) {
  auto derived = auth::DeriveKey(key, kGossipPurpose, 32);
  if (!derived.ok()) return Fail(derived.message());
  return auth::Base64(*derived);
}

namespace {

// `text` into `path`, mode 0600, through a temporary file renamed over it.
Status WritePrivateFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Fail("cannot write " + tmp + ": " + std::strerror(errno));
  bool written = ::fchmod(fd, 0600) == 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                 ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (!written || ::rename(tmp.c_str(), path.c_str()) != 0) {
    if (written) saved = errno;
    ::unlink(tmp.c_str());
    return Fail("cannot write " + path + ": " + std::strerror(saved));
  }
  return Status::Ok();
}

}  // namespace

Status WriteKeyring(const std::string& path, const std::vector<std::string>& cluster_keys) {
  if (cluster_keys.empty()) return Fail("no cluster key for the gossip keyring");
  nlohmann::json keys = nlohmann::json::array();
  for (const auto& key : cluster_keys) {
    auto gossip = GossipKey(key);
    if (!gossip.ok()) return Fail(gossip.message());
    keys.push_back(*gossip);
  }
  return WritePrivateFile(path, keys.dump() + "\n");
}

Status WriteAgentConfig(const std::string& path, const std::string& rpc_key) {
  return WritePrivateFile(path, nlohmann::json{{"rpc_auth", rpc_key}}.dump() + "\n");
}

std::shared_ptr<SerfAgent> SerfAgent::Create(asio::io_context& io, SerfAgentConfig config) {
  return std::shared_ptr<SerfAgent>(new SerfAgent(io, std::move(config)));
}

SerfAgent::SerfAgent(asio::io_context& io, SerfAgentConfig config)
    : io_(io), config_(std::move(config)), restart_timer_(io) {}

SerfAgent::~SerfAgent() { Stop(); }

Status SerfAgent::Start() {
  stopped_ = false;
  return Spawn();
}

Status SerfAgent::Spawn() {
  std::vector<std::string> args = SerfAgentArgv(config_);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string log = config_.log_file.empty() ? "/dev/null" : config_.log_file;
  int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || in < 0) {
    int saved = errno;
    if (out >= 0) ::close(out);
    if (in >= 0) ::close(in);
    return Fail("cannot open " + log + " for the serf agent: " + std::strerror(saved));
  }
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    // The agent must not outlive us: a daemon killed outright would otherwise
    // leave its host "alive" in the gossip while nobody serves it.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  int saved = errno;
  ::close(out);
  ::close(in);
  if (pid < 0) return Fail(std::string("cannot start the serf agent: ") + std::strerror(saved));
  pid_ = pid;
  ++starts_;
  started_at_ = std::chrono::steady_clock::now();
  int pidfd = OpenPidfd(pid);
  if (pidfd < 0) return Fail(std::string("cannot watch the serf agent: ") + std::strerror(errno));
  pidfd_ = std::make_unique<asio::posix::stream_descriptor>(io_, pidfd);
  WatchExit();
  return Status::Ok();
}

void SerfAgent::WatchExit() {
  std::weak_ptr<SerfAgent> weak = weak_from_this();
  pidfd_->async_wait(asio::posix::stream_descriptor::wait_read, [weak](const asio::error_code& ec) {
    auto self = weak.lock();
    if (!self || ec || self->stopped_) return;
    self->OnExit();
  });
}

void SerfAgent::OnExit() {
  auto status = WaitAndClosePidfd(pidfd_->release());
  pidfd_.reset();
  const pid_t pid = std::exchange(pid_, -1);
  // An agent that ran a while died of something new: start again soon. One
  // that keeps dying is started less and less often.
  if (std::chrono::steady_clock::now() - started_at_ > kLongestPause) pause_ = kFirstPause;
  std::cerr << "queued: the serf agent (pid " << pid << ") ended"
            << (status ? " (" + DescribeEnd(*status) + ")" : std::string()) << "; starting it again in "
            << pause_.count() << " s (its output: " << (config_.log_file.empty() ? "/dev/null" : config_.log_file)
            << ")\n";
  RestartLater();
}

void SerfAgent::RestartLater() {
  restart_timer_.expires_after(pause_);
  pause_ = std::min(pause_ * 2, kLongestPause);
  std::weak_ptr<SerfAgent> weak = weak_from_this();
  restart_timer_.async_wait([weak](const asio::error_code& ec) {
    auto self = weak.lock();
    if (!self || ec || self->stopped_) return;
    if (Status started = self->Spawn(); !started.ok()) {
      std::cerr << "queued: " << started.message() << "\n";
      self->RestartLater();
    }
  });
}

void SerfAgent::Stop() {
  stopped_ = true;
  restart_timer_.cancel();
  if (pid_ <= 0 || !pidfd_) return;
  // By its pidfd, never its pid: the daemon's reaper may have taken the
  // agent already, and its pid be another process's by now.
  int pidfd = pidfd_->release();
  pidfd_.reset();
  auto signal = [pidfd](int signo) { ::syscall(SYS_pidfd_send_signal, pidfd, signo, nullptr, 0); };
  signal(SIGTERM);
  pollfd ended{pidfd, POLLIN, 0};
  if (::poll(&ended, 1, 5000) == 0) signal(SIGKILL);
  WaitAndClosePidfd(pidfd);
  pid_ = -1;
}

}  // namespace queue::cluster
