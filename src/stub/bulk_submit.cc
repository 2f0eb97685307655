// Parsing --array and --from, and sending a bulk submission in parts.
#include "stub/bulk_submit.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace queue::stub {

namespace {

Result<uint32_t> ReadIndex(std::string_view text, std::string_view item) {
  uint32_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text.front())) || error != std::errc() ||
      end != text.data() + text.size() || value > wire::kMaxArrayIndex)
    return Fail("--array: \"" + std::string(item) + "\" is not an index or a range (indices are 0 to " +
                std::to_string(wire::kMaxArrayIndex) + "; write 1-100, 0-98:2 or 1,3,5-9)");
  return value;
}

// One item of the list: N, A-B or A-B:STEP, its indices added to `out`.
Status AddItem(std::string_view item, std::vector<uint32_t>& out) {
  size_t colon = item.find(':');
  std::string_view range = item.substr(0, colon);
  uint32_t step = 1;
  if (colon != std::string_view::npos) {
    auto parsed = ReadIndex(item.substr(colon + 1), item);
    if (!parsed.ok()) return parsed.error();
    if (*parsed == 0) return Fail("--array: \"" + std::string(item) + "\": the step must be at least 1");
    step = *parsed;
  }
  size_t dash = range.find('-');
  auto first = ReadIndex(range.substr(0, dash), item);
  if (!first.ok()) return first.error();
  uint32_t last = *first;
  if (dash != std::string_view::npos) {
    auto parsed = ReadIndex(range.substr(dash + 1), item);
    if (!parsed.ok()) return parsed.error();
    last = *parsed;
  } else if (colon != std::string_view::npos) {
    return Fail("--array: \"" + std::string(item) + "\": a step needs a range (1-100:" + std::to_string(step) + ")");
  }
  if (last < *first) return Fail("--array: \"" + std::string(item) + "\" ends before it starts");
  for (uint64_t index = *first; index <= last; index += step) {
    if (out.size() >= wire::kMaxBulkJobs)
      return Fail("--array: more than " + std::to_string(wire::kMaxBulkJobs) + " indices");
    out.push_back(static_cast<uint32_t>(index));
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<wire::ArrayRange>> ParseArrayIndices(std::string_view text) {
  if (text.empty()) return Fail("--array: no indices given (write 1-100, 0-98:2 or 1,3,5-9)");
  std::vector<uint32_t> indices;
  for (size_t start = 0; start <= text.size();) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (item.empty()) return Fail("--array: an empty item in \"" + std::string(text) + "\"");
    if (Status added = AddItem(item, indices); !added.ok()) return Fail(added.message());
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  std::sort(indices.begin(), indices.end());
  if (auto twice = std::adjacent_find(indices.begin(), indices.end()); twice != indices.end())
    return Fail("--array: index " + std::to_string(*twice) + " is given twice");
  // Back into ranges: each run of one step becomes one range.
  std::vector<wire::ArrayRange> ranges;
  for (size_t i = 0; i < indices.size();) {
    wire::ArrayRange range{indices[i], indices[i], 1};
    size_t j = i + 1;
    if (j < indices.size()) {
      range.step = indices[j] - indices[i];
      while (j < indices.size() && indices[j] - indices[j - 1] == range.step) ++j;
      range.last = indices[j - 1];
    }
    ranges.push_back(range);
    i = j;
  }
  if (ranges.size() > wire::kMaxArrayRanges)
    return Fail("--array: the indices make more than " + std::to_string(wire::kMaxArrayRanges) +
                " ranges; give fewer, more regular ones");
  return ranges;
}

Result<std::vector<std::string>> ParseCommandLines(std::string_view text) {
  std::vector<std::string> lines;
  size_t number = 0;
  for (size_t start = 0; start < text.size();) {
    size_t newline = text.find('\n', start);
    std::string_view line = text.substr(start, newline == std::string_view::npos ? std::string_view::npos : newline - start);
    start = newline == std::string_view::npos ? text.size() : newline + 1;
    ++number;
    if (line.ends_with('\r')) line.remove_suffix(1);
    size_t first = line.find_first_not_of(" \t\f\v");
    if (first == std::string_view::npos || line[first] == '#') continue;
    if (line.find('\0') != std::string_view::npos)
      return Fail("--from: line " + std::to_string(number) + " holds a NUL byte");
    if (line.size() > wire::kMaxArgBytes)
      return Fail("--from: line " + std::to_string(number) + " is " + std::to_string(line.size()) +
                  " bytes long, more than a command may be (" + std::to_string(wire::kMaxArgBytes) +
                  "); nothing was submitted");
    if (lines.size() >= wire::kMaxBulkJobs)
      return Fail("--from: more than " + std::to_string(wire::kMaxBulkJobs) + " commands; nothing was submitted");
    lines.emplace_back(line);
  }
  if (lines.empty()) return Fail("--from: no command in the file (blank lines and # comments are skipped)");
  return lines;
}

std::vector<std::vector<std::string>> SplitIntoParts(std::vector<std::string> lines, size_t budget) {
  std::vector<std::vector<std::string>> parts;
  size_t used = 0;
  for (auto& line : lines) {
    const size_t cost = line.size() + 4;  // its length prefix
    if (parts.empty() || (used + cost > budget && !parts.back().empty())) {
      parts.emplace_back();
      used = 0;
    }
    used += cost;
    parts.back().push_back(std::move(line));
  }
  return parts;
}

Result<wire::BulkSubmitReply> SubmitBulk(DaemonClient& client, const wire::JobSpec& spec,
                                         const std::vector<wire::ArrayRange>& ranges, std::vector<std::string> lines,
                                         const std::function<void(size_t, size_t)>& progress) {
  wire::BulkSubmitRequest request;
  request.spec = spec;
  if (!ranges.empty()) {
    request.ranges = ranges;
    return Call<wire::BulkSubmitReply>(client, request);
  }
  // Each part is one frame of at most wire::kMaxClientRequestBytes, spec included.
  const size_t spec_bytes = wire::EncodeStoredSpec(spec).size();
  const size_t headroom = 64 << 10;
  const size_t budget = wire::kMaxClientRequestBytes > spec_bytes + headroom + wire::kMaxArgBytes
                            ? wire::kMaxClientRequestBytes - spec_bytes - headroom
                            : wire::kMaxArgBytes;
  const size_t total = lines.size();
  auto parts = SplitIntoParts(std::move(lines), budget);
  size_t sent = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    sent += parts[i].size();
    request.lines = std::move(parts[i]);
    request.more = i + 1 < parts.size();
    auto reply = Call<wire::BulkSubmitReply>(client, request);
    if (!reply.ok()) return reply.error();
    if (reply->done != !request.more || (request.more && reply->count != sent))
      return Fail("queued answered part " + std::to_string(i + 1) + " of the submission unexpectedly");
    if (progress) progress(sent, total);
    if (reply->done) return reply;
  }
  return Fail("queued did not answer the last part of the submission");
}

}  // namespace queue::stub
