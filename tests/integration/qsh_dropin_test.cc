// qsh as an ssh/rsh drop-in (issue 14), end to end: real daemons, real qsh,
// and the real programs that call a remote shell. The two hosts listen on
// addresses of their own on loopback (127.a.b.1 and 127.a.b.2), so that a
// program that cannot name a port (`rsync -e qsh host:dir`, MPI's host lists)
// still names each host by its address alone.
//
// Every program these tests drive is installed by scripts/install-deps.sh; a
// test whose program is missing fails, it does not skip.
#include <fcntl.h>
#include <pwd.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>

#include "cluster_fixture.h"
#include "util/sha256.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// The program at `path` must be there: these tests exist to drive it.
::testing::AssertionResult Installed(const std::string& path) {
  if (access(path.c_str(), X_OK) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << path << " is missing: run scripts/install-deps.sh";
}

// As sha256sum prints it.
std::string Hex(const std::string& bytes) {
  Sha256 digest;
  digest.Update(bytes);
  return ToHex(digest.Final());
}

class QshDropIn : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // 127.a.b.x, a and b drawn per process so that concurrent runs do not meet.
    std::mt19937 random(static_cast<unsigned>(getpid()) ^ static_cast<unsigned>(time(nullptr)));
    std::string prefix = "127." + std::to_string(20 + random() % 200) + "." + std::to_string(random() % 250) + ".";
    ClusterOptions options;
    options.profile_extra = "maxexec 64\n";
    for (int i = 0; i < 2; ++i) {
      std::string address = prefix + std::to_string(i + 1);
      uint16_t port = FreePortOn(address);
      ASSERT_NE(port, 0) << "cannot bind " << address;
      options.host_entries.push_back(address + ":" + std::to_string(port));
    }
    shared_ = TestCluster::Start(2, options);
    ASSERT_TRUE(shared_->WaitForView(15s)) << shared_->log(0) << shared_->log(1);
  }
  static void TearDownTestSuite() { shared_.reset(); }
  void SetUp() override { ASSERT_NE(shared_, nullptr) << "no cluster"; }

  TestCluster& cluster() { return *shared_; }
  // Host 1 by address alone, and by entry (address:port).
  std::string RemoteHost() { return cluster().entry(1).substr(0, cluster().entry(1).find(':')); }
  std::string RemotePort() { return cluster().entry(1).substr(cluster().entry(1).find(':') + 1); }
  std::string Qsh() { return BinDir() + "/qsh"; }

  std::string WorkDir() {
    std::string dir = cluster().dir() + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir);
    return dir;
  }

  // A shell script run with qsh on PATH, host 0's socket in QUEUE_SOCKET,
  // REMOTE (host 1's address) and PORT (its port), from `cwd`.
  CommandResult Shell(const std::string& script, const std::string& cwd, std::chrono::seconds timeout = 60s,
                      std::vector<std::string> env = {}) {
    CommandOptions options;
    options.cwd = cwd;
    options.timeout = timeout;
    const char* path = std::getenv("PATH");
    options.env = {"PATH=" + BinDir() + ":" + (path != nullptr ? path : "/usr/bin:/bin"),
                   "QUEUE_SOCKET=" + cluster().socket(0), "REMOTE=" + RemoteHost(), "PORT=" + RemotePort()};
    options.env.insert(options.env.end(), env.begin(), env.end());
    return RunCommand({"/bin/bash", "-c", script}, options);
  }

  // Until host 0 lists no job of ours running (the remote job really ended).
  bool NoJobRuns(std::chrono::milliseconds timeout) {
    return WaitUntil(
        [&] {
          auto run = cluster().Queue(0, {"--jobs", "--json"});
          auto jobs = JobsOf(run.out);
          if (jobs.is_discarded()) return false;
          for (const auto& job : jobs)
            if (job.value("state", "") == "running") return false;
          return true;
        },
        timeout);
  }

  static std::unique_ptr<TestCluster> shared_;
};
std::unique_ptr<TestCluster> QshDropIn::shared_;

// ---------------------------------------------------------------------------
// 1. A reader that leaves: `qsh host yes | head -2` ends, and so does the job.

