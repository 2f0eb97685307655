// Running the queues' `program` checks.
#include "daemon/queue_program.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/close_range.h>

namespace queue::daemon {

namespace {

constexpr uid_t kNobody = 65534;

}  // namespace

void QueueProgram::Start(const std::string& queue, const std::string& command) {
  if (running_.count(queue)) return;
  std::string line = command + " " + queue;
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
    execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
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
