// Error text helpers shared by every module.
#include "util/result.h"

#include <cstring>

namespace queue {

// strerror_r, not strerror: the daemon's worker thread names errors too.
std::string ErrnoText(int err) {
  char buffer[256];
  return strerror_r(err, buffer, sizeof buffer);  // GNU: returns the text, in buffer or not
}

}  // namespace queue
