// End-to-end tests of checkpoint migration (SPEC §7): jobs that move off a
// loaded host, on demand, and when things go wrong, with the same stub attached.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cluster_fixture.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;

const std::string kCheckpointing =
    "checkpointmode 2\nloadcheckpoint 3\nrestartflag --resume\nrestartmode 1\ncheckpointgrace 10\n";

std::string Counter() { return BinDir() + "/queue-example-counter"; }

// How many runs of the counter have begun in `output`: each prints its first
// line once its checkpoint handler is set, so a signal after it is caught.
int CounterRunsIn(const std::string& output) {
  int runs = 0;
  for (const char* first : {"start at step", "resumed at step"})
    for (size_t at = 0; (at = output.find(first, at)) != std::string::npos; ++at) ++runs;
  return runs;
}

// The last "result N" line of a counter's output.
std::string ResultLine(const std::string& output) {
  size_t at = output.rfind("result ");
  if (at == std::string::npos) return "";
  return output.substr(at, output.find('\n', at) - at);
}

class MigrateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(Counter().c_str(), X_OK) != 0) GTEST_SKIP() << "queue-example-counter is not built";
  }
};

TEST_F(MigrateTest, AComputationMovedTwiceEndsWithTheUninterruptedResult) {
  auto cluster = TestCluster::Start(3, ClusterOptions{{}, kCheckpointing});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  const std::vector<std::string> job = {Counter(), "3000", "0.002"};
  auto alone = RunCommand({Counter(), "3000", "0"}, {{}, "", 60s, cwd});
  ASSERT_EQ(alone.exit_code, 0) << alone.err;

  std::vector<std::string> args = {"-n", "-H", cluster->entry(0), "--"};
  args.insert(args.end(), job.begin(), job.end());
  std::string out = cwd + "/stub.out", err = cwd + "/stub.err";
  auto stub = StartStub(*cluster, cwd, args);
  uint64_t id = 1;
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, id) == cluster->entry(0); }, 15s)) << ReadFile(err);

  std::vector<std::string> path{cluster->entry(0)};
  for (int move = 0; move < 2; ++move) {
    ASSERT_TRUE(WaitUntil([&] { return CounterRunsIn(ReadFile(out)) == move + 1; }, 15s)) << ReadFile(out);
    int from = IndexOf(*cluster, path.back());
    auto crossed = std::chrono::steady_clock::now();
    cluster->SetLoad(from, 5.0);
    std::string to;
    ASSERT_TRUE(WaitUntil(
        [&] {
          to = RunningOn(*cluster, id);
          return !to.empty() && to != path.back();
        },
        20s))
        << "move " << move << "\n" << ReadFile(err) << cluster->log(from);
    std::cerr << "move " << move << ": " << path.back() << " -> " << to << " in "
              << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - crossed).count()
              << " ms from the load crossing the threshold\n";
    cluster->SetLoad(from, 0.0);
    for (const auto& seen : path) EXPECT_NE(to, seen) << "a job went back to a host it left";
    path.push_back(to);
    std::this_thread::sleep_for(1s);
  }
  auto status = WaitChild(stub.pid, 60s);
  ASSERT_TRUE(status.has_value()) << ReadFile(err);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(err);
  EXPECT_EQ(ResultLine(ReadFile(out)), ResultLine(alone.out)) << ReadFile(out) << ReadFile(err);
  EXPECT_NE(ReadFile(err).find("checkpointed"), std::string::npos) << ReadFile(err);
  // It went on from its restart file each time, not from the start.
  std::string shown = ReadFile(out);
  size_t resumed = 0;
  for (size_t at = 0; (at = shown.find("resum", at)) != std::string::npos; ++at) ++resumed;
  EXPECT_EQ(resumed, 2u) << shown;
  auto record = JobOnceIn(*cluster, 0, id, "done");
  EXPECT_EQ(record["state"], "done") << record.dump();
  EXPECT_EQ(record["restarts"], 2) << record.dump();
}

