// Tests of delivering a batch job's output file as its owner: ownership, refusal
// where the owner may not write, never replacing another file, symlinks, large files. The
// cases that switch users need root and are skipped otherwise.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "spool/output_file.h"
#include "util/sha256.h"

namespace queue::spool {
namespace {

constexpr uint32_t kNobody = 65534;
const FileOwner kNobodyOwner{kNobody, kNobody, {}};

class SpoolOutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/spool_output_file_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    // Other users must be able to reach the directories made inside.
    ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  }
  void TearDown() override {
    for (int fd : fds_) close(fd);
    std::filesystem::remove_all(dir_);
  }

  // A private file of the daemon's holding `content`, open for reading, with its
  // offset moved away from the start.
  int SourceWith(const std::string& content) {
    std::string path = dir_ + "/source." + std::to_string(fds_.size());
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0);
    if (fd < 0) return -1;
    fds_.push_back(fd);
    EXPECT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    lseek(fd, static_cast<off_t>(content.size() / 2), SEEK_SET);
    return fd;
  }

  std::string MakeDir(const std::string& name, uid_t uid, gid_t gid, mode_t mode) {
    std::string path = dir_ + "/" + name;
    EXPECT_EQ(mkdir(path.c_str(), mode), 0);
    EXPECT_EQ(chown(path.c_str(), uid, gid), 0);
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }

  static std::string Contents(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  static size_t Entries(const std::string& dir) {
    size_t count = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++count;
    return count;
  }

  // Who this process is, for the cases that run without switching users.
  static FileOwner Myself() { return FileOwner{geteuid(), getegid(), {}}; }

  std::string dir_;
  std::vector<int> fds_;
};

bool IsRoot() { return geteuid() == 0; }

TEST_F(SpoolOutputFileTest, RootDeliversAsTheOwnerIntoTheOwnersDirectory) {
  if (!IsRoot()) GTEST_SKIP() << "needs root to act as another user";
  std::string home = MakeDir("home", kNobody, kNobody, 0700);
  int source = SourceWith("line one\nline two\n");
  std::string dest = home + "/job.o12";

  Status delivered = DeliverOutputFile(source, dest, kNobodyOwner);
  ASSERT_TRUE(delivered.ok()) << delivered.message();
  struct stat info {};
  ASSERT_EQ(lstat(dest.c_str(), &info), 0);
  EXPECT_TRUE(S_ISREG(info.st_mode));
  EXPECT_EQ(info.st_uid, kNobody);
  EXPECT_EQ(info.st_gid, kNobody);
  EXPECT_EQ(info.st_mode & 07777, 0600u);
  EXPECT_EQ(Contents(dest), "line one\nline two\n");
  EXPECT_EQ(Entries(home), 1u);  // no temporary file left behind
}

TEST_F(SpoolOutputFileTest, OwnerWithoutWriteAccessGetsAClearErrorAndNoFile) {
  if (!IsRoot()) GTEST_SKIP() << "needs root to act as another user";
  std::string root_only = MakeDir("root-only", 0, 0, 0755);
  int source = SourceWith("secret\n");
  std::string dest = root_only + "/job.o12";

  Status delivered = DeliverOutputFile(source, dest, kNobodyOwner);
  ASSERT_FALSE(delivered.ok());
  EXPECT_EQ(delivered.message(), "cannot write the output to " + dest + ": Permission denied");
  EXPECT_EQ(Entries(root_only), 0u);
}

TEST_F(SpoolOutputFileTest, SupplementaryGroupsApply) {
  if (!IsRoot()) GTEST_SKIP() << "needs root to act as another user";
  constexpr gid_t kProjectGroup = 4242;
  std::string shared = MakeDir("shared", 0, kProjectGroup, 0770);
  int source = SourceWith("shared\n");
  std::string dest = shared + "/job.o7";

  Status refused = DeliverOutputFile(source, dest, kNobodyOwner);
  EXPECT_FALSE(refused.ok());
  Status delivered =
      DeliverOutputFile(source, dest, FileOwner{kNobody, kNobody, {kProjectGroup}});
  ASSERT_TRUE(delivered.ok()) << delivered.message();
  EXPECT_EQ(Contents(dest), "shared\n");
}

