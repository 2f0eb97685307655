// LogOutput: where queued's log lines go, and in what form.
//   - Under systemd with stderr connected to the journal ($JOURNAL_STREAM
//     names stderr's device and inode, systemd.exec(5)): on stderr, each line
//     led by its syslog priority ("<3>", sd-daemon(3)), so journald keeps levels.
//   - In the foreground otherwise (-D, or systemd with stderr elsewhere): on
//     stderr as it is, without priorities.
//   - Detached: appended to the log file in the spool, on descriptors 1 and
//     2; opened again on SIGHUP, so that logrotate can move it away (no
//     copytruncate, which loses the lines written while it copies).
// Every line's control characters are escaped (util/printable), whatever the
// output.
#pragma once

#include <string>

#include "util/result.h"

namespace queue::daemon {

// Whether descriptor 2 is the journal stream systemd gave this process.
bool StderrIsJournal();

// Puts std::cerr's line handling in place (escaping; priorities for the
// journal, or removed elsewhere): before the first log line, and again when
// the log leaves the journal for a file.
void InstallLogStream(bool journal);

// Opens `path` for appending (mode 0600) onto descriptors 1 and 2, in place
// of what they were: lines written before stay in the old file, later ones go
// to the new; none falls between. On failure 1 and 2 are left as they were.
Status OpenLogFile(const std::string& path);

}  // namespace queue::daemon
