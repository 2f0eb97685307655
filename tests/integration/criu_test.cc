// End-to-end tests of `checkpointmode 1` (SPEC §7.8): programs that know
// nothing of checkpoints move between hosts with CRIU and carry on where they
// were. They need a criu that works here (scripts/install-criu.sh) and root,
// and say so when skipped; what Queue says without CRIU is tested regardless.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "cluster_fixture.h"
#include "migrate/criu.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;

const std::string kTransparent = "checkpointmode 1\nloadcheckpoint 3\nrestartmode 1\n";

// Counts to `n`, one line every 0.1 s, its count held only in the shell's memory:
// a run started again from the beginning would print "1" twice.
std::vector<std::string> MemoryCounter(int n) {
  return {"/bin/sh", "-c", "i=0; while [ $i -lt " + std::to_string(n) + " ]; do i=$((i+1)); echo $i; sleep 0.1; done"};
}

std::string CountTo(int n) {
  std::string lines;
  for (int i = 1; i <= n; ++i) lines += std::to_string(i) + "\n";
  return lines;
}

class CriuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "CRIU needs root";
    auto criu = migrate::ProbeCriu("");
    if (!criu.usable) GTEST_SKIP() << criu.reason << " (scripts/install-criu.sh builds one that works)";
  }
};

TEST_F(CriuTest, AProgramThatKnowsNothingOfCheckpointsMovesTwiceAndCarriesOn) {
  auto cluster = TestCluster::Start(3, ClusterOptions{{}, kTransparent});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  constexpr int kLines = 90;
  std::vector<std::string> args = {"-n", "-H", cluster->entry(0), "--"};
  for (const auto& word : MemoryCounter(kLines)) args.push_back(word);
  auto stub = StartStub(*cluster, cwd, args);
  std::string out = cwd + "/stub.out", err = cwd + "/stub.err";
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(0); }, 15s)) << ReadFile(err);
  std::this_thread::sleep_for(1s);

  std::vector<std::string> path{cluster->entry(0)};
  for (int move = 0; move < 2; ++move) {
    int from = IndexOf(*cluster, path.back());
    auto crossed = std::chrono::steady_clock::now();
    cluster->SetLoad(from, 5.0);
    std::string to;
    ASSERT_TRUE(WaitUntil(
        [&] {
          to = RunningOn(*cluster, 1);
          return !to.empty() && to != path.back();
        },
        20s))
        << "move " << move << "\n" << ReadFile(err) << cluster->log(from);
    std::cerr << "move " << move << ": " << path.back() << " -> " << to << " in "
              << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - crossed).count()
              << " ms from the load crossing the threshold\n";
    cluster->SetLoad(from, 0.0);
    path.push_back(to);
    std::this_thread::sleep_for(1500ms);
  }
  auto status = WaitChild(stub.pid, 60s);
  ASSERT_TRUE(status.has_value()) << ReadFile(err);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(err);
  // Every number once, in order: it never started over and lost no output.
  EXPECT_EQ(ReadFile(out), CountTo(kLines)) << ReadFile(err) << cluster->log(0) << cluster->log(1);
  EXPECT_NE(ReadFile(err).find("by CRIU"), std::string::npos) << ReadFile(err);
  EXPECT_EQ(ReadFile(err).find("starts again"), std::string::npos) << ReadFile(err);
  auto record = JobOnceIn(*cluster, 0, 1, "done");
  EXPECT_EQ(record["state"], "done") << record.dump();
  EXPECT_EQ(record["restarts"], 2) << record.dump();
}

