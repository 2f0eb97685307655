// Tests of the spool directory tree: creation with safe modes and default
// profiles, refusal of unsafe roots, queue name rules, and queue listing.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "spool/spool_dir.h"

namespace queue::spool {
namespace {

class SpoolDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/spool_dir_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    base_ = pattern;
    root_ = base_ + "/spool";
  }
  void TearDown() override { std::filesystem::remove_all(base_); }

  std::string base_;
  std::string root_;
};

mode_t ModeOf(const std::string& path) {
  struct stat info;
  EXPECT_EQ(lstat(path.c_str(), &info), 0) << path;
  return info.st_mode & 07777;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_F(SpoolDirTest, CreatesRootQueuesAndProfiles) {
  mode_t old_umask = umask(0222);  // would leave the owner unable to write
  Status s = PrepareSpoolDir(root_);
  umask(old_umask);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ModeOf(root_), 0700u);
  for (const char* queue : {"now", "wait"}) {
    std::string dir = root_ + "/" + queue;
    EXPECT_EQ(ModeOf(dir), 0700u) << dir;
    std::string profile = ReadFile(dir + "/profile");
    EXPECT_NE(profile.find("\nexec on\n"), std::string::npos) << profile;
    EXPECT_EQ(profile.front(), '#');
    EXPECT_FALSE(std::filesystem::exists(dir + "/profile.new"));
  }
}

TEST_F(SpoolDirTest, SecondRunKeepsAnEditedProfile) {
  ASSERT_TRUE(PrepareSpoolDir(root_).ok());
  std::string profile = root_ + "/wait/profile";
  std::ofstream(profile) << "exec drain\nmaxexec 3\n";
  std::filesystem::remove(root_ + "/now/profile");
  Status s = PrepareSpoolDir(root_);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ReadFile(profile), "exec drain\nmaxexec 3\n");
  EXPECT_NE(ReadFile(root_ + "/now/profile").find("exec on"), std::string::npos);
}

TEST_F(SpoolDirTest, AcceptsAnExistingReadableRoot) {
  ASSERT_EQ(mkdir(root_.c_str(), 0755), 0);
  ASSERT_EQ(chmod(root_.c_str(), 0755), 0);
  Status s = PrepareSpoolDir(root_);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ModeOf(root_), 0755u);  // not group/world writable: left alone
}

TEST_F(SpoolDirTest, RefusesWorldWritableRoot) {
  ASSERT_EQ(mkdir(root_.c_str(), 0700), 0);
  ASSERT_EQ(chmod(root_.c_str(), 0777), 0);
  Status s = PrepareSpoolDir(root_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("writable"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("0777"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(root_), std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(root_ + "/now"));
}

TEST_F(SpoolDirTest, RefusesGroupWritableQueueDir) {
  ASSERT_TRUE(PrepareSpoolDir(root_).ok());
  ASSERT_EQ(chmod((root_ + "/wait").c_str(), 0770), 0);
  Status s = PrepareSpoolDir(root_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(root_ + "/wait"), std::string::npos) << s.message();
}

TEST_F(SpoolDirTest, RefusesRootOwnedByAnotherUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give the directory away";
  ASSERT_EQ(mkdir(root_.c_str(), 0700), 0);
  ASSERT_EQ(chown(root_.c_str(), 12345, 12345), 0);
  Status s = PrepareSpoolDir(root_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("owned by uid 12345"), std::string::npos) << s.message();
}

TEST_F(SpoolDirTest, RefusesAFileAsRoot) {
  std::ofstream(root_) << "not a directory";
  Status s = PrepareSpoolDir(root_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not a directory"), std::string::npos) << s.message();
}

TEST_F(SpoolDirTest, ReportsAMissingParent) {
  Status s = PrepareSpoolDir(base_ + "/missing/spool");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("missing/spool"), std::string::npos) << s.message();
}

TEST(SpoolQueueName, Rules) {
  EXPECT_TRUE(IsValidQueueName("now"));
  EXPECT_FALSE(IsValidQueueName(".hidden"));  // the spool's own, like .queued
  EXPECT_TRUE(IsValidQueueName(std::string(31, 'q')));
  EXPECT_FALSE(IsValidQueueName(std::string(32, 'q')));
  EXPECT_FALSE(IsValidQueueName(""));
  EXPECT_FALSE(IsValidQueueName("."));
  EXPECT_FALSE(IsValidQueueName(".."));
  EXPECT_FALSE(IsValidQueueName("a/b"));
  EXPECT_FALSE(IsValidQueueName(std::string("a\0b", 3)));
}

TEST_F(SpoolDirTest, ListsQueueDirectoriesOnly) {
  ASSERT_TRUE(PrepareSpoolDir(root_).ok());
  namespace fs = std::filesystem;
  fs::create_directory(root_ + "/sas");
  fs::create_directory(root_ + "/" + std::string(40, 'l'));  // name too long
  std::ofstream(root_ + "/jobs.db") << "";
  fs::create_directory(base_ + "/elsewhere");
  fs::create_directory_symlink(base_ + "/elsewhere", root_ + "/matlab");  // absolute
  fs::create_directory_symlink("sas", root_ + "/relative");              // ignored
  fs::create_symlink(root_ + "/jobs.db", root_ + "/tofile");             // not a dir
  fs::create_symlink("/nonexistent/target", root_ + "/dangling");

  Result<std::vector<std::string>> queues = ListQueueDirs(root_);
  ASSERT_TRUE(queues.ok()) << queues.message();
  EXPECT_EQ(*queues, (std::vector<std::string>{"matlab", "now", "sas", "wait"}));
}

TEST_F(SpoolDirTest, ListingAMissingRootFails) {
  Result<std::vector<std::string>> queues = ListQueueDirs(root_);
  ASSERT_FALSE(queues.ok());
  EXPECT_NE(queues.message().find(root_), std::string::npos) << queues.message();
}

}  // namespace
}  // namespace queue::spool
