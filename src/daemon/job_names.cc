#include "daemon/job_names.h"

#include <algorithm>

namespace queue::daemon {

void JobNames::SetHosts(std::vector<std::string> entries, std::string self) {
  entries_ = std::move(entries);
  self_ = std::move(self);
}

uint32_t JobNames::HostNumber(std::string_view entry) const {
  auto found = std::find(entries_.begin(), entries_.end(), entry);
  return found == entries_.end() ? 0 : static_cast<uint32_t>(found - entries_.begin()) + 1;
}

std::string JobNames::HostOf(uint32_t number) const {
  return number == 0 || number > entries_.size() ? "" : entries_[number - 1];
}

wire::JobId JobNames::IdOf(const spool::JobRecord& record) const {
  if (record.origin_host.empty()) return {record.id, SelfNumber()};
  return {record.origin_id, HostNumber(record.origin_host)};
}

wire::JobId JobNames::Complete(wire::JobId id) const {
  if (id.host == 0) id.host = SelfNumber();
  return id;
}

}  // namespace queue::daemon
