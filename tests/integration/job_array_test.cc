// Bulk submission (`queue -r --from FILE`, `queue -r --array 1-50 -- cmd`):
// every line or index a job of its own, run, with its output named by its
// array id and index; all or none submitted; cancelled as a whole or one by one.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#include "batch_helpers.h"
#include "cluster_fixture.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;

// The array id `queue -r --array/--from` printed ("17.1"), or "" with a failure.
std::string SubmitArray(TestCluster& cluster, const std::vector<std::string>& args, const std::string& cwd,
                        const std::string& stdin_data = "") {
  auto run = cluster.Queue(0, args, {{}, stdin_data, 60s, cwd});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  std::string id = run.out.substr(0, run.out.find('\n'));
  EXPECT_FALSE(id.empty()) << "stdout: " << run.out << " stderr: " << run.err;
  EXPECT_EQ(id.find_first_not_of("0123456789."), std::string::npos) << id;
  return id;
}

// The elements of array `array` that host 0 lists (finished ones too), by index.
std::map<unsigned, nlohmann::json> Elements(TestCluster& cluster, const std::string& array) {
  std::map<unsigned, nlohmann::json> elements;
  for (const auto& [number, job] : AllJobs(cluster, 0))
    if (job.contains("array") && job["array"] == array) elements[job["array_index"].get<unsigned>()] = job;
  return elements;
}

size_t CountIn(const std::map<unsigned, nlohmann::json>& elements, const std::string& state) {
  size_t n = 0;
  for (const auto& [index, job] : elements) n += job["state"] == state;
  return n;
}

TEST(JobArray, TwoHundredLinesFromAFileAllRunAndDeliverTheirOutputs) {
  auto cluster = TestCluster::Start(2);
  ASSERT_TRUE(cluster->WaitForView(10s));
  const std::string cwd = MakeDir(*cluster, "work");
  std::string file = "# one job per line, as for tsp or parallel\n\n";
  // Each line carries a long shell comment: 1.2 MiB in all, more than one
  // frame holds, so the list goes in parts.
  for (int i = 1; i <= 200; ++i)
    file += "echo line " + std::to_string(i) + " \"$QUEUE_ARRAY_INDEX\" # " + std::string(6000, 'x') + "\n";
  WriteFile(cwd + "/jobs.txt", file);
  const std::string array = SubmitArray(*cluster, {"-r", "--from", "jobs.txt"}, cwd);
  ASSERT_FALSE(array.empty());
  auto output = [&](int i) { return cwd + "/sh.o" + array + "_" + std::to_string(i); };
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (int i = 1; i <= 200; ++i)
          if (!std::filesystem::exists(output(i))) return false;
        return true;
      },
      120s))
      << cluster->log(0) << cluster->log(1);
  for (int i = 1; i <= 200; ++i)
    EXPECT_EQ(ReadFile(output(i)), "line " + std::to_string(i) + " " + std::to_string(i) + "\n") << i;
  auto elements = Elements(*cluster, array);
  EXPECT_EQ(elements.size(), 200u);
  std::set<std::string> hosts;
  for (const auto& [index, job] : elements) hosts.insert(job["host"].get<std::string>());
  EXPECT_EQ(hosts.size(), 2u) << "every job ran on one host";
}

TEST(JobArray, EachElementSeesItsIndexAndItsOutputKeepsIt) {
  auto cluster = TestCluster::Start(2);
  ASSERT_TRUE(cluster->WaitForView(10s));
  const std::string cwd = MakeDir(*cluster, "work");
  const std::string array = SubmitArray(
      *cluster, {"-r", "--array", "1-50", "--", "/bin/sh", "-c", "echo index $QUEUE_ARRAY_INDEX of $QUEUE_ARRAY_ID"},
      cwd);
  ASSERT_FALSE(array.empty());
  auto output = [&](int i) { return cwd + "/sh.o" + array + "_" + std::to_string(i); };
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (int i = 1; i <= 50; ++i)
          if (!std::filesystem::exists(output(i))) return false;
        return true;
      },
      60s))
      << cluster->log(0) << cluster->log(1);
  for (int i = 1; i <= 50; ++i) EXPECT_EQ(ReadFile(output(i)), "index " + std::to_string(i) + " of " + array + "\n");
  // A step and a list: only those indices.
  const std::string odd = SubmitArray(*cluster, {"-r", "--array", "3-7:2,10", "-j", "odd", "--", "/bin/true"}, cwd);
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(cwd + "/odd.o" + odd + "_10"); }, 30s));
  auto elements = Elements(*cluster, odd);
  std::set<unsigned> indices;
  for (const auto& [index, job] : elements) indices.insert(index);
  EXPECT_EQ(indices, (std::set<unsigned>{3, 5, 7, 10}));
}

