// The waiting list: the jobs submitted here that no host could take yet, and
// which of them a scheduling pass offers next.
//
// It owns each waiting job's entry (is its spec in the spool, its wait key,
// whether a placement or a check of its restart files is under way, which time
// it entered the list, why it waits) and the jobs' order: FIFO by spool record
// id, the order they were submitted in. Jobs are grouped by their wait key
// ("queue|only host"): a refusal for now holds back every job with the same
// key until the next heartbeat (Block, ClearBlocked).
//
// A pass costs O(jobs it offers + distinct keys), not O(waiting jobs): each
// key keeps its jobs that may be offered (neither in flight nor blocked) in
// their own ordered set, so a blocked key is passed over whole and jobs in
// flight are not walked again; finding, entering and erasing a job by record
// id is O(log n).
//
// Pure data and decisions: no I/O, no clock, no event loop. The daemon does
// the offering (TakeWaiting) and tells the list what came of it. Not
// thread-safe: the daemon's event loop is its only user.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "wire/job_spec.h"

namespace queue::daemon {

class WaitingList {
 public:
  struct Job {
    uint64_t record_id = 0;
    // Its spec is in the spool: a batch job, or a job to restart. Otherwise an
    // interactive job that waits with its stub's connection, and `spec` holds it.
    bool stored = false;
    std::string key;  // WaitKey: jobs that the same refusal holds back
    wire::JobSpec spec;  // interactive only
    // A placement (or a check of its kept restart files) is under way.
    bool in_flight = false;
    // Which time the job entered the list: what was started for an earlier
    // entry (before a restart re-queued it) reports to nobody.
    uint64_t generation = 0;
    // The last placement's refusals, while it waits (queue --jobs), and
    // their summary. In memory only: the first pass after a restart of this
    // daemon, within a heartbeat, says them again.
    std::string why;
    std::string summary;
  };

  // The jobs one refusal for now holds back: the same queue and `-h` host.
  static std::string WaitKey(const wire::JobSpec& spec) { return spec.queue + "|" + spec.only_host; }

  // Enters a job, not in flight, with a new generation (returned), behind the
  // jobs with lower record ids. An entry it had already is replaced: whatever
  // was under way for that one is stale from now on.
  uint64_t Add(uint64_t record_id, bool stored, std::string key, wire::JobSpec spec = {});
  // Drops a job (placed, failed, cancelled, lost); false when it was not here.
  bool Erase(uint64_t record_id);
  const Job* Find(uint64_t record_id) const;
  size_t size() const { return jobs_.size(); }
  bool empty() const { return jobs_.empty(); }
  size_t in_flight() const { return in_flight_; }

  // Whether a pass may take this job now: it waits, is not in flight, and its
  // key is not blocked.
  bool MayTake(uint64_t record_id) const;
  // REQUIRES: MayTake(record_id). Marks it in flight; returns its generation.
  uint64_t Take(uint64_t record_id);
  // What was started for `generation` of the job came back: it may be taken
  // again. False, and nothing changes, when that entry is gone (cancelled,
  // placed, re-queued meanwhile): the result is stale.
  bool Return(uint64_t record_id, uint64_t generation);
  void SetWhy(uint64_t record_id, std::string why, std::string summary = "");

  // No host takes jobs with this key for now: passes skip them until ClearBlocked.
  void Block(const std::string& key);
  bool Blocked(const std::string& key) const;
  // A heartbeat, or a slot freed: every key may be tried again. O(distinct keys).
  void ClearBlocked();

  // The jobs one pass tries, in the order it tries them: the first
  // `max_in_flight - in_flight()` jobs that may be taken, by record id across
  // every key that is not blocked.
  std::vector<uint64_t> NextToTry(size_t max_in_flight) const;
  // One scheduling pass: calls `take` with each job of NextToTry that may
  // still be taken when its turn comes, as long as fewer than `max_in_flight`
  // were in flight at the start plus taken in this pass. `take` is expected to
  // Take the job (or Erase it); it may change the list in any way meanwhile
  // (an answer that comes at once may Return, Block or Erase).
  void Pass(size_t max_in_flight, const std::function<void(uint64_t record_id)>& take);

 private:
  // The jobs of one key that a pass may offer (neither in flight nor erased),
  // FIFO by record id. Kept while it has such jobs or is blocked.
  struct KeyQueue {
    std::set<uint64_t> ready;
    bool blocked = false;
  };
  void Unready(const Job& job);
  void Ready(const Job& job);

  std::map<uint64_t, Job> jobs_;  // by spool record id
  std::map<std::string, KeyQueue> keys_;
  size_t in_flight_ = 0;
  uint64_t next_generation_ = 0;
};

}  // namespace queue::daemon
