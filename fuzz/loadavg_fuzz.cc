// libFuzzer target: arbitrary bytes as a /proc/loadavg line. The parser may
// not crash or read out of bounds, and what it accepts is finite and >= 0.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "load/load_sampler.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto load = queue::load::ParseLoadavg(text);
  if (load.ok() && (!std::isfinite(*load) || *load < 0)) std::abort();
  return 0;
}
