#include "wire/job_id.h"

#include <cctype>
#include <charconv>

namespace queue::wire {

namespace {

// Digits only, all of them, not zero.
template <typename Number>
bool ReadPositive(std::string_view text, Number& out) {
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text.front()))) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size() && out != 0;
}

}  // namespace

std::string FormatJobId(uint64_t number, uint32_t host) {
  std::string text = std::to_string(number);
  if (host != 0) text += "." + std::to_string(host);
  return text;
}

Result<JobId> ParseJobId(std::string_view text) {
  JobId id;
  size_t dot = text.find('.');
  bool good = ReadPositive(text.substr(0, dot), id.number) &&
              (dot == std::string_view::npos || ReadPositive(text.substr(dot + 1), id.host));
  if (!good)
    return Fail("\"" + std::string(text) + "\" is not a job id: a job id is a number, then a dot and its "
                "submit host's number when it was submitted on another host (17, 17.2; see queue --jobs)");
  return id;
}

Result<JobRef> ParseJobRef(std::string_view text) {
  size_t underscore = text.rfind('_');
  if (underscore == std::string_view::npos) {
    auto id = ParseJobId(text);
    if (!id.ok()) return id.error();
    return JobRef{*id, kNoElement};
  }
  auto id = ParseJobId(text.substr(0, underscore));
  std::string_view index_text = text.substr(underscore + 1);
  uint32_t index = 0;
  auto [end, error] = std::from_chars(index_text.data(), index_text.data() + index_text.size(), index);
  if (!id.ok() || index_text.empty() || !std::isdigit(static_cast<unsigned char>(index_text.front())) ||
      error != std::errc() || end != index_text.data() + index_text.size() || index == kNoElement)
    return Fail("\"" + std::string(text) + "\" is not a job id: an element of a job array is its array's id, "
                "an underscore and its index (17.2_5; see queue --jobs)");
  return JobRef{*id, index};
}

std::string FormatElement(const JobId& array, uint32_t index) {
  return FormatJobId(array) + "_" + std::to_string(index);
}

}  // namespace queue::wire