TEST_F(CriuTest, ABatchJobMovesOnDemandAndItsOutputFileIsWhole) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kTransparent});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  constexpr int kLines = 40;
  std::vector<std::string> args = {"-r", "-h", cluster->entry(0), "-j", "count", "--"};
  for (const auto& word : MemoryCounter(kLines)) args.push_back(word);
  auto submitted = cluster->Queue(0, args, {{}, "", 10s, cwd});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  uint64_t id = std::stoull(submitted.out);
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, id) == cluster->entry(0); }, 15s));
  // "Running" is recorded before the job starts; its first line (kept in host
  // 0's spool until it ends) is what says there is a process to checkpoint.
  const std::string running_output = cluster->spool(0) + "/.queued/output/" + std::to_string(id) + ".out";
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(running_output).starts_with("1\n"); }, 15s)) << cluster->log(0);
  auto asked = cluster->Queue(0, {"--migrate", std::to_string(id), cluster->entry(1)});
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  EXPECT_TRUE(WaitUntil([&] { return RunningOn(*cluster, id) == cluster->entry(1); }, 20s))
      << cluster->log(0) << cluster->log(1);
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto job = JobOn(*cluster, 0, id);
        return !job.is_null() && job["state"] == "done";
      },
      60s))
      << cluster->log(0) << cluster->log(1);
  EXPECT_EQ(ReadFile(cwd + "/count.o" + JobLabel(id)), CountTo(kLines))
      << JobOn(*cluster, 0, id).dump() << cluster->log(0) << cluster->log(1);
  EXPECT_EQ(JobOn(*cluster, 0, id)["restarts"], 1);
}

// A job with a full pty: CRIU restores it onto the new shepherd's pty, and the
// stub's terminal stays attached.
TEST_F(CriuTest, AJobWithATerminalMovesWithIt) {
  ASSERT_EQ(access("/usr/bin/script", X_OK), 0) << "script(1) is not installed (bsdutils)";
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kTransparent});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  constexpr int kLines = 40;
  // script(1) gives the stub a terminal of its own; -p asks for a remote pty.
  std::string line = BinDir() + "/queue -p -H " + cluster->entry(0) +
                     " -- /bin/sh -c 'i=0; while [ $i -lt " + std::to_string(kLines) +
                     " ]; do i=$((i+1)); echo line-$i on $(tty); sleep 0.1; done'; echo stub-exit=$?";
  auto stub = StartBackground({"/bin/sh", "-c", "cd \"$0\" && exec script -qefc \"$1\" /dev/null", cwd, line},
                              {"QUEUE_SOCKET=" + cluster->socket(0)}, cwd + "/tty.out", cwd + "/tty.err");
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(0); }, 15s))
      << ReadFile(cwd + "/tty.out");
  // "Running" is recorded before the job starts: its first line on the stub's
  // terminal says it runs and its shepherd is attached.
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(cwd + "/tty.out").find("line-1 on ") != std::string::npos; }, 15s))
      << ReadFile(cwd + "/tty.out");
  auto asked = cluster->Queue(0, {"--migrate", "1", cluster->entry(1)});
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  auto status = WaitChild(stub.pid, 60s);
  ASSERT_TRUE(status.has_value()) << ReadFile(cwd + "/tty.out");
  std::string screen = ReadFile(cwd + "/tty.out");
  size_t firsts = 0;
  for (size_t at = 0; (at = screen.find("line-1 on /dev/pts/", at)) != std::string::npos; ++at) ++firsts;
  EXPECT_EQ(firsts, 1u) << "it started over\n" << screen << cluster->log(1);
  EXPECT_NE(screen.find("line-" + std::to_string(kLines) + " on /dev/pts/"), std::string::npos) << screen;
  EXPECT_NE(screen.find("stub-exit=0"), std::string::npos) << screen;
  EXPECT_EQ(screen.find("could not be restored"), std::string::npos) << screen << cluster->log(1);
  EXPECT_EQ(JobOn(*cluster, 0, 1)["host"], cluster->entry(1)) << JobOn(*cluster, 0, 1).dump();
}

