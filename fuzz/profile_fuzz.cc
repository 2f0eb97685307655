// libFuzzer target: arbitrary bytes as a queue profile and as a time spec.
// Neither parser may crash, hang or read out of bounds, whatever the input;
// what parses must also describe and match without trouble.
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string_view>

#include "profile/profile_parser.h"
#include "profile/time_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const queue::profile::ProfileContext ctx{"fuzz/profile", "node1.example.org:1430", 4};

  auto policy = queue::profile::ParseProfile(text, ctx);
  if (policy.ok()) {
    (void)queue::profile::DescribePolicy(*policy);
    (void)queue::profile::VirtualLoad(1.5, policy->effective_vmax_exec(), 2, policy->pfactor);
  }

  auto spec = queue::profile::ParseTimeSpec(text);
  if (spec.ok()) {
    std::tm moment{};
    for (int minute = 0; minute < 7 * 24 * 60; minute += 97) {
      moment.tm_wday = minute / (24 * 60);
      moment.tm_hour = minute / 60 % 24;
      moment.tm_min = minute % 60;
      (void)spec->Matches(moment);
    }
  }
  return 0;
}
