// Tests of the shepherd's status file: what is written reads back, an empty file
// means "still running", and anything else (missing, torn, foreign, oversized)
// is an error rather than a guess.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "exec/shepherd_status.h"
#include "small_file_system.h"

namespace queue::exec {
namespace {

namespace fs = std::filesystem;
using wire::ShepherdEvent;
using wire::ShepherdEventKind;

class ShepherdStatusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "shepherd-status-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/status";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Contents() {
    std::ifstream in(path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void Overwrite(const std::string& bytes) { std::ofstream(path_, std::ios::binary | std::ios::trunc) << bytes; }

  std::string dir_;
  std::string path_;
};

TEST_F(ShepherdStatusTest, FinishedReadsBack) {
  auto file = ShepherdStatusFile::Create(path_);
  ASSERT_TRUE(file.ok()) << file.message();
  ASSERT_TRUE(file->Write(ShepherdEvent{ShepherdEventKind::kFinished, 4242, 3 << 8, 1.25, ""}).ok());
  auto read = ReadShepherdStatus(path_);
  ASSERT_TRUE(read.ok()) << read.message();
  ASSERT_TRUE(read->has_value());
  const ShepherdEvent& event = **read;
  EXPECT_EQ(event.kind, ShepherdEventKind::kFinished);
  EXPECT_EQ(event.pid, 4242);
  EXPECT_EQ(event.wait_status, 3 << 8);
  EXPECT_DOUBLE_EQ(event.cpu_seconds, 1.25);
}

TEST_F(ShepherdStatusTest, FailedKeepsItsMessage) {
  auto file = ShepherdStatusFile::Create(path_);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(file->Write(ShepherdEvent{ShepherdEventKind::kFailed, 0, 0, 0, "nosuch: Command not found."}).ok());
  auto read = ReadShepherdStatus(path_);
  ASSERT_TRUE(read.ok()) << read.message();
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ((*read)->kind, ShepherdEventKind::kFailed);
  EXPECT_EQ((*read)->message, "nosuch: Command not found.");
}

// The end is written when the job's output may have filled the spool: the
// file has its blocks from the start, and stays empty until then.
TEST(ShepherdStatusFull, TheEndIsWrittenOnAFullFileSystem) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root, to mount a small file system";
  testing::OnSmallFileSystem("1m", [](const std::string& dir) {
    const std::string path = dir + "/status";
    auto file = ShepherdStatusFile::Create(path);
    ASSERT_TRUE(file.ok()) << file.message();
    EXPECT_EQ(fs::file_size(path), 0u);
    testing::FillWith(dir + "/output");
    EXPECT_EQ(testing::FreeBytesOn(dir), 0u);
    std::string message(kMaxStatusMessageBytes, 'm');
    Status written = file->Write(ShepherdEvent{ShepherdEventKind::kFailed, 0, 0, 0, message});
    ASSERT_TRUE(written.ok()) << written.message();
    auto read = ReadShepherdStatus(path);
    ASSERT_TRUE(read.ok()) << read.message();
    ASSERT_TRUE(read->has_value());
    EXPECT_EQ((*read)->message, message);
  });
}

TEST_F(ShepherdStatusTest, EmptyFileMeansTheJobRuns) {
  auto file = ShepherdStatusFile::Create(path_);
  ASSERT_TRUE(file.ok());
  auto read = ReadShepherdStatus(path_);
  ASSERT_TRUE(read.ok()) << read.message();
  EXPECT_FALSE(read->has_value());
}

TEST_F(ShepherdStatusTest, CreatedPrivateAndCloseOnExec) {
  auto file = ShepherdStatusFile::Create(path_);
  ASSERT_TRUE(file.ok());
  struct stat info {};
  ASSERT_EQ(stat(path_.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_TRUE(fcntl(file->fd(), F_GETFD) & FD_CLOEXEC);
}

TEST_F(ShepherdStatusTest, CreateEmptiesAnOldFile) {
  Overwrite("left over from an earlier run");
  auto file = ShepherdStatusFile::Create(path_);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(Contents(), "");
}

TEST_F(ShepherdStatusTest, CreateRefusesASymlink) {
  std::string target = dir_ + "/target";
  std::ofstream(target) << "precious";
  ASSERT_EQ(symlink(target.c_str(), path_.c_str()), 0);
  EXPECT_FALSE(ShepherdStatusFile::Create(path_).ok());
  std::ifstream in(target);
  std::string kept;
  in >> kept;
  EXPECT_EQ(kept, "precious");
}

TEST_F(ShepherdStatusTest, MissingFileIsAnError) {
  auto read = ReadShepherdStatus(path_);
  EXPECT_FALSE(read.ok());
}

TEST_F(ShepherdStatusTest, StartedIsNotAnEnd) {
  auto file = ShepherdStatusFile::Create(path_);
  ASSERT_TRUE(file.ok());
  EXPECT_FALSE(file->Write(ShepherdEvent{ShepherdEventKind::kStarted, 1, 0, 0, ""}).ok());
}

TEST_F(ShepherdStatusTest, OverlongMessageIsRefused) {
  auto file = ShepherdStatusFile::Create(path_);
  ASSERT_TRUE(file.ok());
  std::string message(kMaxStatusMessageBytes + 1, 'x');
  EXPECT_FALSE(file->Write(ShepherdEvent{ShepherdEventKind::kFailed, 0, 0, 0, message}).ok());
  message.pop_back();
  ASSERT_TRUE(file->Write(ShepherdEvent{ShepherdEventKind::kFailed, 0, 0, 0, message}).ok());
  auto read = ReadShepherdStatus(path_);
  ASSERT_TRUE(read.ok()) << read.message();
  EXPECT_EQ((*read)->message.size(), kMaxStatusMessageBytes);
}

// A valid record, for the corruption tests to damage.
std::string ValidRecord(const std::string& path) {
  auto file = ShepherdStatusFile::Create(path);
  EXPECT_TRUE(file.ok());
  EXPECT_TRUE(file->Write(ShepherdEvent{ShepherdEventKind::kFinished, 7, 0, 0.5, ""}).ok());
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_F(ShepherdStatusTest, TornRecordIsAnError) {
  std::string record = ValidRecord(path_);
  for (size_t keep : {size_t{1}, size_t{7}, size_t{8}, record.size() - 1}) {
    Overwrite(record.substr(0, keep));
    EXPECT_FALSE(ReadShepherdStatus(path_).ok()) << "kept " << keep << " bytes";
  }
}

TEST_F(ShepherdStatusTest, TrailingBytesAreAnError) {
  Overwrite(ValidRecord(path_) + "x");
  EXPECT_FALSE(ReadShepherdStatus(path_).ok());
}

TEST_F(ShepherdStatusTest, ForeignMagicIsAnError) {
  std::string record = ValidRecord(path_);
  record[0] ^= 0x20;
  Overwrite(record);
  EXPECT_FALSE(ReadShepherdStatus(path_).ok());
}

TEST_F(ShepherdStatusTest, UnknownEventKindIsAnError) {
  std::string record = ValidRecord(path_);
  record[8] = 9;  // the kind, first byte of the payload
  Overwrite(record);
  EXPECT_FALSE(ReadShepherdStatus(path_).ok());
}

TEST_F(ShepherdStatusTest, HugeFileIsAnErrorWithoutReadingItAll) {
  std::string record = ValidRecord(path_);
  Overwrite(record + std::string(1 << 20, '\0'));
  auto read = ReadShepherdStatus(path_);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.message().find("too large"), std::string::npos) << read.message();
}

}  // namespace
}  // namespace queue::exec