// A criu that works for `check` and `--version` and fails one command with a
// logged cause: CRIU failing in the middle of a move, on purpose.
std::string CriuFailingAt(const std::string& dir, const std::string& command, const std::string& cause) {
  std::string path = dir + "/criu-failing-" + command;
  std::string real = migrate::ProbeCriu("").path;
  WriteFile(path,
            "#!/bin/sh\n"
            "if [ \"$1\" = " + command + " ]; then\n"
            "  while [ $# -gt 0 ] && [ \"$1\" != --images-dir ]; do shift; done\n"
            "  echo 'Error (test.c:1): " + cause + "' > \"$2/" + command + ".log\"\n"
            "  exit 1\n"
            "fi\n"
            "exec " + real + " \"$@\"\n");
  chmod(path.c_str(), 0755);
  return path;
}

TEST_F(CriuTest, AJobCriuCannotDumpCarriesOnWhereItIs) {
  std::string tools = std::filesystem::temp_directory_path() / ("queue-criu-tools-" + std::to_string(getpid()));
  std::filesystem::create_directories(tools);
  std::string criu = CriuFailingAt(tools, "dump", "the kernel would not let go");
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kTransparent, {}, {}, {}, {"--criu", criu}});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  constexpr int kLines = 30;
  std::vector<std::string> args = {"-n", "-h", cluster->entry(0), "--"};
  for (const auto& word : MemoryCounter(kLines)) args.push_back(word);
  auto stub = StartStub(*cluster, cwd, args);
  std::string out = cwd + "/stub.out", err = cwd + "/stub.err";
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(0); }, 15s)) << ReadFile(err);
  // "Running" is recorded before the job starts, and --migrate is refused
  // until the daemon knows the job's process: its first line says it does.
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(out).starts_with("1\n"); }, 15s)) << ReadFile(err);
  auto asked = cluster->Queue(0, {"--migrate", "1", cluster->entry(1)});
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  auto status = WaitChild(stub.pid, 60s);
  ASSERT_TRUE(status.has_value()) << ReadFile(err);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(err);
  EXPECT_EQ(ReadFile(out), CountTo(kLines)) << ReadFile(err);
  EXPECT_NE(ReadFile(err).find("CRIU could not checkpoint the job on " + cluster->entry(0) +
                               " (the kernel would not let go); it carries on there"),
            std::string::npos)
      << ReadFile(err);
  auto record = JobOnceIn(*cluster, 0, 1, "done");
  EXPECT_EQ(record["state"], "done") << record.dump();
  EXPECT_EQ(record["host"], cluster->entry(0)) << record.dump();
  EXPECT_EQ(record.value("restarts", 0), 0) << record.dump();
  std::filesystem::remove_all(tools);
}

TEST_F(CriuTest, AnImageThatCannotBeRestoredStartsTheJobAgainAndSaysWhy) {
  std::string tools = std::filesystem::temp_directory_path() / ("queue-criu-tools-" + std::to_string(getpid()));
  std::filesystem::create_directories(tools);
  std::string criu = CriuFailingAt(tools, "restore", "no room for the job here");
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kTransparent, {}, {}, {}, {"--criu", criu}});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  constexpr int kLines = 20;
  std::vector<std::string> args = {"-n", "-h", cluster->entry(0), "--"};
  for (const auto& word : MemoryCounter(kLines)) args.push_back(word);
  auto stub = StartStub(*cluster, cwd, args);
  std::string out = cwd + "/stub.out", err = cwd + "/stub.err";
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(0); }, 15s)) << ReadFile(err);
  // "Running" is recorded before the job starts, and --migrate is refused
  // until the daemon knows the job's process: its first line says it does.
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(out).starts_with("1\n"); }, 15s)) << ReadFile(err);
  auto asked = cluster->Queue(0, {"--migrate", "1", cluster->entry(1)});
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  auto status = WaitChild(stub.pid, 60s);
  ASSERT_TRUE(status.has_value()) << ReadFile(err);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(err);
  std::string shown = ReadFile(out);
  // The first run's lines, then the whole count again from 1 on the other host.
  EXPECT_TRUE(shown.ends_with(CountTo(kLines))) << shown;
  EXPECT_GT(shown.size(), CountTo(kLines).size()) << shown;
  EXPECT_NE(ReadFile(err).find("could not be restored on " + cluster->entry(1) +
                               " (criu restore failed: no room for the job here); it starts again from the beginning"),
            std::string::npos)
      << ReadFile(err);
  auto record = JobOnceIn(*cluster, 0, 1, "done");
  EXPECT_EQ(record["state"], "done") << record.dump();
  EXPECT_EQ(record["host"], cluster->entry(1)) << record.dump();
  std::filesystem::remove_all(tools);
}

