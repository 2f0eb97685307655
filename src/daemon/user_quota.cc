// Per-user limits on what the spool keeps.
#include "daemon/user_quota.h"

#include <filesystem>

namespace queue::daemon {

namespace {

std::string MiB(uint64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

}  // namespace

Status CheckSubmission(uint32_t uid, const UserUsage& usage, uint64_t spec_bytes, const UserLimits& limits,
                       const std::string& host, size_t jobs) {
  const std::string who = "uid " + std::to_string(uid);
  if (jobs > 1 && usage.waiting_jobs + jobs > limits.waiting_jobs)
    return Fail("refused, nothing submitted: uid " + std::to_string(uid) + " has " + std::to_string(usage.waiting_jobs) +
                " jobs waiting on " + host + ", and these " + std::to_string(jobs) + " would pass the " +
                std::to_string(limits.waiting_jobs) + " one user may keep waiting (queued --user-waiting-jobs); "
                "submit fewer at once, or more once some have started");
  if (usage.waiting_jobs >= limits.waiting_jobs)
    return Fail("refused: " + who + " has " + std::to_string(usage.waiting_jobs) + " jobs waiting on " + host +
                ", the most one user may; submit more once some have started");
  const uint64_t held = usage.spec_bytes + usage.kept_bytes;
  if (held + spec_bytes > limits.spool_bytes)
    return Fail("refused: the spool of " + host + " keeps " + MiB(held) + " for " + who + " (waiting jobs " +
                MiB(usage.spec_bytes) + ", held outputs and restart files " + MiB(usage.kept_bytes) +
                "), and " + (jobs > 1 ? "these " + std::to_string(jobs) + " jobs' " : "this job's ") +
                std::to_string(spec_bytes) + " bytes would pass the " +
                MiB(limits.spool_bytes) + " one user may keep; let held outputs be delivered (a writable "
                "directory) or wait for jobs to start" + (jobs > 1 ? "; nothing was submitted" : ""));
  return Status::Ok();
}

Result<UserUsage> MeasureUser(JobLedger& ledger, const spool::SpoolLayout& layout, uint32_t uid) {
  UserUsage usage;
  auto waiting = ledger.WaitingOf(uid);
  if (!waiting.ok()) return Fail(waiting.message());
  usage.waiting_jobs = waiting->jobs;
  usage.spec_bytes = waiting->spec_bytes;
  // Kept files are named after their record: "<id>.qrb", "<id>.out.2", ...
  for (const std::string& dir : {layout.RestartDir(), layout.HeldDir()}) {
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(dir, ec); !ec && it != std::filesystem::directory_iterator();
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      size_t digits = 0;
      while (digits < name.size() && std::isdigit(static_cast<unsigned char>(name[digits]))) ++digits;
      if (digits == 0 || digits > 19) continue;
      auto record = ledger.Get(std::stoull(name.substr(0, digits)));
      if (!record.ok() || !record->has_value() || (*record)->uid != uid) continue;
      std::error_code size_error;
      uint64_t size = it->file_size(size_error);
      if (!size_error) usage.kept_bytes += size;
    }
  }
  return usage;
}

}  // namespace queue::daemon
