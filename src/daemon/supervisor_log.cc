// Delivery of queue notices to their supervisor.
#include "daemon/supervisor_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <iostream>

#include "daemon/mailer.h"

namespace queue::daemon {

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
  if (!SendMail(*supervisor, "Queue notice", line))
    std::cerr << "queued: (no sendmail to mail " << *supervisor << ") " << line;
}

}  // namespace queue::daemon
