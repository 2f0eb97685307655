// Tests of restart bundles: the format's validation, packing and unpacking round
// trips (subdirectories, globs, a 200 MiB file), "written after the signal",
// refusal of corrupt bundles without writing anything, symbolic links, and acting
// as the owner. The cases that switch users need root and are skipped otherwise.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "migrate/restart_bundle.h"
#include "util/sha256.h"

namespace queue::migrate {
namespace {

constexpr uint32_t kNobody = 65534;
const spool::FileOwner kNobodyOwner{kNobody, kNobody, {}};

bool IsRoot() { return geteuid() == 0; }

// A bundle built by hand: each file's header from the encoder, then its bytes.
struct BundleBuilder {
  std::string bytes{kBundleMagic};
  BundleBuilder& File(std::string_view path, std::string_view content, uint32_t mode = 0644) {
    bytes += EncodeEntryHeader(path, mode, content.size());
    bytes += content;
    return *this;
  }
  std::string End() const { return bytes + EncodeBundleEnd(); }
};

class MigrateRestartBundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/migrate_restart_bundle_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    // Other users must be able to reach the directories made inside.
    ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
    bundle_ = open((dir_ + "/bundle").c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ASSERT_GE(bundle_, 0);
  }
  void TearDown() override {
    close(bundle_);
    std::filesystem::remove_all(dir_);
  }

  std::string MakeDir(const std::string& name, uid_t uid = geteuid(), gid_t gid = getegid(),
                      mode_t mode = 0755) {
    std::string path = dir_ + "/" + name;
    EXPECT_EQ(mkdir(path.c_str(), mode), 0) << path;
    EXPECT_EQ(chown(path.c_str(), uid, gid), 0);
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }

  static void WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
  }

