// Job arrays: their elements' specs, and the parts of a list of lines.
#include "daemon/job_array.h"

#include <algorithm>

namespace queue::daemon {

std::vector<uint32_t> ExpandIndices(const std::vector<wire::ArrayRange>& ranges) {
  std::vector<uint32_t> indices;
  for (const auto& range : ranges)
    for (uint64_t index = range.first; index <= range.last && indices.size() < wire::kMaxBulkJobs; index += range.step)
      indices.push_back(static_cast<uint32_t>(index));
  return indices;
}

wire::JobSpec ElementSpec(const wire::JobSpec& base, const std::string& array_label, uint32_t index,
                          const std::string& line) {
  wire::JobSpec spec = base;
  std::erase_if(spec.env, [](const std::string& variable) {
    return variable.starts_with("QUEUE_ARRAY_ID=") || variable.starts_with("QUEUE_ARRAY_INDEX=");
  });
  spec.env.push_back("QUEUE_ARRAY_ID=" + array_label);
  spec.env.push_back("QUEUE_ARRAY_INDEX=" + std::to_string(index));
  if (!line.empty()) spec.argv.push_back(line);
  return spec;
}

}  // namespace queue::daemon
