// RunAsOwner: fork, drop to the owner in the child, run the work, and carry its
// result back through a pipe as one tagged message ('K' + report or 'E' + error).
#include "migrate/owner_process.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <optional>
#include <type_traits>
#include <vector>

#include "util/child_wait.h"

namespace queue::migrate {

namespace {

static_assert(std::is_same_v<uid_t, uint32_t> && std::is_same_v<gid_t, uint32_t>,
              "FileOwner's ids are passed to the kernel as they are");

constexpr char kOkTag = 'K';
constexpr char kErrorTag = 'E';
// More than any report the work sends (10,000 paths of 4 KiB); past it the parent
// drains the pipe so the child can finish, and refuses the report.
constexpr size_t kMaxMessageBytes = 64 << 20;

// ---- The child ----

// A signal sent to the child gets its default action, not the daemon's handler
// (which would wake the daemon's event loop as if the daemon had received it).
void ResetSignals() {
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int signo = 1; signo < NSIG; ++signo) sigaction(signo, &default_action, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// The child inherits every descriptor of the daemon (its sockets, the spool) but
// needs only a few; it drops the rest before it acts for the owner.
void CloseAllExcept(std::vector<int> keep) {
  std::sort(keep.begin(), keep.end());
  unsigned next = 3;
  for (int fd : keep) {
    if (fd < 0 || static_cast<unsigned>(fd) < next) continue;
    if (static_cast<unsigned>(fd) > next) close_range(next, static_cast<unsigned>(fd) - 1, 0);
    next = static_cast<unsigned>(fd) + 1;
  }
  close_range(next, ~0U, 0);
}

// Returns 0 or an errno.
int SwitchToOwner(const spool::FileOwner& owner) {
  if (setgroups(owner.groups.size(), owner.groups.data()) != 0) return errno;
  if (setresgid(owner.gid, owner.gid, owner.gid) != 0) return errno;
  // Only the effective uid changes: files are opened and created as the owner,
  // while the real and saved uid stay root, so the owner cannot stop or trace
  // this process, which the daemon is waiting for.
  if (setresuid(static_cast<uid_t>(-1), owner.uid, static_cast<uid_t>(-1)) != 0) return errno;
  return 0;
}

std::string SwitchFailure(const spool::FileOwner& owner, int err) {
  return "could not act as uid " + std::to_string(owner.uid) + " (gid " + std::to_string(owner.gid) +
         "): " + ErrnoText(err);
}

Result<std::string> RunWork(const spool::FileOwner& owner, bool switch_user, const std::string& what,
                            const OwnerWork& work) {
  if (switch_user) {
    if (int err = SwitchToOwner(owner); err != 0) return Fail(what + ": " + SwitchFailure(owner, err));
  }
  // Changing the effective uid already made the process undumpable, unless the
  // administrator set fs.suid_dumpable; it holds the daemon's memory.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  try {
    return work();
  } catch (const std::exception& e) {
    return Fail(what + ": " + e.what());
  }
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t put = write(fd, data.data(), data.size());
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return false;
    data.remove_prefix(static_cast<size_t>(put));
  }
  return true;
}

[[noreturn]] void RunChild(const spool::FileOwner& owner, bool switch_user, std::vector<int> keep,
                           int report_fd, const std::string& what, const OwnerWork& work) {
  ResetSignals();
  keep.push_back(report_fd);
  CloseAllExcept(std::move(keep));
  Result<std::string> result = RunWork(owner, switch_user, what, work);
  std::string message(1, result.ok() ? kOkTag : kErrorTag);
  message += result.ok() ? *result : result.message();
  // The exit code says whether the whole message went out.
  _exit(WriteAll(report_fd, message) ? 0 : 1);
}

// ---- The parent ----

// Everything the child wrote until it closed the pipe, or nullopt if that was
// more than any report should be.
std::optional<std::string> ReadMessage(int fd) {
  std::string message;
  bool too_long = false;
  char buffer[64 * 1024];
  for (;;) {
    ssize_t got = read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    if (message.size() + static_cast<size_t>(got) > kMaxMessageBytes) too_long = true;
    if (!too_long) message.append(buffer, static_cast<size_t>(got));
  }
  if (too_long) return std::nullopt;
  return message;
}

std::string DescribeSilentEnd(std::optional<int> status) {
  if (status && WIFSIGNALED(*status)) {
    return "the process doing it was killed by signal " + std::to_string(WTERMSIG(*status));
  }
  return "the process doing it ended without saying how it went";
}

}  // namespace

Result<std::string> RunAsOwner(const spool::FileOwner& owner, std::initializer_list<int> keep_fds,
                               const std::string& what, const OwnerWork& work) {
  uid_t self = geteuid();
  if (self != 0 && owner.uid != self) {
    return Fail(what + ": this daemon runs as uid " + std::to_string(self) +
                " and cannot act for uid " + std::to_string(owner.uid));
  }
  std::vector<int> keep(keep_fds);
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return Fail(what + ": could not create a pipe: " + ErrnoText(errno));
  pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    RunChild(owner, self == 0, std::move(keep), pipe_fds[1], what, work);
  }
  int fork_error = errno;
  int pidfd = OpenPidfd(pid);
  close(pipe_fds[1]);
  std::optional<std::string> message;
  if (pid > 0) message = ReadMessage(pipe_fds[0]);
  close(pipe_fds[0]);
  if (pid < 0) return Fail(what + ": could not start a process: " + ErrnoText(fork_error));
  std::optional<int> status = WaitAndClosePidfd(pidfd);
  if (!message) return Fail(what + ": the process doing it sent an oversized report");
  // A child reaped by someone else (status unknown) is judged by its message;
  // one that exited non-zero may have sent only part of it.
  bool complete = !status || (WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  if (message->empty() || !complete) return Fail(what + ": " + DescribeSilentEnd(status));
  if ((*message)[0] == kErrorTag) return Fail(message->substr(1));
  if ((*message)[0] != kOkTag) return Fail(what + ": the process doing it sent a garbled report");
  return message->substr(1);
}

}  // namespace queue::migrate
