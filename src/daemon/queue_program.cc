// Running the queues' `program` checks.
#include "daemon/queue_program.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <linux/close_range.h>

namespace queue::daemon {

namespace {

constexpr uid_t kNobody = 65534;

}  // namespace

void QueueProgram::Start(const std::string& queue, const std::string& command) {
  if (running_.count(queue)) return;
  std::string line = command + " " + queue;
  // A minimal environment, never root's (issue 12): what a program needs to
  // find commands and know who it runs as, and the queue it judges.
  std::string queue_var = "QUEUE_NAME=" + queue;
  const bool dropping = geteuid() == 0;
  std::string user = dropping ? "nobody" : "";
  if (!dropping)
    if (const char* name = getenv("LOGNAME"); name != nullptr) user = name;
  std::string home = dropping ? "HOME=/nonexistent" : "HOME=/";
  std::string logname = "LOGNAME=" + user, user_var = "USER=" + user;
  char* envp[] = {const_cast<char*>("PATH=/usr/local/bin:/usr/bin:/bin"), home.data(), logname.data(),
                  user_var.data(), const_cast<char*>("SHELL=/bin/sh"), queue_var.data(), nullptr};
  char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), line.data(), nullptr};
  pid_t pid = fork();
  if (pid < 0) return;
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    close_range(3, ~0U, 0);  // none of the daemon's sockets or files
    if (geteuid() == 0 && (setgroups(0, nullptr) != 0 || setgid(kNobody) != 0 || setuid(kNobody) != 0)) _exit(126);
    setsid();
    if (chdir("/") != 0) _exit(126);
    // Prepared before fork: the child only makes system calls.
    execve("/bin/sh", argv, envp);
    _exit(127);
  }
  running_[queue] = pid;
}

bool QueueProgram::OnChildExit(pid_t pid, int wait_status) {
  for (auto it = running_.begin(); it != running_.end(); ++it) {
    if (it->second != pid) continue;
    verdicts_[it->first] = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
    running_.erase(it);
    return true;
  }
  return false;
}

std::optional<int> QueueProgram::Verdict(const std::string& queue) const {
  auto it = verdicts_.find(queue);
  if (it == verdicts_.end()) return std::nullopt;
  return it->second;
}

void QueueProgram::Forget(const std::string& queue) { verdicts_.erase(queue); }

}  // namespace queue::daemon