TEST_F(QshDropIn, YesIntoHeadEndsAndEndsTheRemoteJob) {
  std::string dir = WorkDir();
  auto start = std::chrono::steady_clock::now();
  auto run = Shell("qsh $REMOTE yes | head -2; echo \"qsh ${PIPESTATUS[0]}\" >&2", dir, 30s);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(run.timed_out) << "qsh went on reading after head left: " << run.err;
  EXPECT_EQ(run.out, "y\ny\n");
  // The job died of SIGPIPE, as `yes` would here, and qsh reports just that (128+13).
  EXPECT_NE(run.err.find("qsh 141"), std::string::npos) << run.err;
  EXPECT_LT(took, 15s);
  EXPECT_TRUE(NoJobRuns(10s)) << cluster().Queue(0, {"--jobs"}).out;
  // The same through a pty (-tt): no pipe to close there, so the job is hung up.
  auto pty = Shell("qsh -tt $REMOTE yes | head -2 >/dev/null; echo \"qsh ${PIPESTATUS[0]}\" >&2", dir, 30s);
  ASSERT_FALSE(pty.timed_out) << pty.err;
  EXPECT_NE(pty.err.find("qsh 129"), std::string::npos) << pty.err;  // SIGHUP
  EXPECT_TRUE(NoJobRuns(10s)) << cluster().Queue(0, {"--jobs"}).out;
}

// What a job writes to stderr still arrives after its stdout's reader left;
// a job that survives the closed pipe ends as it likes.
TEST_F(QshDropIn, AfterStdoutsReaderLeavesStderrStillFlowsAndTheJobsStatusCounts) {
  auto run = Shell(
      "qsh $REMOTE 'trap \"\" PIPE; yes 2>/dev/null; echo \"yes ended $?\" >&2; exit 3' | head -1;"
      " echo \"qsh ${PIPESTATUS[0]}\" >&2",
      WorkDir(), 30s);
  ASSERT_FALSE(run.timed_out) << run.err;
  EXPECT_EQ(run.out, "y\n");
  EXPECT_NE(run.err.find("yes ended 1"), std::string::npos) << run.err;  // EPIPE, not SIGPIPE
  EXPECT_NE(run.err.find("qsh 3"), std::string::npos) << run.err;
}

// A write error other than a reader leaving is said, and fails qsh.
TEST_F(QshDropIn, AWriteErrorIsReportedAndFailsTheStub) {
  auto run = Shell("qsh $REMOTE echo hi > /dev/full", WorkDir(), 30s);
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_NE(run.err.find("cannot write the job's output: No space left on device"), std::string::npos) << run.err;
}

// ---------------------------------------------------------------------------
// 2. Non-blocking stdin and stdout (rsync and GNU Parallel hand them over).

