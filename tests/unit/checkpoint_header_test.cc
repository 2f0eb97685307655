// Tests of include/queue/checkpoint.h, the header jobs use to be migrated:
// reading Queue's environment, the checkpoint signal, and atomic saving.
#include "queue/checkpoint.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace queue {
namespace {

namespace fs = std::filesystem;

// Sets (or unsets) one environment variable for the scope of a test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_.c_str(), old_->c_str(), 1);
    else unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "checkpoint-header-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string Contents(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int EntriesIn(const fs::path& directory) {
  int count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(directory)) ++count;
  return count;
}

TEST(CheckpointHeader, RestartFileComesFromTheEnvironment) {
  ScopedEnv file("QUEUE_RESTART_FILE", "/work/job/sim.restart");
  EXPECT_STREQ(queue_restart_file(), "/work/job/sim.restart");
}

TEST(CheckpointHeader, RestartFileFallsBackWhenUnsetOrEmpty) {
  {
    ScopedEnv file("QUEUE_RESTART_FILE", nullptr);
    EXPECT_STREQ(queue_restart_file(), QUEUE_RESTART_FILE_FALLBACK);
  }
  ScopedEnv file("QUEUE_RESTART_FILE", "");
  EXPECT_STREQ(queue_restart_file(), "checkpoint.restart");
}

TEST(CheckpointHeader, RestartCountReadsOnlyPlainNumbers) {
  struct Case {
    const char* value;
    unsigned expected;
  };
  for (auto [value, expected] : {Case{nullptr, 0}, Case{"0", 0}, Case{"7", 7}, Case{"12", 12}, Case{"", 0},
                                 Case{"abc", 0}, Case{"-1", 0}, Case{" 3", 0}, Case{"3x", 0}, Case{"+2", 0},
                                 Case{"99999999999999999999999", UINT_MAX}}) {
    ScopedEnv count("QUEUE_RESTART_COUNT", value);
    EXPECT_EQ(queue_restart_count(), expected) << (value ? value : "(unset)");
  }
}

TEST(CheckpointHeader, RestartedFromEitherVariable) {
  {
    ScopedEnv restarted("RESTARTED", nullptr);
    ScopedEnv count("QUEUE_RESTART_COUNT", nullptr);
    EXPECT_FALSE(queue_restarted());
  }
  {
    ScopedEnv restarted("RESTARTED", "1");
    ScopedEnv count("QUEUE_RESTART_COUNT", nullptr);
    EXPECT_TRUE(queue_restarted());
  }
  {
    ScopedEnv restarted("RESTARTED", "0");
    ScopedEnv count("QUEUE_RESTART_COUNT", "0");
    EXPECT_FALSE(queue_restarted());
  }
  ScopedEnv restarted("RESTARTED", nullptr);
  ScopedEnv count("QUEUE_RESTART_COUNT", "2");
  EXPECT_TRUE(queue_restarted());
}

TEST(CheckpointHeader, SaveAtomicallyWritesAndReplacesLeavingNoTemporary) {
  TempDir dir;
  fs::path path = dir.path() / "job.restart";
  const std::string first = "step 1\n", second = "step 2, longer than the first\n";
  ASSERT_EQ(queue_save_atomically(path.c_str(), first.data(), first.size()), 0);
  EXPECT_EQ(Contents(path), first);
  ASSERT_EQ(queue_save_atomically(path.c_str(), second.data(), second.size()), 0);
  EXPECT_EQ(Contents(path), second);
  EXPECT_EQ(EntriesIn(dir.path()), 1);
  struct stat info {};
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);  // state files are the user's alone
}

TEST(CheckpointHeader, SaveAtomicallyHandlesEmptyDataAndRelativePaths) {
  TempDir dir;
  fs::path old_cwd = fs::current_path();
  fs::current_path(dir.path());
  int saved = queue_save_atomically("relative.restart", "", 0);
  fs::current_path(old_cwd);
  ASSERT_EQ(saved, 0);
  EXPECT_EQ(fs::file_size(dir.path() / "relative.restart"), 0u);
  EXPECT_EQ(EntriesIn(dir.path()), 1);
}

TEST(CheckpointHeader, SaveAtomicallyReportsErrnoAndCleansUp) {
  TempDir dir;
  fs::path missing = dir.path() / "no-such-dir" / "job.restart";
  errno = 0;
  EXPECT_EQ(queue_save_atomically(missing.c_str(), "x", 1), -1);
  EXPECT_EQ(errno, ENOENT);

  // A directory in the way: the rename fails, and the temporary goes.
  fs::create_directory(dir.path() / "job.restart");
  errno = 0;
  EXPECT_EQ(queue_save_atomically((dir.path() / "job.restart").c_str(), "x", 1), -1);
  EXPECT_NE(errno, 0);
  EXPECT_EQ(EntriesIn(dir.path()), 1);
}

// Signal handlers belong to the process, so each case runs in a child.
void ExpectSignalSetsFlag(const char* configured, int expected_signal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        if (configured != nullptr) setenv("QUEUE_CHECKPOINT_SIGNAL", configured, 1);
        else unsetenv("QUEUE_CHECKPOINT_SIGNAL");
        if (queue_checkpoint_requested() || queue_checkpoint_signal() != 0) std::exit(10);
        if (queue_checkpoint_init() != 0) std::exit(11);
        if (queue_checkpoint_signal() != expected_signal || queue_checkpoint_requested()) std::exit(12);
        raise(expected_signal);
        std::exit(queue_checkpoint_requested() ? 0 : 13);
      },
      ::testing::ExitedWithCode(0), "")
      << "QUEUE_CHECKPOINT_SIGNAL=" << (configured ? configured : "(unset)");
}

TEST(CheckpointHeaderSignal, DefaultIsSigusr2) { ExpectSignalSetsFlag(nullptr, SIGUSR2); }

TEST(CheckpointHeaderSignal, EmptySettingMeansTheDefault) { ExpectSignalSetsFlag("", SIGUSR2); }

TEST(CheckpointHeaderSignal, NumberOrNameSelectsAnother) {
  ExpectSignalSetsFlag("10", SIGUSR1);  // Linux numbering
  ExpectSignalSetsFlag("USR1", SIGUSR1);
  ExpectSignalSetsFlag("SIGTERM", SIGTERM);
}

TEST(CheckpointHeaderSignal, BadSettingIsRefusedAndInstallsNothing) {
  for (const char* bad : {"FOO", "0", "9", "12x", "-12", "SIGKILL"}) {
    ScopedEnv signal_setting("QUEUE_CHECKPOINT_SIGNAL", bad);
    errno = 0;
    EXPECT_EQ(queue_checkpoint_init(), -1) << bad;
    EXPECT_EQ(errno, EINVAL) << bad;
    EXPECT_EQ(queue_checkpoint_signal(), 0) << bad;
  }
}

}  // namespace
}  // namespace queue