  static std::string Contents(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  static mode_t ModeOf(const std::string& path) {
    struct stat info {};
    EXPECT_EQ(lstat(path.c_str(), &info), 0) << path;
    return info.st_mode & 07777;
  }

  // Every name below `dir`, relative to it, sorted.
  static std::vector<std::string> Tree(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
      names.push_back(entry.path().lexically_relative(dir).string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string BundleBytes() const { return Contents(dir_ + "/bundle"); }

  void SetBundle(const std::string& bytes) {
    ASSERT_EQ(ftruncate(bundle_, 0), 0);
    ASSERT_EQ(pwrite(bundle_, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  }

  static spool::FileOwner Myself() { return spool::FileOwner{geteuid(), getegid(), {}}; }

  std::string dir_;
  int bundle_ = -1;
};

// ---- The format ----

TEST_F(MigrateRestartBundleTest, ParseAcceptsAHandMadeBundle) {
  std::string bytes = BundleBuilder().File("a", "alpha", 0600).File("dir/b", "", 0755).End();
  Result<std::vector<BundleEntry>> entries = ParseBundle(bytes);
  ASSERT_TRUE(entries.ok()) << entries.message();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].path, "a");
  EXPECT_EQ((*entries)[0].mode, 0600u);
  EXPECT_EQ((*entries)[0].size, 5u);
  EXPECT_EQ(bytes.substr((*entries)[0].data_offset, 5), "alpha");
  EXPECT_EQ((*entries)[1].path, "dir/b");
  EXPECT_EQ((*entries)[1].size, 0u);
  EXPECT_TRUE(ParseBundle(BundleBuilder().End()).ok());
}

TEST_F(MigrateRestartBundleTest, ParseRefusesPathsOutsideTheJobsDirectory) {
  struct Case {
    std::string path, reason;
  };
  const std::vector<Case> cases = {
      {"../x", "leaves the job's directory"},
      {"a/../../x", "leaves the job's directory"},
      {"/etc/passwd", "absolute"},
      {"a/./b", "not normalised"},
      {"a//b", "empty component"},
      {"a/", "empty component"},
      {std::string("a\0b", 3), "NUL"},
      {std::string(kMaxBundlePathBytes + 1, 'x'), "longer than 4096"},
  };
  for (const Case& c : cases) {
    Result<std::vector<BundleEntry>> parsed = ParseBundle(BundleBuilder().File(c.path, "x").End());
    ASSERT_FALSE(parsed.ok()) << PrintablePath(c.path);
    EXPECT_NE(parsed.message().find(c.reason), std::string::npos) << parsed.message();
    EXPECT_EQ(parsed.message().find('\n'), std::string::npos);
  }
  Result<std::vector<BundleEntry>> up = ParseBundle(BundleBuilder().File("../x", "x").End());
  EXPECT_EQ(up.message(), "restart bundle entry 1 (../x): the path leaves the job's directory");
}

TEST_F(MigrateRestartBundleTest, ParseRefusesDamage) {
  std::string good = BundleBuilder().File("one", "111").File("ckpt/two", "2222").File("three", "3").End();
  ASSERT_TRUE(ParseBundle(good).ok());
  // Every proper prefix is refused, and says so in one line.
  for (size_t length = 0; length < good.size(); ++length) {
    Result<std::vector<BundleEntry>> cut = ParseBundle(good.substr(0, length));
    ASSERT_FALSE(cut.ok()) << length;
    EXPECT_EQ(cut.message().find('\n'), std::string::npos);
  }
  EXPECT_EQ(ParseBundle(good.substr(0, good.size() - 5)).message(),
            "restart bundle truncated at entry 3 (three)");
  std::string cut_in_two =
      BundleBuilder().File("one", "111").bytes + EncodeEntryHeader("ckpt/two", 0644, 4) + "22";
  EXPECT_EQ(ParseBundle(cut_in_two).message(), "restart bundle truncated at entry 2 (ckpt/two)");

  EXPECT_NE(ParseBundle("QRB2" + good.substr(4)).message().find("does not start with QRB1"),
            std::string::npos);
  EXPECT_NE(ParseBundle(good + "x").message().find("1 bytes after its end"), std::string::npos);
  EXPECT_NE(ParseBundle(BundleBuilder().File("a", "x", 04755).End()).message().find("mode 04755"),
            std::string::npos);
  EXPECT_NE(ParseBundle(BundleBuilder().File("a", "x").File("a", "y").End()).message().find("twice"),
            std::string::npos);
  EXPECT_EQ(ParseBundle(BundleBuilder().File("a", "x").File("a-b", "").File("a/b", "y").End()).message(),
            "restart bundle holds a both as a file and as a directory");
  // A header claiming a terabyte of content.
  std::string huge = std::string(kBundleMagic) + EncodeEntryHeader("big", 0644, uint64_t{1} << 40) + "abc";
  EXPECT_EQ(ParseBundle(huge).message(), "restart bundle truncated at entry 1 (big)");
}

TEST_F(MigrateRestartBundleTest, ParseBoundsTheNumberOfEntries) {
  BundleBuilder at_limit;
  for (size_t i = 0; i < kMaxBundleEntries; ++i) at_limit.File("f" + std::to_string(i), "");
  ASSERT_TRUE(ParseBundle(at_limit.End()).ok());
  at_limit.File("one-more", "");
  Result<std::vector<BundleEntry>> over = ParseBundle(at_limit.End());
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.message().find("more than 10000"), std::string::npos) << over.message();
}

// The magic says what the bundle holds: a job's own restart files or a CRIU image.
TEST_F(MigrateRestartBundleTest, ParseTellsTheKindFromTheMagic) {
  std::string files = BundleBuilder().File("a", "alpha").End();
  BundleKind kind = BundleKind::kCriuImage;
  ASSERT_TRUE(ParseBundle(files, &kind).ok());
  EXPECT_EQ(kind, BundleKind::kRestartFiles);

  std::string image = std::string(kImageBundleMagic) + files.substr(kBundleMagic.size());
  kind = BundleKind::kRestartFiles;
  Result<std::vector<BundleEntry>> entries = ParseBundle(image, &kind);
  ASSERT_TRUE(entries.ok()) << entries.message();
  EXPECT_EQ(kind, BundleKind::kCriuImage);
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].path, "a");
  EXPECT_TRUE(ParseBundle(image).ok()) << "the kind is optional";

