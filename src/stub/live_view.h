// What the client shows over time: `queue --status --watch` (and `--jobs
// --watch`), redrawn in place on a terminal, and the progress of `queue
// --migrate` there. The text comes from stub/status_view; this module owns
// the terminal side: the cursor, SIGINT while it runs, the pacing.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

#include <nlohmann/json.hpp>

#include "util/result.h"
#include "wire/job_id.h"

namespace queue::stub {

// Shows `render`'s text now and every `seconds` until SIGINT or SIGTERM
// (returns 0) or until `render` fails (says why on `err`, returns 2). On a
// terminal the text is redrawn in place (cursor home, each line cleared to
// its end, the rest of the screen cleared, the cursor hidden meanwhile and
// shown again at the end); otherwise each round is printed after the last,
// a blank line between.
int Watch(const std::function<Result<std::string>()>& render, int seconds, bool terminal, std::ostream& out,
          std::ostream& err);

// What a follower of a migration is to show next, from the daemon's view of
// the job (an entry of `queue --jobs --json`'s "jobs", or null when the job
// is no longer listed). Pure: FollowMigration draws it.
struct MigrationView {
  bool done = false;     // stop following
  std::string line;      // the line to show (a progress line while not done)
};
// `restarts_before`: the job's restarts when the move was asked; `old_transfer`:
// its transfer then (null if none), which says nothing of this move.
MigrationView ViewMigration(const nlohmann::json& job, uint32_t restarts_before, const nlohmann::json& old_transfer,
                            const std::string& label, int width);

// Follows job `id`'s move on a terminal (`err`, with its width `width`) from
// `jobs` (the daemon's job list, asked again every 250 ms) until the job goes
// on elsewhere or ends, or SIGINT (the move goes on regardless). Says nothing
// when the job is not this daemon's own (its transfers are known at its
// submit host only). `self` is the daemon's host entry.
void FollowMigration(const std::function<Result<nlohmann::json>()>& jobs, const wire::JobId& id,
                     const std::string& self, int width, std::ostream& err);

}  // namespace queue::stub
