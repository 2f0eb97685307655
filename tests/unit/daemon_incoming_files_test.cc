// Tests of files arriving in chunks from a peer: in-order writing, stale
// chunks, starting afresh, and the check against the sender's digest, with and
// without the digest kept while the file grew.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "daemon/bundle_sender.h"
#include "util/sha256.h"

namespace queue::daemon {
namespace {

std::string DigestOf(const std::string& bytes) {
  Sha256 digest;
  digest.Update(bytes);
  return digest.Final();
}

std::string Contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class IncomingFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("queue-incoming-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    path_ = dir_ + "/bundle";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, path_;
};

TEST_F(IncomingFilesTest, ChunksInOrderMakeTheFileAndMatchTheSendersDigest) {
  IncomingFiles files;
  ASSERT_TRUE(files.Store(path_, 0, "hello, ").ok());
  ASSERT_TRUE(files.Store(path_, 7, "world").ok());
  EXPECT_EQ(Contents(path_), "hello, world");
  EXPECT_TRUE(files.Matches(path_, 12, DigestOf("hello, world")));
}

TEST_F(IncomingFilesTest, AChunkThatDoesNotFollowOnIsDropped) {
  IncomingFiles files;
  ASSERT_TRUE(files.Store(path_, 0, "abc").ok());
  ASSERT_TRUE(files.Store(path_, 10, "late").ok());  // from a transfer that was cut off
  ASSERT_TRUE(files.Store(path_, 1, "zz").ok());     // a repeat of bytes already here
  ASSERT_TRUE(files.Store(path_, 3, "def").ok());
  EXPECT_EQ(Contents(path_), "abcdef");
  EXPECT_TRUE(files.Matches(path_, 6, DigestOf("abcdef")));
}

TEST_F(IncomingFilesTest, OffsetZeroStartsTheFileAfresh) {
  IncomingFiles files;
  ASSERT_TRUE(files.Store(path_, 0, "first try, cut off").ok());
  ASSERT_TRUE(files.Store(path_, 0, "again").ok());
  EXPECT_EQ(Contents(path_), "again");
  EXPECT_TRUE(files.Matches(path_, 5, DigestOf("again")));
}

TEST_F(IncomingFilesTest, AWrongSizeOrDigestDoesNotMatch) {
  IncomingFiles files;
  ASSERT_TRUE(files.Store(path_, 0, "abc").ok());
  EXPECT_FALSE(files.Matches(path_, 4, DigestOf("abc")));
  ASSERT_TRUE(files.Store(path_, 0, "abc").ok());
  EXPECT_FALSE(files.Matches(path_, 3, DigestOf("abd")));
  EXPECT_FALSE(files.Matches(dir_ + "/never-came", 3, DigestOf("abc")));
}

// An empty file is sent as no chunk at all: nothing arrives, and it still
// matches, made empty here for whoever reads it next.
TEST_F(IncomingFilesTest, AnEmptyFileMatchesThoughNoChunkCame) {
  IncomingFiles files;
  EXPECT_TRUE(files.Matches(path_, 0, DigestOf("")));
  EXPECT_TRUE(std::filesystem::exists(path_));
  EXPECT_EQ(Contents(path_), "");
  EXPECT_FALSE(files.Matches(dir_ + "/never-came", 0, DigestOf("x")));
}

// What a cut-off transfer of an earlier run left is not this run's (empty) file.
TEST_F(IncomingFilesTest, AnEmptyFileReplacesWhatAnEarlierTransferLeft) {
  IncomingFiles files;
  ASSERT_TRUE(files.Store(path_, 0, "half of an earlier run").ok());
  EXPECT_TRUE(files.Matches(path_, 0, DigestOf("")));
  EXPECT_EQ(Contents(path_), "");
  {
    IncomingFiles before;  // a daemon that stopped in the middle of a transfer
    ASSERT_TRUE(before.Store(path_, 0, "cut off again").ok());
  }
  IncomingFiles after;  // knows of it only from the disk
  EXPECT_TRUE(after.Matches(path_, 0, DigestOf("")));
  EXPECT_EQ(Contents(path_), "");
}

// A daemon restarted in the middle of a transfer goes on writing where the
// file ends, and checks it by reading it.
TEST_F(IncomingFilesTest, ATransferBegunBeforeARestartIsCheckedFromTheDisk) {
  {
    IncomingFiles before;
    ASSERT_TRUE(before.Store(path_, 0, "half ").ok());
  }
  IncomingFiles after;
  ASSERT_TRUE(after.Store(path_, 5, "and half").ok());
  EXPECT_EQ(Contents(path_), "half and half");
  EXPECT_TRUE(after.Matches(path_, 13, DigestOf("half and half")));
  // Corrupted on the disk behind its back: the digest read from the file says so.
  IncomingFiles again;
  ASSERT_TRUE(again.Store(path_, 13, "!").ok());
  std::ofstream(path_, std::ios::in | std::ios::out | std::ios::binary).write("X", 1);
  EXPECT_FALSE(again.Matches(path_, 14, DigestOf("half and half!")));
}

TEST_F(IncomingFilesTest, AFileRemovedWhileItArrivedDoesNotMatch) {
  IncomingFiles files;
  ASSERT_TRUE(files.Store(path_, 0, "abc").ok());
  ASSERT_EQ(unlink(path_.c_str()), 0);
  EXPECT_FALSE(files.Matches(path_, 3, DigestOf("abc")));
}

TEST_F(IncomingFilesTest, ManyTransfersAtOnceKeepFewFilesOpenAndLoseNoBytes) {
  IncomingFiles files;
  constexpr int kFiles = 80;  // more than it keeps open
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < kFiles; ++i)
      ASSERT_TRUE(files.Store(path_ + std::to_string(i), static_cast<uint64_t>(round) * 2, "ab").ok());
  for (int i = 0; i < kFiles; ++i)
    EXPECT_TRUE(files.Matches(path_ + std::to_string(i), 6, DigestOf("ababab"))) << i;
}

TEST_F(IncomingFilesTest, AFileThatCannotBeCreatedSaysWhere) {
  IncomingFiles files;
  auto stored = files.Store(dir_ + "/no/such/dir/bundle", 0, "x");
  EXPECT_FALSE(stored.ok());
  EXPECT_NE(stored.message().find("no/such/dir/bundle"), std::string::npos) << stored.message();
}

}  // namespace
}  // namespace queue::daemon