  for (const char* magic : {"QRI2", "QRX1", "qri1", "QRB0"}) {
    Result<std::vector<BundleEntry>> other = ParseBundle(magic + files.substr(4), &kind);
    ASSERT_FALSE(other.ok()) << magic;
    EXPECT_NE(other.message().find("does not start with QRB1 or QRI1"), std::string::npos) << other.message();
  }
  // An image bundle is checked as strictly as any other.
  EXPECT_FALSE(ParseBundle(image.substr(0, image.size() - 1)).ok());
  EXPECT_FALSE(ParseBundle(std::string(kImageBundleMagic) + EncodeEntryHeader("../x", 0644, 0) + EncodeBundleEnd())
                   .ok());
  EXPECT_EQ(BundleMagic(BundleKind::kCriuImage), "QRI1");
  EXPECT_EQ(BundleMagic(BundleKind::kRestartFiles), "QRB1");
}

// ---- Packing and unpacking as this process's own user ----

TEST_F(MigrateRestartBundleTest, RoundTripOfFilesSubdirectoriesAndGlobs) {
  std::string from = MakeDir("from"), to = MakeDir("to");
  WriteFile(from + "/job.restart", "main state\n", 0640);
  WriteFile(from + "/ckpt/a.bin", std::string("\0\1\2binary", 9), 0600);
  WriteFile(from + "/ckpt/.hidden", "hidden\n", 0644);
  WriteFile(from + "/ckpt/sub/b.bin", "deeper\n", 0755);
  WriteFile(from + "/part.1", "p1", 0644);
  WriteFile(from + "/part.2", "p2", 0644);
  WriteFile(from + "/other.txt", "not taken", 0644);
  ASSERT_EQ(mkfifo((from + "/ckpt/pipe").c_str(), 0600), 0);

  Result<PackResult> packed = PackRestartFiles(
      bundle_, from, {"job.restart", "ckpt/", "part.*", "missing.restart", "none*", "job.restart"}, Myself(),
      0);
  ASSERT_TRUE(packed.ok()) << packed.message();
  const std::vector<std::string> want_names = {"job.restart", "ckpt/.hidden", "ckpt/a.bin", "ckpt/sub/b.bin",
                                               "part.1",      "part.2"};
  EXPECT_EQ(packed->names, want_names);
  EXPECT_EQ(packed->files, 6u);
  EXPECT_EQ(packed->bytes, 11u + 9 + 7 + 7 + 2 + 2);
  EXPECT_EQ(packed->skipped, std::vector<std::string>{"ckpt/pipe"});
  EXPECT_TRUE(packed->any_modified_since);
  Result<std::vector<BundleEntry>> scanned = ScanBundle(bundle_);
  ASSERT_TRUE(scanned.ok()) << scanned.message();
  EXPECT_EQ(scanned->size(), 6u);

  Status unpacked = UnpackRestartFiles(bundle_, to, Myself());
  ASSERT_TRUE(unpacked.ok()) << unpacked.message();
  for (const std::string& name : want_names) {
    EXPECT_EQ(Contents(to + "/" + name), Contents(from + "/" + name)) << name;
    EXPECT_EQ(ModeOf(to + "/" + name), ModeOf(from + "/" + name)) << name;
  }
  // Nothing else: no temporary file left behind, no unmatched file.
  const std::vector<std::string> want_tree = {"ckpt",        "ckpt/.hidden", "ckpt/a.bin", "ckpt/sub",
                                              "ckpt/sub/b.bin", "job.restart", "part.1",   "part.2"};
  EXPECT_EQ(Tree(to), want_tree);
  EXPECT_EQ(ModeOf(to + "/ckpt"), 0700u);
}

