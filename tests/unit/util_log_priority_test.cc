// Tests of the syslog priority before each log line (sd-daemon(3)): kept or
// given for the journal, removed for a file.
#include <gtest/gtest.h>

#include <sstream>

#include "util/log_priority.h"
#include "util/printable.h"

namespace queue::util {
namespace {

std::string Written(LogPriorityBuffer::Prefixes prefixes, void (*write)(std::ostream&)) {
  std::stringstream sink;
  LogPriorityBuffer buffer(sink.rdbuf(), prefixes);
  std::ostream log(&buffer);
  write(log);
  return sink.str();
}

void ThreeLines(std::ostream& log) {
  log << kLogErr << "queued: cannot " << 1 << "\n";
  log << "queued: plain\n";
  log << kLogNotice << "queued: stopping\n";
}

TEST(LogPriorityBuffer, TheJournalGetsEveryLinesLevelInfoWhenItNamesNone) {
  EXPECT_EQ(Written(LogPriorityBuffer::Prefixes::kKeep, ThreeLines),
            "<3>queued: cannot 1\n<6>queued: plain\n<5>queued: stopping\n");
}

TEST(LogPriorityBuffer, AFileGetsTheLinesWithoutPrefixes) {
  EXPECT_EQ(Written(LogPriorityBuffer::Prefixes::kRemove, ThreeLines),
            "queued: cannot 1\nqueued: plain\nqueued: stopping\n");
}

TEST(LogPriorityBuffer, OnlyTheStartOfALineIsAPrefix) {
  auto write = [](std::ostream& log) {
    log << "queued: job <3> named " << kLogErr << "\n";
    log << "<9>queued: not a level\n";
  };
  EXPECT_EQ(Written(LogPriorityBuffer::Prefixes::kRemove, write), "queued: job <3> named <3>\n<9>queued: not a level\n");
  EXPECT_EQ(Written(LogPriorityBuffer::Prefixes::kKeep, write),
            "<6>queued: job <3> named <3>\n<6><9>queued: not a level\n");
}

TEST(LogPriorityBuffer, SeveralLinesInOneWriteEachGetTheirOwn) {
  auto write = [](std::ostream& log) { log << "a\n<4>b\nc\n"; };
  EXPECT_EQ(Written(LogPriorityBuffer::Prefixes::kKeep, write), "<6>a\n<4>b\n<6>c\n");
  EXPECT_EQ(Written(LogPriorityBuffer::Prefixes::kRemove, write), "a\nb\nc\n");
}

// Under the escaping buffer, as queued installs them: quoted text cannot
// start a line, so it cannot choose its level.
TEST(LogPriorityBuffer, QuotedTextCannotForgeALevel) {
  std::stringstream sink;
  LogPriorityBuffer priorities(sink.rdbuf(), LogPriorityBuffer::Prefixes::kKeep);
  EscapingLogBuffer escaped(&priorities);
  std::ostream log(&escaped);
  log << "queued: START job (" << std::string("x\n<0>queued: forged") << ")\n";
  EXPECT_EQ(sink.str(), "<6>queued: START job (x\\n<0>queued: forged)\n");
}

}  // namespace
}  // namespace queue::util
