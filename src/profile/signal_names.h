// Signal names as an operator writes them in a profile (`checkpointsignal USR1`,
// `SIGUSR1`, `10`, `RTMIN+2`) and as status output prints them.
// Stateless functions; safe from any thread.
#pragma once

#include <string>
#include <string_view>

#include "util/result.h"

namespace queue::profile {

// Parses a signal name with or without the SIG prefix (case-insensitive), a
// real-time signal as RTMIN+n / RTMAX-n, or a number from 1 to SIGRTMAX.
// The error message is a reason without file or keyword.
Result<int> ParseSignal(std::string_view text);

// "SIGUSR2" for 12; "SIGRTMIN+3" for a real-time signal; "signal N" otherwise.
std::string SignalName(int signal_number);

}  // namespace queue::profile