TEST_F(MigrateTest, MigrateOnDemandToANamedHost) {
  auto cluster = TestCluster::Start(3, ClusterOptions{{}, kCheckpointing});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  std::string out = cwd + "/stub.out", err = cwd + "/stub.err";
  auto stub = StartStub(*cluster, cwd, {"-n", "-h", cluster->entry(1), "--", Counter(), "2000", "0.002"});
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(1); }, 15s)) << ReadFile(err);
  ASSERT_TRUE(WaitUntil([&] { return CounterRunsIn(ReadFile(out)) == 1; }, 15s)) << ReadFile(err);
  auto asked = cluster->Queue(0, {"--migrate", "1", cluster->entry(2)});
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  EXPECT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(2); }, 20s)) << ReadFile(err);
  auto status = WaitChild(stub.pid, 60s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(err);
  auto alone = RunCommand({Counter(), "2000", "0"});
  EXPECT_EQ(ResultLine(ReadFile(out)), ResultLine(alone.out));
  // A job that is not running cannot be moved, and says why. (The stub hears
  // the end from the shepherd; its submit host's record follows over the peer link.)
  ASSERT_TRUE(WaitUntil([&] { return JobOn(*cluster, 0, 1)["state"] == "done"; }, 15s)) << JobOn(*cluster, 0, 1).dump();
  auto again = cluster->Queue(0, {"--migrate", "1"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("not running"), std::string::npos) << again.err;
}

// Asked on a host that did not submit it, by its cluster id: the request goes
// to the submit host, which owns the job, and the job moves as asked.
TEST_F(MigrateTest, AMigrateAskedOnAnotherHostIsForwardedToTheSubmitHost) {
  auto cluster = TestCluster::Start(3, ClusterOptions{{}, kCheckpointing});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  std::string out = cwd + "/stub.out", err = cwd + "/stub.err";
  auto stub = StartStub(*cluster, cwd, {"-n", "-h", cluster->entry(1), "--", Counter(), "2000", "0.002"});
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(1); }, 15s)) << ReadFile(err);
  ASSERT_TRUE(WaitUntil([&] { return CounterRunsIn(ReadFile(out)) == 1; }, 15s)) << ReadFile(err);
  auto asked = cluster->Queue(2, {"--migrate", JobLabel(1), cluster->entry(2)});
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  EXPECT_NE(asked.out.find("asked job " + JobLabel(1)), std::string::npos) << asked.out;
  EXPECT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(2); }, 20s)) << ReadFile(err);
  auto status = WaitChild(stub.pid, 60s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(err);
  auto alone = RunCommand({Counter(), "2000", "0"});
  EXPECT_EQ(ResultLine(ReadFile(out)), ResultLine(alone.out));
  // A number alone names a job of the host asked, which has none.
  auto bare = cluster->Queue(2, {"--migrate", "1"});
  EXPECT_NE(bare.exit_code, 0);
  EXPECT_NE(bare.err.find("you have no job " + JobLabel(1, 2)), std::string::npos) << bare.err;
}

// The host its owner names is down: the job is not lost, and goes on from its
// restart file where it may run (here the host it is pinned to), saying why.
TEST_F(MigrateTest, AJobAskedToMoveToADeadHostGoesOnWhereItWas) {
  auto cluster = TestCluster::Start(3, ClusterOptions{{}, kCheckpointing});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  std::string out = cwd + "/stub.out", err = cwd + "/stub.err";
  auto stub = StartStub(*cluster, cwd, {"-n", "-h", cluster->entry(1), "--", Counter(), "1500", "0.002"});
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(1); }, 15s))
      << ReadFile(err) << JobOn(*cluster, 0, 1).dump() << cluster->log(0) << cluster->log(1);
  ASSERT_TRUE(WaitUntil([&] { return CounterRunsIn(ReadFile(out)) == 1; }, 15s)) << ReadFile(err);
  cluster->StopDaemon(2, SIGKILL);
  auto asked = cluster->Queue(0, {"--migrate", "1", cluster->entry(2)});
  ASSERT_EQ(asked.exit_code, 0) << asked.err;
  auto status = WaitChild(stub.pid, 60s);
  ASSERT_TRUE(status.has_value()) << ReadFile(err);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(err) << cluster->log(0);
  auto alone = RunCommand({Counter(), "1500", "0"});
  EXPECT_EQ(ResultLine(ReadFile(out)), ResultLine(alone.out));
  EXPECT_NE(ReadFile(out).find("resumed"), std::string::npos) << ReadFile(out);
  EXPECT_NE(ReadFile(err).find("cannot go on on " + cluster->entry(2)), std::string::npos) << ReadFile(err);
  EXPECT_EQ(JobOn(*cluster, 0, 1)["host"], cluster->entry(1));
}

TEST_F(MigrateTest, AJobThatWritesNoRestartFileStartsAgainFromTheBeginning) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, "checkpointmode 2\nrestartmode 1\ncheckpointgrace 1\n"});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  std::string script = "trap '' USR2; echo start on $QUEUE_HOST; sleep 3; echo done";
  std::string out = cwd + "/stub.out", err = cwd + "/stub.err";
  auto stub = StartStub(*cluster, cwd, {"-n", "-H", cluster->entry(0), "--", "sh", "-c", script});
  // Its first line says its trap is set: a checkpoint signal before that would kill it.
  ASSERT_TRUE(WaitUntil([&] { return !ReadFile(out).empty(); }, 15s)) << ReadFile(err);
  auto asked = cluster->Queue(0, {"--migrate", "1"});
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  auto status = WaitChild(stub.pid, 30s);
  ASSERT_TRUE(status.has_value()) << ReadFile(err);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(err);
  EXPECT_EQ(ReadFile(out), "start on " + cluster->entry(0) + "\nstart on " + cluster->entry(1) + "\ndone\n");
  // The user is told it starts over, and why.
  EXPECT_NE(ReadFile(err).find("starts again from the beginning"), std::string::npos) << ReadFile(err);
  auto record = JobOnceIn(*cluster, 0, 1, "done");
  EXPECT_EQ(record["restarts"], 1) << record.dump();
}

