// QueueProgram: runs each queue's `program CMD` (profile keyword) once per
// pass, as `sh -c 'CMD QUEUE'` without root privileges and with its output
// discarded, and remembers its verdict (inventory §3.2):
//   0 run, 1 stop (suspend the queue's jobs), 2 drain, 4 drain and migrate;
//   anything else drains the queue and turns the program off until the
//   profile changes. One run at a time per queue; the loop never waits on it.
// The program runs as nobody (when queued is root) in `/`, with a minimal
// environment of its own (PATH, HOME, LOGNAME, USER, SHELL, QUEUE_NAME),
// nothing of the daemon's.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>

namespace queue::daemon {

class QueueProgram {
 public:
  // Starts the program for the queue unless a run is still going.
  void Start(const std::string& queue, const std::string& command);
  // Call with every child the daemon reaps; true when it was one of ours.
  bool OnChildExit(pid_t pid, int wait_status);
  // The last verdict (exit status), nullopt before the first run ends.
  std::optional<int> Verdict(const std::string& queue) const;
  void Forget(const std::string& queue);

 private:
  std::map<std::string, pid_t> running_;
  std::map<std::string, int> verdicts_;
};

}  // namespace queue::daemon
