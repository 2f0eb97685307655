// WAL check: reads a SQLite write-ahead log as SQLite's recovery does, to find
// what that recovery would drop without a word. SQLite replays the log up to
// its first damaged frame and ignores the rest, committed transactions
// included; once the log is written back into the database they are gone for
// good, with the jobs they recorded. So the job store looks before SQLite does.
//
// Only the last transaction in a log can be torn by a crash or a power cut:
// with synchronous=FULL each commit is synced before the next one is written.
// Two or more committed transactions after the damage therefore mean that the
// log was damaged at rest, not cut short.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "util/result.h"

namespace queue::spool {

struct WalDamage {
  uint64_t frame = 0;         // the first frame SQLite would not read (from 1); 0: its header
  uint64_t frames = 0;        // whole frames in the file
  uint64_t lost_commits = 0;  // transactions committed after it, that SQLite would drop
};

// Reads the log at `wal_path`. Nothing to say (nullopt) when there is none,
// when SQLite would read every transaction in it that a crash could not have
// torn, or when its header is too damaged to find its frames by (SQLite then
// ignores the whole log, and what it held cannot be told from here).
// Fails only when the file is there but cannot be read.
Result<std::optional<WalDamage>> FindWalDamage(const std::string& wal_path);

}  // namespace queue::spool