// The cluster directory is the test's (0700): a submitter other than root must
// reach host 0's socket through it, and have a directory of its own to work in.
std::string WorkDirOf(TestCluster& cluster, uid_t uid) {
  chmod(cluster.dir().c_str(), 0755);
  std::string cwd = cluster.dir() + "/work-" + std::to_string(uid);
  std::filesystem::create_directories(cwd);
  chown(cwd.c_str(), uid, uid);
  return cwd;
}

Background StartStubAs(TestCluster& cluster, uid_t uid, const std::string& cwd, const std::vector<std::string>& args) {
  std::string id = std::to_string(uid);
  std::vector<std::string> argv = {"/usr/bin/setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups", "--",
                                   "/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", cwd, BinDir() + "/queue"};
  argv.insert(argv.end(), args.begin(), args.end());
  return StartBackground(argv, {"QUEUE_SOCKET=" + cluster.socket(0)}, cluster.dir() + "/stub-" + id + ".out",
                         cluster.dir() + "/stub-" + id + ".err");
}

constexpr uid_t kNobody = 65534;

// CRIU runs as the job's owner, with only the capabilities it needs: a job of
// somebody else than root moves as well as root's.
TEST_F(CriuTest, AJobOfAnOrdinaryUserMovesAndCarriesOn) {
  ASSERT_EQ(access("/usr/bin/setpriv", X_OK), 0) << "setpriv is not installed (util-linux)";
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kTransparent});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = WorkDirOf(*cluster, kNobody);
  constexpr int kLines = 40;
  std::vector<std::string> args = {"-n", "-h", cluster->entry(0), "--", "/bin/sh", "-c",
                                   "id -u; i=0; while [ $i -lt " + std::to_string(kLines) +
                                       " ]; do i=$((i+1)); echo $i; sleep 0.1; done"};
  auto stub = StartStubAs(*cluster, kNobody, cwd, args);
  std::string out = cluster->dir() + "/stub-65534.out", err = cluster->dir() + "/stub-65534.err";
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(0); }, 15s)) << ReadFile(err);
  // "Running" is recorded before the job starts: its first line says it runs.
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(out).starts_with("65534\n"); }, 15s)) << ReadFile(err);
  auto asked = cluster->Queue(0, {"--migrate", "1", cluster->entry(1)});
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  EXPECT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(1); }, 20s))
      << ReadFile(err) << cluster->log(0);
  auto status = WaitChild(stub.pid, 60s);
  ASSERT_TRUE(status.has_value()) << ReadFile(err);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(err);
  EXPECT_EQ(ReadFile(out), "65534\n" + CountTo(kLines)) << ReadFile(err) << cluster->log(0) << cluster->log(1);
  EXPECT_NE(ReadFile(err).find("by CRIU"), std::string::npos) << ReadFile(err);
}

