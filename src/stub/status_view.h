// What `queue --status` and `queue --jobs` print: the daemon's JSON turned
// into the documents `--json` prints (versioned: docs/json-schema.md) and into
// aligned tables, coloured only for a terminal; and the progress line of a
// transfer (`queue --migrate`). Pure functions of their arguments: no I/O,
// no environment, no clock; apps/queue_main.cc and stub/live_view decide
// where the text goes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace queue::stub {

// The `schema` field of each document: its name and version. A version goes
// up when a field is removed or changes meaning; new optional fields do not
// change it (a reader ignores fields it does not know).
inline constexpr char kStatusSchema[] = "queue-status/1";
inline constexpr char kJobsSchema[] = "queue-jobs/1";

// `queue --status --json`: the daemon's status, with the schema and the socket
// it came through (path, and how it was found).
nlohmann::json StatusDocument(nlohmann::json daemon_status, const std::string& socket_path,
                              const std::string& found_by);
// `queue --jobs --json`: {"schema", "jobs": the daemon's list}.
nlohmann::json JobsDocument(nlohmann::json daemon_jobs);

// Colour only on a terminal, and never when NO_COLOR is set to anything
// non-empty (no-color.org) or TERM is "dumb". `no_color` and `term` may be null.
bool UseColour(bool stdout_is_terminal, const char* no_color, const char* term);

// One cell: its text (shown with control characters escaped) and an SGR
// colour code ("32" green, "31" red, "33" yellow) or "" for none.
struct Cell {
  std::string text;
  std::string colour;
};

// Rows (the first is the header, shown bold when coloured) in columns as wide
// as their widest cell, two spaces apart, the last column unpadded. Widths
// count characters, not bytes (UTF-8).
std::string AlignedTable(const std::vector<std::vector<Cell>>& rows, bool colour);

// The tables of a StatusDocument and a JobsDocument.
std::string StatusText(const nlohmann::json& status, bool colour);
std::string JobsText(const nlohmann::json& jobs, bool colour);

// "1-5,7,9-10": `indices` (ascending), runs of consecutive ones as ranges.
std::string IndexRanges(const std::vector<unsigned>& indices);

// The rows of `queue --jobs`, job arrays compacted: the elements of one array
// in the same state, queue and host (and with no message, exit or signal of
// their own) as one row whose id is "17.2_[1-40,42]"; other jobs as they are.
nlohmann::json CompactArrays(const nlohmann::json& jobs);

// How long finished jobs are listed, as `queue --jobs --all` says it.
std::string KeptFor(int64_t seconds);

// One line of a transfer's progress, `width` columns at most (a bar when
// `size` is known, else bytes and rate only), e.g.
// "moving 3.0  [#########.........]  45%  117.0/260.0 MiB  85.3 MiB/s".
std::string ProgressLine(const std::string& label, uint64_t bytes, uint64_t size, double bytes_per_second,
                         int width);

}  // namespace queue::stub
