// Summing up a placement's refusals for `queue --jobs`.
#include "daemon/wait_reason.h"

#include <map>
#include <string_view>
#include <utility>

namespace queue::daemon {

namespace {

bool Has(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

// "host: reason", where a host entry may hold ':' (a port) but not ": ".
std::pair<std::string, std::string> SplitHost(const std::string& refusal) {
  size_t colon = refusal.find(": ");
  if (colon == std::string::npos) return {"", refusal};
  return {refusal.substr(0, colon), refusal.substr(colon + 2)};
}

}  // namespace

std::string RefusalKind(const std::string& reason) {
  // The phrases of QueueTable::StateRefusal and RefusalReason, HostChooser::Rank
  // and Placement, most specific first.
  if (Has(reason, "not responding")) return "not responding";
  if (Has(reason, "has no queue")) return "no such queue";
  if (Has(reason, "takes no restarted jobs")) return "takes no restarted jobs";
  if (Has(reason, "timesched")) return "timesched";
  if (Has(reason, "is drained: ")) return "queue drained (profile)";
  if (Has(reason, "(exec off)")) return "exec off";
  if (Has(reason, "(exec drain)")) return "exec drain";
  if (Has(reason, "program says")) return "its program";
  if (Has(reason, "is suspended")) return "suspended";
  if (Has(reason, "loadsched")) return "load above loadsched";
  if (Has(reason, "minfree")) return "disk below minfree";
  if (Has(reason, "is full (")) return "maxexec reached";
  if (Has(reason, "root")) return "root not allowed";
  return "refused";
}

std::string SummarizeRefusals(const std::vector<std::string>& refusals) {
  if (refusals.empty()) return "";
  std::map<std::string, std::vector<std::string>> hosts_by_kind;
  std::vector<std::string> order;  // kinds as first seen
  for (const auto& refusal : refusals) {
    auto [host, reason] = SplitHost(refusal);
    std::string kind = RefusalKind(reason);
    auto& hosts = hosts_by_kind[kind];
    if (hosts.empty()) order.push_back(kind);
    hosts.push_back(host);
  }
  if (order.size() == 1) {
    const std::string& kind = order.front();
    const auto& hosts = hosts_by_kind[kind];
    if (kind == "timesched") return "no host accepts (timesched)";
    if (hosts.size() == 1 && !hosts.front().empty()) return kind + " on " + hosts.front();
    return kind + " on all hosts";
  }
  std::string text = "no host accepts:";
  for (size_t i = 0; i < order.size(); ++i) {
    size_t n = hosts_by_kind[order[i]].size();
    text += (i == 0 ? " " : ", ") + order[i] + " on " + std::to_string(n) + (n == 1 ? " host" : " hosts");
  }
  return text;
}

}  // namespace queue::daemon