// A symlink where the output goes is another file: left alone, never followed.
TEST_F(SpoolOutputFileTest, SymlinkToARootFileIsNeitherFollowedNorReplaced) {
  if (!IsRoot()) GTEST_SKIP() << "needs root to act as another user";
  std::string home = MakeDir("home", kNobody, kNobody, 0700);
  std::string victim = dir_ + "/victim";
  std::ofstream(victim) << "root's data\n";
  std::string dest = home + "/job.o3";
  ASSERT_EQ(symlink(victim.c_str(), dest.c_str()), 0);
  ASSERT_EQ(lchown(dest.c_str(), kNobody, kNobody), 0);

  Status delivered = DeliverOutputFile(SourceWith("output\n"), dest, kNobodyOwner);
  ASSERT_FALSE(delivered.ok());
  EXPECT_EQ(delivered.message(), "cannot write the output to " + dest +
                                     ": a different file of that name is there already, and is not replaced");
  struct stat info {};
  ASSERT_EQ(lstat(dest.c_str(), &info), 0);
  EXPECT_TRUE(S_ISLNK(info.st_mode));
  EXPECT_EQ(Contents(victim), "root's data\n");
  EXPECT_EQ(Entries(home), 1u) << "no temporary file is left behind";
}

TEST_F(SpoolOutputFileTest, SymlinkedFileIsNeitherFollowedNorReplaced) {
  std::string victim = dir_ + "/victim";
  std::ofstream(victim) << "output\n";  // even the same bytes: a symlink is not this output
  std::string dest = dir_ + "/job.o3";
  ASSERT_EQ(symlink(victim.c_str(), dest.c_str()), 0);

  Status delivered = DeliverOutputFile(SourceWith("output\n"), dest, Myself());
  EXPECT_FALSE(delivered.ok());
  struct stat info {};
  ASSERT_EQ(lstat(dest.c_str(), &info), 0);
  EXPECT_TRUE(S_ISLNK(info.st_mode));
  EXPECT_EQ(Contents(victim), "output\n");
}

// Job ids are unique in the cluster, so a file already there is another job's
// or the user's (fault: deliveries from several submit hosts overwrote each other).
TEST_F(SpoolOutputFileTest, AnotherFileOfTheSameNameIsNeverReplaced) {
  std::string out = MakeDir("out", geteuid(), getegid(), 0755);
  std::string dest = out + "/job.o5";
  std::ofstream(dest) << "another job's output\n";

  Status delivered = DeliverOutputFile(SourceWith("new\n"), dest, Myself());
  ASSERT_FALSE(delivered.ok());
  EXPECT_NE(delivered.message().find("is there already"), std::string::npos) << delivered.message();
  EXPECT_EQ(Contents(dest), "another job's output\n");
  EXPECT_EQ(Entries(out), 1u) << "no temporary file is left behind";
}

// A delivery that wrote the file but could not record it (a daemon killed at
// that moment) is done again: the same bytes there count as delivered.
TEST_F(SpoolOutputFileTest, TheSameOutputDeliveredAgainIsDone) {
  std::string out = MakeDir("out", geteuid(), getegid(), 0755);
  std::string dest = out + "/job.o6";
  std::ofstream(dest) << "this output\n";

  Status delivered = DeliverOutputFile(SourceWith("this output\n"), dest, Myself());
  ASSERT_TRUE(delivered.ok()) << delivered.message();
  EXPECT_EQ(Contents(dest), "this output\n");
  EXPECT_EQ(Entries(out), 1u);
  EXPECT_FALSE(DeliverOutputFile(SourceWith("this output, longer\n"), dest, Myself()).ok());
  EXPECT_FALSE(DeliverOutputFile(SourceWith("that output\n"), dest, Myself()).ok());
}

