// Load average sampling.
#include "load/load_sampler.h"

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <fstream>

namespace queue::load {

Result<double> ParseLoadavg(std::string_view text) {
  size_t start = text.find_first_not_of(" \t");
  if (start == std::string_view::npos) return Fail("empty load average");
  size_t end = text.find_first_of(" \t\n", start);
  std::string_view field = text.substr(start, end == std::string_view::npos ? text.size() - start
                                                                             : end - start);
  double value = 0;
  auto [ptr, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
  if (ec != std::errc() || ptr != field.data() + field.size() || !std::isfinite(value) || value < 0)
    return Fail("bad load average \"" + std::string(field) + "\"");
  return value;
}

Result<double> LoadSampler::Load1() const {
  std::ifstream in(path_);
  std::string line;
  if (!in || !std::getline(in, line)) return Fail("cannot read load average from " + path_);
  auto load = ParseLoadavg(line);
  if (!load.ok()) return Fail(path_ + ": " + load.message());
  return load;
}

unsigned OnlineCpuCount() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1U;
}

}  // namespace queue::load