// The array's id cancels every element, waiting and running; ARRAY_INDEX one.
TEST(JobArray, CancellingTheArrayCancelsItsWaitingAndRunningElements) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, "maxexec 1\n"});
  ASSERT_TRUE(cluster->WaitForView(10s));
  const std::string cwd = MakeDir(*cluster, "work");
  const std::string array = SubmitArray(*cluster, {"-r", "--array", "1-20", "--", "sleep", "300"}, cwd);
  ASSERT_FALSE(array.empty());
  ASSERT_TRUE(WaitUntil([&] { return CountIn(Elements(*cluster, array), "running") == 2; }, 20s))
      << cluster->log(0);
  // Listed compactly: the waiting elements on one line.
  auto listing = cluster->Queue(0, {"--jobs"});
  EXPECT_NE(listing.out.find(array + "_["), std::string::npos) << listing.out;
  EXPECT_LT(std::count(listing.out.begin(), listing.out.end(), '\n'), 6) << listing.out;
  // One element alone: the last, which waits.
  auto one = cluster->Queue(0, {"--cancel", array + "_20"});
  EXPECT_EQ(one.exit_code, 0) << one.err;
  ASSERT_TRUE(WaitUntil([&] { return Elements(*cluster, array)[20]["state"] == "cancelled"; }, 10s));
  EXPECT_EQ(CountIn(Elements(*cluster, array), "waiting"), 17u);
  // The whole array.
  auto all = cluster->Queue(0, {"--cancel", array});
  EXPECT_EQ(all.exit_code, 0) << all.err;
  EXPECT_NE(all.out.find("17 waiting, 2 running"), std::string::npos) << all.out;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto elements = Elements(*cluster, array);
        return elements.size() == 20 && CountIn(elements, "waiting") == 0 && CountIn(elements, "running") == 0;
      },
      30s))
      << cluster->log(0) << cluster->log(1);
  auto elements = Elements(*cluster, array);
  EXPECT_EQ(CountIn(elements, "cancelled"), 18u);
  // The two that ran were stopped: they ended by SIGTERM, not after 300 s.
  size_t stopped = 0;
  for (const auto& [index, job] : elements) stopped += job["state"] != "cancelled" && job.contains("signal");
  EXPECT_EQ(stopped, 2u);
  auto again = cluster->Queue(0, {"--cancel", array});
  EXPECT_NE(again.exit_code, 0);
}

// All or none: a list that would pass --user-waiting-jobs submits nothing and
// says why; so does one with a line too long.
TEST(JobArray, AListPastTheWaitingLimitSubmitsNothingAndSaysWhy) {
  ClusterOptions options;
  options.daemon_args = {"--user-waiting-jobs", "10"};
  auto cluster = TestCluster::Start(1, options);
  ASSERT_TRUE(cluster->WaitForView(10s));
  const std::string cwd = MakeDir(*cluster, "work");
  std::string eleven;
  for (int i = 1; i <= 11; ++i) eleven += "touch ran" + std::to_string(i) + "\n";
  auto run = cluster->Queue(0, {"-r", "--from", "-"}, {{}, eleven, 30s, cwd});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_EQ(run.out, "");
  EXPECT_NE(run.err.find("nothing submitted"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("would pass the 10 one user may keep waiting"), std::string::npos) << run.err;
  auto array = cluster->Queue(0, {"-r", "--array", "1-11", "--", "true"}, {{}, "", 30s, cwd});
  EXPECT_NE(array.exit_code, 0);
  EXPECT_NE(array.err.find("would pass the 10"), std::string::npos) << array.err;
  std::string too_long = "echo a\necho " + std::string(200000, 'x') + "\n";
  auto long_line = cluster->Queue(0, {"-r", "--from", "-"}, {{}, too_long, 30s, cwd});
  EXPECT_NE(long_line.exit_code, 0);
  EXPECT_NE(long_line.err.find("line 2"), std::string::npos) << long_line.err;
  EXPECT_TRUE(AllJobs(*cluster, 0).empty());
  // Ten fit.
  std::string ten;
  for (int i = 1; i <= 10; ++i) ten += "true\n";
  auto fits = cluster->Queue(0, {"-r", "--from", "-"}, {{}, ten, 30s, cwd});
  EXPECT_EQ(fits.exit_code, 0) << fits.err;
  EXPECT_EQ(AllJobs(*cluster, 0).size(), 10u);
}

}  // namespace
}  // namespace queue::testing
