// queue --status and queue --jobs, as JSON.
#include "daemon/status_report.h"

#include <sys/wait.h>

#include "profile/queue_policy.h"

namespace queue::daemon {

using nlohmann::json;

std::string NoTransparentCheckpoints(const migrate::CriuAvailability& criu) {
  return "checkpointmode 1 (transparent checkpoints with CRIU) is not available: " + criu.reason +
         "; its jobs are not checkpointed or moved (checkpointmode 2 needs no CRIU: the job saves its own state)";
}

std::string StateShown(const spool::JobRecord& r) {
  const bool run_over = r.state == spool::JobState::kDone || r.state == spool::JobState::kFailed;
  if (!run_over || !r.origin_host.empty() || r.end_reported) return std::string(spool::ToString(r.state));
  return r.checkpointed ? "moving" : "ending";
}

namespace {

json TransferJson(const Transfer& t, load::Clock::time_point now) {
  json out{{"direction", t.direction == Transfer::Direction::kHome ? "home" : "out"},
           {"host", t.host},
           {"bytes", t.bytes},
           {"seconds", t.seconds(now)},
           {"complete", t.complete}};
  if (t.size > 0) out["size"] = t.size;
  return out;
}

}  // namespace

json JobJson(const spool::JobRecord& r, const JobNames& names, const std::string& self, const JobProgress& progress) {
  json job{{"id", names.Label(r)},
           {"number", names.IdOf(r).number},
           {"origin", r.origin_host.empty() ? self : r.origin_host},
           {"uid", r.uid},
           {"queue", r.queue},
           {"name", r.job_name},
           {"state", StateShown(r)},
           {"host", r.exec_host},
           {"submit_time", r.submit_time},
           {"start_time", r.start_time},
           {"end_time", r.end_time},
           {"cpu_seconds", r.cpu_seconds},
           {"batch", r.batch}};
  if (r.batch && r.origin_host.empty()) job["output"] = r.output_path;
  // An element of a job array: the array's id and its index, as "17.2_5" names it.
  if (r.array_id != 0 && r.origin_host.empty()) {
    job["array"] = names.LocalLabel(r.array_id);
    job["array_index"] = r.array_index;
  }
  if (r.restarts > 0) job["restarts"] = r.restarts;
  if (r.state == spool::JobState::kDone && r.wait_status >= 0) {
    if (WIFEXITED(r.wait_status)) job["exit_code"] = WEXITSTATUS(r.wait_status);
    if (WIFSIGNALED(r.wait_status)) job["signal"] = WTERMSIG(r.wait_status);
  }
  if (!r.message.empty()) job["message"] = r.message;
  const std::string shown = job["state"].get<std::string>();
  if (r.state == spool::JobState::kWaiting && r.origin_host.empty()) {
    if (!progress.waiting_for.empty()) job["waiting_for"] = progress.waiting_for;
    if (!progress.waiting_detail.empty()) job["waiting_detail"] = progress.waiting_detail;
  }
  // Stopped at a checkpoint here, its end and restart files not yet recorded.
  if (shown == "moving") job["waiting_for"] = "restart files not yet home";
  if (progress.transfer != nullptr && r.origin_host.empty()) job["transfer"] = TransferJson(*progress.transfer, progress.now);
  if (!r.output_held.empty()) {
    job["output_held"] = r.output_held;
    job["message"] = "output held: " + r.output_held;
  }
  return job;
}

json StatusReport::Jobs(uint32_t uid, bool include_finished) const {
  spool::JobFilter filter;
  if (!include_finished) filter.states = {spool::JobState::kWaiting, spool::JobState::kRunning};
  if (uid != 0) filter.uid = uid;
  filter.with_spec = false;  // not shown
  json jobs = json::array();
  auto list = ledger_.List(filter);
  if (!list.ok()) return jobs;
  for (const auto& r : *list) {
    JobProgress progress;
    if (const WaitingList::Job* waiting = waiting_.Find(r.id); waiting != nullptr) {
      progress.waiting_for = waiting->summary.empty() ? waiting->why : waiting->summary;
      progress.waiting_detail = waiting->why;
    }
    progress.transfer = transfers_.Find(r.id);
    progress.now = load::Clock::now();
    jobs.push_back(JobJson(r, names_, self_, progress));
  }
  return jobs;
}

std::string StatusReport::Status(uint32_t uid, const std::vector<std::string>& hosts,
                                 const migrate::CriuAvailability& criu, int64_t keep_finished_seconds,
                                 load::Clock::time_point now, const std::function<bool(const std::string&)>& up) const {
  json out;
  out["host"] = self_;
  json host_list = json::array();
  for (const auto& h : hosts) {
    json entry{{"host", h}};
    const load::HostLoad* fresh = table_.Fresh(h, now);
    entry["alive"] = up && h != self_ ? up(h) : fresh != nullptr;
    if (fresh != nullptr) {
      entry["load1"] = fresh->report.load1;
      entry["cpus"] = fresh->report.cpus;
      json queues = json::array();
      for (const auto& q : fresh->report.queues) {
        json queue{{"name", q.name},         {"running", q.running}, {"maxexec", q.maxexec},
                   {"vmaxexec", q.vmaxexec}, {"pfactor", q.pfactor}, {"accepting", q.accepting}};
        // As that host said it in its LoadReport: a broken profile there is read here.
        if (!q.accepting && !q.refusal.empty()) queue["why"] = q.refusal;
        queues.push_back(queue);
      }
      entry["queues"] = queues;
    }
    host_list.push_back(entry);
  }
  out["hosts"] = host_list;
  json queues = json::array();
  for (const auto& [name, q] : queues_.queues()) {
    json entry{{"name", name}, {"running", q.running}, {"policy", profile::DescribePolicy(q.policy)}};
    if (!q.error.empty()) entry["error"] = q.error;
    if (!q.closed_reason.empty()) entry["closed"] = q.closed_reason;
    if (!q.suspend_reason.empty()) entry["suspended"] = q.suspend_reason;
    if (q.policy.checkpoint_mode == profile::CheckpointMode::kTransparent) {
      if (criu.usable)
        entry["criu"] = "checkpointmode 1: " + migrate::DescribeCriu(criu);
      else
        entry["warning"] = NoTransparentCheckpoints(criu);
    }
    queues.push_back(entry);
  }
  out["queues"] = queues;
  out["jobs"] = Jobs(uid, false);
  out["keep_finished_seconds"] = keep_finished_seconds;
  return out.dump();
}

}  // namespace queue::daemon
