// How users name jobs across the cluster. A job's id is the number its submit
// host gave it with that host's number, its line in the hosts file ("17.2"), so
// that it is unique in the cluster and names the host that answers for it.
// Every host reads the same hosts file, so every host spells a job alike.
// Renumbering (a host inserted in the middle of the file) changes how later
// jobs are spelled, never which record a job is: records keep the submit
// host's entry and number.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/hosts_file.h"
#include "spool/job_store.h"
#include "wire/job_id.h"

namespace queue::daemon {

class JobNames {
 public:
  JobNames() = default;
  // From the hosts file as loaded (again on SIGHUP); `self` is this host's entry.
  void SetHosts(std::vector<std::string> entries, std::string self);

  // A host's number: its line in the hosts file, from 1; 0 when not listed.
  uint32_t HostNumber(std::string_view entry) const;
  uint32_t SelfNumber() const { return HostNumber(self_); }
  // The entry a host number names; "" when none.
  std::string HostOf(uint32_t number) const;
  size_t HostCount() const { return entries_.size(); }

  // A record's id as its owner knows it: its submit host's number for it.
  wire::JobId IdOf(const spool::JobRecord& record) const;
  std::string Label(const spool::JobRecord& record) const { return wire::FormatJobId(IdOf(record)); }
  // A job submitted here, by its record id.
  std::string LocalLabel(uint64_t record_id) const { return wire::FormatJobId(record_id, SelfNumber()); }

  // A job id as a user typed it, with a bare number taken as this host's.
  wire::JobId Complete(wire::JobId id) const;

 private:
  std::vector<std::string> entries_;
  std::string self_;
};

}  // namespace queue::daemon
