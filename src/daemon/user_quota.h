// UserQuota: what one user may keep in this host's spool, which is root's
// (issue 12, fault 4). Checked when the user submits a job here:
//   - jobs waiting here (their records and specs), at most waiting_jobs;
//   - bytes kept for the user: the specs of their waiting jobs, and the
//     files kept for their jobs (restart bundles and output pieces in
//     .queued/restart, outputs held in .queued/held), at most spool_bytes.
// Outputs and bundles count against the user whose job they belong to (by
// the job's record). A submission past a limit is refused with a message
// that says which limit and what to do; jobs already in the spool are
// unaffected. MeasureUser() scans only the held and restart directories, which
// hold files of jobs in trouble or moving, not of every job.
#pragma once

#include <cstdint>
#include <string>

#include "daemon/job_ledger.h"
#include "spool/spool_layout.h"
#include "util/result.h"

namespace queue::daemon {

struct UserLimits {
  size_t waiting_jobs = 1000;
  uint64_t spool_bytes = 1ull << 30;
};

struct UserUsage {
  size_t waiting_jobs = 0;
  uint64_t spec_bytes = 0;  // of the waiting jobs
  uint64_t kept_bytes = 0;  // bundles, output pieces and held outputs
};

// Whether `jobs` new jobs whose stored specs take `spec_bytes` together fit;
// the refusal names `host` and the limit passed.
Status CheckSubmission(uint32_t uid, const UserUsage& usage, uint64_t spec_bytes, const UserLimits& limits,
                       const std::string& host, size_t jobs = 1);

// What `uid` holds in the spool now: its waiting jobs from the ledger's tally
// (O(1), whatever the backlog), its kept files by listing those two directories.
Result<UserUsage> MeasureUser(JobLedger& ledger, const spool::SpoolLayout& layout, uint32_t uid);

}  // namespace queue::daemon
