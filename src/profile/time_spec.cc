// Parsing and matching of timesched/timestop specs (see time_spec.h).
#include "profile/time_spec.h"

#include <array>
#include <cctype>
#include <utility>

#include "profile/profile_tokens.h"

namespace queue::profile {
namespace {

constexpr int kMinutesPerDay = 24 * 60;
constexpr int kEightAm = 8 * 60;
constexpr int kFivePm = 17 * 60;
constexpr int kElevenPm = 23 * 60;
// Bounds a spec's element count; real specs have a handful.
constexpr size_t kMaxElements = 64;

struct DayName {
  std::string_view name;
  DayToken token;
};

constexpr std::array<DayName, 11> kDayNames = {{
    {"su", DayToken::kSunday},    {"mo", DayToken::kMonday},
    {"tu", DayToken::kTuesday},   {"we", DayToken::kWednesday},
    {"th", DayToken::kThursday},  {"fr", DayToken::kFriday},
    {"sa", DayToken::kSaturday},  {"wk", DayToken::kWeekdays},
    {"night", DayToken::kNight},  {"evening", DayToken::kEvening},
    {"any", DayToken::kAny},
}};

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

Result<DayToken> ParseDay(std::string_view word) {
  const std::string lower = Lower(word);
  for (const DayName& day : kDayNames) {
    if (lower == day.name) return day.token;
  }
  return Fail(Quoted(word) + " is not a day (use Su Mo Tu We Th Fr Sa Wk Night Evening Any)");
}

// Parses exactly four digits HHMM into minutes since midnight; 2400 only when
// `may_be_midnight_end`.
Result<int> ParseClock(std::string_view hhmm, bool may_be_midnight_end) {
  bool digits = hhmm.size() == 4;
  for (char c : hhmm) digits = digits && std::isdigit(static_cast<unsigned char>(c));
  if (!digits) return Fail(Quoted(hhmm) + " is not a time of day written HHMM");
  const int hours = (hhmm[0] - '0') * 10 + (hhmm[1] - '0');
  const int minutes = (hhmm[2] - '0') * 10 + (hhmm[3] - '0');
  if (hours == 24 && minutes == 0 && may_be_midnight_end) return kMinutesPerDay;
  if (hours > 23 || minutes > 59) return Fail(Quoted(hhmm) + " is not a valid time of day");
  return hours * 60 + minutes;
}

Result<ClockRange> ParseRange(std::string_view text) {
  const size_t dash = text.find('-');
  if (dash == std::string_view::npos) {
    return Fail(Quoted(text) + " is not a time range written HHMM-HHMM");
  }
  auto start = ParseClock(text.substr(0, dash), false);
  if (!start) return start.error();
  auto end = ParseClock(text.substr(dash + 1), true);
  if (!end) return end.error();
  if (*start == *end) {
    return Fail(Quoted(text) + " is an empty time range (for all day, leave the range out)");
  }
  return ClockRange{*start, *end};
}

Result<TimeSpecElement> ParseElement(std::string_view text) {
  if (text.empty()) return Fail("an element of the time list is empty (look for a stray comma)");
  size_t letters = 0;
  while (letters < text.size() && std::isalpha(static_cast<unsigned char>(text[letters]))) ++letters;
  TimeSpecElement element;
  if (letters > 0) {
    auto day = ParseDay(text.substr(0, letters));
    if (!day) return day.error();
    element.day = *day;
  }
  if (letters < text.size()) {
    auto range = ParseRange(text.substr(letters));
    if (!range) return range.error();
    element.range = *range;
  }
  return element;
}

bool DayHolds(DayToken day, int weekday, int minute) {
  switch (day) {
    case DayToken::kWeekdays:
      return weekday >= 1 && weekday <= 5;
    case DayToken::kNight:
      return weekday == 6 || minute >= kElevenPm || minute < kEightAm ||
             (weekday == 0 && minute < kFivePm);
    case DayToken::kEvening:
      return weekday == 6 || weekday == 0 || minute >= kFivePm || minute < kEightAm;
    case DayToken::kAny:
      return true;
    default:
      return static_cast<int>(day) == weekday;
  }
}

}  // namespace

bool ClockRange::Contains(int minute_of_day) const {
  if (start_minute < end_minute) return minute_of_day >= start_minute && minute_of_day < end_minute;
  return minute_of_day >= start_minute || minute_of_day < end_minute;
}

bool TimeSpecElement::Matches(const std::tm& local_time) const {
  const int weekday = ((local_time.tm_wday % 7) + 7) % 7;
  const int minute = local_time.tm_hour * 60 + local_time.tm_min;
  if (day && !DayHolds(*day, weekday, minute)) return false;
  return !range || range->Contains(minute);
}

bool TimeSpec::Matches(const std::tm& local_time) const {
  for (const TimeSpecElement& element : elements) {
    if (element.Matches(local_time)) return true;
  }
  return false;
}

Result<TimeSpec> ParseTimeSpec(std::string_view text) {
  TimeSpec spec;
  spec.text = std::string(Trim(text));
  if (spec.text.empty()) return Fail("the time list is empty");
  std::string_view rest = spec.text;
  while (true) {
    const size_t comma = rest.find(',');
    auto element = ParseElement(Trim(rest.substr(0, comma)));
    if (!element) return element.error();
    if (spec.elements.size() == kMaxElements) {
      return Fail("the time list has more than " + std::to_string(kMaxElements) + " elements");
    }
    spec.elements.push_back(*element);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return spec;
}

}  // namespace queue::profile
