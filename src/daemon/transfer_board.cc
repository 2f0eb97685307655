// The restart files in transit, per job.
#include "daemon/transfer_board.h"

#include <algorithm>

namespace queue::daemon {

void TransferBoard::Moved(uint64_t record_id, Transfer::Direction direction, const std::string& host,
                          uint32_t attempt, uint64_t bytes, uint64_t size, Clock::time_point now) {
  auto it = transfers_.find(record_id);
  bool fresh = it == transfers_.end() || it->second.direction != direction || it->second.host != host ||
               it->second.attempt != attempt || it->second.complete || bytes < it->second.bytes;
  if (fresh) {
    if (it == transfers_.end() && transfers_.size() >= kMaxJobs) {
      auto oldest = std::min_element(transfers_.begin(), transfers_.end(), [](const auto& a, const auto& b) {
        return a.second.updated < b.second.updated;
      });
      transfers_.erase(oldest);
    }
    transfers_[record_id] = Transfer{direction, host, attempt, 0, 0, false, now, now};
    it = transfers_.find(record_id);
  }
  it->second.bytes = bytes;
  it->second.size = std::max(size, it->second.size);
  it->second.complete = false;
  it->second.updated = now;
  Tell(record_id, it->second, fresh, now);
}

void TransferBoard::Completed(uint64_t record_id, Transfer::Direction direction, uint64_t size,
                              Clock::time_point now) {
  auto it = transfers_.find(record_id);
  if (it == transfers_.end() || it->second.direction != direction) return;
  it->second.bytes = size;
  it->second.size = size;
  it->second.complete = true;
  it->second.updated = now;
  Tell(record_id, it->second, true, now);
}

void TransferBoard::Tell(uint64_t record_id, Transfer& transfer, bool due, Clock::time_point now) {
  if (!listener_ || (!due && now - transfer.told < kNewsEvery)) return;
  transfer.told = now;
  listener_(record_id, transfer);
}

const Transfer* TransferBoard::Find(uint64_t record_id) const {
  auto it = transfers_.find(record_id);
  return it == transfers_.end() ? nullptr : &it->second;
}

}  // namespace queue::daemon
