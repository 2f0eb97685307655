// End-to-end tests of batch jobs (SPEC §6) and of jobs outliving their daemon
// (§9): output files, the spool across kill -9, re-adoption, hosts that die.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "batch_helpers.h"
#include "cluster_fixture.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;

// Every job host `host` knows, finished ones included, by id.
std::map<uint64_t, nlohmann::json> AllJobs(TestCluster& cluster, int host) {
  std::map<uint64_t, nlohmann::json> jobs;
  auto run = cluster.Queue(host, {"--jobs", "--all", "--json"}, {{}, "", 10s, ""});
  auto list = nlohmann::json::parse(run.out, nullptr, false);
  if (run.exit_code != 0 || list.is_discarded()) return jobs;
  for (const auto& job : list)
    if (job["origin"] == cluster.entry(host)) jobs[job["number"].get<uint64_t>()] = job;
  return jobs;
}

bool Ended(const nlohmann::json& job) {
  std::string state = job["state"];
  return state == "done" || state == "failed" || state == "cancelled";
}

bool WaitForEnds(TestCluster& cluster, int host, const std::vector<uint64_t>& ids, std::chrono::milliseconds timeout) {
  return WaitUntil(
      [&] {
        auto jobs = AllJobs(cluster, host);
        for (uint64_t id : ids)
          if (!jobs.count(id) || !Ended(jobs[id])) return false;
        return true;
      },
      timeout);
}

TEST(Batch, PrintsTheIdAndPutsTheOutputInTheSubmitDirectory) {
  auto cluster = TestCluster::Start(1);
  ASSERT_TRUE(cluster->WaitForView(10s)) << cluster->log(0);
  std::string cwd = MakeDir(*cluster, "work");
  uint64_t id = SubmitBatch(*cluster, 0, {"--", "sh", "-c", "echo out; echo err >&2; exit 3"}, cwd);
  ASSERT_TRUE(WaitForEnds(*cluster, 0, {id}, 20s)) << cluster->log(0);
  auto job = AllJobs(*cluster, 0)[id];
  EXPECT_EQ(job["state"], "done") << job.dump();
  EXPECT_EQ(job["exit_code"], 3) << job.dump();
  EXPECT_EQ(job["host"], cluster->entry(0));
  std::string path = cwd + "/sh.o" + JobLabel(id);
  EXPECT_EQ(job["output"], path);
  EXPECT_EQ(ReadFile(path), "out\nerr\n");
  struct stat info{};
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, getuid());
  auto shown = cluster->Queue(0, {"--output", std::to_string(id)});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(shown.out, "out\nerr\n");
}

TEST(Batch, QmailFalseDiscardsTheOutput) {
  auto cluster = TestCluster::Start(1);
  ASSERT_TRUE(cluster->WaitForView(10s));
  std::string cwd = MakeDir(*cluster, "work");
  uint64_t id = SubmitBatch(*cluster, 0, {"-j", "quiet", "--", "echo", "noise"}, cwd, {"QMAIL=FALSE"});
  ASSERT_TRUE(WaitForEnds(*cluster, 0, {id}, 20s));
  EXPECT_EQ(AllJobs(*cluster, 0)[id]["state"], "done");
  EXPECT_FALSE(std::filesystem::exists(cwd + "/quiet.o" + JobLabel(id)));
  auto shown = cluster->Queue(0, {"--output", std::to_string(id)});
  EXPECT_NE(shown.exit_code, 0);
  EXPECT_NE(shown.err.find("QMAIL=FALSE"), std::string::npos) << shown.err;
}

TEST(Batch, OutputComesHomeFromTheHostThatRanTheJob) {
  auto cluster = TestCluster::Start(2);
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = MakeDir(*cluster, "work");
  uint64_t id = SubmitBatch(*cluster, 0,
                            {"-h", cluster->entry(1), "--", "sh", "-c", "echo ran on $QUEUE_HOST; head -c 300000 /dev/zero"},
                            cwd);
  ASSERT_TRUE(WaitForEnds(*cluster, 0, {id}, 30s)) << cluster->log(0) << cluster->log(1);
  auto job = AllJobs(*cluster, 0)[id];
  EXPECT_EQ(job["state"], "done") << job.dump();
  EXPECT_EQ(job["host"], cluster->entry(1));
  std::string output = ReadFile(cwd + "/sh.o" + JobLabel(id));
  EXPECT_EQ(output, "ran on " + cluster->entry(1) + "\n" + std::string(300000, '\0'));
  // The execution host keeps the accounting record, and no copy of the output.
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto run = cluster->Queue(1, {"--jobs", "--all", "--json"});
        auto list = nlohmann::json::parse(run.out, nullptr, false);
        return !list.is_discarded() && list.size() == 1 && list[0]["state"] == "done";
      },
      10s));
}

