// End-to-end tests of batch jobs (SPEC §6) and of jobs outliving their daemon
// (§9): output files, the spool across kill -9, re-adoption, hosts that die.
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <atomic>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "batch_helpers.h"
#include "cluster_fixture.h"
#include "util/result.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;

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
        auto list = JobsOf(run.out);
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
  // The first one holds its slot until the test has listed them all, however
  // long the submissions take.
  const std::string go = cwd + "/go";
  for (int i = 0; i < 4; ++i)
    ids.push_back(SubmitBatch(*cluster, 0,
                              {"--", "sh", "-c",
                               "echo start >> " + ledger + "; while [ ! -e " + go + " ]; do sleep 0.05; done; "
                               "sleep 0.3; echo end >> " + ledger},
                              cwd));
  auto listed = JobsOf(cluster->Queue(0, {"--jobs", "--json"}).out);
  EXPECT_GE(listed.size(), 3u) << listed.dump();
  WriteFile(go, "");
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
  // Killed while jobs run (and others wait).
  ASSERT_TRUE(WaitUntil([&] { return !ReadFile(ledger).empty(); }, 10s)) << cluster->log(0);
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
    auto list = JobsOf(cluster->Queue(0, {"--jobs", "--json"}).out);
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
  // Its host dies once the submit host knows where it runs (and its pid is written).
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, id) == cluster->entry(1) && !ReadFile(cwd + "/pid").empty(); }, 10s))
      << AllJobs(*cluster, 0)[id].dump();
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
  // Its host dies once the submit host knows where it runs (and its pid is written).
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, id) == cluster->entry(1) && !ReadFile(cwd + "/pid").empty(); }, 10s))
      << AllJobs(*cluster, 0)[id].dump();
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
// Under the sanitizers 200 jobs (81 s under ASan with 500, the longest test
// there): their submissions alone still take much of the 20 s of kills (17 s
// of them under ASan on a loaded two-core machine), with jobs running and
// waiting at every kill.
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
  constexpr int kJobs = kSanitized ? 200 : 500;
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
  const auto submitting_since = std::chrono::steady_clock::now();
  for (int i = 0; i < kJobs; ++i) ids.push_back(SubmitBatch(*cluster, 0, {"-j", "fault", "--", "sh", "-c", script}, cwd));
  submitting = false;
  std::cerr << kJobs << " jobs submitted in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - submitting_since)
                   .count()
            << " ms\n";
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

// Host `from`'s view of host `of`: alive or not; nullopt when `from` does not answer.
std::optional<bool> SeesAlive(TestCluster& cluster, int from, int of) {
  auto status = cluster.Queue(from, {"--status", "--json"}, {{}, "", 5s, ""});
  auto json = nlohmann::json::parse(status.out, nullptr, false);
  if (status.exit_code != 0 || json.is_discarded()) return std::nullopt;
  for (const auto& h : json["hosts"])
    if (h["host"] == cluster.entry(of)) return h["alive"].get<bool>();
  return std::nullopt;
}

// Every daemon's log lines that mention `label`, each after its host's index.
std::string LogLinesAbout(TestCluster& cluster, const std::string& label) {
  std::string found;
  for (int host = 0; host < cluster.size(); ++host) {
    std::istringstream lines(cluster.log(host));
    for (std::string line; std::getline(lines, line);)
      if (line.find(" " + label + " ") != std::string::npos || line.find(" " + label + ":") != std::string::npos)
        found += std::to_string(host) + ": " + line + "\n";
  }
  return found;
}

