// ProfileParser: turns a queue's `profile` file into a QueuePolicy (SPEC §5,
// §7; inventory §3.1-§3.2), or into one error naming file, line and keyword:
//   /spool/now/profile:7: loadsched: "abc" is not a number
//
// Syntax: one statement per line, `keyword [value...]`; `#` outside double
// quotes starts a comment; values may be double-quoted; `host NAME stmt`
// applies stmt only on host NAME. Keywords are case-insensitive. Statements
// under another host's name are still checked, so a typo is caught on every
// host, but they change nothing here. A keyword given twice: the later line
// wins, except `program`, which may appear only once.
//
// Ranges where the original's are too small for today's hosts: maxexec and
// vmaxexec take 0..100000 (the original allowed 0..100).
//
// Stateless functions; safe from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "profile/queue_policy.h"
#include "util/result.h"

namespace queue::profile {

inline constexpr size_t kMaxProfileBytes = 1024 * 1024;

struct ProfileContext {
  std::string file_name;   // for error messages
  std::string local_host;  // canonical name of this host, maybe with ":port"
  unsigned cpu_count = 0;  // the default maxexec (0 counts as 1)
};

// Parses profile text. Does not touch the file system.
Result<QueuePolicy> ParseProfile(std::string_view text, const ProfileContext& ctx);

// Reads `path` (a regular file of at most kMaxProfileBytes) and parses it.
// Messages name ctx.file_name, or `path` when that is empty. Whether a missing
// profile is an error for the queue is the caller's decision.
Result<QueuePolicy> LoadProfileFile(const std::string& path, ProfileContext ctx);

}  // namespace queue::profile
