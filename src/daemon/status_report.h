// The status a person or a program reads (`queue --status`, `queue --jobs`,
// `--json`): hosts with their load, this host's queues, and jobs as their
// owner should understand them. Reads only; builds JSON from the ledger, the
// load table, the queue table and the waiting list it is given.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/job_ledger.h"
#include "daemon/job_names.h"
#include "daemon/queue_table.h"
#include "daemon/transfer_board.h"
#include "daemon/waiting_list.h"
#include "load/load_table.h"
#include "migrate/criu.h"

namespace queue::daemon {

// Said wherever a queue asks for `checkpointmode 1` and CRIU cannot serve it.
std::string NoTransparentCheckpoints(const migrate::CriuAvailability& criu);

// A job's state as its owner should read it. A run that ended here whose
// output is not yet home (or that stopped at a checkpoint and is not yet
// queued again) is not finished for its owner: "ending" ("moving"), not "done".
std::string StateShown(const spool::JobRecord& record);

// What the scheduler knows of a job beside its record, in memory.
struct JobProgress {
  std::string waiting_for;     // why no host took it yet, in a few words (daemon/wait_reason)
  std::string waiting_detail;  // every host's refusal in the last pass
  const Transfer* transfer = nullptr;  // its restart files on their way, or the last that went
  load::Clock::time_point now{};
};

// One job as `queue --jobs --json` shows it (docs/json-schema.md lists the fields).
nlohmann::json JobJson(const spool::JobRecord& record, const JobNames& names, const std::string& self,
                       const JobProgress& progress);

class StatusReport {
 public:
  // Every reference must outlive this object (all belong to the daemon).
  StatusReport(JobLedger& ledger, const JobNames& names, const load::LoadTable& table, const QueueTable& queues,
               const WaitingList& waiting, const TransferBoard& transfers, std::string self)
      : ledger_(ledger), names_(names), table_(table), queues_(queues), waiting_(waiting), transfers_(transfers),
        self_(std::move(self)) {}

  // The jobs submitted here or running here that `uid` may see (root: all);
  // empty when the spool cannot be read.
  nlohmann::json Jobs(uint32_t uid, bool include_finished) const;
  // `queue --status`: every host of `hosts` with its load as of `now` and
  // its queues (with why one takes no job, as that host said it), this host's
  // queues, the caller's unfinished jobs. A host is up when its load is
  // fresh, or, in a large cluster (`up` given), when the gossip says so; its
  // load is then shown when a placement asked for it lately.
  std::string Status(uint32_t uid, const std::vector<std::string>& hosts, const migrate::CriuAvailability& criu,
                     int64_t keep_finished_seconds, load::Clock::time_point now,
                     const std::function<bool(const std::string&)>& up = nullptr) const;

 private:
  JobLedger& ledger_;
  const JobNames& names_;
  const load::LoadTable& table_;
  const QueueTable& queues_;
  const WaitingList& waiting_;
  const TransferBoard& transfers_;
  std::string self_;
};

}  // namespace queue::daemon
