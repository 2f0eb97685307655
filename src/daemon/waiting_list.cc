// The waiting list: jobs grouped by wait key, FIFO within each, passes that
// walk keys rather than jobs.
#include "daemon/waiting_list.h"

#include <algorithm>
#include <utility>

namespace queue::daemon {

uint64_t WaitingList::Add(uint64_t record_id, bool stored, std::string key, wire::JobSpec spec) {
  Erase(record_id);
  Job& job = jobs_[record_id];
  job.record_id = record_id;
  job.stored = stored;
  job.key = std::move(key);
  job.spec = std::move(spec);
  job.generation = ++next_generation_;
  Ready(job);
  return job.generation;
}

bool WaitingList::Erase(uint64_t record_id) {
  auto found = jobs_.find(record_id);
  if (found == jobs_.end()) return false;
  if (found->second.in_flight)
    --in_flight_;
  else
    Unready(found->second);
  jobs_.erase(found);
  return true;
}

const WaitingList::Job* WaitingList::Find(uint64_t record_id) const {
  auto found = jobs_.find(record_id);
  return found == jobs_.end() ? nullptr : &found->second;
}

bool WaitingList::MayTake(uint64_t record_id) const {
  auto found = jobs_.find(record_id);
  return found != jobs_.end() && !found->second.in_flight && !Blocked(found->second.key);
}

uint64_t WaitingList::Take(uint64_t record_id) {
  Job& job = jobs_.at(record_id);
  if (!job.in_flight) {
    Unready(job);
    job.in_flight = true;
    ++in_flight_;
  }
  return job.generation;
}

bool WaitingList::Return(uint64_t record_id, uint64_t generation) {
  auto found = jobs_.find(record_id);
  if (found == jobs_.end() || found->second.generation != generation) return false;
  Job& job = found->second;
  if (job.in_flight) {
    job.in_flight = false;
    --in_flight_;
    Ready(job);
  }
  return true;
}

void WaitingList::SetWhy(uint64_t record_id, std::string why, std::string summary) {
  auto found = jobs_.find(record_id);
  if (found == jobs_.end()) return;
  found->second.why = std::move(why);
  found->second.summary = std::move(summary);
}

void WaitingList::Block(const std::string& key) { keys_[key].blocked = true; }

bool WaitingList::Blocked(const std::string& key) const {
  auto found = keys_.find(key);
  return found != keys_.end() && found->second.blocked;
}

void WaitingList::ClearBlocked() {
  for (auto it = keys_.begin(); it != keys_.end();) {
    it->second.blocked = false;
    it = it->second.ready.empty() ? keys_.erase(it) : std::next(it);
  }
}

std::vector<uint64_t> WaitingList::NextToTry(size_t max_in_flight) const {
  std::vector<uint64_t> next;
  if (in_flight_ >= max_in_flight) return next;
  const size_t wanted = max_in_flight - in_flight_;
  // A k-way merge of the keys that are not blocked, each already in order:
  // a min-heap of where each key's walk stands.
  using Cursor = std::pair<std::set<uint64_t>::const_iterator, std::set<uint64_t>::const_iterator>;
  std::vector<Cursor> heap;
  for (const auto& [key, queue] : keys_)
    if (!queue.blocked && !queue.ready.empty()) heap.emplace_back(queue.ready.begin(), queue.ready.end());
  auto later = [](const Cursor& a, const Cursor& b) { return *a.first > *b.first; };
  if (heap.empty()) return next;
  std::make_heap(heap.begin(), heap.end(), later);
  next.reserve(std::min(wanted, jobs_.size()));
  while (next.size() < wanted && !heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    Cursor& cursor = heap.back();
    next.push_back(*cursor.first);
    if (++cursor.first == cursor.second)
      heap.pop_back();
    else
      std::push_heap(heap.begin(), heap.end(), later);
  }
  return next;
}

void WaitingList::Pass(size_t max_in_flight, const std::function<void(uint64_t record_id)>& take) {
  size_t in_flight = in_flight_;
  // Chosen first: `take` may change the list (an answer may come at once).
  for (uint64_t record_id : NextToTry(max_in_flight)) {
    if (in_flight >= max_in_flight) break;
    if (!MayTake(record_id)) continue;
    ++in_flight;
    take(record_id);
  }
}

void WaitingList::Unready(const Job& job) {
  auto queue = keys_.find(job.key);
  if (queue == keys_.end()) return;
  queue->second.ready.erase(job.record_id);
  if (queue->second.ready.empty() && !queue->second.blocked) keys_.erase(queue);
}

void WaitingList::Ready(const Job& job) { keys_[job.key].ready.insert(job.record_id); }

}  // namespace queue::daemon