TEST_F(SpoolOutputFileTest, LargeContentArrivesIntactAndTheSourceOffsetStays) {
  std::string content(20 << 20, '\0');
  uint32_t state = 12345;
  for (char& c : content) {
    state = state * 1103515245 + 12345;
    c = static_cast<char>(state >> 24);
  }
  int source = SourceWith(content);
  off_t offset_before = lseek(source, 0, SEEK_CUR);
  std::string dest = dir_ + "/big.o1";

  Status delivered = DeliverOutputFile(source, dest, Myself());
  ASSERT_TRUE(delivered.ok()) << delivered.message();
  int copy = open(dest.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(copy, 0);
  Result<std::string> want = Sha256OfFile(source);
  Result<std::string> got = Sha256OfFile(copy);
  close(copy);
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_EQ(std::filesystem::file_size(dest), content.size());
  EXPECT_EQ(ToHex(*got), ToHex(*want));
  EXPECT_EQ(lseek(source, 0, SEEK_CUR), offset_before);
}

TEST_F(SpoolOutputFileTest, EmptySourceGivesAnEmptyFile) {
  std::string dest = dir_ + "/empty.o1";
  Status delivered = DeliverOutputFile(SourceWith(""), dest, Myself());
  ASSERT_TRUE(delivered.ok()) << delivered.message();
  EXPECT_TRUE(std::filesystem::is_regular_file(dest));
  EXPECT_EQ(std::filesystem::file_size(dest), 0u);
}

TEST_F(SpoolOutputFileTest, MissingDirectoryIsNamed) {
  std::string dest = dir_ + "/no/such/dir/job.o9";
  Status delivered = DeliverOutputFile(SourceWith("x"), dest, Myself());
  ASSERT_FALSE(delivered.ok());
  EXPECT_EQ(delivered.message(),
            "cannot write the output to " + dest + ": No such file or directory");
}

TEST_F(SpoolOutputFileTest, DirectoryAtTheDestinationIsKeptAndNothingIsLeft) {
  std::string dest = MakeDir("job.o4", geteuid(), getegid(), 0755);
  std::ofstream(dest + "/inside") << "x";
  Status delivered = DeliverOutputFile(SourceWith("x"), dest, Myself());
  ASSERT_FALSE(delivered.ok());
  EXPECT_NE(delivered.message().find(dest), std::string::npos) << delivered.message();
  EXPECT_NE(delivered.message().find("is there already"), std::string::npos) << delivered.message();
  EXPECT_TRUE(std::filesystem::is_directory(dest));
  // Only the sources made by the test, the directory itself: no temporary file.
  EXPECT_EQ(Entries(dir_), 2u);
}

TEST_F(SpoolOutputFileTest, UnusablePathsAreRefused) {
  int source = SourceWith("x");
  Status relative = DeliverOutputFile(source, "out/job.o1", Myself());
  ASSERT_FALSE(relative.ok());
  EXPECT_NE(relative.message().find("not absolute"), std::string::npos) << relative.message();
  EXPECT_FALSE(DeliverOutputFile(source, "", Myself()).ok());

  Status nul = DeliverOutputFile(source, dir_ + std::string("/job\0.o1", 8), Myself());
  ASSERT_FALSE(nul.ok());
  EXPECT_NE(nul.message().find("NUL"), std::string::npos) << nul.message();
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/job"));

  Status directory = DeliverOutputFile(source, dir_ + "/", Myself());
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.message().find("directory"), std::string::npos) << directory.message();
  EXPECT_FALSE(DeliverOutputFile(source, dir_ + "/..", Myself()).ok());
}

TEST_F(SpoolOutputFileTest, UnreadableSourceIsReported) {
  Status delivered = DeliverOutputFile(-1, dir_ + "/job.o1", Myself());
  ASSERT_FALSE(delivered.ok());
  EXPECT_NE(delivered.message().find("while copying"), std::string::npos)
      << delivered.message();
  EXPECT_EQ(Entries(dir_), 0u);
}

// A daemon that is not root writes only its own user's files. Run as root, the
// test checks this from a child process that has become nobody.
TEST_F(SpoolOutputFileTest, NonRootDaemonRefusesAnotherOwner) {
  std::string dest = dir_ + "/job.o1";
  int source = SourceWith("x");
  auto refused_for_other = [&]() {
    Status s = DeliverOutputFile(source, dest, FileOwner{geteuid() + 1, getegid(), {}});
    return !s.ok() && s.message().find("cannot create files for uid") != std::string::npos;
  };
  if (!IsRoot()) {
    EXPECT_TRUE(refused_for_other());
    EXPECT_FALSE(std::filesystem::exists(dest));
    return;
  }
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    bool as_nobody = setgroups(0, nullptr) == 0 && setresgid(kNobody, kNobody, kNobody) == 0 &&
                     setresuid(kNobody, kNobody, kNobody) == 0;
    _exit(as_nobody && refused_for_other() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_FALSE(std::filesystem::exists(dest));
}

}  // namespace
}  // namespace queue::spool
