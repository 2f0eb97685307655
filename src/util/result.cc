// Error text helpers shared by every module.
#include "util/result.h"

#include <cstring>

namespace queue {

std::string ErrnoText(int err) { return std::strerror(err); }

}  // namespace queue
