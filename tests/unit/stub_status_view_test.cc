// Tests of what queue --status, --jobs and --migrate print: tables, colour,
// the versioned documents (against docs/json-schema.md), the progress line.
#include <gtest/gtest.h>

#include <sstream>

#include "daemon/status_report.h"
#include "json_schema_check.h"
#include "stub/live_view.h"
#include "stub/status_view.h"

namespace queue::stub {
namespace {

using nlohmann::json;

json DaemonStatus() {
  return json::parse(R"({
    "host": "127.0.0.1:1",
    "hosts": [
      {"host": "127.0.0.1:1", "alive": true, "load1": 0.25, "cpus": 4,
       "queues": [{"name": "now", "running": 1, "maxexec": 4, "vmaxexec": 4, "pfactor": 1.0, "accepting": true}]},
      {"host": "127.0.0.1:22", "alive": true, "load1": 1.5, "cpus": 2,
       "queues": [{"name": "now", "running": 0, "maxexec": 4, "vmaxexec": 4, "pfactor": 1.0, "accepting": false,
                   "why": "queue \"now\" is drained: /s/now/profile:7: unknown keyword \"maxexc\""}]},
      {"host": "127.0.0.1:333", "alive": false}
    ],
    "queues": [{"name": "now", "running": 1, "policy": "exec on", "closed": "outside the timesched hours"}],
    "jobs": [{"id": "3.1", "number": 3, "origin": "127.0.0.1:1", "uid": 1000, "queue": "now", "name": "sim",
              "state": "waiting", "host": "", "submit_time": 1, "start_time": 0, "end_time": 0,
              "cpu_seconds": 0.0, "batch": true, "output": "/w/sim.o3.1",
              "waiting_for": "load above loadsched on all hosts", "waiting_detail": "a: b"}],
    "keep_finished_seconds": 604800
  })");
}

TEST(StatusView, DocumentsCarryTheirSchema) {
  json status = StatusDocument(DaemonStatus(), "/run/q.sock", "--socket");
  EXPECT_EQ(status["schema"], "queue-status/1");
  EXPECT_EQ(status["socket"]["path"], "/run/q.sock");
  json jobs = JobsDocument(json::array({{{"id", "1.1"}}}));
  EXPECT_EQ(jobs["schema"], "queue-jobs/1");
  EXPECT_EQ(jobs["jobs"].size(), 1U);
  EXPECT_TRUE(JobsDocument(json("nonsense"))["jobs"].empty());
}

TEST(StatusView, ColourOnlyOnATerminalWithoutNoColor) {
  EXPECT_TRUE(UseColour(true, nullptr, "xterm"));
  EXPECT_TRUE(UseColour(true, "", nullptr)) << "an empty NO_COLOR does not count";
  EXPECT_FALSE(UseColour(false, nullptr, "xterm"));
  EXPECT_FALSE(UseColour(true, "1", "xterm"));
  EXPECT_FALSE(UseColour(true, nullptr, "dumb"));
}

TEST(StatusView, TablesAreAlignedByCharactersNotBytes) {
  std::string table = AlignedTable({{{"A"}, {"B"}, {"C"}}, {{"héé"}, {"x"}, {"last"}}, {{"z"}, {"long cell"}, {""}}},
                                   false);
  EXPECT_EQ(table,
            "A    B          C\n"
            "héé  x          last\n"
            "z    long cell\n");
}

TEST(StatusView, ControlCharactersCannotBreakATable) {
  std::string table = AlignedTable({{{"NAME"}}, {{"evil\x1b[2J\nname"}}}, false);
  EXPECT_EQ(table.find('\x1b'), std::string::npos) << table;
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 2) << table;
}

TEST(StatusView, ColourWrapsCellsAndHeader) {
  std::string table = AlignedTable({{{"STATE"}}, {{"up", "32"}}}, true);
  EXPECT_EQ(table, "\x1b[1mSTATE\x1b[0m\n\x1b[32mup\x1b[0m\n");
}