TEST_F(MigrateRestartBundleTest, ImageBundleIsWrittenWithItsOwnMagicAndUnpacksAlike) {
  std::string from = MakeDir("from"), to = MakeDir("to");
  WriteFile(from + "/inventory.img", std::string("\0\1img", 5), 0600);
  WriteFile(from + "/" + "queue-streams", "/dev/null\npipe:[12]\npipe:[12]\n", 0600);
  Result<PackResult> packed = PackRestartFiles(bundle_, from, {"*"}, Myself(), 0, BundleKind::kCriuImage);
  ASSERT_TRUE(packed.ok()) << packed.message();
  EXPECT_EQ(packed->files, 2u);
  EXPECT_EQ(BundleBytes().substr(0, 4), "QRI1");
  BundleKind kind = BundleKind::kRestartFiles;
  Result<std::vector<BundleEntry>> scanned = ScanBundle(bundle_, &kind);
  ASSERT_TRUE(scanned.ok()) << scanned.message();
  EXPECT_EQ(kind, BundleKind::kCriuImage);
  EXPECT_EQ(scanned->size(), 2u);
  ASSERT_TRUE(UnpackRestartFiles(bundle_, to, Myself()).ok());
  EXPECT_EQ(Contents(to + "/inventory.img"), Contents(from + "/inventory.img"));
  EXPECT_EQ(Contents(to + "/queue-streams"), Contents(from + "/queue-streams"));

  // Without a kind, a job's own restart files, as before.
  ASSERT_TRUE(PackRestartFiles(bundle_, from, {"*"}, Myself(), 0).ok());
  EXPECT_EQ(BundleBytes().substr(0, 4), "QRB1");
  kind = BundleKind::kCriuImage;
  ASSERT_TRUE(ScanBundle(bundle_, &kind).ok());
  EXPECT_EQ(kind, BundleKind::kRestartFiles);
}

// No shared file system: the job's directory may not exist on the new host.
TEST_F(MigrateRestartBundleTest, UnpackCreatesAMissingJobDirectory) {
  std::string from = MakeDir("from");
  WriteFile(from + "/job.restart", "state\n");
  ASSERT_TRUE(PackRestartFiles(bundle_, from, {"job.restart"}, Myself(), 0).ok());
  std::string to = dir_ + "/not/there/yet";
  Status unpacked = UnpackRestartFiles(bundle_, to, Myself());
  ASSERT_TRUE(unpacked.ok()) << unpacked.message();
  EXPECT_EQ(Contents(to + "/job.restart"), "state\n");
}

TEST_F(MigrateRestartBundleTest, EmptyPatternsGiveAnEmptyBundle) {
  std::string from = MakeDir("from"), to = MakeDir("to");
  WriteFile(from + "/job.restart", "x");
  SetBundle("old content that must go");
  Result<PackResult> packed = PackRestartFiles(bundle_, from, {}, Myself(), 0);
  ASSERT_TRUE(packed.ok()) << packed.message();
  EXPECT_EQ(packed->files, 0u);
  EXPECT_FALSE(packed->any_modified_since);
  EXPECT_EQ(BundleBytes(), BundleBuilder().End());
  ASSERT_TRUE(UnpackRestartFiles(bundle_, to, Myself()).ok());
  EXPECT_TRUE(Tree(to).empty());
}

