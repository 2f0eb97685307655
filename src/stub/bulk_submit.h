// Bulk submission from the client's side (`queue -r --array 1-100 -- cmd`,
// `queue -r --from FILE`): reading the array's indices and the file's command
// lines, and sending them to the local daemon in frames it takes (a list of
// lines in as many parts as it needs), which stores every job or none.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "stub/daemon_client.h"
#include "util/result.h"
#include "wire/messages.h"

namespace queue::stub {

// "1-10000", "0-99:2", "1,3,5-9": indices from 0 to wire::kMaxArrayIndex, as
// ascending disjoint ranges. Refuses an empty list, a bad number or range, a
// step of 0, an index given twice and more than wire::kMaxBulkJobs indices.
Result<std::vector<wire::ArrayRange>> ParseArrayIndices(std::string_view text);

// The jobs of a --from file: one command per line, as tsp and GNU Parallel
// take them; blank lines and lines whose first non-blank is `#` are skipped,
// a trailing CR is dropped. Refuses a NUL byte and a line longer than
// wire::kMaxArgBytes, naming its line number, and a file with no command.
Result<std::vector<std::string>> ParseCommandLines(std::string_view text);

// The lines split into parts whose encoded size stays within `budget` bytes
// (each part at least one line).
std::vector<std::vector<std::string>> SplitIntoParts(std::vector<std::string> lines, size_t budget);

// Sends an array (ranges) or a list of lines (spec.argv then holds what each
// line is appended to) and waits until the daemon has stored them all;
// `progress(lines sent, total)` after each part the daemon took.
Result<wire::BulkSubmitReply> SubmitBulk(DaemonClient& client, const wire::JobSpec& spec,
                                         const std::vector<wire::ArrayRange>& ranges, std::vector<std::string> lines,
                                         const std::function<void(size_t, size_t)>& progress);

}  // namespace queue::stub