TEST(StatusView, StatusTableSaysWhyAQueueOfAnotherHostIsClosed) {
  std::string text = StatusText(StatusDocument(DaemonStatus(), "/run/q.sock", "--socket"), false);
  EXPECT_NE(text.find("socket /run/q.sock (from --socket), host 127.0.0.1:1\n"), std::string::npos) << text;
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);
  std::getline(lines, line);
  std::getline(lines, line);
  EXPECT_TRUE(line.starts_with("HOST")) << line;
  size_t why_column = line.find("WHY NOT");
  std::getline(lines, line);
  std::getline(lines, line);
  EXPECT_TRUE(line.starts_with("127.0.0.1:22")) << line;
  EXPECT_NE(line.find("  no  "), std::string::npos) << line;
  EXPECT_EQ(line.find("queue \"now\" is drained"), why_column) << "aligned under its header:\n" << text;
  std::getline(lines, line);
  EXPECT_TRUE(line.starts_with("127.0.0.1:333  down")) << line;
  EXPECT_NE(text.find("queue now: closed: outside the timesched hours"), std::string::npos) << text;
  EXPECT_NE(text.find("waiting: load above loadsched on all hosts"), std::string::npos) << text;
}

TEST(StatusView, JobsTableShowsATransferUnderWay) {
  json jobs = JobsDocument(json::array({{{"id", "4.1"}, {"state", "moving"}, {"queue", "now"}, {"host", "h:2"},
                                         {"name", "big"}, {"waiting_for", "restart files not yet home"},
                                         {"transfer", {{"direction", "home"}, {"host", "h:2"}, {"bytes", 3 << 20},
                                                       {"seconds", 1.0}, {"complete", false}}}}}));
  std::string text = JobsText(jobs, false);
  EXPECT_NE(text.find("waiting: restart files not yet home; restart files home from h:2: 3.0 MiB"), std::string::npos)
      << text;
}

TEST(StatusView, ProgressLine) {
  EXPECT_EQ(ProgressLine("moving", 1 << 20, 4 << 20, 2.0 * (1 << 20), 80),
            "moving  [##########..............................]  25%  1.0/4.0 MiB  2.0 MiB/s");
  EXPECT_EQ(ProgressLine("moving", 5 << 20, 0, 0, 80), "moving  5.0 MiB  0.0 MiB/s");
  EXPECT_EQ(ProgressLine("moving", 1 << 20, 4 << 20, 0, 30), "moving  25%  1.0/4.0 MiB  0.0 MiB/s")
      << "too narrow for a bar";
  EXPECT_LE(ProgressLine("a long label for a job", 1, 2, 1, 60).size(), 60U);
}

TEST(StatusView, KeptFor) {
  EXPECT_EQ(KeptFor(7 * 86400), "7 day(s)");
  EXPECT_EQ(KeptFor(7200), "2 hour(s)");
  EXPECT_EQ(KeptFor(3), "3 s");
}

TEST(MigrationView, FromCheckpointThroughTransferToTheNewHost) {
  json old_transfer = {{"direction", "out"}, {"host", "a:1"}, {"bytes", 9}, {"seconds", 1.0}, {"complete", true}};
  json job = {{"state", "running"}, {"host", "a:1"}, {"transfer", old_transfer}};
  auto view = ViewMigration(job, 0, old_transfer, "job 1.1", 80);
  EXPECT_FALSE(view.done);
  EXPECT_NE(view.line.find("job 1.1 checkpointing"), std::string::npos) << view.line;
  job["state"] = "moving";
  job["transfer"] = {{"direction", "out"}, {"host", "b:1"}, {"bytes", 2 << 20}, {"size", 4 << 20},
                     {"seconds", 2.0}, {"complete", false}};
  view = ViewMigration(job, 0, old_transfer, "job 1.1", 80);
  EXPECT_FALSE(view.done);
  EXPECT_NE(view.line.find("job 1.1 restart files to b:1  [#"), std::string::npos) << view.line;
  EXPECT_NE(view.line.find("50%  2.0/4.0 MiB  1.0 MiB/s"), std::string::npos) << view.line;
  job["state"] = "running";
  job["restarts"] = 1;
  job["host"] = "b:1";
  view = ViewMigration(job, 0, old_transfer, "job 1.1", 80);
  EXPECT_TRUE(view.done);
  EXPECT_NE(view.line.find("job 1.1 goes on on b:1"), std::string::npos) << view.line;
  EXPECT_TRUE(ViewMigration(nullptr, 0, nullptr, "job 1.1", 80).done);
  EXPECT_TRUE(ViewMigration({{"state", "failed"}}, 0, nullptr, "job 1.1", 80).done);
}