// The chaos test above, with a hung host and a full disk besides: host 1's
// daemon is stopped (SIGSTOP) for longer than --host-timeout once, and host
// 2's spool is a small file system that some jobs' outputs fill. Every job
// still ends once: done with its whole output, having run once, or failed
// with a stated reason (lost with the hung host; its output cut by the full
// spool) and run at most once; no job runs twice and no output is doubled.
//
// Host 2's spool fills while jobs run there: the ends of its jobs are still
// recorded, in the room its job store keeps for records (spool/spool_reserve.h),
// across every kill -9 of its daemon. It is 4 MiB: the store holds about 2 MiB
// (1 MiB of free pages, a WAL of 1 MiB), which leaves the jobs' outputs room
// enough that host 2 takes jobs (a host with less than 1 MiB free takes none)
// and little enough that they fill it. (Before, the room was a file given back
// to the file system when a commit found it full, and the running jobs'
// outputs took it first; and the WAL, checkpointed only once it held 4 MiB,
// grew until it filled the 3 MiB spool of then: no commit went through again.)
TEST(BatchFaults, FiveHundredJobsSurviveKillNineAHungHostAndAFullSpool) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root, to mount a small file system";
  unsigned seed = static_cast<unsigned>(std::time(nullptr));
  if (const char* given = std::getenv("QUEUE_FAULT_SEED")) seed = static_cast<unsigned>(std::stoul(given));
  std::cerr << "fault seed " << seed << " (QUEUE_FAULT_SEED=" << seed << " replays it)\n";
  std::mt19937 random(seed);
  // Host 2's small spool lives in this thread's own mount namespace, which
  // its daemon joins, so that it outlives a kill -9 of that daemon (see
  // Lifecycle.AnOutputThatCannotBeWrittenIsHeldServedAndDeliveredWhenThereIsRoom
  // on why this thread cannot leave it).
  ASSERT_EQ(unshare(CLONE_NEWNS), 0) << ErrnoText(errno);
  ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << ErrnoText(errno);
  ClusterOptions options{{}, "maxexec 4\n", {}, {}, {}, {"--host-timeout", "3"}};
  const std::string mount_spool =
      "for a; do [ \"$prev\" = --spooldir ] && d=$a; prev=$a; done; "
      "if ! mountpoint -q \"$d\"; then mkdir -p \"$d\" \"$d.keep\" && cp -a \"$d/.\" \"$d.keep/\" && "
      "mount -t tmpfs -o size=4m,mode=0700 tmpfs \"$d\" && cp -a \"$d.keep/.\" \"$d/\" || exit 1; fi; exec \"$@\"";
  options.daemon_wrappers[2] = {"/usr/bin/nsenter",
                                "--mount=/proc/" + std::to_string(getpid()) + "/task/" + std::to_string(gettid()) +
                                    "/ns/mnt",
                                "--", "/bin/sh", "-c", mount_spool, "sh"};
  auto cluster = TestCluster::Start(3, options);
  // Unmounted however the test ends: the cluster's directory, removed after
  // this, cannot go while the file system is mounted in it.
  struct UnmountOnExit {
    std::string path;
    ~UnmountOnExit() { umount2(path.c_str(), MNT_DETACH); }
  } unmount{cluster->spool(2)};
  ASSERT_TRUE(cluster->WaitForView(15s)) << cluster->log(2);
  std::string cwd = MakeDir(*cluster, "work");
  std::string ledger = cwd + "/ledger";
  // Every fifth job writes a MiB besides: two of them at once fill host 2's spool.
  constexpr int kBig = 1 << 20;
  const std::string script = "echo $QUEUE_JOBID >> " + ledger +
                             "; n=${QUEUE_JOBID%.*}; sleep 0.$((n % 3)); echo out-$QUEUE_JOBID; "
                             "if [ $((n % 5)) = 0 ]; then head -c " + std::to_string(kBig) + " /dev/zero; fi";
  auto expected_output = [&](uint64_t id) {
    return "out-" + JobLabel(id) + "\n" + (id % 5 == 0 ? std::string(kBig, '\0') : "");
  };
  // Under the sanitizers every `queue -r` costs ten times as much (a CI run
  // took 240 s here): 200 jobs there, as in the test above.
  constexpr int kJobs = kSanitized ? 200 : 500;
  std::vector<uint64_t> ids;
  std::atomic<bool> submitting{true};
  bool hung = false;
  ContinueOnExit resume{*cluster, 1};
  std::thread chaos([&] {
    auto start = std::chrono::steady_clock::now();
    auto end = start + 20s;
    while (std::chrono::steady_clock::now() < end) {
      if (!hung && std::chrono::steady_clock::now() > start + 6s) {
        // Hung until the submit host has seen it silent past --host-timeout:
        // not alive in its view (3.5 s), then the silent-host check that
        // follows it (every heartbeat).
        hung = true;
        cluster->SignalDaemon(1, SIGSTOP);
        WaitUntil([&] { return SeesAlive(*cluster, 0, 1) == false; }, 15s);
        const size_t lost_before = cluster->log(0).size();
        WaitUntil([&] { return cluster->log(0).find("silent for", lost_before) != std::string::npos; }, 2s);
        cluster->SignalDaemon(1, SIGCONT);
        continue;
      }
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
  EXPECT_TRUE(hung);
  if (!WaitForEnds(*cluster, 0, ids, 120s)) {
    // What each host says about the jobs that never ended.
    auto jobs = AllJobs(*cluster, 0);
    int shown = 0;
    for (uint64_t id : ids)
      if ((!jobs.count(id) || !Ended(jobs[id])) && ++shown <= 10)
        ADD_FAILURE() << "job " << id << " has not ended: " << jobs[id].dump() << "\n"
                      << LogLinesAbout(*cluster, JobLabel(id));
    FAIL() << "seed " << seed << "; host 2's log:\n" << cluster->log(2);
  }
  auto listed = cluster->Queue(0, {"--jobs", "--all", "--json"}, {{}, "", 10s, ""});
  auto list = JobsOf(listed.out);
  ASSERT_FALSE(list.is_discarded()) << listed.out;
  std::map<uint64_t, int> listings;
  for (const auto& job : list)
    if (job["origin"] == cluster->entry(0)) ++listings[job["number"].get<uint64_t>()];
  auto jobs = AllJobs(*cluster, 0);
  std::map<uint64_t, int> runs;
  std::istringstream lines(ReadFile(ledger));
  for (std::string label; lines >> label;) ++runs[std::stoull(label)];
  int bad = 0, done = 0;
  std::map<std::string, int> reasons;
  for (uint64_t id : ids) {
    const auto& job = jobs[id];
    const std::string output_path = cwd + "/fault.o" + JobLabel(id);
    bool ok = listings[id] == 1 && runs[id] <= 1;
    if (job["state"] == "done") {
      ++done;
      ok = ok && job["exit_code"] == 0 && runs[id] == 1 && ReadFile(output_path) == expected_output(id);
    } else {
      std::string message = job.value("message", "");
      ok = ok && job["state"] == "failed" && !message.empty();
      ++reasons[message.substr(0, message.find(':'))];
    }
    if (!ok && ++bad <= 10)
      ADD_FAILURE() << "job " << id << " ran " << runs[id] << " time(s), listed " << listings[id]
                    << " time(s): " << job.dump() << " output size: " << ReadFile(output_path).size() << "\n"
                    << LogLinesAbout(*cluster, JobLabel(id));
  }
  std::cerr << done << " of " << kJobs << " done; failed:";
  for (const auto& [reason, count] : reasons) std::cerr << " " << count << " \"" << reason << "\"";
  std::cerr << "\n";
  EXPECT_EQ(bad, 0) << "seed " << seed;
  // No output but the jobs' own, and none twice.
  std::set<std::string> allowed{"ledger"};
  for (uint64_t id : ids) allowed.insert("fault.o" + JobLabel(id));
  for (const auto& entry : std::filesystem::directory_iterator(cwd))
    EXPECT_TRUE(allowed.count(entry.path().filename().string())) << entry.path();
}

}  // namespace
}  // namespace queue::testing