// Runs qsh ARGS with stdin and stdout pipes that are non-blocking on qsh's
// side, feeding `input` in small, slow pieces and reading slowly. Returns
// (wait status, what qsh wrote).
std::pair<int, std::string> RunWithNonBlockingPipes(const std::vector<std::string>& argv_in,
                                                    const std::string& socket, const std::string& input) {
  signal(SIGPIPE, SIG_IGN);  // a qsh that gives up early must fail the test, not kill it
  int in[2], out[2];
  EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
  EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
  // O_NONBLOCK on qsh's ends only: they are separate open files from ours.
  fcntl(in[0], F_SETFL, O_NONBLOCK);
  fcntl(out[1], F_SETFL, O_NONBLOCK);
  std::vector<std::string> argv = argv_in;
  std::vector<char*> c_argv;
  for (auto& word : argv) c_argv.push_back(word.data());
  c_argv.push_back(nullptr);
  std::string socket_env = "QUEUE_SOCKET=" + socket;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    putenv(socket_env.data());
    execv(c_argv[0], c_argv.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  std::thread feeder([&, fd = in[1]] {
    for (size_t done = 0; done < input.size();) {
      size_t n = std::min<size_t>(4096, input.size() - done);
      ssize_t w = write(fd, input.data() + done, n);
      if (w <= 0) break;
      done += static_cast<size_t>(w);
      if (done % (256 << 10) == 0) std::this_thread::sleep_for(2ms);  // qsh finds it empty now and then
    }
    close(fd);
  });
  std::string got;
  char buffer[16384];
  for (int reads = 0;; ++reads) {
    ssize_t n = read(out[0], buffer, sizeof buffer);
    if (n <= 0) break;
    got.append(buffer, static_cast<size_t>(n));
    if (reads % 16 == 0) std::this_thread::sleep_for(2ms);  // slow: qsh finds the pipe full
  }
  feeder.join();
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return {status, got};
}

TEST_F(QshDropIn, NonBlockingStdoutWithASlowReaderLosesNothing) {
  std::string dir = WorkDir();
  std::string file = dir + "/data";
  ASSERT_EQ(RunCommand({"/bin/sh", "-c", "head -c 16777216 /dev/urandom > " + file}).exit_code, 0);
  auto [status, got] = RunWithNonBlockingPipes({Qsh(), RemoteHost(), "cat", file}, cluster().socket(0), "");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(got.size(), fs::file_size(file));
  EXPECT_EQ(Hex(got), Hex(ReadFile(file)));
}

TEST_F(QshDropIn, NonBlockingStdinIsWaitedOnNotTakenForItsEnd) {
  std::string input(8 << 20, '\0');
  std::mt19937 random(7);
  for (auto& c : input) c = static_cast<char>(random());
  auto [status, got] = RunWithNonBlockingPipes({Qsh(), RemoteHost(), "sha256sum"}, cluster().socket(0), input);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(got, Hex(input) + "  -\n");
}

// ---------------------------------------------------------------------------
// 3-5. ssh's grammar, the daemon found without QUEUE_SOCKET, exit codes.

TEST_F(QshDropIn, SshFormsReachTheNamedHost) {
  std::string dir = WorkDir();
  passwd* me = getpwuid(geteuid());
  ASSERT_NE(me, nullptr);
  std::string user = me->pw_name;
  for (const std::string& line :
       {std::string("qsh -p$PORT $REMOTE echo '$QUEUE_HOST'"),
        std::string("qsh -oPort=$PORT -oBatchMode=yes $REMOTE echo '$QUEUE_HOST'"),
        "qsh -o BatchMode=yes -x -T " + user + "@$REMOTE echo '$QUEUE_HOST'",
        "qsh ssh://" + user + "@$REMOTE:$PORT echo '$QUEUE_HOST'",
        std::string("qsh $REMOTE -p $PORT -- echo '$QUEUE_HOST'")}) {
    auto run = Shell(line, dir);
    EXPECT_EQ(run.exit_code, 0) << line << ": " << run.err;
    EXPECT_EQ(run.out, cluster().entry(1) + "\n") << line;
  }
  auto other = Shell("qsh nobody-else-xyz@$REMOTE echo ran", dir);
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_EQ(other.out, "");
  EXPECT_NE(other.err.find("only as the calling user"), std::string::npos) << other.err;
  // -n: stdin from /dev/null, whatever stdin was.
  auto null = Shell("echo not-read | qsh -n $REMOTE 'wc -c'", dir);
  EXPECT_EQ(null.out, "0\n") << null.err;
  // -G answers without running anything, as git needs.
  auto config = Shell("qsh -G -o SendEnv=GIT_PROTOCOL -p $PORT $REMOTE", dir);
  EXPECT_EQ(config.exit_code, 0) << config.err;
  EXPECT_NE(config.out.find("hostname " + RemoteHost() + "\n"), std::string::npos) << config.out;
  EXPECT_NE(config.out.find("port " + RemotePort() + "\n"), std::string::npos) << config.out;
}

TEST_F(QshDropIn, CommandNotFoundIs127UnderQshAnd2UnderQueue) {
  std::string dir = WorkDir();
  auto qsh = Shell("qsh $REMOTE no-such-command-dropin arg", dir);
  EXPECT_EQ(qsh.exit_code, 127) << qsh.err;
  EXPECT_NE(qsh.err.find("no-such-command-dropin"), std::string::npos) << qsh.err;
  EXPECT_NE(qsh.err.find("not found"), std::string::npos) << qsh.err;
  auto queue = Shell("queue -h $REMOTE -n -- no-such-command-dropin arg", dir);
  EXPECT_EQ(queue.exit_code, 2) << queue.err;
  EXPECT_EQ(queue.err, "no-such-command-dropin: Command not found.\n");
}

// GNU Parallel (and any tool that cleans the environment) drops QUEUE_SOCKET:
// qsh finds the daemon by itself, and `queue --status` says where.
TEST_F(QshDropIn, TheDaemonIsFoundWithoutQueueSocket) {
  std::string dir = WorkDir();
  std::string home = dir + "/home";
  fs::create_directories(home + "/.config/queue");
  WriteFile(home + "/.config/queue/config", "# my cluster\nsocket " + cluster().socket(0) + "\n");
  std::string unset = "unset QUEUE_SOCKET QUEUE_HOME XDG_CONFIG_HOME; export HOME=" + home + "; ";
  // The system default comes first: where a daemon answers there, the search ends there.
  if (access("/run/queue/queued.sock", F_OK) == 0)
    GTEST_SKIP() << "a daemon answers at /run/queue/queued.sock, which the search takes first";
  auto status = Shell(unset + "queue --status", dir);
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("socket " + cluster().socket(0) + " (from the config file " + home +
                            "/.config/queue/config)"),
            std::string::npos)
      << status.out;
  auto json = nlohmann::json::parse(Shell(unset + "queue --status --json", dir).out, nullptr, false);
  ASSERT_FALSE(json.is_discarded());
  EXPECT_EQ(json["socket"]["path"], cluster().socket(0)) << json.dump();
  auto run = Shell(unset + "qsh $REMOTE 'echo $QUEUE_HOST'", dir);
  EXPECT_EQ(run.out, cluster().entry(1) + "\n") << run.err;
  // ./run.sh's per-user cluster (~/.queue/queued.sock) comes before the config file.
  fs::create_directories(home + "/.queue");
  fs::create_symlink(cluster().socket(0), home + "/.queue/queued.sock");
  WriteFile(home + "/.config/queue/config", "socket /nonexistent/queued.sock\n");
  auto by_home = Shell(unset + "queue --status", dir);
  EXPECT_NE(by_home.out.find("socket " + home + "/.queue/queued.sock (from the per-user cluster of ./run.sh"),
            std::string::npos)
      << by_home.out << by_home.err;
  // Nowhere: the error names every place it looked.
  fs::remove(home + "/.queue/queued.sock");
  auto nowhere = Shell(unset + "qsh $REMOTE true", dir);
  EXPECT_EQ(nowhere.exit_code, 2);
  EXPECT_NE(nowhere.err.find("/run/queue/queued.sock"), std::string::npos) << nowhere.err;
  EXPECT_NE(nowhere.err.find(home + "/.queue/queued.sock"), std::string::npos) << nowhere.err;
  EXPECT_NE(nowhere.err.find("/nonexistent/queued.sock"), std::string::npos) << nowhere.err;
}

