// queue --status, --jobs and --migrate as people and programs read them
// (issue 15): why a queue anywhere is closed, shown on every host; what a
// waiting job waits for; the versioned JSON documents (docs/json-schema.md);
// --watch; the progress of a move on a terminal and nothing extra off one.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "cluster_fixture.h"
#include "json_schema_check.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;

std::string SchemaDoc() { return std::string(QUEUE_DOCS_DIR) + "/json-schema.md"; }

// Host `observer`'s view of queue `queue` on host `host`, from --status --json.
nlohmann::json QueueSeen(TestCluster& cluster, int observer, int host, const std::string& queue) {
  auto status = cluster.Status(observer);
  if (!status.is_object()) return nullptr;
  for (const auto& h : status["hosts"])
    if (h["host"] == cluster.entry(host))
      for (const auto& q : h.value("queues", nlohmann::json::array()))
        if (q["name"] == queue) return q;
  return nullptr;
}

// Runs `command` (a shell line) on a terminal of its own (script(1)), and
// returns what that terminal showed.
CommandResult OnATerminal(const std::string& command, const std::vector<std::string>& env) {
  std::vector<std::string> argv{"/usr/bin/env", "-u", "NO_COLOR"};
  argv.insert(argv.end(), env.begin(), env.end());
  argv.insert(argv.end(), {"script", "-qefc", command, "/dev/null"});
  return RunCommand(argv, {{}, "", 60s, ""});
}

// Issue 15, 1: asked on host 0, a queue of host 2 closed by a broken profile
// said only "(closed)"; it now says why, as host 2 does.
TEST(StatusView, ABrokenProfileOnAnotherHostIsExplainedOnEveryHost) {
  auto cluster = TestCluster::Start(3);
  ASSERT_TRUE(cluster->WaitForView(15s));
  cluster->WriteProfile(2, "now", "exec on\nmaxexc 3\n");
  ASSERT_TRUE(WaitUntil([&] { return QueueSeen(*cluster, 0, 2, "now").value("accepting", true) == false; }, 15s))
      << cluster->Status(0).dump();
  auto seen = QueueSeen(*cluster, 0, 2, "now");
  std::string why = seen.value("why", "");
  EXPECT_NE(why.find("profile:2"), std::string::npos) << seen.dump();
  EXPECT_NE(why.find("maxexc"), std::string::npos) << seen.dump();
  EXPECT_EQ(QueueSeen(*cluster, 1, 2, "now").value("why", ""), why) << "every host hears the same reason";
  EXPECT_FALSE(QueueSeen(*cluster, 0, 1, "now").contains("why")) << "an open queue has no reason";
  // The table on host 0: host 2's row says it takes no job, and why.
  auto table = cluster->Queue(0, {"--status"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  bool found = false;
  std::istringstream lines(table.out);
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with(cluster->entry(2)) && line.find(" no ") != std::string::npos &&
        line.find("maxexc") != std::string::npos)
      found = true;
  EXPECT_TRUE(found) << table.out;
  EXPECT_EQ(table.out.find("\x1b["), std::string::npos) << "no colour into a pipe";
}

// Issue 15, 2 and 3: a waiting job says what it waits for, in a few words;
// both documents have exactly the documented fields, and the doc lists no
// field that real output never shows but for the ones named here.
TEST(StatusView, JsonDocumentsHaveExactlyTheDocumentedFieldsAndWaitingJobsSayWhy) {
  auto cluster = TestCluster::Start(3);
  ASSERT_TRUE(cluster->WaitForView(15s));
  cluster->WriteProfile(2, "now", "exec on\nmaxexc 3\n");
  cluster->WriteProfile(1, "now", "exec on\nmaxexec 1\n");
  ASSERT_TRUE(WaitUntil([&] { return QueueSeen(*cluster, 0, 2, "now").value("accepting", true) == false; }, 15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  auto held = cluster->Queue(0, {"-r", "-h", cluster->entry(1), "--", "sleep", "60"}, {{}, "", 30s, cwd});
  ASSERT_EQ(held.exit_code, 0) << held.err;
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, std::stoull(held.out)) == cluster->entry(1); }, 15s));
  auto full = cluster->Queue(0, {"-r", "-h", cluster->entry(1), "--", "true"}, {{}, "", 30s, cwd});
  auto drained = cluster->Queue(0, {"-r", "-h", cluster->entry(2), "--", "true"}, {{}, "", 30s, cwd});
  // A job array's elements, waiting too: their array fields are documented.
  auto array = cluster->Queue(0, {"-r", "--array", "1-2", "-h", cluster->entry(2), "--", "true"}, {{}, "", 30s, cwd});
  ASSERT_EQ(full.exit_code, 0) << full.err;
  ASSERT_EQ(drained.exit_code, 0) << drained.err;
  ASSERT_EQ(array.exit_code, 0) << array.err;
  ASSERT_TRUE(WaitUntil(
      [&] {
        return JobOn(*cluster, 0, std::stoull(full.out)).contains("waiting_for") &&
               JobOn(*cluster, 0, std::stoull(drained.out)).contains("waiting_for");
      },
      15s));
  EXPECT_EQ(JobOn(*cluster, 0, std::stoull(full.out))["waiting_for"], "maxexec reached on " + cluster->entry(1));
  EXPECT_EQ(JobOn(*cluster, 0, std::stoull(drained.out))["waiting_for"],
            "queue drained (profile) on " + cluster->entry(2));
  auto jobs_table = cluster->Queue(0, {"--jobs"});
  EXPECT_NE(jobs_table.out.find("waiting: maxexec reached on " + cluster->entry(1)), std::string::npos)
      << jobs_table.out;

  auto doc = ReadJsonSchemaDoc(SchemaDoc());
  ASSERT_TRUE(doc.contains("status") && doc.contains("jobs") && doc.contains("job")) << SchemaDoc();
  std::set<std::string> seen;
  for (int host = 0; host < 3; ++host) {
    auto status = nlohmann::json::parse(cluster->Queue(host, {"--status", "--json"}).out, nullptr, false);
    ASSERT_TRUE(status.is_object());
    EXPECT_EQ(status["schema"], "queue-status/1");
    auto problems = SchemaViolations(doc, "status", status);
    EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems) << status.dump(2);
    CollectKeys(doc, "status", status, seen);
    auto jobs = nlohmann::json::parse(cluster->Queue(host, {"--jobs", "--all", "--json"}).out, nullptr, false);
    ASSERT_TRUE(jobs.is_object());
    EXPECT_EQ(jobs["schema"], "queue-jobs/1");
    problems = SchemaViolations(doc, "jobs", jobs);
    EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems) << jobs.dump(2);
    CollectKeys(doc, "jobs", jobs, seen);
  }
  // What this cluster cannot show (no job ended, moved or failed; no CRIU).
  const std::set<std::string> not_here{"queue.closed",  "queue.suspended",  "queue.criu",    "queue.warning",
                                       "job.restarts",  "job.exit_code",    "job.signal",    "job.message",
                                       "job.output_held", "job.transfer"};
  for (const auto& [object, fields] : doc)
    for (const auto& [key, field] : fields)
      if (object != "transfer" && !not_here.contains(object + "." + key)) {
        EXPECT_TRUE(seen.contains(object + "." + key)) << object << "." << key << " is documented but never shown";
      }
}

