// Tests of the example jobs in examples/ (C++, Python, sh), run the way Queue
// runs a migrating job but without daemons: uninterrupted; stopped twice by
// the checkpoint signal and restarted with the restart flag and environment
// Queue gives; restarted with no restart file or a bad one. The answer must
// not depend on how often the run was interrupted.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cluster_fixture.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct Example {
  std::string name;
  std::vector<std::string> command;  // the program, before its own arguments
  std::uint64_t steps;               // with delay: a run of about two seconds
  std::string delay;
};

// Names the example in test names and failure messages.
void PrintTo(const Example& example, std::ostream* out) { *out << example.name; }

std::string FindInPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string candidate = dir + "/" + program;
    if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::vector<Example> Examples() {
  const std::string examples = QUEUE_EXAMPLES_DIR;
  return {
      {"cxx", {BinDir() + "/queue-example-counter"}, 1500, "0.001"},
      {"python", {FindInPath("python3"), examples + "/counter.py"}, 700, "0.002"},
      {"sh", {"/bin/sh", examples + "/counter.sh"}, 250, "0.005"},
  };
}

// What every example must print: acc = (31*acc + i*i) mod p for i = 1..steps.
std::uint64_t ExpectedResult(std::uint64_t steps, std::uint64_t from_step = 0, std::uint64_t acc = 0) {
  constexpr std::uint64_t kModulus = 1000000007;
  for (std::uint64_t i = from_step + 1; i <= steps; ++i) acc = (acc * 31 + i * i % kModulus) % kModulus;
  return acc;
}

std::string LastLine(const std::string& text) {
  std::string trimmed = text;
  while (!trimmed.empty() && trimmed.back() == '\n') trimmed.pop_back();
  auto newline = trimmed.rfind('\n');
  return newline == std::string::npos ? trimmed : trimmed.substr(newline + 1);
}

// The step saved in a restart file ("queue-example-counter 1 TOTAL STEP ACC").
std::uint64_t SavedStep(const std::string& path) {
  std::istringstream fields(ReadFile(path));
  std::string magic, format;
  std::uint64_t total = 0, step = 0;
  fields >> magic >> format >> total >> step;
  return step;
}

