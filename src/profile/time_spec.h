// TimeSpec: the SPEC time syntax of the `timesched` and `timestop` profile
// keywords (SPEC §5, inventory §3.3).
//
// A spec is a comma-separated list; it matches when any element matches. An
// element is an optional day token followed by an optional HHMM-HHMM range:
//   Su Mo Tu We Th Fr Sa   that weekday
//   Wk                     Monday to Friday
//   Night                  Saturday, or 23:00-08:00, or Sunday before 17:00
//   Evening                Saturday or Sunday, or 17:00-08:00
//   Any                    always
// Unlike the original (which ignored the day when a range was present), a day
// token with a range means both must hold: `Wk0900-1700` is weekdays 9 to 5.
// A range may cross midnight (`2200-0600`); its start is included, its end is
// not, and `2400` may end a range. Day tokens are matched case-insensitively.
//
// TimeSpec is a plain value: immutable after parsing, safe to share between
// threads. The clock is the caller's: Matches() takes the local time to test.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace queue::profile {

enum class DayToken {
  kSunday, kMonday, kTuesday, kWednesday, kThursday, kFriday, kSaturday,
  kWeekdays, kNight, kEvening, kAny,
};

// A time-of-day window in minutes since midnight, [start, end); start > end
// means the window crosses midnight.
struct ClockRange {
  int start_minute = 0;
  int end_minute = 0;
  bool Contains(int minute_of_day) const;
  bool operator==(const ClockRange&) const = default;
};

// One comma-separated element. At least one of the two parts is present.
struct TimeSpecElement {
  std::optional<DayToken> day;
  std::optional<ClockRange> range;
  bool Matches(const std::tm& local_time) const;
  bool operator==(const TimeSpecElement&) const = default;
};

struct TimeSpec {
  std::vector<TimeSpecElement> elements;  // never empty once parsed
  std::string text;                       // as written, for status lines

  // True when `local_time` (tm_wday, tm_hour, tm_min are read) falls in any element.
  bool Matches(const std::tm& local_time) const;
};

// Parses a spec such as "Wk0900-1700,Sa,Su". The error message is a reason
// without file or keyword (the profile parser adds those).
Result<TimeSpec> ParseTimeSpec(std::string_view text);

}  // namespace queue::profile