// Issue 15, 2: --watch prints a new table each interval into a pipe, and
// redraws in place on a terminal, giving the cursor back on ^C.
TEST(StatusView, WatchPrintsEachRoundIntoAPipeAndRedrawsInPlaceOnATerminal) {
  auto cluster = TestCluster::Start(1);
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string dir = cluster->dir();
  auto piped = StartBackground({BinDir() + "/queue", "--status", "--watch", "1"},
                               {"QUEUE_SOCKET=" + cluster->socket(0)}, dir + "/watch.out", dir + "/watch.err");
  auto rounds = [&] {
    std::string out = ReadFile(dir + "/watch.out");
    size_t n = 0;
    for (size_t at = 0; (at = out.find("socket ", at)) != std::string::npos; ++at) ++n;
    return n;
  };
  EXPECT_TRUE(WaitUntil([&] { return rounds() >= 3; }, 15s)) << ReadFile(dir + "/watch.out");
  kill(piped.pid, SIGINT);
  auto ended = WaitChild(piped.pid, 10s);
  ASSERT_TRUE(ended.has_value());
  EXPECT_TRUE(WIFEXITED(*ended) && WEXITSTATUS(*ended) == 0) << *ended;
  EXPECT_EQ(ReadFile(dir + "/watch.out").find("\x1b["), std::string::npos) << "no escape sequences into a pipe";

  // On a terminal: a ^C (here the terminal's own SIGINT, after two rounds) ends it.
  auto shown = OnATerminal("timeout --preserve-status -s INT 2.5 " + BinDir() + "/queue --status --watch 1; echo exit=$?",
                           {"QUEUE_SOCKET=" + cluster->socket(0), "TERM=xterm"});
  EXPECT_NE(shown.out.find("\x1b[H"), std::string::npos) << "redrawn from the top: " << shown.out;
  EXPECT_NE(shown.out.find("\x1b[?25l"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("\x1b[?25h"), std::string::npos) << "the cursor is shown again: " << shown.out;
  EXPECT_NE(shown.out.find("\x1b[1mHOST"), std::string::npos) << "coloured on a terminal: " << shown.out;
  EXPECT_NE(shown.out.find("exit=0"), std::string::npos) << shown.out;
  auto plain = OnATerminal(BinDir() + "/queue --status", {"QUEUE_SOCKET=" + cluster->socket(0), "NO_COLOR=1"});
  EXPECT_NE(plain.out.find("HOST"), std::string::npos) << plain.out;
  EXPECT_EQ(plain.out.find("\x1b["), std::string::npos) << "NO_COLOR: " << plain.out;
}

// Two hosts whose queue moves jobs by their own checkpoints (restartmode 1),
// and a job that, asked to checkpoint, writes 32 MiB of restart file and
// exits; restarted, it says ready and waits again.
std::unique_ptr<TestCluster> StartMovableCluster() {
  return TestCluster::Start(2, ClusterOptions{{}, "checkpointmode 2\nrestartflag --resume\nrestartmode 1\n"
                                                  "checkpointgrace 30\nrestartflagpos last\nrestartfile big.restart\n"});
}
constexpr const char* kMovableJob =
    "trap 'head -c 33554432 /dev/zero > big.restart; exit 0' USR2; echo ready; while :; do sleep 0.1; done";

// Issue 15, 4: `queue --migrate` on a terminal shows the move's progress (its
// restart files' bytes and rate) until the job goes on; into a pipe, only its
// one-line answer.
TEST(StatusView, MigrateShowsProgressOnATerminalAndNothingMoreIntoAPipe) {
  auto cluster = StartMovableCluster();
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  std::string script = kMovableJob;
  std::string out = cwd + "/stub.out", err = cwd + "/stub.err";
  auto stub = StartStub(*cluster, cwd, {"-n", "-h", cluster->entry(0), "--", "sh", "-c", script, "sh"});
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(out) == "ready\n"; }, 15s)) << ReadFile(err);
  auto shown = OnATerminal(BinDir() + "/queue --migrate 1 " + cluster->entry(1), {"QUEUE_SOCKET=" + cluster->socket(0)});
  EXPECT_EQ(shown.exit_code, 0) << shown.out;
  EXPECT_NE(shown.out.find("MiB/s"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("restart files to " + cluster->entry(1)), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("32.0/32.0 MiB"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("goes on on " + cluster->entry(1)), std::string::npos) << shown.out;
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(out) == "ready\nready\n"; }, 30s)) << ReadFile(err);

  // The job's own stub writes into a file, not a terminal: no bar there.
  EXPECT_EQ(ReadFile(err).find("MiB"), std::string::npos) << ReadFile(err);
  // Back to host 0, asked from a pipe: the answer, and nothing else.
  auto piped = cluster->Queue(0, {"--migrate", "1", cluster->entry(0)});
  EXPECT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out.find("MiB"), std::string::npos) << piped.out;
  EXPECT_EQ(piped.err, "");
  EXPECT_EQ(std::count(piped.out.begin(), piped.out.end(), '\n'), 1) << piped.out;
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(0); }, 30s)) << ReadFile(err);
  kill(stub.pid, SIGTERM);
  WaitChild(stub.pid, 20s);
}

