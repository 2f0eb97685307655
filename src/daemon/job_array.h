// Job arrays on the submit host (`queue -r --array 1-100`, `queue -r --from
// FILE`): what each element's job is, and the parts of a long list of command
// lines that wait, per client connection, for their last part. The Scheduler
// stores an array's records all at once (JobLedger::SubmitMany) and offers
// each element as a job of its own; nothing here touches the spool.
//
// An element's job is the array's spec with QUEUE_ARRAY_ID (the array's id,
// "17.2") and QUEUE_ARRAY_INDEX in its environment, and, for a list, its line
// appended to argv (`/bin/sh -c LINE`). Its output file keeps the index:
// `<jobname>.o<array id>_<index>` ("sh.o17.2_5"). A list's elements are
// numbered from 1 in the order of their lines.
//
// Not thread-safe: the daemon's event loop is its only user.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "util/result.h"
#include "wire/messages.h"

namespace queue::daemon {

// Every index of `ranges`, in order (at most wire::kMaxBulkJobs of them).
std::vector<uint32_t> ExpandIndices(const std::vector<wire::ArrayRange>& ranges);

// The spec of one element: `base` without any QUEUE_ARRAY_* it inherited (a
// submission from inside an array job), with the element's own, and `line`
// (when not empty) appended to argv.
wire::JobSpec ElementSpec(const wire::JobSpec& base, const std::string& array_label, uint32_t index,
                          const std::string& line);

// The lines of a --from submission, gathered part by part for each client
// connection (keyed by its address, which is only compared, never followed),
// until the last part. `Owner` is the connection type, held weakly: a part
// whose connection has gone is never taken for a new connection's.
template <class Owner>
class PendingLines {
 public:
  struct Gathered {
    wire::JobSpec spec;
    std::vector<std::string> lines;
  };

  // Adds a part. Returns the lines gathered so far (with this part), or why
  // the submission is refused (then forgotten): its spec differs from the
  // first part's, or it passes `max_jobs` lines (what one user may keep
  // waiting) or kMaxBulkLineBytes.
  Result<size_t> Add(const std::shared_ptr<Owner>& owner, wire::BulkSubmitRequest part, size_t max_jobs) {
    auto found = parts_.find(owner.get());
    if (found != parts_.end() && found->second.owner.lock() != owner) {
      parts_.erase(found);
      found = parts_.end();
    }
    if (found == parts_.end()) found = parts_.emplace(owner.get(), Entry{owner, {std::move(part.spec), {}}, 0}).first;
    else if (!(found->second.gathered.spec == part.spec)) {
      parts_.erase(found);
      return Fail("the parts of one submission must have the same spec; nothing was submitted");
    }
    Entry& entry = found->second;
    for (auto& line : part.lines) {
      entry.bytes += line.size();
      entry.gathered.lines.push_back(std::move(line));
    }
    if (entry.gathered.lines.size() > max_jobs) {
      size_t count = entry.gathered.lines.size();
      parts_.erase(found);
      return Fail("refused, nothing submitted: these " + std::to_string(count) + " jobs and more would pass the " +
                  std::to_string(max_jobs) + " one user may keep waiting (queued --user-waiting-jobs)");
    }
    if (entry.bytes > wire::kMaxBulkLineBytes) {
      parts_.erase(found);
      return Fail("the lines pass " + std::to_string(wire::kMaxBulkLineBytes >> 20) +
                  " MiB, the most one submission may hold; split the file; nothing was submitted");
    }
    return entry.gathered.lines.size();
  }

  // The whole submission once its last part was added; forgotten here.
  Gathered Take(const std::shared_ptr<Owner>& owner) {
    auto found = parts_.find(owner.get());
    if (found == parts_.end()) return {};
    Gathered gathered = std::move(found->second.gathered);
    parts_.erase(found);
    return gathered;
  }

  // Forgets the parts of connections that closed before their last part.
  void ForgetClosed() {
    std::erase_if(parts_, [](const auto& entry) { return entry.second.owner.expired(); });
  }
  size_t size() const { return parts_.size(); }

 private:
  struct Entry {
    std::weak_ptr<Owner> owner;
    Gathered gathered;
    size_t bytes = 0;
  };
  std::map<const Owner*, Entry> parts_;
};

}  // namespace queue::daemon