TEST_F(MigrateRestartBundleTest, ModifiedSinceComparesMillisecondsInclusively) {
  std::string from = MakeDir("from");
  WriteFile(from + "/job.restart", "state");
  constexpr int64_t kWrittenMs = 1'700'000'000'123;
  struct timespec times[2] = {{kWrittenMs / 1000, (kWrittenMs % 1000) * 1'000'000 + 456'789},
                              {kWrittenMs / 1000, (kWrittenMs % 1000) * 1'000'000 + 456'789}};
  ASSERT_EQ(utimensat(AT_FDCWD, (from + "/job.restart").c_str(), times, 0), 0);

  for (auto [since, want] : {std::pair{kWrittenMs - 1000, true}, std::pair{kWrittenMs, true},
                             std::pair{kWrittenMs + 1, false}}) {
    Result<PackResult> packed = PackRestartFiles(bundle_, from, {"job.restart"}, Myself(), since);
    ASSERT_TRUE(packed.ok()) << packed.message();
    EXPECT_EQ(packed->any_modified_since, want) << since;
  }
}

TEST_F(MigrateRestartBundleTest, LargeFileRoundTripsIntact) {
  std::string from = MakeDir("from"), to = MakeDir("to");
  std::string source = from + "/big.restart";
  {
    // 200 MiB written as 1 MiB blocks, each different, so misplaced blocks show.
    std::string block(1 << 20, '\0');
    uint32_t state = 12345;
    for (char& c : block) {
      state = state * 1103515245 + 12345;
      c = static_cast<char>(state >> 24);
    }
    std::ofstream out(source, std::ios::binary);
    for (uint32_t i = 0; i < 200; ++i) {
      std::memcpy(block.data(), &i, sizeof i);
      out.write(block.data(), static_cast<std::streamsize>(block.size()));
    }
  }
  Result<PackResult> packed = PackRestartFiles(bundle_, from, {"big.restart"}, Myself(), 0);
  ASSERT_TRUE(packed.ok()) << packed.message();
  EXPECT_EQ(packed->bytes, uint64_t{200} << 20);
  Status unpacked = UnpackRestartFiles(bundle_, to, Myself());
  ASSERT_TRUE(unpacked.ok()) << unpacked.message();

  int original = open(source.c_str(), O_RDONLY | O_CLOEXEC);
  int copy = open((to + "/big.restart").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(original, 0);
  ASSERT_GE(copy, 0);
  Result<std::string> want = Sha256OfFile(original);
  Result<std::string> got = Sha256OfFile(copy);
  close(original);
  close(copy);
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_EQ(ToHex(*got), ToHex(*want));
  EXPECT_EQ(std::filesystem::file_size(to + "/big.restart"), uint64_t{200} << 20);
}

TEST_F(MigrateRestartBundleTest, DamagedBundleWritesNothing) {
  std::string from = MakeDir("from"), to = MakeDir("to");
  WriteFile(from + "/one", "first file");
  WriteFile(from + "/ckpt/two", "second file");
  ASSERT_TRUE(PackRestartFiles(bundle_, from, {"one", "ckpt"}, Myself(), 0).ok());
  std::string good = BundleBytes();

  SetBundle(good.substr(0, good.size() - 6));
  Status truncated = UnpackRestartFiles(bundle_, to, Myself());
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.message(), "restart bundle truncated at entry 2 (ckpt/two)");
  EXPECT_TRUE(Tree(to).empty());

  std::string corrupt = good;
  corrupt[4] = '\x7f';  // the first path's length, now far beyond the bound
  SetBundle(corrupt);
  Status bad_length = UnpackRestartFiles(bundle_, to, Myself());
  ASSERT_FALSE(bad_length.ok());
  EXPECT_NE(bad_length.message().find("restart bundle entry 1"), std::string::npos) << bad_length.message();
  EXPECT_TRUE(Tree(to).empty());

  SetBundle(good + "junk");
  EXPECT_FALSE(UnpackRestartFiles(bundle_, to, Myself()).ok());
  EXPECT_TRUE(Tree(to).empty());

  SetBundle(good);
  EXPECT_TRUE(UnpackRestartFiles(bundle_, to, Myself()).ok());
  EXPECT_EQ(Contents(to + "/ckpt/two"), "second file");
}

TEST_F(MigrateRestartBundleTest, UnpackReplacesFilesAndSymlinksWithoutFollowing) {
  std::string from = MakeDir("from"), to = MakeDir("to");
  WriteFile(from + "/state", "new state");
  WriteFile(from + "/linked", "new linked");
  ASSERT_TRUE(PackRestartFiles(bundle_, from, {"state", "linked"}, Myself(), 0).ok());
  WriteFile(to + "/state", "an old and longer state");
  std::string victim = dir_ + "/victim";
  WriteFile(victim, "keep me");
  ASSERT_EQ(symlink(victim.c_str(), (to + "/linked").c_str()), 0);
  struct stat before {};
  ASSERT_EQ(stat((to + "/state").c_str(), &before), 0);

  Status unpacked = UnpackRestartFiles(bundle_, to, Myself());
  ASSERT_TRUE(unpacked.ok()) << unpacked.message();
  EXPECT_EQ(Contents(to + "/state"), "new state");
  EXPECT_EQ(Contents(to + "/linked"), "new linked");
  EXPECT_TRUE(std::filesystem::is_regular_file(std::filesystem::symlink_status(to + "/linked")));
  EXPECT_EQ(Contents(victim), "keep me");
  struct stat after {};
  ASSERT_EQ(stat((to + "/state").c_str(), &after), 0);
  EXPECT_NE(after.st_ino, before.st_ino);  // a new file renamed into place
}

TEST_F(MigrateRestartBundleTest, UnpackRefusesASymlinkedDirectoryAndWritesNothing) {
  std::string to = MakeDir("to"), elsewhere = MakeDir("elsewhere");
  SetBundle(BundleBuilder().File("first", "1").File("ckpt/state", "2").End());
  ASSERT_EQ(symlink(elsewhere.c_str(), (to + "/ckpt").c_str()), 0);
  Status unpacked = UnpackRestartFiles(bundle_, to, Myself());
  ASSERT_FALSE(unpacked.ok());
  EXPECT_EQ(unpacked.message(),
            "restart file ckpt/state: cannot make its directory ckpt: a symbolic link is in the way");
  EXPECT_EQ(Tree(to), std::vector<std::string>{"ckpt"});  // "first" was never renamed in
  EXPECT_TRUE(Tree(elsewhere).empty());
}

TEST_F(MigrateRestartBundleTest, PackFollowsNoSymlink) {
  std::string from = MakeDir("from");
  WriteFile(from + "/ckpt/a.bin", "a");
  WriteFile(dir_ + "/outside/secret", "outside");
  ASSERT_EQ(symlink("ckpt/a.bin", (from + "/job.restart").c_str()), 0);
  ASSERT_EQ(symlink((dir_ + "/outside").c_str(), (from + "/linkdir").c_str()), 0);
  ASSERT_EQ(symlink("../../outside/secret", (from + "/ckpt/b.bin").c_str()), 0);

  Result<PackResult> packed =
      PackRestartFiles(bundle_, from, {"job.restart", "linkdir", "linkdir/secret", "ckpt/*"}, Myself(), 0);
  ASSERT_TRUE(packed.ok()) << packed.message();
  EXPECT_EQ(packed->names, std::vector<std::string>{"ckpt/a.bin"});
  const std::vector<std::string> want_skipped = {"job.restart", "linkdir", "linkdir/secret", "ckpt/b.bin"};
  EXPECT_EQ(packed->skipped, want_skipped);
}

TEST_F(MigrateRestartBundleTest, PatternsAndDirectoriesOutsideAreRefused) {
  std::string from = MakeDir("from");
  for (std::string pattern : {"../x", "/etc/passwd", "a/../../b", "./x", ""}) {
    Result<PackResult> packed = PackRestartFiles(bundle_, from, {pattern}, Myself(), 0);
    ASSERT_FALSE(packed.ok()) << pattern;
    EXPECT_TRUE(packed.message().starts_with("restart file pattern ")) << packed.message();
  }
  EXPECT_EQ(PackRestartFiles(bundle_, from, {"../x"}, Myself(), 0).message(),
            "restart file pattern ../x: the path leaves the job's directory");
  EXPECT_FALSE(PackRestartFiles(bundle_, "relative/dir", {"x"}, Myself(), 0).ok());
  Result<PackResult> missing = PackRestartFiles(bundle_, dir_ + "/no-such-dir", {"x"}, Myself(), 0);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.message(),
            "restart files: cannot open the job's directory " + dir_ +
                "/no-such-dir: No such file or directory");
}

// A daemon that is not root acts only for its own user. Run as root, the test
// checks this from a child process that has become nobody.
TEST_F(MigrateRestartBundleTest, NonRootDaemonRefusesAnotherOwner) {
  std::string from = MakeDir("from");
  auto refused_for_other = [&]() {
    Result<PackResult> packed =
        PackRestartFiles(bundle_, from, {"x"}, spool::FileOwner{geteuid() + 1, getegid(), {}}, 0);
    return !packed.ok() && packed.message().find("cannot act for uid") != std::string::npos;
  };
  if (!IsRoot()) {
    EXPECT_TRUE(refused_for_other());
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
}

// ---- Acting as another user (root only) ----

TEST_F(MigrateRestartBundleTest, PackAsTheOwnerCannotReadARootOnlyFile) {
  if (!IsRoot()) GTEST_SKIP() << "needs root to act as another user";
  std::string from = MakeDir("from", kNobody, kNobody, 0755);
  WriteFile(from + "/mine.restart", "nobody's", 0644);
  ASSERT_EQ(chown((from + "/mine.restart").c_str(), kNobody, kNobody), 0);
  WriteFile(from + "/ckpt/state.bin", "root's secret", 0600);

  Result<PackResult> readable = PackRestartFiles(bundle_, from, {"mine.restart"}, kNobodyOwner, 0);
  ASSERT_TRUE(readable.ok()) << readable.message();
  Result<PackResult> packed =
      PackRestartFiles(bundle_, from, {"mine.restart", "ckpt/state.bin"}, kNobodyOwner, 0);
  ASSERT_FALSE(packed.ok());
  EXPECT_EQ(packed.message(), "restart file ckpt/state.bin: Permission denied");
  EXPECT_EQ(BundleBytes().find("root's secret"), std::string::npos);
}

TEST_F(MigrateRestartBundleTest, UnpackAsTheOwnerGivesTheOwnersFiles) {
  if (!IsRoot()) GTEST_SKIP() << "needs root to act as another user";
  std::string from = MakeDir("from"), to = MakeDir("to", kNobody, kNobody, 0700);
  WriteFile(from + "/job.restart", "top", 0644);
  WriteFile(from + "/ckpt/sub/state.bin", "deep", 0600);
  ASSERT_TRUE(PackRestartFiles(bundle_, from, {"job.restart", "ckpt"}, Myself(), 0).ok());

  Status unpacked = UnpackRestartFiles(bundle_, to, kNobodyOwner);
  ASSERT_TRUE(unpacked.ok()) << unpacked.message();
  for (std::string name : {"job.restart", "ckpt", "ckpt/sub", "ckpt/sub/state.bin"}) {
    struct stat info {};
    ASSERT_EQ(lstat((to + "/" + name).c_str(), &info), 0) << name;
    EXPECT_EQ(info.st_uid, kNobody) << name;
    EXPECT_EQ(info.st_gid, kNobody) << name;
  }
  EXPECT_EQ(ModeOf(to + "/ckpt/sub/state.bin"), 0600u);
  EXPECT_EQ(Contents(to + "/ckpt/sub/state.bin"), "deep");
}

TEST_F(MigrateRestartBundleTest, UnpackAsTheOwnerIntoARootDirectoryIsRefused) {
  if (!IsRoot()) GTEST_SKIP() << "needs root to act as another user";
  std::string to = MakeDir("to", 0, 0, 0755);
  SetBundle(BundleBuilder().File("job.restart", "x").End());
  Status unpacked = UnpackRestartFiles(bundle_, to, kNobodyOwner);
  ASSERT_FALSE(unpacked.ok());
  EXPECT_EQ(unpacked.message(), "restart file job.restart: Permission denied");
  EXPECT_TRUE(Tree(to).empty());
}

}  // namespace
}  // namespace queue::migrate