// An empty output is sent home as no chunk at all, only its size and digest:
// the job still ends, and its owner still gets the (empty) output file, as
// for a job run on the submit host.
TEST(Batch, AnEmptyOutputComesHomeFromTheHostThatRanTheJob) {
  auto cluster = TestCluster::Start(2);
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = MakeDir(*cluster, "work");
  uint64_t id = SubmitBatch(*cluster, 0, {"-h", cluster->entry(1), "--", "true"}, cwd);
  std::string output = cwd + "/true.o" + JobLabel(id);
  nlohmann::json job;
  ASSERT_TRUE(WaitUntil(
      [&] {
        job = AllJobs(*cluster, 0)[id];
        return job.is_object() && job["state"] == "done" && std::filesystem::exists(output);
      },
      30s))
      << job.dump() << "\n" << cluster->log(0) << cluster->log(1);
  EXPECT_EQ(job["host"], cluster->entry(1));
  EXPECT_EQ(job["exit_code"], 0) << job.dump();
  EXPECT_EQ(ReadFile(output), "");
}

TEST(Batch, JobsWaitForASlotAndNeverOverfillTheQueue) {
  auto cluster = TestCluster::Start(1, ClusterOptions{{}, "maxexec 1\n"});
  ASSERT_TRUE(cluster->WaitForView(10s));
  std::string cwd = MakeDir(*cluster, "work");
  std::string ledger = cwd + "/ledger";
  std::vector<uint64_t> ids;
  for (int i = 0; i < 4; ++i)
    ids.push_back(SubmitBatch(
        *cluster, 0, {"--", "sh", "-c", "echo start >> " + ledger + "; sleep 0.3; echo end >> " + ledger}, cwd));
  auto listed = nlohmann::json::parse(cluster->Queue(0, {"--jobs", "--json"}).out);
  EXPECT_GE(listed.size(), 3u) << listed.dump();
  ASSERT_TRUE(WaitForEnds(*cluster, 0, ids, 30s)) << cluster->log(0);
  EXPECT_EQ(ReadFile(ledger), "start\nend\nstart\nend\nstart\nend\nstart\nend\n");
}

TEST(Batch, CancelAWaitingJob) {
  auto cluster = TestCluster::Start(1, ClusterOptions{{}, "maxexec 1\n"});
  ASSERT_TRUE(cluster->WaitForView(10s));
  std::string cwd = MakeDir(*cluster, "work");
  uint64_t first = SubmitBatch(*cluster, 0, {"--", "sleep", "2"}, cwd);
  uint64_t second = SubmitBatch(*cluster, 0, {"--", "touch", cwd + "/ran"}, cwd);
  auto cancel = cluster->Queue(0, {"--cancel", std::to_string(second)});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  ASSERT_TRUE(WaitForEnds(*cluster, 0, {first, second}, 20s));
  EXPECT_EQ(AllJobs(*cluster, 0)[second]["state"], "cancelled");
  EXPECT_FALSE(std::filesystem::exists(cwd + "/ran"));
}

TEST(Batch, WaitingAndRunningJobsSurviveKillNineOfTheDaemon) {
  auto cluster = TestCluster::Start(1, ClusterOptions{{}, "maxexec 2\n"});
  ASSERT_TRUE(cluster->WaitForView(10s));
  std::string cwd = MakeDir(*cluster, "work");
  std::string ledger = cwd + "/ledger";
  std::vector<uint64_t> ids;
  for (int i = 0; i < 10; ++i)
    ids.push_back(SubmitBatch(*cluster, 0, {"--", "sh", "-c", "echo $QUEUE_JOBID >> " + ledger + "; sleep 0.5"}, cwd));
  std::this_thread::sleep_for(300ms);
  cluster->StopDaemon(0, SIGKILL);
  std::this_thread::sleep_for(700ms);  // running jobs end while no daemon listens
  cluster->StartDaemon(0);
  ASSERT_TRUE(WaitForEnds(*cluster, 0, ids, 40s)) << cluster->log(0);
  auto jobs = AllJobs(*cluster, 0);
  std::string lines = ReadFile(ledger);
  for (uint64_t id : ids) {
    EXPECT_EQ(jobs[id]["state"], "done") << jobs[id].dump();
    std::string line = JobLabel(id) + "\n";
    size_t count = 0;
    for (size_t at = 0; (at = lines.find(line, at)) != std::string::npos; at += line.size())
      if (at == 0 || lines[at - 1] == '\n') ++count;
    EXPECT_EQ(count, 1u) << "job " << id << " ran " << count << " times; ledger:\n" << lines;
    EXPECT_TRUE(std::filesystem::exists(cwd + "/sh.o" + JobLabel(id))) << id;
  }
}

