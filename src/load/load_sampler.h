// Reads this host's 1-minute load average, from /proc/loadavg or, for tests and
// simulations, from any file in the same format (--loadavg-file).
#pragma once

#include <string>

#include "util/result.h"

namespace queue::load {

class LoadSampler {
 public:
  explicit LoadSampler(std::string path = "/proc/loadavg") : path_(std::move(path)) {}
  Result<double> Load1() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The first field of a /proc/loadavg line, validated (finite, >= 0).
Result<double> ParseLoadavg(std::string_view text);

unsigned OnlineCpuCount();

}  // namespace queue::load
