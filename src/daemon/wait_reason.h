// Why a waiting job waits, in a few words (`queue --jobs`): the last
// scheduling pass's refusals, one per host ("host: reason"), summed up as
// "load above loadsched on all hosts", "maxexec reached on all hosts" or
// "no host accepts (timesched)". The full list stays beside it, for whoever
// wants each host's word. Pure: the refusals are the text the queue table
// (daemon/queue_table), the host chooser (sched/host_chooser) and the
// placement write, and a reason it does not know counts as "refused".
#pragma once

#include <string>
#include <vector>

namespace queue::daemon {

// The kind of one host's refusal, as a short label ("load above loadsched").
std::string RefusalKind(const std::string& reason);

// The summary of a pass's refusals ("host: reason" each); "" when there are none.
std::string SummarizeRefusals(const std::vector<std::string>& refusals);

}  // namespace queue::daemon
