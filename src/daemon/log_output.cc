// LogOutput: the journal's priorities, stderr, or the log file (see the header).
#include "daemon/log_output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string_view>

#include "util/log_priority.h"
#include "util/printable.h"

namespace queue::daemon {

bool StderrIsJournal() {
  // "DEVICE:INODE", both decimal (systemd.exec(5)).
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  unsigned long long device = 0, inode = 0;
  char end = 0;
  if (std::sscanf(stream, "%llu:%llu%c", &device, &inode, &end) != 2) return false;
  struct stat st {};
  if (fstat(2, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == device && static_cast<unsigned long long>(st.st_ino) == inode;
}

void InstallLogStream(bool journal) {
  using util::LogPriorityBuffer;
  const auto prefixes = journal ? LogPriorityBuffer::Prefixes::kKeep : LogPriorityBuffer::Prefixes::kRemove;
  // Never destroyed: std::cerr writes through them until the process exits,
  // and the C++ runtime flushes it after function-local statics are gone
  // (a static buffer here made every queued crash at exit under ASan).
  static auto* priorities = new LogPriorityBuffer(std::cerr.rdbuf(), prefixes);
  // Every log line may quote what a user chose (a job's name, a directory):
  // its control characters are escaped, so no line can be forged (issue 12).
  static auto* escaped = new util::EscapingLogBuffer(priorities);
  priorities->set_prefixes(prefixes);
  std::cerr.rdbuf(escaped);
}

Status OpenLogFile(const std::string& path) {
  int log = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log < 0) return Fail("cannot open the log file " + path + ": " + ErrnoText(errno));
  // dup2 replaces each descriptor at once: a write goes to the old file or
  // to the new one, never nowhere.
  bool moved = dup2(log, 1) >= 0 && dup2(log, 2) >= 0;
  int saved = errno;
  close(log);
  if (!moved) return Fail("cannot put the log file " + path + " in place: " + ErrnoText(saved));
  return Status::Ok();
}

}  // namespace queue::daemon