// ---------------------------------------------------------------------------
// The programs.

// A tree with a 100 MiB file, small files, a nested directory and symlinks.
void MakeTree(const std::string& root) {
  fs::create_directories(root + "/sub/deeper");
  ASSERT_EQ(RunCommand({"/bin/sh", "-c", "head -c 104857600 /dev/urandom > " + root + "/big"}, {{}, "", 60s, ""})
                .exit_code,
            0);
  for (int i = 0; i < 20; ++i) WriteFile(root + "/sub/small" + std::to_string(i), std::string(i * 100, 'x'), 0640);
  WriteFile(root + "/sub/deeper/script", "#!/bin/sh\necho hi\n", 0755);
  fs::create_symlink("sub/deeper/script", root + "/link-to-script");
  fs::create_symlink("/nonexistent/target", root + "/sub/dangling");
}

TEST_F(QshDropIn, RsyncPushAndPullThroughQsh) {
  ASSERT_TRUE(Installed("/usr/bin/rsync"));
  std::string dir = WorkDir();
  MakeTree(dir + "/src");
  // Push: rsync here, its server through qsh on host 1.
  auto push = Shell("rsync -a -e qsh src/ $REMOTE:" + dir + "/pushed/", dir, 120s);
  ASSERT_EQ(push.exit_code, 0) << push.out << push.err;
  auto same = Shell("diff -r --no-dereference src pushed", dir);
  EXPECT_EQ(same.exit_code, 0) << same.out << same.err;
  EXPECT_TRUE(fs::is_symlink(dir + "/pushed/link-to-script"));
  // Pull: rsync reads the remote side through qsh's (non-blocking) stdout.
  auto pull = Shell("rsync -a -e qsh $REMOTE:" + dir + "/src/ pulled/", dir, 120s);
  ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
  auto pulled_same = Shell("diff -r --no-dereference src pulled", dir);
  EXPECT_EQ(pulled_same.exit_code, 0) << pulled_same.out << pulled_same.err;
  // A second run of each finds nothing to transfer (-i lists every change).
  auto again = Shell("rsync -a -i -e qsh src/ $REMOTE:" + dir + "/pushed/ && rsync -a -i -e \"qsh -p $PORT\" $REMOTE:" +
                         dir + "/src/ pulled/",
                     dir, 120s);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, "") << "a second run transferred something";
  fs::remove_all(dir);
}

