#include "util/child_wait.h"

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace queue {

namespace {
// P_PIDFD of <linux/wait.h>, which glibc 2.36's idtype_t does not name yet.
constexpr int kIdTypePidfd = 3;
}  // namespace

int OpenPidfd(pid_t pid) {
  if (pid <= 0) return -1;
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

std::optional<int> WaitAndClosePidfd(int pidfd) {
  if (pidfd < 0) return std::nullopt;
  siginfo_t info{};
  int rc;
  while ((rc = waitid(static_cast<idtype_t>(kIdTypePidfd), static_cast<id_t>(pidfd), &info, WEXITED)) < 0 &&
         errno == EINTR) {
  }
  close(pidfd);
  if (rc < 0) return std::nullopt;
  if (info.si_code == CLD_EXITED) return W_EXITCODE(info.si_status, 0);
  return W_EXITCODE(0, info.si_status);  // killed (or dumped) by that signal
}

}  // namespace queue
