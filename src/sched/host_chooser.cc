// Ranking of candidate hosts by virtual load.
#include "sched/host_chooser.h"

#include <algorithm>

#include "profile/queue_policy.h"

namespace queue::sched {

namespace {

struct Scored {
  std::string host;
  double score;
  uint32_t running;
  bool looks_full;
  bool is_self;
  size_t order;
};

const wire::QueueLoad* FindQueue(const wire::LoadReport& report, const std::string& name) {
  for (const auto& q : report.queues)
    if (q.name == name) return &q;
  return nullptr;
}

}  // namespace

Ranking HostChooser::Rank(const load::LoadTable& table, const PlacementRequest& request,
                          load::Clock::time_point now) const {
  Ranking ranking;
  std::vector<Scored> scored;
  for (size_t i = 0; i < hosts_.size(); ++i) {
    const std::string& host = hosts_[i].entry;
    if (!request.only_host.empty() && host != request.only_host) continue;
    if (std::find(request.exclude.begin(), request.exclude.end(), host) != request.exclude.end())
      continue;
    const load::HostLoad* entry = table.Fresh(host, now);
    if (entry == nullptr) {
      // -h names one host and, as in the original, gives up when it is down;
      // otherwise a host may come back, and the job can wait for it.
      if (request.only_host.empty()) ++ranking.temporary_refusals;
      ranking.refusals.push_back(host + ": not responding");
      continue;
    }
    const wire::QueueLoad* queue = FindQueue(entry->report, request.queue);
    if (queue == nullptr) {
      ranking.refusals.push_back(host + ": has no queue \"" + request.queue + "\"");
      continue;
    }
    if (request.restart && !queue->takes_restarts) {
      ++ranking.temporary_refusals;  // a profile may change
      ranking.refusals.push_back(host + ": queue \"" + request.queue + "\" takes no restarted jobs (restartmode 0)");
      continue;
    }
    uint32_t running = queue->running + entry->placements_since_report;
    if (!queue->accepting) {
      ++ranking.temporary_refusals;
      ranking.refusals.push_back(host + ": " + (queue->refusal.empty() ? "queue \"" + request.queue + "\" is not accepting jobs"
                                                                          : queue->refusal));
      continue;
    }
    // The table's counts lag both ways (a job placed, a job ended since the
    // last report): a host that looks full is tried last, not ruled out; the
    // execution host's own check decides.
    bool looks_full = running >= queue->maxexec;
    double load1 = load::LoadTable::AdjustedLoad(*entry, now);
    double score = profile::VirtualLoad(load1, queue->vmaxexec, running, queue->pfactor);
    scored.push_back({host, score, running, looks_full, host == self_, i});
  }
  std::sort(scored.begin(), scored.end(), [&](const Scored& a, const Scored& b) {
    bool a_pref = a.host == request.preferred_host, b_pref = b.host == request.preferred_host;
    if (a_pref != b_pref) return a_pref;
    if (a.looks_full != b.looks_full) return b.looks_full;
    if (a.score != b.score) return a.score < b.score;
    if (a.running != b.running) return a.running < b.running;
    if (a.is_self != b.is_self) return a.is_self;  // equal load: skip the network hop
    return a.order < b.order;
  });
  for (auto& s : scored) ranking.candidates.push_back(std::move(s.host));
  return ranking;
}

}  // namespace queue::sched
