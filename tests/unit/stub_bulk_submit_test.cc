// Bulk submission, client side: --array indices, --from lines, parts; and the
// wire's checks of a BulkSubmitRequest and of "17.2_5".
#include "stub/bulk_submit.h"

#include <gtest/gtest.h>

#include "daemon/job_array.h"
#include "stub/command_line.h"

namespace queue::stub {
namespace {

using wire::ArrayRange;

std::vector<uint32_t> Indices(const std::string& text) {
  auto ranges = ParseArrayIndices(text);
  EXPECT_TRUE(ranges.ok()) << text << ": " << ranges.message();
  return ranges.ok() ? daemon::ExpandIndices(*ranges) : std::vector<uint32_t>{};
}

TEST(ArrayIndices, RangesStepsAndListsBecomeAscendingDisjointRanges) {
  auto ranges = ParseArrayIndices("1-10000");
  ASSERT_TRUE(ranges.ok());
  EXPECT_EQ(*ranges, (std::vector<ArrayRange>{{1, 10000, 1}}));
  EXPECT_EQ(Indices("1-10:3"), (std::vector<uint32_t>{1, 4, 7, 10}));
  EXPECT_EQ(Indices("1-11:3"), (std::vector<uint32_t>{1, 4, 7, 10}));
  EXPECT_EQ(Indices("1,3,5-9"), (std::vector<uint32_t>{1, 3, 5, 6, 7, 8, 9}));
  EXPECT_EQ(Indices("9,0,4"), (std::vector<uint32_t>{0, 4, 9}));
  EXPECT_EQ(Indices("7"), (std::vector<uint32_t>{7}));
  EXPECT_EQ(Indices("4000000"), (std::vector<uint32_t>{4000000}));
  EXPECT_EQ(daemon::ExpandIndices(*ParseArrayIndices("0-999999")).size(), 1000000u);
}

TEST(ArrayIndices, BadInputIsRefusedWithAReason) {
  for (const char* bad : {"", "5-1", "1-10:0", "a", "-1", "1-", "-", "1,,2", ",1", "1,", "1,1", "1-3,2", "4000001",
                          "1:2", "1-2-3", "1-10:x", " 1", "1 ", "+1", "0x10", "99999999999", "0-1000000"}) {
    auto ranges = ParseArrayIndices(bad);
    EXPECT_FALSE(ranges.ok()) << "\"" << bad << "\" was taken";
    if (!ranges.ok()) {
      EXPECT_EQ(ranges.message().rfind("--array", 0), 0u) << ranges.message();
    }
  }
}

TEST(CommandLines, OneJobPerLineSkippingBlanksAndComments) {
  auto lines = ParseCommandLines("echo one\n\n   \n# a comment\n  # indented comment\necho 'two # not a comment'\r\n"
                                 "gzip f3\n\tlast without newline");
  ASSERT_TRUE(lines.ok()) << lines.message();
  EXPECT_EQ(*lines, (std::vector<std::string>{"echo one", "echo 'two # not a comment'", "gzip f3",
                                              "\tlast without newline"}));
}

TEST(CommandLines, ALineTooLongOrWithNulNamesItsLineAndNothingIsTaken) {
  std::string text = "echo a\n\necho " + std::string(wire::kMaxArgBytes, 'x') + "\necho c\n";
  auto lines = ParseCommandLines(text);
  ASSERT_FALSE(lines.ok());
  EXPECT_NE(lines.message().find("line 3"), std::string::npos) << lines.message();
  auto nul = ParseCommandLines(std::string("echo a\necho b\0c\n", 16));
  ASSERT_FALSE(nul.ok());
  EXPECT_NE(nul.message().find("line 2"), std::string::npos) << nul.message();
  EXPECT_FALSE(ParseCommandLines("\n# only a comment\n").ok());
  EXPECT_FALSE(ParseCommandLines("").ok());
}

TEST(CommandLines, PartsStayWithinTheirBudgetAndKeepEveryLineInOrder) {
  std::vector<std::string> lines;
  for (int i = 0; i < 1000; ++i) lines.push_back("echo " + std::to_string(i) + std::string(i % 50, 'y'));
  auto parts = SplitIntoParts(lines, 4096);
  EXPECT_GT(parts.size(), 5u);
  std::vector<std::string> joined;
  for (const auto& part : parts) {
    size_t bytes = 0;
    for (const auto& line : part) bytes += line.size() + 4;
    EXPECT_LE(bytes, 4096u);
    joined.insert(joined.end(), part.begin(), part.end());
  }
  EXPECT_EQ(joined, lines);
  // A line larger than the budget still goes, alone in its part.
  auto big = SplitIntoParts({"a", std::string(100, 'b'), "c"}, 50);
  EXPECT_EQ(big.size(), 3u);
}

TEST(CommandLine, ArrayAndFromImplyBatchAndCancelTakesAnElement) {
  auto array = ParseQueueCommandLine({"--array", "1-5", "--", "echo", "x"});
  ASSERT_TRUE(array.ok()) << array.message();
  EXPECT_TRUE(array->batch);
  EXPECT_EQ(*array->array, "1-5");
  EXPECT_EQ(array->command, (std::vector<std::string>{"echo", "x"}));
  auto from = ParseQueueCommandLine({"-r", "--from", "-"});
  ASSERT_TRUE(from.ok()) << from.message();
  EXPECT_EQ(*from->from, "-");
  EXPECT_FALSE(ParseQueueCommandLine({"--from", "f", "--", "echo"}).ok());
  EXPECT_FALSE(ParseQueueCommandLine({"--from", "f", "--array", "1-2"}).ok());
  EXPECT_FALSE(ParseQueueCommandLine({"-w", "--array", "1-2", "--", "echo"}).ok());
  EXPECT_FALSE(ParseQueueCommandLine({"--array", "1-2"}).ok());
  auto cancel = ParseQueueCommandLine({"--cancel", "17.2_5"});
  ASSERT_TRUE(cancel.ok()) << cancel.message();
  EXPECT_EQ(cancel->cancel_id, (wire::JobId{17, 2}));
  EXPECT_EQ(cancel->cancel_element, 5u);
  auto whole = ParseQueueCommandLine({"--cancel", "17"});
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->cancel_element, wire::kNoElement);
  for (const char* bad : {"17_", "_5", "17.2_x", "17.2_-1", "17.2_5_6", "17_4294967295"})
    EXPECT_FALSE(ParseQueueCommandLine({"--cancel", bad}).ok()) << bad;
}

wire::JobSpec BatchSpec() {
  wire::JobSpec spec;
  spec.argv = {"/bin/sh", "-c"};
  spec.cwd = "/tmp";
  spec.batch = true;
  return spec;
}

Result<wire::BulkSubmitRequest> RoundTrip(const wire::BulkSubmitRequest& request) {
  return wire::DecodePayload<wire::BulkSubmitRequest>(wire::EncodePayload(request));
}

TEST(BulkSubmitRequest, RoundTripsAndRefusesWhatTheDaemonMustNotTake) {
  wire::BulkSubmitRequest array{BatchSpec(), {{1, 9, 2}, {10, 20, 1}}, {}, false};
  auto decoded = RoundTrip(array);
  ASSERT_TRUE(decoded.ok()) << decoded.message();
  EXPECT_EQ(decoded->ranges, array.ranges);
  EXPECT_EQ(decoded->JobCount(), 16u);
  wire::BulkSubmitRequest lines{BatchSpec(), {}, {"echo a", "echo b"}, true};
  ASSERT_TRUE(RoundTrip(lines).ok());

  auto refused = [](wire::BulkSubmitRequest r) { return !RoundTrip(r).ok(); };
  wire::BulkSubmitRequest bad = array;
  bad.spec.batch = false;
  EXPECT_TRUE(refused(bad)) << "not batch";
  EXPECT_TRUE(refused({BatchSpec(), {}, {}, false})) << "nothing";
  EXPECT_TRUE(refused({BatchSpec(), {{1, 2, 1}}, {"echo"}, false})) << "both";
  EXPECT_TRUE(refused({BatchSpec(), {{1, 2, 1}}, {}, true})) << "array in parts";
  EXPECT_TRUE(refused({BatchSpec(), {{5, 1, 1}}, {}, false})) << "backwards";
  EXPECT_TRUE(refused({BatchSpec(), {{1, 5, 0}}, {}, false})) << "step 0";
  EXPECT_TRUE(refused({BatchSpec(), {{1, 6, 2}}, {}, false})) << "last not reached";
  EXPECT_TRUE(refused({BatchSpec(), {{1, 5, 1}, {5, 9, 1}}, {}, false})) << "overlap";
  EXPECT_TRUE(refused({BatchSpec(), {{0, wire::kMaxArrayIndex + 1, 1}}, {}, false})) << "index too high";
  EXPECT_TRUE(refused({BatchSpec(), {{0, 999999, 1}, {1000000, 1000001, 1}}, {}, false})) << "too many";
  EXPECT_TRUE(refused({BatchSpec(), {}, {std::string("a\0b", 3)}, false})) << "NUL";
}

TEST(BulkSubmitRequest, AnElementsSpecNamesItsArrayAndIndexWhateverItInherited) {
  wire::JobSpec base = BatchSpec();
  base.env = {"PATH=/bin", "QUEUE_ARRAY_ID=3.1", "QUEUE_ARRAY_INDEX=9"};
  wire::JobSpec element = daemon::ElementSpec(base, "17.2", 5, "echo $QUEUE_ARRAY_INDEX");
  EXPECT_EQ(element.argv, (std::vector<std::string>{"/bin/sh", "-c", "echo $QUEUE_ARRAY_INDEX"}));
  EXPECT_EQ(element.env, (std::vector<std::string>{"PATH=/bin", "QUEUE_ARRAY_ID=17.2", "QUEUE_ARRAY_INDEX=5"}));
  EXPECT_EQ(daemon::ElementSpec(base, "17.2", 5, "").argv, base.argv);
}

struct Connection {};

TEST(PendingLines, PartsGatherPerConnectionUntilTheLastAndAreForgottenWhenItCloses) {
  daemon::PendingLines<Connection> pending;
  auto a = std::make_shared<Connection>(), b = std::make_shared<Connection>();
  ASSERT_EQ(*pending.Add(a, {BatchSpec(), {}, {"echo 1", "echo 2"}, true}, 10), 2u);
  ASSERT_EQ(*pending.Add(b, {BatchSpec(), {}, {"echo b"}, true}, 10), 1u);
  ASSERT_EQ(*pending.Add(a, {BatchSpec(), {}, {"echo 3"}, false}, 10), 3u);
  auto gathered = pending.Take(a);
  EXPECT_EQ(gathered.lines, (std::vector<std::string>{"echo 1", "echo 2", "echo 3"}));
  EXPECT_EQ(gathered.spec, BatchSpec());
  // A part with another spec ends that submission; so does one past the limit.
  wire::JobSpec other = BatchSpec();
  other.cwd = "/var";
  auto mixed = pending.Add(b, {other, {}, {"echo c"}, false}, 10);
  EXPECT_FALSE(mixed.ok());
  EXPECT_EQ(*pending.Add(b, {BatchSpec(), {}, {"x"}, true}, 10), 1u) << "it starts afresh";
  auto many = pending.Add(b, {BatchSpec(), {}, std::vector<std::string>(10, "y"), true}, 10);
  ASSERT_FALSE(many.ok());
  EXPECT_NE(many.message().find("nothing submitted"), std::string::npos) << many.message();
  EXPECT_EQ(pending.size(), 0u);
  // A connection that closes before its last part leaves nothing behind.
  ASSERT_TRUE(pending.Add(b, {BatchSpec(), {}, {"z"}, true}, 10).ok());
  b.reset();
  pending.ForgetClosed();
  EXPECT_EQ(pending.size(), 0u);
}

}  // namespace
}  // namespace queue::stub
