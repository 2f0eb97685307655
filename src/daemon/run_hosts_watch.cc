// The liveness watch over the hosts running this host's jobs (see run_hosts_watch.h).
#include "daemon/run_hosts_watch.h"

namespace queue::daemon {

std::vector<std::string> RunHostsWatch::Pass(const std::set<std::string>& running_on, Clock::time_point now) {
  next_pass_ = now + every_;
  for (auto it = heard_.begin(); it != heard_.end();)
    it = running_on.count(it->first) != 0 ? std::next(it) : heard_.erase(it);
  std::vector<std::string> ask;
  for (const auto& host : running_on) {
    heard_.try_emplace(host, now);
    ask.push_back(host);
  }
  return ask;
}

void RunHostsWatch::Answered(const std::string& host, Clock::time_point now) {
  auto it = heard_.find(host);
  if (it != heard_.end() && now > it->second) it->second = now;
}

std::vector<std::pair<std::string, int64_t>> RunHostsWatch::Silent(Clock::time_point now) const {
  std::vector<std::pair<std::string, int64_t>> silent;
  for (const auto& [host, heard] : heard_)
    if (now - heard > dead_after_)
      silent.emplace_back(host, std::chrono::duration_cast<std::chrono::seconds>(now - heard).count());
  return silent;
}

}  // namespace queue::daemon
