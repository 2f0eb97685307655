// Tests of escaping user-supplied text and log lines, and of the strict open
// root uses for the supervisor file (issue 12, fault 3).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/printable.h"
#include "util/strict_open.h"

namespace queue::util {
namespace {

TEST(Printable, EscapesControlCharactersAndKeepsUtf8) {
  EXPECT_EQ(Printable("build"), "build");
  EXPECT_EQ(Printable("a\nb\tc\r"), "a\\nb\\tc\\r");
  EXPECT_EQ(Printable("\x1b]0;owned\x07"), "\\x1b]0;owned\\x07");
  EXPECT_EQ(Printable("\x7f"), "\\x7f");
  EXPECT_EQ(Printable("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac");  // é €
  EXPECT_EQ(Printable("\xc2\x9b" "31m"), "\\xc2\\x9b31m");                       // C1 CSI as UTF-8
  EXPECT_EQ(Printable("\x9b" "31m"), "\\x9b31m");                                 // and as a lone byte
  EXPECT_EQ(Printable("\xff"), "\\xff");
}

TEST(EscapingLogBuffer, OnlyANewlineThatEndsAWriteEndsALine) {
  std::stringstream sink;
  EscapingLogBuffer buffer(sink.rdbuf());
  std::ostream log(&buffer);
  log << "queued: START job 1 (" << std::string("x\nqueued: forged") << ") for uid " << 1000 << "\n";
  log << "queued: second line\n";
  EXPECT_EQ(sink.str(), "queued: START job 1 (x\\nqueued: forged) for uid 1000\nqueued: second line\n");
}

class StrictOpen : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("queue-strict-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_ + "/safe");
    chmod(dir_.c_str(), 0755);
    chmod((dir_ + "/safe").c_str(), 0755);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(StrictOpen, AppendsToAFileInASafeDirectory) {
  auto fd = OpenForAppendStrictly(dir_ + "/safe/notices");
  ASSERT_TRUE(fd.ok()) << fd.message();
  close(*fd);
  struct stat st {};
  ASSERT_EQ(stat((dir_ + "/safe/notices").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(StrictOpen, RefusesALinkADirectoryOthersWriteAndHardLinks) {
  std::filesystem::create_symlink(dir_ + "/target", dir_ + "/safe/link");
  auto link = OpenForAppendStrictly(dir_ + "/safe/link");
  ASSERT_FALSE(link.ok());
  EXPECT_NE(link.message().find("a symbolic link"), std::string::npos) << link.message();
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/target"));
  std::filesystem::create_directories(dir_ + "/open");
  chmod((dir_ + "/open").c_str(), 01777);
  auto open = OpenForAppendStrictly(dir_ + "/open/notices");
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.message().find("is writable by others"), std::string::npos) << open.message();
  std::ofstream(dir_ + "/safe/file") << "x";
  std::filesystem::create_hard_link(dir_ + "/safe/file", dir_ + "/safe/hard");
  auto hard = OpenForAppendStrictly(dir_ + "/safe/hard");
  ASSERT_FALSE(hard.ok());
  EXPECT_NE(hard.message().find("has 2 links"), std::string::npos) << hard.message();
  EXPECT_FALSE(OpenForAppendStrictly("relative/path").ok());
}

}  // namespace
}  // namespace queue::util