TEST_F(QshDropIn, GitCloneAndPushOverSshUrlsWithOnlyGitSshCommand) {
  ASSERT_TRUE(Installed("/usr/bin/git"));
  std::string dir = WorkDir();
  std::string git_env =
      "export HOME=" + dir + " GIT_SSH_COMMAND=qsh GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t "
      "GIT_COMMITTER_EMAIL=t@t; unset GIT_SSH GIT_SSH_VARIANT; ";
  std::string url = "ssh://$REMOTE:$PORT" + dir + "/origin.git";
  auto setup = Shell(git_env + "git init -q --bare origin.git && git init -q seed && cd seed && echo one > file && "
                               "git add file && git commit -q -m one && git push -q " + url + " HEAD:refs/heads/main",
                     dir);
  ASSERT_EQ(setup.exit_code, 0) << setup.out << setup.err;
  auto clone = Shell(git_env + "git clone -q -b main " + url + " copy && cat copy/file", dir);
  ASSERT_EQ(clone.exit_code, 0) << clone.err;
  EXPECT_EQ(clone.out, "one\n");
  auto push = Shell(git_env + "cd copy && echo two >> file && git commit -q -am two && git push -q origin main && "
                              "git --git-dir=" + dir + "/origin.git log --format=%s main",
                    dir);
  ASSERT_EQ(push.exit_code, 0) << push.err;
  EXPECT_EQ(push.out, "two\none\n");
}

TEST_F(QshDropIn, GnuParallelWithTransferAndReturn) {
  ASSERT_TRUE(Installed("/usr/bin/parallel"));
  ASSERT_TRUE(Installed("/usr/bin/rsync"));
  std::string dir = WorkDir();
  std::string remote_dir = dir + "/remote";  // the jobs' side: --cleanup empties it
  fs::create_directories(dir + "/in");
  fs::create_directories(remote_dir);
  std::string inputs;
  for (int i = 0; i < 6; ++i) {
    std::string name = "in/f" + std::to_string(i);
    WriteFile(dir + "/" + name, std::string(1000 + i * 50000, static_cast<char>('a' + i)));
    inputs += name + "\n";
  }
  WriteFile(dir + "/inputs", inputs);
  // Without QUEUE_SOCKET, as from a tool that cleans the environment: qsh finds the daemon by itself.
  std::string home = dir + "/home";
  fs::create_directories(home + "/.config/queue");
  WriteFile(home + "/.config/queue/config", "socket " + cluster().socket(0) + "\n");
  // Each job returns 3 MiB: rsync pulls it through qsh's non-blocking stdout.
  // And without SHELL, which parallel's remote wrapper runs: sshd would set it from passwd.
  auto run = Shell("unset QUEUE_SOCKET SHELL; export HOME=" + home + "; parallel --will-cite --ssh qsh -S 2/$REMOTE:$PORT --wd " +
                       remote_dir +
                       " --transfer --return {}.sum --return {}.big --cleanup "
                       "'sha256sum {} > {}.sum; yes {} | head -c 3145728 > {}.big; echo $QUEUE_HOST' < inputs",
                   dir, 120s);
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(std::count(run.out.begin(), run.out.end(), '\n'), 6) << run.out << run.err;
  EXPECT_NE(run.out.find(cluster().entry(1)), std::string::npos) << run.out;
  for (int i = 0; i < 6; ++i) {
    std::string name = "in/f" + std::to_string(i);
    std::string sum = ReadFile(dir + "/" + name + ".sum");
    // parallel's own word (a --return that failed) goes to its stderr: shown.
    EXPECT_EQ(sum, Hex(ReadFile(dir + "/" + name)) + "  " + name + "\n") << name << "\n" << run.err;
    std::string line = name + "\n", big;
    while (big.size() < 3145728) big += line;
    big.resize(3145728);
    EXPECT_TRUE(ReadFile(dir + "/" + name + ".big") == big) << name << ".big came back damaged";
  }
  // --cleanup removed what was sent and made over there.
  EXPECT_FALSE(fs::exists(remote_dir + "/in/f0")) << "not cleaned up";
}