// A batch job that exits 0 when asked to move, without writing a restart
// file, has finished: the signal crossed its end. It is not run again.
TEST_F(MigrateTest, ABatchJobThatExitsZeroWithoutARestartFileWhenAskedToMoveHasFinished) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kCheckpointing});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  std::string script = "trap 'echo finishing; exit 0' USR2; echo started; while :; do sleep 0.1; done";
  auto submitted = cluster->Queue(0, {"-r", "-h", cluster->entry(0), "-j", "ends", "--", "sh", "-c", script},
                                  {{}, "", 10s, cwd});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  uint64_t id = std::stoull(submitted.out);
  // Its first line says its trap is set.
  const std::string running_output = cluster->spool(0) + "/.queued/output/" + std::to_string(id) + ".out";
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(running_output) == "started\n"; }, 30s)) << cluster->log(0);
  auto asked = cluster->Queue(0, {"--migrate", std::to_string(id), cluster->entry(1)});
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  const std::string output_file = cwd + "/ends.o" + JobLabel(id);
  // (sh may also say that its `sleep` died of the signal.)
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(output_file).ends_with("finishing\n"); }, 30s))
      << ReadFile(output_file) << JobOn(*cluster, 0, id).dump() << cluster->log(0) << cluster->log(1);
  std::string output = ReadFile(output_file);
  EXPECT_EQ(output.find("started"), output.rfind("started")) << "it ran again:\n" << output;
  auto record = JobOnceIn(*cluster, 0, id, "done");
  EXPECT_EQ(record["state"], "done") << record.dump();
  EXPECT_EQ(record.value("exit_code", -1), 0) << record.dump();
  EXPECT_EQ(record.value("restarts", 0), 0) << record.dump();
  EXPECT_EQ(record["host"], cluster->entry(0)) << record.dump();
}

TEST_F(MigrateTest, ABatchJobMovesAndItsOutputFileIsWhole) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kCheckpointing});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  auto submitted = cluster->Queue(0, {"-r", "-h", cluster->entry(0), "-j", "count", "--", Counter(), "2000", "0.002"},
                                  {{}, "", 10s, cwd});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  uint64_t id = std::stoull(submitted.out);
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, id) == cluster->entry(0); }, 15s));
  // Its output waits in host 0's spool until it ends.
  const std::string running_output = cluster->spool(0) + "/.queued/output/" + std::to_string(id) + ".out";
  ASSERT_TRUE(WaitUntil([&] { return CounterRunsIn(ReadFile(running_output)) == 1; }, 15s)) << cluster->log(0);
  // -h pins the first run; a moved job may go anywhere that takes restarts.
  auto asked = cluster->Queue(0, {"--migrate", std::to_string(id), cluster->entry(1)});
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto job = JobOn(*cluster, 0, id);
        return !job.is_null() && job["state"] == "done";
      },
      60s))
      << cluster->log(0) << cluster->log(1);
  auto alone = RunCommand({Counter(), "2000", "0"});
  std::string output = ReadFile(cwd + "/count.o" + JobLabel(id));
  EXPECT_EQ(ResultLine(output), ResultLine(alone.out)) << output << JobOn(*cluster, 0, id).dump() << cluster->log(0) << cluster->log(1);
  EXPECT_NE(output.find("resum"), std::string::npos) << output;
}