// The daemon's job JSON, as JobJson makes it from a record, has only
// documented fields (the integration tests check real output the same way).
TEST(JsonSchemaDoc, JobJsonOfEveryKindOfRecordIsDocumented) {
  auto doc = testing::ReadJsonSchemaDoc(std::string(QUEUE_DOCS_DIR) + "/json-schema.md");
  ASSERT_TRUE(doc.contains("job") && doc.contains("transfer")) << QUEUE_DOCS_DIR;
  daemon::JobNames names;
  names.SetHosts({"h:1", "h:2"}, "h:1");
  spool::JobRecord r;
  r.id = 5;
  r.batch = true;
  r.state = spool::JobState::kDone;
  r.wait_status = 3 << 8;
  r.restarts = 2;
  r.message = "moved";
  r.output_held = "disk full";
  daemon::Transfer t{daemon::Transfer::Direction::kOut, "h:2", 1, 10, 20, false, {}, {}};
  json job = daemon::JobJson(r, names, "h:1", {"w", "d", &t, {}});
  auto problems = testing::SchemaViolations(doc, "job", job);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems) << job.dump();
  r.state = spool::JobState::kWaiting;
  job = daemon::JobJson(r, names, "h:1", {"load above loadsched on all hosts", "h:1: load", nullptr, {}});
  EXPECT_EQ(job["waiting_for"], "load above loadsched on all hosts");
  problems = testing::SchemaViolations(doc, "job", job);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems) << job.dump();
  // The checker itself: an undocumented key and a missing one are both found.
  job["surprise"] = 1;
  job.erase("id");
  EXPECT_EQ(testing::SchemaViolations(doc, "job", job).size(), 2U);
}

// Job arrays in `queue --jobs`: elements alike share a row named by their
// index ranges; an element with a message of its own, and other jobs, keep
// theirs; a missing field does not throw.
TEST(StatusView, ArraysAreCompactedIntoRowsOfIndexRanges) {
  EXPECT_EQ(IndexRanges({1, 2, 3, 5, 7, 8}), "1-3,5,7-8");
  EXPECT_EQ(IndexRanges({4}), "4");
  EXPECT_EQ(IndexRanges({}), "");
  auto element = [](unsigned index, const std::string& state) {
    return nlohmann::json{{"id", "17.2_" + std::to_string(index)}, {"array", "17.2"}, {"array_index", index},
                          {"state", state}, {"queue", "now"}, {"host", ""}, {"waiting_for", "a host"}};
  };
  nlohmann::json jobs = nlohmann::json::array();
  for (unsigned i : {3u, 1u, 2u, 5u}) jobs.push_back(element(i, "waiting"));
  jobs.push_back(element(4, "running"));
  auto failed = element(6, "failed");
  failed["message"] = "no such file";
  jobs.push_back(failed);
  jobs.push_back({{"id", "18.2"}, {"state", "running"}});
  jobs.push_back({{"array", "19.2"}, {"array_index", 1}});  // fields missing: no throw
  auto rows = CompactArrays(jobs);
  ASSERT_EQ(rows.size(), 5U) << rows.dump();
  EXPECT_EQ(rows[0]["id"], "17.2_[1-3,5]");
  EXPECT_FALSE(rows[0].contains("waiting_for")) << "one reason cannot speak for all";
  EXPECT_EQ(rows[1]["id"], "17.2_4");
  EXPECT_EQ(rows[2]["id"], "17.2_6") << "its message is its own";
  EXPECT_EQ(rows[3]["id"], "18.2");
  EXPECT_EQ(rows[4]["id"], "19.2_1");
}

}  // namespace
}  // namespace queue::stub
