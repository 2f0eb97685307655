// The profile's keywords: each one's value syntax, range and effect on a
// QueuePolicy (inventory §3.2, SPEC §5 and §7). Internal to the profile
// module; profile_parser.cc handles lines, `host` prefixes and error context.
// Stateless; safe from any thread.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "profile/profile_tokens.h"
#include "profile/queue_policy.h"
#include "util/result.h"

namespace queue::profile {

struct Statement {
  std::string_view keyword;              // as written
  std::span<const ProfileToken> args;    // the words after the keyword
  std::string_view raw_args;             // the same, exactly as written (for `program`)
};

// Applies `statement` to `policy`. An error is a reason without file, line or
// keyword; `policy` may then be partly changed.
Status ApplyStatement(const Statement& statement, QueuePolicy& policy);

// The name of every keyword ApplyStatement knows, lower case, in table order
// (for the check that queue-profile(5) documents each; `host` is the
// parser's, not a keyword of this table).
std::vector<std::string_view> KeywordNames();

}  // namespace queue::profile
