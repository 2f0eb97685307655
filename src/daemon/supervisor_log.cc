// Delivery of queue notices to their supervisor.
#include "daemon/supervisor_log.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/close_range.h>

#include <ctime>
#include <iostream>

namespace queue::daemon {

namespace {

constexpr const char* kSendmailPaths[] = {"/usr/sbin/sendmail", "/usr/lib/sendmail"};

const char* FindSendmail() {
  for (const char* path : kSendmailPaths)
    if (access(path, X_OK) == 0) return path;
  return nullptr;
}

// Hands the message to sendmail without waiting for it; the daemon reaps its
// children in one place.
bool Mail(const char* sendmail, const std::string& user, const std::string& message) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return false;
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    dup2(pipe_fds[0], 0);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    close_range(3, ~0U, 0);  // none of the daemon's sockets or files
    execl(sendmail, "sendmail", "-oi", "--", user.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipe_fds[0]);
  std::string mail = "To: " + user + "\nSubject: Queue notice\n\n" + message;
  ssize_t written = write(pipe_fds[1], mail.data(), mail.size());
  close(pipe_fds[1]);
  return written == static_cast<ssize_t>(mail.size());
}

}  // namespace

std::string SupervisorLog::Line(const std::string& queue, const std::string& text) const {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &local);
  return std::string(stamp) + " " + host_ + " queue " + queue + ": " + text + "\n";
}

void SupervisorLog::Notify(const std::optional<std::string>& supervisor, const std::string& queue,
                           const std::string& text) const {
  std::string line = Line(queue, text);
  if (!supervisor) {
    std::cerr << "queued: " << line;
    return;
  }
  if (supervisor->find('/') != std::string::npos) {
    int fd = open(supervisor->c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0 || write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      std::cerr << "queued: cannot write to supervisor log " << *supervisor << ": " << line;
    if (fd >= 0) close(fd);
    return;
  }
  const char* sendmail = FindSendmail();
  if (sendmail == nullptr || !Mail(sendmail, *supervisor, line))
    std::cerr << "queued: (no sendmail to mail " << *supervisor << ") " << line;
}

}  // namespace queue::daemon