// Three runs of a batch job (here, there, here again): its output file is each
// run's output once, in order.
TEST_F(MigrateTest, ABatchJobsOutputFromEachRunComesHomeOnceAndInOrder) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kCheckpointing + "restartflagpos last\n"});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  std::string script =
      "run=${QUEUE_RESTART_COUNT:-0}; echo \"run $run on $QUEUE_HOST\"; [ $run = 2 ] && exit 0; "
      "trap 'echo saved > \"$QUEUE_RESTART_FILE\"; exit 0' USR2; touch ready.$run; while :; do sleep 0.1; done";
  auto submitted = cluster->Queue(0, {"-r", "-h", cluster->entry(0), "-j", "runs", "--", "sh", "-c", script},
                                  {{}, "", 10s, cwd});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string id = std::to_string(std::stoull(submitted.out));
  for (int run : {0, 1}) {
    ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(cwd + "/ready." + std::to_string(run)); }, 30s))
        << run << cluster->log(0) << cluster->log(1);
    auto asked = cluster->Queue(0, {"--migrate", id, cluster->entry(1 - run)});
    ASSERT_EQ(asked.exit_code, 0) << asked.err;
  }
  ASSERT_TRUE(WaitUntil([&] { return JobOn(*cluster, 0, std::stoull(id))["state"] == "done"; }, 30s))
      << JobOn(*cluster, 0, std::stoull(id)).dump() << cluster->log(0) << cluster->log(1);
  // (sh reports each `sleep` that the checkpoint signal killed, on stderr.)
  std::istringstream output(ReadFile(cwd + "/runs.o" + JobLabel(std::stoull(id))));
  std::string runs;
  for (std::string line; std::getline(output, line);)
    if (line != "User defined signal 2") runs += line + "\n";
  EXPECT_EQ(runs, "run 0 on " + cluster->entry(0) + "\nrun 1 on " + cluster->entry(1) + "\nrun 2 on " +
                      cluster->entry(0) + "\n");
  // Nothing of it is left in the spool, once its end is recorded (a local
  // run shows "done" from its end, before its output is home).
  std::vector<std::string> left;
  EXPECT_TRUE(WaitUntil(
      [&] {
        left.clear();
        for (const auto& entry : std::filesystem::directory_iterator(cluster->spool(0) + "/.queued/restart"))
          left.push_back(entry.path().filename());
        return left.empty();
      },
      10s))
      << left.front();
}

// A full-pty job (the stub's terminal in raw mode) moves with its stub attached.
TEST_F(MigrateTest, APtyJobMovesWithItsTerminal) {
  if (access("/usr/bin/script", X_OK) != 0) GTEST_SKIP() << "script(1) is not installed";
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kCheckpointing});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  // script(1) gives the stub a terminal of its own; -p asks for a remote pty.
  std::string line = BinDir() + "/queue -p -H " + cluster->entry(0) + " -- " + Counter() +
                     " 2000 0.002; echo stub-exit=$?";
  auto stub = StartBackground({"/bin/sh", "-c", "cd \"$0\" && exec script -qefc \"$1\" /dev/null", cwd, line},
                              {"QUEUE_SOCKET=" + cluster->socket(0)}, cwd + "/tty.out", cwd + "/tty.err");
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(0); }, 15s))
      << ReadFile(cwd + "/tty.out");
  ASSERT_TRUE(WaitUntil([&] { return CounterRunsIn(ReadFile(cwd + "/tty.out")) == 1; }, 15s))
      << ReadFile(cwd + "/tty.out");
  auto asked = cluster->Queue(0, {"--migrate", "1"});
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  auto status = WaitChild(stub.pid, 60s);
  ASSERT_TRUE(status.has_value()) << ReadFile(cwd + "/tty.out");
  std::string screen = ReadFile(cwd + "/tty.out");
  auto alone = RunCommand({Counter(), "2000", "0"});
  EXPECT_NE(screen.find("resumed"), std::string::npos) << screen;
  EXPECT_NE(screen.find(ResultLine(alone.out)), std::string::npos) << screen;
  EXPECT_NE(screen.find("stub-exit=0"), std::string::npos) << screen;
  auto record = JobOnceIn(*cluster, 0, 1, "done");
  EXPECT_EQ(record["host"], cluster->entry(1)) << record.dump();
}