// CRIU reopens a restored job's files by their paths. Between the dump and the
// restore the owner puts a symbolic link to a file only root may read where
// their own file of the same size and mode was: the restored job must not get
// the secret (criu as root would open it for them).
TEST_F(CriuTest, ARestoreOpensTheJobsFilesWithItsOwnersRightsOnly) {
  ASSERT_EQ(access("/usr/bin/setpriv", X_OK), 0) << "setpriv is not installed (util-linux)";
  std::string tools = std::filesystem::temp_directory_path() / ("queue-criu-swap-" + std::to_string(getpid()));
  std::filesystem::create_directories(tools);
  chmod(tools.c_str(), 0755);
  std::string secret = tools + "/secret";
  WriteFile(secret, "SECRET-4711\n", 0600);  // root's
  // The owner's swap, done as the owner (criu runs as them) just before the
  // restore, of the file named in `swap` (written once the cluster is up).
  std::string criu = tools + "/criu-swapping";
  WriteFile(criu,
            "#!/bin/sh\n"
            "if [ \"$1\" = restore ]; then data=$(/bin/cat " + tools + "/swap); /bin/rm -f \"$data\"; "
            "/bin/ln -s " + secret + " \"$data\"; fi\n"
            "exec " + migrate::ProbeCriu("").path + " \"$@\"\n",
            0755);
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kTransparent, {}, {}, {}, {"--criu", criu}});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = WorkDirOf(*cluster, kNobody);
  WriteFile(tools + "/swap", cwd + "/data", 0644);
  WriteFile(cwd + "/data", "public-data\n", 0600);
  chown((cwd + "/data").c_str(), kNobody, kNobody);
  std::vector<std::string> args = {"-n", "-h", cluster->entry(0), "--", "/bin/sh", "-c",
                                   "exec 3< data; echo open; i=0; while [ $i -lt 30 ]; do i=$((i+1)); sleep 0.1; done; "
                                   "echo \"read: $(cat <&3)\""};
  auto stub = StartStubAs(*cluster, kNobody, cwd, args);
  std::string out = cluster->dir() + "/stub-65534.out", err = cluster->dir() + "/stub-65534.err";
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, 1) == cluster->entry(0); }, 15s)) << ReadFile(err);
  // "Running" is recorded before the job starts: its first line says it runs,
  // with the file the restore must reopen already open.
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(out).starts_with("open\n"); }, 15s)) << ReadFile(err);
  auto asked = cluster->Queue(0, {"--migrate", "1", cluster->entry(1)});
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  auto status = WaitChild(stub.pid, 60s);
  ASSERT_TRUE(status.has_value()) << ReadFile(err);
  EXPECT_EQ(ReadFile(out).find("SECRET"), std::string::npos) << ReadFile(out);
  EXPECT_NE(ReadFile(err).find("could not be restored on " + cluster->entry(1)), std::string::npos)
      << ReadFile(out) << ReadFile(err) << cluster->log(1);
  std::filesystem::remove_all(tools);
}

// Without a working criu nothing is moved, and Queue says why, where the user
// and the administrator look.
TEST(CriuMissing, StatusAndMigrateSayThatCriuIsNotThere) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kTransparent, {}, {}, {}, {"--criu", "/nonexistent/criu"}});
  ASSERT_TRUE(cluster->WaitForView(15s));
  auto status = cluster->Queue(0, {"--status", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("checkpointmode 1 (transparent checkpoints with CRIU) is not available: criu "
                            "/nonexistent/criu is not an executable file"),
            std::string::npos)
      << status.out;
  EXPECT_NE(cluster->log(0).find("/nonexistent/criu is not an executable file"), std::string::npos);
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  auto submitted = cluster->Queue(0, {"-r", "-h", cluster->entry(0), "--", "sleep", "5"}, {{}, "", 10s, cwd});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  uint64_t id = std::stoull(submitted.out);
  ASSERT_TRUE(WaitUntil([&] { return RunningOn(*cluster, id) == cluster->entry(0); }, 15s));
  auto asked = cluster->Queue(0, {"--migrate", std::to_string(id), cluster->entry(1)});
  EXPECT_NE(asked.exit_code, 0);
  EXPECT_EQ(RunningOn(*cluster, id), cluster->entry(0));
}

}  // namespace
}  // namespace queue::testing
