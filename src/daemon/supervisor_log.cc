// Delivery of queue notices to their supervisor.
#include "daemon/supervisor_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <iostream>

#include "daemon/mailer.h"
#include "util/printable.h"
#include "util/result.h"
#include "util/strict_open.h"

namespace queue::daemon {

std::string SupervisorLog::Line(const std::string& queue, const std::string& text) const {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &local);
  // The text may quote a job's name: one line, no escape sequences.
  return std::string(stamp) + " " + host_ + " queue " + queue + ": " + util::Printable(text) + "\n";
}

void SupervisorLog::Notify(const std::optional<std::string>& supervisor, const std::string& queue,
                           const std::string& text) const {
  std::string line = Line(queue, text);
  if (!supervisor) {
    std::cerr << "queued: " << line;
    return;
  }
  if (supervisor->find('/') != std::string::npos) {
    // Root appends here for an administrator: never through a link, nor in
    // a directory another user could put one in.
    auto fd = util::OpenForAppendStrictly(*supervisor);
    if (!fd.ok()) {
      std::cerr << "queued: refusing the supervisor log " << fd.message() << "; the notice: " << line;
      return;
    }
    if (write(*fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      std::cerr << "queued: cannot write to supervisor log " << *supervisor << ": " << ErrnoText(errno)
                << "; the notice: " << line;
    close(*fd);
    return;
  }
  if (!SendMail(*supervisor, "Queue notice", line))
    std::cerr << "queued: (no sendmail to mail " << *supervisor << ") " << line;
}

}  // namespace queue::daemon