// A job that checkpoints by itself exits with the queue's `checkpointexit` code
// and goes on from its restart file (here on the same host: it asked to stay).
TEST_F(MigrateTest, CheckpointExitRestartsTheJobFromItsRestartFile) {
  // restartflagpos last: argv[1] of `sh -c SCRIPT sh` is -c, so the flag goes at the end.
  auto cluster = TestCluster::Start(1, ClusterOptions{{}, "checkpointmode 2\nrestartmode 1\ncheckpointexit 85\n"
                                                          "restartflag --resume\nrestartflagpos last\n"});
  ASSERT_TRUE(cluster->WaitForView(10s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  // First run: save "half" and exit 85. Restarted (--resume): finish from the file.
  std::string script =
      "if [ \"$1\" = --resume ]; then echo \"resumed from $(cat \"$QUEUE_RESTART_FILE\")"
      " after $QUEUE_RESTART_COUNT restart(s)\"; exit 0; fi; echo half > \"$QUEUE_RESTART_FILE\"; exit 85";
  auto run = cluster->Queue(0, {"-n", "-j", "selfck", "--", "sh", "-c", script, "sh"}, {{}, "", 30s, cwd});
  EXPECT_EQ(run.exit_code, 0) << run.err << cluster->log(0);
  EXPECT_EQ(run.out, "resumed from half after 1 restart(s)\n") << run.err;
}

// Pids of running processes whose command line has `needle`.
std::vector<pid_t> PidsRunning(const std::string& needle) {
  std::vector<pid_t> pids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadFile(entry.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(needle) != std::string::npos) pids.push_back(std::stoi(name));
  }
  return pids;
}

// The steps each run of a counter resumed at, in order.
std::vector<long> ResumedSteps(const std::string& output) {
  std::vector<long> steps;
  const std::string resumed = "resumed at step ";
  for (size_t at = 0; (at = output.find(resumed, at)) != std::string::npos; at += resumed.size())
    steps.push_back(std::stol(output.substr(at + resumed.size())));
  return steps;
}

// checkpointperiod: the job's restart files are copied off its host every
// period, so when the host dies the job goes on elsewhere from the last copy.
// Each period stops the job and restarts it from its copy, so a slow (loaded,
// sanitized) machine makes every step slower: the waits are for evidence, with
// room to spare, never for a fixed time.
TEST_F(MigrateTest, APeriodicCopyLetsABatchJobOutliveItsHost) {
  auto cluster = TestCluster::Start(
      2, ClusterOptions{{}, "checkpointmode 2\nrestartmode 1\ncheckpointperiod 2\nrestartflag --resume\n",
                        {}, {}, {}, {"--host-timeout", "3"}});
  ASSERT_TRUE(cluster->WaitForView(15s));
  cluster->SetLoad(0, 20);  // host 1 is the better place while it lives
  // Once host 0, which places the job, sees its own load so.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto view = nlohmann::json::parse(cluster->Queue(0, {"--status", "--json"}).out, nullptr, false);
        if (view.is_discarded()) return false;
        for (const auto& host : view["hosts"])
          if (host["host"] == cluster->entry(0)) return host.value("load1", 0.0) >= 20;
        return false;
      },
      15s))
      << cluster->Queue(0, {"--status", "--json"}).out;
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  const std::string steps = "4001";
  auto submitted = cluster->Queue(0, {"-r", "-j", "periodic", "--", Counter(), steps, "0.002"}, {{}, "", 10s, cwd});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  uint64_t id = std::stoull(submitted.out);
  // At least one periodic copy made, and running on host 1 again.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto job = JobOn(*cluster, 0, id);
        return !job.is_null() && job.value("restarts", 0) >= 1 && job["state"] == "running" &&
               job["host"] == cluster->entry(1);
      },
      60s))
      << JobOn(*cluster, 0, id).dump() << cluster->log(0) << cluster->log(1);
  // Restarted, it runs as `queue-example-counter --resume STEPS DELAY`.
  const std::string job_words = " " + steps + " 0.002";
  std::vector<pid_t> jobs;
  ASSERT_TRUE(WaitUntil([&] { return !(jobs = PidsRunning(Counter() + " --resume" + job_words)).empty(); }, 60s))
      << JobOn(*cluster, 0, id).dump() << cluster->log(0) << cluster->log(1);
  // Host 1 dies: its daemon, the job's shepherd and the job.
  cluster->StopDaemon(1, SIGKILL);
  for (pid_t job : jobs) {
    pid_t shepherd = ParentOf(job);
    EXPECT_NE(ReadFile("/proc/" + std::to_string(shepherd) + "/cmdline").find("queue-shepherd"), std::string::npos);
    if (shepherd > 1) kill(shepherd, SIGKILL);
    kill(job, SIGKILL);
  }
  cluster->SetLoad(0, 0);
  // Every run makes progress (it has a whole period of its own), so it ends.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto job = JobOn(*cluster, 0, id);
        return !job.is_null() && job["state"] == "done";
      },
      180s))
      << JobOn(*cluster, 0, id).dump() << cluster->log(0);
  // "done" is recorded when the last run ends; its output goes home after.
  const std::string output_file = cwd + "/periodic.o" + JobLabel(id);
  EXPECT_TRUE(WaitUntil([&] { return !ResultLine(ReadFile(output_file)).empty(); }, 30s))
      << ReadFile(output_file) << JobOn(*cluster, 0, id).dump() << cluster->log(0);
  std::string output = ReadFile(output_file);
  auto alone = RunCommand({Counter(), steps, "0"});
  EXPECT_EQ(ResultLine(output), ResultLine(alone.out)) << output << cluster->log(0);
  // Each run went on from where a copy left it, never from further back.
  auto resumed = ResumedSteps(output);
  EXPECT_FALSE(resumed.empty()) << output;
  EXPECT_TRUE(std::is_sorted(resumed.begin(), resumed.end())) << output;
  EXPECT_EQ(JobOn(*cluster, 0, id)["host"], cluster->entry(0));
}