TEST(Batch, InteractiveJobIsReadoptedAcrossADaemonKill) {
  auto cluster = TestCluster::Start(1);
  ASSERT_TRUE(cluster->WaitForView(10s));
  std::string out = cluster->dir() + "/stub.out", err = cluster->dir() + "/stub.err";
  auto stub = StartBackground({BinDir() + "/queue", "-n", "--", "sh", "-c", "sleep 2; echo still here; exit 7"},
                              {"QUEUE_SOCKET=" + cluster->socket(0)}, out, err);
  auto running = [&] {
    auto list = nlohmann::json::parse(cluster->Queue(0, {"--jobs", "--json"}).out, nullptr, false);
    return !list.is_discarded() && list.size() == 1 && list[0]["state"] == "running";
  };
  ASSERT_TRUE(WaitUntil(running, 5s)) << ReadFile(err);
  cluster->StopDaemon(0, SIGKILL);
  cluster->StartDaemon(0);
  EXPECT_TRUE(WaitUntil(running, 5s)) << cluster->log(0);
  EXPECT_NE(cluster->log(0).find("re-adopted 1 running job"), std::string::npos) << cluster->log(0);
  auto status = WaitChild(stub.pid, 20s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 7) << ReadFile(err);
  EXPECT_EQ(ReadFile(out), "still here\n");
  auto jobs = AllJobs(*cluster, 0);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs.begin()->second["state"], "done");
  EXPECT_EQ(jobs.begin()->second["exit_code"], 7);
}

// Kills what a dead host would take with it: its daemon, and the job's shepherd
// and process group (the job wrote its pid to `pid_file`).
void KillHost(TestCluster& cluster, int host, const std::string& pid_file) {
  cluster.StopDaemon(host, SIGKILL);
  pid_t job = 0;
  std::istringstream(ReadFile(pid_file)) >> job;
  ASSERT_GT(job, 0);
  std::string stat = ReadFile("/proc/" + std::to_string(job) + "/stat");
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  char state;
  pid_t shepherd = 0;
  fields >> state >> shepherd;
  ASSERT_GT(shepherd, 1);
  kill(shepherd, SIGKILL);
  kill(-job, SIGKILL);
}

TEST(Batch, AJobLostWithItsHostRunsAgainElsewhereWhenTheProfileSaysRestart) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, "restart\n", {}, {}, {}, {"--host-timeout", "3"}});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = MakeDir(*cluster, "work");
  std::string script = "echo $QUEUE_HOST >> ledger; if [ $QUEUE_HOST = " + cluster->entry(1) +
                       " ]; then echo $$ > pid; exec sleep 60; fi; echo finished";
  uint64_t id = SubmitBatch(*cluster, 0, {"-H", cluster->entry(1), "--", "sh", "-c", script}, cwd);
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(cwd + "/pid"); }, 15s)) << cluster->log(0);
  std::this_thread::sleep_for(200ms);
  KillHost(*cluster, 1, cwd + "/pid");
  ASSERT_TRUE(WaitForEnds(*cluster, 0, {id}, 30s)) << cluster->log(0);
  auto job = AllJobs(*cluster, 0)[id];
  EXPECT_EQ(job["state"], "done") << job.dump();
  EXPECT_EQ(job["restarts"], 1) << job.dump();
  EXPECT_EQ(job["host"], cluster->entry(0));
  EXPECT_EQ(ReadFile(cwd + "/ledger"), cluster->entry(1) + "\n" + cluster->entry(0) + "\n");
  EXPECT_EQ(ReadFile(cwd + "/sh.o" + JobLabel(id)), "finished\n");
  // The dead host comes back, finds the job's shepherd gone and says so; the
  // job's record stays as it is.
  cluster->StartDaemon(1);
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(AllJobs(*cluster, 0)[id]["state"], "done");
  EXPECT_NE(cluster->log(1).find("lost with their shepherd"), std::string::npos) << cluster->log(1);
}

