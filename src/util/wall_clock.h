// The wall clock in whole seconds, as job records and protocol messages carry
// it. The decision modules take the time as an argument; the services that
// call them read it here. Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <ctime>

namespace queue::util {

inline int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

}  // namespace queue::util