// The big file: 1 GiB of restart state moves, checked by digest on
// arrival. Under the sanitizers a quarter of it (66 s under ASan with 1 GiB):
// the same chunks through the same code, fewer of them.
TEST_F(MigrateTest, AOneGibRestartFileMovesIntact) {
  const std::string bytes = std::to_string(kSanitized ? 256 << 20 : 1 << 30);
  // Both files travel (the profile names them), and the flag goes last: the
  // command is `sh -c SCRIPT sh`, whose first argument is the script.
  auto cluster = TestCluster::Start(
      2, ClusterOptions{{}, kCheckpointing + "restartflagpos last\nrestartfile big.restart state.sha256\n"
                                               "checkpointgrace 300\n"});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  // On the signal: write `bytes` of pseudo-random state, then its digest beside it.
  std::string script =
      "if [ \"$1\" = --resume ]; then sha256sum -c state.sha256 >/dev/null && echo restored intact; exit; fi; "
      "trap 'head -c " + bytes + " /dev/urandom > \"$QUEUE_RESTART_FILE\"; "
      "sha256sum \"$(basename \"$QUEUE_RESTART_FILE\")\" > state.sha256; exit 0' USR2; "
      "echo running; while :; do sleep 0.1; done";
  std::string out = cwd + "/stub.out", err = cwd + "/stub.err";
  auto stub = StartStub(*cluster, cwd, {"-n", "-h", cluster->entry(0), "-j", "big", "--", "sh", "-c", script, "sh"});
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(out) == "running\n"; }, 15s)) << ReadFile(err);
  auto asked = cluster->Queue(0, {"--migrate", "1", cluster->entry(1)});
  ASSERT_EQ(asked.exit_code, 0) << asked.err;
  auto asked_at = std::chrono::steady_clock::now();
  auto status = WaitChild(stub.pid, 240s);
  std::cerr << bytes << " bytes of restart file: checkpoint asked to job ended on the new host in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - asked_at).count()
            << " ms (writing and hashing them twice included)\n";
  ASSERT_TRUE(status.has_value()) << ReadFile(err);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(err) << cluster->log(0) << cluster->log(1);
  EXPECT_EQ(ReadFile(out), "running\nrestored intact\n") << ReadFile(err);
}

// Asked to checkpoint, it writes `bytes` (half a GiB) of restart file, which
// takes its host a while to pack, and exits; restarted, it says what it
// found. `ready` is what it does once its trap is set.
const std::string kHalfGib = std::to_string(512 << 20);
std::string HalfGibCheckpointer(const std::string& ready, const std::string& bytes = kHalfGib) {
  return "if [ \"$1\" = --resume ]; then echo resumed with $(wc -c < big.restart) bytes; exit; fi; "
         "trap 'head -c " + bytes + " /dev/zero > big.restart; exit 0' USR2; " +
         ready + "; while :; do sleep 0.1; done";
}
// For the tests of a transfer (not of the packing): under the sanitizers an
// eighth of a GiB, which a sanitized daemon takes about as long to pack and
// move as a plain one takes for half a GiB (the stalled transfer took 27 s
// under ASan with half a GiB). The tests of a cancel that comes while the
// files are packed keep half a GiB: with less, under ASan beside other tests,
// the packing was once over before the cancel came.
const std::string kTransferBytes = kSanitized ? std::to_string(128 << 20) : kHalfGib;
const std::string kHalfGibProfile = kCheckpointing + "restartflagpos last\nrestartfile big.restart\n";