TEST(Batch, AJobLostWithItsHostFailsWithTheReasonWithoutRestart) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, "", {}, {}, {}, {"--host-timeout", "2"}});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = MakeDir(*cluster, "work");
  uint64_t id = SubmitBatch(*cluster, 0, {"-h", cluster->entry(1), "--", "sh", "-c", "echo $$ > pid; exec sleep 60"}, cwd);
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(cwd + "/pid"); }, 15s)) << cluster->log(0);
  std::this_thread::sleep_for(200ms);
  KillHost(*cluster, 1, cwd + "/pid");
  ASSERT_TRUE(WaitForEnds(*cluster, 0, {id}, 30s)) << cluster->log(0);
  auto job = AllJobs(*cluster, 0)[id];
  EXPECT_EQ(job["state"], "failed") << job.dump();
  std::string message = job["message"];
  EXPECT_NE(message.find(cluster->entry(1)), std::string::npos) << message;
  EXPECT_NE(message.find("restart"), std::string::npos) << message;
}

// The fault test: 500 batch jobs on 3 hosts while daemons are killed
// with SIGKILL and restarted at random moments (seeded: QUEUE_FAULT_SEED
// replays a run). Every job must run exactly once and leave its output.
TEST(BatchFaults, FiveHundredJobsSurviveRandomKillNine) {
  unsigned seed = static_cast<unsigned>(std::time(nullptr));
  if (const char* given = std::getenv("QUEUE_FAULT_SEED")) seed = static_cast<unsigned>(std::stoul(given));
  std::cerr << "fault seed " << seed << " (QUEUE_FAULT_SEED=" << seed << " replays it)\n";
  std::mt19937 random(seed);
  auto cluster = TestCluster::Start(3, ClusterOptions{{}, "maxexec 4\n"});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = MakeDir(*cluster, "work");
  std::string ledger = cwd + "/ledger";
  const std::string script = "echo $QUEUE_JOBID >> " + ledger + "; sleep 0.$((${QUEUE_JOBID%.*} % 3)); echo out-$QUEUE_JOBID";
  constexpr int kJobs = 500;
  std::vector<uint64_t> ids;
  std::atomic<bool> submitting{true};
  // Chaos starts while jobs are still being submitted; only the submit host is
  // spared until the submissions are in (its clients would just be refused).
  std::thread chaos([&] {
    auto end = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < end) {
      int host = submitting ? 1 + static_cast<int>(random() % 2) : static_cast<int>(random() % 3);
      std::this_thread::sleep_for(std::chrono::milliseconds(200 + random() % 1200));
      cluster->StopDaemon(host, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(random() % 800));
      cluster->StartDaemon(host);
    }
  });
  for (int i = 0; i < kJobs; ++i) ids.push_back(SubmitBatch(*cluster, 0, {"-j", "fault", "--", "sh", "-c", script}, cwd));
  submitting = false;
  chaos.join();
  ASSERT_TRUE(WaitForEnds(*cluster, 0, ids, 180s)) << cluster->log(0);
  auto jobs = AllJobs(*cluster, 0);
  std::map<uint64_t, int> runs;
  std::istringstream lines(ReadFile(ledger));
  // Each line is an id as the job saw it, "17.1": its number, then the host's.
  for (std::string label; lines >> label;) ++runs[std::stoull(label)];
  int bad = 0;
  for (uint64_t id : ids) {
    const auto& job = jobs[id];
    bool ok = job["state"] == "done" && job["exit_code"] == 0 && runs[id] == 1 &&
              ReadFile(cwd + "/fault.o" + JobLabel(id)) == "out-" + JobLabel(id) + "\n";
    if (!ok && ++bad <= 10)
      ADD_FAILURE() << "job " << id << " ran " << runs[id] << " time(s): " << job.dump()
                    << " output: " << ReadFile(cwd + "/fault.o" + JobLabel(id));
  }
  EXPECT_EQ(bad, 0) << "seed " << seed;
  EXPECT_EQ(runs.size(), ids.size());
}

}  // namespace
}  // namespace queue::testing
