// Tests of the timesched/timestop time syntax: parsing, matching, bad specs.
#include <gtest/gtest.h>

#include <ctime>
#include <string>

#include "profile/time_spec.h"

namespace queue::profile {
namespace {

constexpr int kSun = 0, kMon = 1, kTue = 2, kFri = 5, kSat = 6;

std::tm At(int weekday, int hour, int minute) {
  std::tm t{};
  t.tm_wday = weekday;
  t.tm_hour = hour;
  t.tm_min = minute;
  return t;
}

TimeSpec Parsed(const std::string& text) {
  auto spec = ParseTimeSpec(text);
  EXPECT_TRUE(spec.ok()) << text << ": " << (spec.ok() ? "" : spec.message());
  return spec.ok() ? spec.value() : TimeSpec{};
}

TEST(ProfileTime, ParsesDayAndRangeIntoElements) {
  TimeSpec spec = Parsed("Wk0900-1700,Sa,2200-0600");
  ASSERT_EQ(spec.elements.size(), 3u);
  EXPECT_EQ(spec.elements[0].day, DayToken::kWeekdays);
  EXPECT_EQ(spec.elements[0].range, (ClockRange{9 * 60, 17 * 60}));
  EXPECT_EQ(spec.elements[1].day, DayToken::kSaturday);
  EXPECT_FALSE(spec.elements[1].range.has_value());
  EXPECT_FALSE(spec.elements[2].day.has_value());
  EXPECT_EQ(spec.elements[2].range, (ClockRange{22 * 60, 6 * 60}));
  EXPECT_EQ(spec.text, "Wk0900-1700,Sa,2200-0600");
}

TEST(ProfileTime, WeekdayRangeNeedsBothDayAndTime) {
  TimeSpec spec = Parsed("Wk0900-1700");
  EXPECT_TRUE(spec.Matches(At(kMon, 9, 0)));
  EXPECT_TRUE(spec.Matches(At(kFri, 16, 59)));
  EXPECT_FALSE(spec.Matches(At(kMon, 17, 0)));  // the end is excluded
  EXPECT_FALSE(spec.Matches(At(kMon, 8, 59)));
  EXPECT_FALSE(spec.Matches(At(kSat, 10, 0)));  // the original would say true here
  EXPECT_FALSE(spec.Matches(At(kSun, 12, 0)));
}

TEST(ProfileTime, RangeAloneMatchesEveryDay) {
  TimeSpec spec = Parsed("0900-1700");
  EXPECT_TRUE(spec.Matches(At(kSat, 12, 0)));
  EXPECT_TRUE(spec.Matches(At(kTue, 12, 0)));
  EXPECT_FALSE(spec.Matches(At(kTue, 18, 0)));
}

TEST(ProfileTime, RangeMayCrossMidnight) {
  TimeSpec spec = Parsed("2200-0600");
  EXPECT_TRUE(spec.Matches(At(kTue, 22, 0)));
  EXPECT_TRUE(spec.Matches(At(kTue, 23, 59)));
  EXPECT_TRUE(spec.Matches(At(kTue, 0, 0)));
  EXPECT_TRUE(spec.Matches(At(kTue, 5, 59)));
  EXPECT_FALSE(spec.Matches(At(kTue, 6, 0)));
  EXPECT_FALSE(spec.Matches(At(kTue, 21, 59)));
}

TEST(ProfileTime, DayWithCrossingRange) {
  TimeSpec spec = Parsed("Fr2200-0200");
  EXPECT_TRUE(spec.Matches(At(kFri, 23, 0)));
  EXPECT_TRUE(spec.Matches(At(kFri, 1, 0)));   // the day is checked at the moment itself
  EXPECT_FALSE(spec.Matches(At(kSat, 1, 0)));
  EXPECT_FALSE(spec.Matches(At(kFri, 12, 0)));
}

TEST(ProfileTime, MidnightMayEndARange) {
  TimeSpec spec = Parsed("0000-2400");
  EXPECT_TRUE(spec.Matches(At(kMon, 0, 0)));
  EXPECT_TRUE(spec.Matches(At(kMon, 23, 59)));
  TimeSpec evening = Parsed("1800-2400");
  EXPECT_TRUE(evening.Matches(At(kMon, 23, 59)));
  EXPECT_FALSE(evening.Matches(At(kMon, 0, 0)));
}

TEST(ProfileTime, SingleDaysAndLists) {
  TimeSpec spec = Parsed("Sa,Su");
  EXPECT_TRUE(spec.Matches(At(kSat, 3, 0)));
  EXPECT_TRUE(spec.Matches(At(kSun, 23, 0)));
  EXPECT_FALSE(spec.Matches(At(kMon, 12, 0)));
  TimeSpec each = Parsed("Mo,Tu,We,Th,Fr");
  for (int day = 1; day <= 5; ++day) EXPECT_TRUE(each.Matches(At(day, 12, 0))) << day;
  EXPECT_FALSE(each.Matches(At(kSat, 12, 0)));
}

TEST(ProfileTime, NightIsSaturdayLateEarlyOrSundayBeforeFive) {
  TimeSpec spec = Parsed("Night");
  EXPECT_TRUE(spec.Matches(At(kSat, 12, 0)));
  EXPECT_TRUE(spec.Matches(At(kMon, 23, 0)));
  EXPECT_TRUE(spec.Matches(At(kTue, 7, 59)));
  EXPECT_FALSE(spec.Matches(At(kTue, 8, 0)));
  EXPECT_FALSE(spec.Matches(At(kFri, 22, 59)));
  EXPECT_TRUE(spec.Matches(At(kSun, 16, 59)));
  EXPECT_FALSE(spec.Matches(At(kSun, 17, 0)));
  EXPECT_TRUE(spec.Matches(At(kSun, 23, 30)));
}

TEST(ProfileTime, EveningIsWeekendOrFiveToEight) {
  TimeSpec spec = Parsed("Evening");
  EXPECT_TRUE(spec.Matches(At(kSat, 12, 0)));
  EXPECT_TRUE(spec.Matches(At(kSun, 12, 0)));
  EXPECT_TRUE(spec.Matches(At(kMon, 17, 0)));
  EXPECT_TRUE(spec.Matches(At(kMon, 7, 59)));
  EXPECT_FALSE(spec.Matches(At(kMon, 16, 59)));
  EXPECT_FALSE(spec.Matches(At(kMon, 8, 0)));
}

TEST(ProfileTime, NightWithRangeNeedsBoth) {
  TimeSpec spec = Parsed("Night0000-0100");
  EXPECT_TRUE(spec.Matches(At(3, 0, 30)));
  EXPECT_FALSE(spec.Matches(At(kSat, 12, 0)));  // night, but outside the range
}

TEST(ProfileTime, AnyAlwaysMatches) {
  TimeSpec spec = Parsed("Any");
  for (int day = 0; day < 7; ++day) EXPECT_TRUE(spec.Matches(At(day, day * 3, 7)));
  TimeSpec limited = Parsed("Any0900-1000");
  EXPECT_TRUE(limited.Matches(At(kSun, 9, 30)));
  EXPECT_FALSE(limited.Matches(At(kSun, 10, 30)));
}

TEST(ProfileTime, DayTokensIgnoreCaseAndElementsMayHaveSpaces) {
  TimeSpec spec = Parsed(" wk0900-1700 , NIGHT ");
  ASSERT_EQ(spec.elements.size(), 2u);
  EXPECT_EQ(spec.elements[0].day, DayToken::kWeekdays);
  EXPECT_EQ(spec.elements[1].day, DayToken::kNight);
  EXPECT_TRUE(spec.Matches(At(kSat, 12, 0)));
}

TEST(ProfileTime, RejectsMalformedSpecs) {
  for (const char* bad : {"", "  ", ",", "Sa,", ",Sa", "Sa,,Su", "Xy", "Mon", "Wk0900",
                          "Wk09001700", "Wk0900-17", "0900-1700x", "900-1700", "2500-0100",
                          "0960-1000", "2400-0100", "0900-0900", "Wk 0900-1700", "-0900",
                          "0900-", "Wk-", "0900--1700", "Sa1", "1-2"}) {
    EXPECT_FALSE(ParseTimeSpec(bad).ok()) << '"' << bad << '"';
  }
}

TEST(ProfileTime, ErrorsExplainTheProblem) {
  auto day = ParseTimeSpec("Wk,Xy0900-1000");
  ASSERT_FALSE(day.ok());
  EXPECT_EQ(day.message(), "\"Xy\" is not a day (use Su Mo Tu We Th Fr Sa Wk Night Evening Any)");
  auto empty = ParseTimeSpec("0800-0800");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.message().find("empty time range"), std::string::npos);
  auto hour = ParseTimeSpec("2500-0100");
  ASSERT_FALSE(hour.ok());
  EXPECT_EQ(hour.message(), "\"2500\" is not a valid time of day");
}

TEST(ProfileTime, BoundsTheNumberOfElements) {
  std::string many = "Sa";
  for (int i = 0; i < 63; ++i) many += ",Su";
  EXPECT_TRUE(ParseTimeSpec(many).ok());
  EXPECT_FALSE(ParseTimeSpec(many + ",Mo").ok());
}

}  // namespace
}  // namespace queue::profile