// Fault 9: a link that stops carrying a restart-file transfer (here its
// receiving daemon is stopped, which TCP sees as it sees a cut link: open and
// silent) is said in the sender's log after a short stall, with the job, the
// host and the bytes so far, and again when it moves; the job then goes on.
TEST_F(MigrateTest, AStalledRestartFileTransferIsSaidAndSoIsItsResumption) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kHalfGibProfile});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  auto submitted = cluster->Queue(
      0, {"-r", "-h", cluster->entry(1), "-j", "big", "--", "sh", "-c", HalfGibCheckpointer("echo ready", kTransferBytes), "sh"},
      {{}, "", 10s, cwd});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  uint64_t id = std::stoull(submitted.out);
  // Host 1's first record holds it; its trap is set once it says so.
  const std::string running_output = cluster->spool(1) + "/.queued/output/1.out";
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(running_output) == "ready\n"; }, 30s)) << cluster->log(1);
  auto asked = cluster->Queue(0, {"--migrate", std::to_string(id), cluster->entry(0)});
  ASSERT_EQ(asked.exit_code, 0) << asked.err;
  // Once it writes its restart file, the submit host stops reading: the
  // transfer home that follows the packing stalls.
  const std::string restart_file = cwd + "/big.restart";
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(restart_file); }, 30s)) << cluster->log(1);
  cluster->SignalDaemon(0, SIGSTOP);
  const std::string stalled = "job " + std::to_string(id) + " of " + cluster->entry(0) +
                              ": its restart files and end stalled on the way to " + cluster->entry(0) + " at ";
  bool said = WaitUntil([&] { return cluster->log(1).find(stalled) != std::string::npos; }, 60s);
  cluster->SignalDaemon(0, SIGCONT);
  ASSERT_TRUE(said) << cluster->log(1);
  std::string log = cluster->log(1);
  EXPECT_EQ(log.find(stalled), log.rfind(stalled)) << "said more than once:\n" << log;
  EXPECT_TRUE(WaitUntil(
      [&] { return cluster->log(1).find("its restart files and end are moving to " + cluster->entry(0) + " again") !=
                   std::string::npos; },
      30s))
      << cluster->log(1);
  // And the job goes on, from the whole of its restart file.
  const std::string output_file = cwd + "/big.o" + JobLabel(id);
  EXPECT_TRUE(WaitUntil([&] { return ReadFile(output_file).find("resumed with " + kTransferBytes + " bytes") != std::string::npos; },
                        120s))
      << ReadFile(output_file) << JobOn(*cluster, 0, id).dump() << cluster->log(0) << cluster->log(1);
}

// Cancelled in the time its restart files take to pack (half a GiB), when its
// shepherd is gone: it is cancelled on its way home, and does not go on.
TEST_F(MigrateTest, AJobCancelledWhileItsRestartFilesArePackedDoesNotGoOn) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kHalfGibProfile});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  std::string script = HalfGibCheckpointer("echo running");
  // Its $0, which it is found by (the machine may run other copies of this test).
  const std::string job_name = "pack-cancel-job-" + std::to_string(getpid());
  std::string out = cwd + "/stub.out", err = cwd + "/stub.err";
  auto stub = StartStub(*cluster, cwd,
                        {"-n", "-h", cluster->entry(0), "--", "sh", "-c", script, job_name});
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(0); }, 15s)) << ReadFile(err);
  auto job_alive = [&] {
    for (pid_t pid : PidsRunning(job_name))
      if (ReadFile("/proc/" + std::to_string(pid) + "/cmdline").find(BinDir() + "/queue") == std::string::npos)
        return true;
    return false;
  };
  // "running" is recorded when the shepherd starts, a moment before the job sets its trap.
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(out) == "running\n"; }, 15s)) << ReadFile(err);
  ASSERT_TRUE(job_alive());
  auto asked = cluster->Queue(0, {"--migrate", "1", cluster->entry(1)});
  ASSERT_EQ(asked.exit_code, 0) << asked.err;
  ASSERT_TRUE(WaitUntil([&] { return !job_alive(); }, 60s));
  auto cancelled = cluster->Queue(0, {"--cancel", "1"});
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.err;
  auto status = WaitChild(stub.pid, 60s);
  ASSERT_TRUE(status.has_value()) << ReadFile(err);
  EXPECT_FALSE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(err);
  EXPECT_EQ(ReadFile(out), "running\n") << ReadFile(err);
  auto job = JobOn(*cluster, 0, 1);
  EXPECT_EQ(job["state"], "cancelled") << job.dump();
  EXPECT_NE(job.value("message", "").find("cancelled by its owner at a checkpoint"), std::string::npos)
      << job.dump() << cluster->log(0);
  EXPECT_NE(ReadFile(err).find("cancelled by its owner at a checkpoint"), std::string::npos) << ReadFile(err);
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(ReadFile(out), "running\n") << "it went on after all";
}

// The host it moves to dies while its restart files are on their way there:
// the job is not lost, and goes on from them where it was.
TEST_F(MigrateTest, ATargetThatDiesMidTransferLeavesTheJobToGoOnWhereItWas) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kHalfGibProfile, {}, {}, {}, {"--host-timeout", "3"}});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  std::string script = HalfGibCheckpointer("echo running", kTransferBytes);
  std::string out = cwd + "/stub.out", err = cwd + "/stub.err";
  auto stub = StartStub(*cluster, cwd, {"-n", "-h", cluster->entry(0), "--", "sh", "-c", script, "sh"});
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(out) == "running\n"; }, 15s)) << ReadFile(err);
  auto asked = cluster->Queue(0, {"--migrate", "1", cluster->entry(1)});
  ASSERT_EQ(asked.exit_code, 0) << asked.err;
  const std::string arriving = cluster->spool(1) + "/.queued/arriving";
  auto partly_there = [&] {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(arriving, ec))
      if (entry.path().extension() == ".qrb" && entry.file_size(ec) > 0) return true;
    return false;
  };
  ASSERT_TRUE(WaitUntil(partly_there, 60s)) << cluster->log(0) << cluster->log(1);
  cluster->StopDaemon(1, SIGKILL);
  auto status = WaitChild(stub.pid, 60s);
  ASSERT_TRUE(status.has_value()) << ReadFile(err) << cluster->log(0);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(err) << cluster->log(0);
  EXPECT_EQ(ReadFile(out), "running\nresumed with " + kTransferBytes + " bytes\n") << ReadFile(err);
  EXPECT_NE(ReadFile(err).find("cannot go on on " + cluster->entry(1)), std::string::npos)
      << ReadFile(err) << cluster->log(0);
  EXPECT_EQ(JobOn(*cluster, 0, 1)["host"], cluster->entry(0));
}

