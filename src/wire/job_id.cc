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

}  // namespace queue::wire