// Issue 15, 4: an interactive job moved by a checkpoint shows its restart
// files moving on its own user's terminal (where its stub's stderr is), the
// bar's line ended before the job's output goes on.
TEST(StatusView, AMovedInteractiveJobShowsTheMoveOnItsOwnTerminal) {
  auto cluster = StartMovableCluster();
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  WriteFile(cwd + "/job.sh", std::string(kMovableJob) + "\n");
  const std::string terminal = cwd + "/terminal";
  auto stub = StartBackground({"/usr/bin/script", "-qefc",
                               "cd " + cwd + " && exec " + BinDir() + "/queue -n -h " + cluster->entry(0) +
                                   " -- sh job.sh",
                               "/dev/null"},
                              {"QUEUE_SOCKET=" + cluster->socket(0), "TERM=xterm"}, terminal, cwd + "/script.err");
  auto readies = [&] {
    std::string shown = ReadFile(terminal);
    size_t n = 0;
    for (size_t at = 0; (at = shown.find("ready", at)) != std::string::npos; ++at) ++n;
    return n;
  };
  ASSERT_TRUE(WaitUntil([&] { return readies() == 1; }, 15s)) << ReadFile(terminal) << ReadFile(cwd + "/script.err");
  auto moved = cluster->Queue(0, {"--migrate", "1", cluster->entry(1)});
  EXPECT_EQ(moved.exit_code, 0) << moved.err;
  ASSERT_TRUE(WaitUntil([&] { return readies() == 2; }, 30s)) << ReadFile(terminal);
  const std::string shown = ReadFile(terminal);
  const size_t bar = shown.find("restart files to " + cluster->entry(1));
  ASSERT_NE(bar, std::string::npos) << shown;
  EXPECT_NE(shown.find("32.0/32.0 MiB", bar), std::string::npos) << shown;
  EXPECT_NE(shown.find("MiB/s", bar), std::string::npos) << shown;
  EXPECT_LT(bar, shown.rfind("ready")) << "shown while it moved, before the job went on: " << shown;
  // The complete bar's line ended: the restarted job's output starts a line of its own.
  const size_t full = shown.rfind("32.0/32.0 MiB");
  EXPECT_NE(shown.find('\n', full), std::string::npos) << shown;
  EXPECT_LT(shown.find('\n', full), shown.rfind("ready")) << shown;
  kill(stub.pid, SIGKILL);  // its terminal goes away: the stub hangs up the job
  WaitChild(stub.pid, 20s);
}

}  // namespace
}  // namespace queue::testing