class ExamplesTest : public ::testing::TestWithParam<Example> {
 protected:
  void SetUp() override {
    // A missing program fails the test: scripts/install-deps.sh installs python3.
    ASSERT_FALSE(GetParam().command.front().empty()) << "python3 is not installed";
    char pattern[] = "/tmp/queue-examples-XXXXXX";
    dir_ = mkdtemp(pattern);
    restart_file_ = dir_ + "/counter.restart";
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // The command with its steps and delay; the restart flag first or last.
  std::vector<std::string> Command(const std::string& flag_first = "", const std::string& flag_last = "") const {
    std::vector<std::string> argv = GetParam().command;
    if (!flag_first.empty()) argv.push_back(flag_first);
    argv.push_back(std::to_string(GetParam().steps));
    argv.push_back(GetParam().delay);
    if (!flag_last.empty()) argv.push_back(flag_last);
    return argv;
  }

  std::vector<std::string> Environment(unsigned restart_count) const {
    std::vector<std::string> env = {"QUEUE_RESTART_FILE=" + restart_file_, "QUEUE_CHECKPOINT_SIGNAL="};
    if (restart_count > 0) {
      env.push_back("QUEUE_RESTART_COUNT=" + std::to_string(restart_count));
      env.push_back("RESTARTED=1");
    } else {
      env.push_back("QUEUE_RESTART_COUNT=");
      env.push_back("RESTARTED=");
    }
    return env;
  }

  CommandResult Run(const std::vector<std::string>& argv, const std::vector<std::string>& env) const {
    CommandOptions options;
    options.env = env;
    options.cwd = dir_;
    options.timeout = 20s;
    return RunCommand(argv, options);
  }

  // Starts a run, lets it work for half a second, sends the checkpoint signal
  // to its process group (as a shepherd would) and expects it to save and
  // exit 0. Returns the step it saved.
  std::uint64_t RunAndInterrupt(const std::vector<std::string>& argv, unsigned restart_count) {
    std::string out = dir_ + "/run" + std::to_string(restart_count) + ".out";
    std::string err = dir_ + "/run" + std::to_string(restart_count) + ".err";
    Background run = StartBackground(argv, Environment(restart_count), out, err);
    bool started = WaitUntil(
        [&] {
          std::string text = ReadFile(out);
          return text.find("start at step") != std::string::npos || text.find("resumed at step") != std::string::npos;
        },
        15s);
    if (started) std::this_thread::sleep_for(500ms);
    kill(-run.pid, SIGUSR2);
    auto status = WaitChild(run.pid, 15s);
    if (!status) {
      kill(-run.pid, SIGKILL);
      WaitChild(run.pid, 5s);
    }
    EXPECT_TRUE(started) << ReadFile(err);
    EXPECT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "status " << (status ? *status : -1) << "\n" << ReadFile(out) << ReadFile(err);
    EXPECT_NE(ReadFile(out).find("checkpoint at step"), std::string::npos) << ReadFile(out);
    EXPECT_EQ(ReadFile(out).find("result"), std::string::npos) << "finished before the signal: " << ReadFile(out);
    return SavedStep(restart_file_);
  }

  std::string dir_, restart_file_;
};

TEST_P(ExamplesTest, UninterruptedRunPrintsTheResult) {
  auto run = Run(Command(), Environment(0));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(LastLine(run.out), "result " + std::to_string(ExpectedResult(GetParam().steps))) << run.out;
}

TEST_P(ExamplesTest, TwiceInterruptedAndResumedGivesTheSameResult) {
  const std::uint64_t steps = GetParam().steps;
  std::uint64_t first = RunAndInterrupt(Command(), 0);
  EXPECT_GT(first, 0u);
  EXPECT_LT(first, steps);

  // Queue's default: the restart flag as argv[1].
  std::uint64_t second = RunAndInterrupt(Command("--resume"), 1);
  EXPECT_GT(second, first);
  EXPECT_LT(second, steps);

  // `restartflagpos last`: the flag at the end.
  auto run = Run(Command("", "--resume"), Environment(2));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("resumed at step " + std::to_string(second) + " "), std::string::npos) << run.out;
  EXPECT_EQ(LastLine(run.out), "result " + std::to_string(ExpectedResult(steps))) << run.out;
}

TEST_P(ExamplesTest, RestartedEnvironmentAloneResumes) {
  // A restart file written by hand (the format is shared by all examples),
  // near the end, so this run is short.
  const std::uint64_t steps = GetParam().steps, step = steps - 5;
  WriteFile(restart_file_, "queue-example-counter 1 " + std::to_string(steps) + " " + std::to_string(step) + " " +
                               std::to_string(ExpectedResult(step)) + "\n");
  auto run = Run(Command(), Environment(3));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("resumed at step " + std::to_string(step) + " "), std::string::npos) << run.out;
  EXPECT_EQ(LastLine(run.out), "result " + std::to_string(ExpectedResult(steps))) << run.out;
}

TEST_P(ExamplesTest, ResumeWithoutRestartFileFailsClearly) {
  auto run = Run(Command("--resume"), Environment(1));
  EXPECT_EQ(run.exit_code, 2) << run.out << run.err;
  EXPECT_NE(run.err.find("cannot resume: restart file " + restart_file_ + ": No such file or directory"),
            std::string::npos)
      << run.err;
  EXPECT_EQ(run.out.find("result"), std::string::npos) << "started over: " << run.out;
}

TEST_P(ExamplesTest, ResumeFromBadRestartFileFailsClearly) {
  for (const std::string& bad : {std::string("garbage\n"), std::string(""),
                                 "queue-example-counter 1 " + std::to_string(GetParam().steps) + " 007 5\n",
                                 "queue-example-counter 1 " + std::to_string(GetParam().steps + 1) + " 3 5\n"}) {
    WriteFile(restart_file_, bad);
    auto run = Run(Command("--resume"), Environment(1));
    EXPECT_EQ(run.exit_code, 2) << bad << run.out << run.err;
    EXPECT_NE(run.err.find("cannot resume: restart file " + restart_file_), std::string::npos) << bad << run.err;
    EXPECT_EQ(run.out.find("result"), std::string::npos) << "started over from " << bad << run.out;
  }
}

INSTANTIATE_TEST_SUITE_P(Counter, ExamplesTest, ::testing::ValuesIn(Examples()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace queue::testing