// The README's make line: every recipe line through queue, to host 1 here.
TEST_F(QshDropIn, MakeRunsItsRecipesThroughQueue) {
  std::string dir = WorkDir();
  WriteFile(dir + "/Makefile",
            "all: a b c\n\tcat a b c > all\na b c:\n\techo $@ $$QUEUE_HOST > $@\n");
  auto run = Shell("make -s -j3 SHELL=queue .SHELLFLAGS=\"-h $REMOTE -w -n -- /bin/sh -c\"", dir, 60s);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  std::string host = cluster().entry(1);
  EXPECT_EQ(ReadFile(dir + "/all"), "a " + host + "\nb " + host + "\nc " + host + "\n");
  // A failing recipe line fails make, as locally.
  WriteFile(dir + "/Makefile", ".PHONY: fails\nfails:\n\texit 3\n");
  auto failed = Shell("make -s SHELL=queue .SHELLFLAGS=\"-h $REMOTE -w -n -- /bin/sh -c\"", dir, 60s);
  EXPECT_EQ(failed.exit_code, 2) << failed.err;
  EXPECT_NE(failed.err.find("Error 3"), std::string::npos) << failed.err;
}

// MPICH's hydra launches its proxies with `qsh -x HOST ...`; the ranks then
// talk to each other directly. Each rank reports the Queue host it runs on.
TEST_F(QshDropIn, MpichHydraRunsAnAllreduceThroughQsh) {
  ASSERT_TRUE(Installed("/usr/bin/mpicc"));
  ASSERT_TRUE(Installed("/usr/bin/mpiexec.hydra"));
  std::string dir = WorkDir();
  WriteFile(dir + "/allreduce.c",
            "#include <mpi.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
            "int main(int argc, char** argv) {\n"
            "  MPI_Init(&argc, &argv);\n"
            "  int rank, size, sum = 0;\n"
            "  MPI_Comm_rank(MPI_COMM_WORLD, &rank);\n"
            "  MPI_Comm_size(MPI_COMM_WORLD, &size);\n"
            "  int mine = rank + 1;\n"
            "  MPI_Allreduce(&mine, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);\n"
            "  const char* host = getenv(\"QUEUE_HOST\");\n"
            "  printf(\"rank %d of %d on %s: sum %d\\n\", rank, size, host ? host : \"(not through queue)\", sum);\n"
            "  MPI_Finalize();\n"
            "  return 0;\n"
            "}\n");
  auto built = Shell("mpicc -o allreduce allreduce.c", dir, 120s);
  ASSERT_EQ(built.exit_code, 0) << built.err;
  auto run = Shell("mpiexec.hydra -launcher ssh -launcher-exec qsh -hosts " + cluster().entry(0).substr(0, cluster().entry(0).find(':')) +
                       ",$REMOTE -n 2 ./allreduce | sort",
                   dir, 120s);
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(run.out, "rank 0 of 2 on " + cluster().entry(0) + ": sum 3\nrank 1 of 2 on " + cluster().entry(1) +
                         ": sum 3\n")
      << run.err;
}

}  // namespace
}  // namespace queue::testing