// The same for a batch job packing on another host, with the submit host's
// daemon killed as soon as it has answered the cancel: the cancel is on disk, so
// the job that comes home from its checkpoint after the restart is cancelled.
TEST_F(MigrateTest, ACancelDuringThePackOutlivesARestartOfTheSubmitDaemon) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kHalfGibProfile});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  std::string script = HalfGibCheckpointer("touch ready");
  const std::string job_name = "pack-restart-job-" + std::to_string(getpid());  // its $0, as above
  auto submitted = cluster->Queue(
      0, {"-r", "-h", cluster->entry(1), "-j", "packed", "--", "sh", "-c", script, job_name},
      {{}, "", 10s, cwd});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string id = std::to_string(std::stoull(submitted.out));
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(cwd + "/ready"); }, 15s)) << cluster->log(1);
  auto job_alive = [&] { return !PidsRunning(job_name).empty(); };
  ASSERT_TRUE(job_alive());
  auto asked = cluster->Queue(0, {"--migrate", id, cluster->entry(0)});
  ASSERT_EQ(asked.exit_code, 0) << asked.err;
  ASSERT_TRUE(WaitUntil([&] { return !job_alive(); }, 60s));
  auto cancelled = cluster->Queue(0, {"--cancel", id});
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.err;
  EXPECT_NE(cancelled.out.find("on " + cluster->entry(1)), std::string::npos) << cancelled.out;
  cluster->StopDaemon(0, SIGKILL);
  cluster->StartDaemon(0);
  ASSERT_TRUE(WaitUntil([&] { return JobOn(*cluster, 0, std::stoull(id))["state"] == "cancelled"; }, 60s))
      << JobOn(*cluster, 0, std::stoull(id)).dump() << cluster->log(0) << cluster->log(1);
  auto job = JobOn(*cluster, 0, std::stoull(id));
  EXPECT_NE(job.value("message", "").find("cancelled by its owner at a checkpoint"), std::string::npos)
      << job.dump();
  std::this_thread::sleep_for(1s);
  EXPECT_FALSE(job_alive()) << "it went on after all";
  EXPECT_EQ(ReadFile(cwd + "/packed.o" + JobLabel(std::stoull(id))).find("resumed"), std::string::npos);
}

// Restart files sent ahead of an offer that never came are removed once
// nothing has been written to them for half an hour; the rest are kept.
TEST_F(MigrateTest, RestartFilesNoOfferFollowedAreRemovedAfterHalfAnHour) {
  auto cluster = TestCluster::Start(1, ClusterOptions{{}, kCheckpointing});
  ASSERT_TRUE(cluster->WaitForView(15s));
  const std::string dir = cluster->spool(0) + "/.queued/arriving/";
  auto write = [&](const std::string& name, std::chrono::minutes age) {
    WriteFile(dir + name, "restart files");
    std::filesystem::last_write_time(dir + name, std::filesystem::file_time_type::clock::now() - age);
  };
  write("gone.example:1421-7.qrb", std::chrono::minutes(31));
  write("slow.example:1421-8.qrb", std::chrono::minutes(29));
  write("gone.example:1421-9.qrb.taken-1", std::chrono::minutes(31));  // being unpacked
  ASSERT_TRUE(WaitUntil([&] { return !std::filesystem::exists(dir + "gone.example:1421-7.qrb"); }, 10s))
      << cluster->log(0);
  std::this_thread::sleep_for(1500ms);
  EXPECT_TRUE(std::filesystem::exists(dir + "slow.example:1421-8.qrb"));
  EXPECT_TRUE(std::filesystem::exists(dir + "gone.example:1421-9.qrb.taken-1"));
  EXPECT_NE(cluster->log(0).find("removed restart files gone.example:1421-7.qrb: no offer came for them in 30 minutes"),
            std::string::npos)
      << cluster->log(0);
}

}  // namespace
}  // namespace queue::testing
