// Tests of what a submit host keeps between a job's runs: seals written when a
// file is kept, the check of a file against its seal (a flipped byte, a
// truncation, a deletion), the choice of restart bundle when the kept one is
// damaged, and the report of damaged or missing output pieces.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "daemon/kept_files.h"
#include "spool/file_seal.h"
#include "util/sha256.h"

namespace queue::daemon {
namespace {

using spool::SealVerdict;

std::string Contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void Write(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// Flips one byte of the file at `path`, in place (its size stays).
void FlipByte(const std::string& path, size_t at) {
  std::string bytes = Contents(path);
  bytes[at] = static_cast<char>(bytes[at] ^ 0x01);
  Write(path, bytes);
}

class KeptFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("queue-kept-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  // A file with `bytes`, sealed as it is.
  std::string Sealed(const std::string& name, const std::string& bytes) {
    Write(Path(name), bytes);
    EXPECT_TRUE(spool::SealFile(Path(name)).ok());
    return Path(name);
  }
  std::string dir_;
};

TEST_F(KeptFilesTest, ASealedFileChecksGoodAndAnyChangeIsFound) {
  std::string file = Sealed("bundle", "restart state at step 42\n");
  EXPECT_EQ(spool::CheckSeal(file).verdict, SealVerdict::kGood);
  FlipByte(file, 20);
  auto flipped = spool::CheckSeal(file);
  EXPECT_EQ(flipped.verdict, SealVerdict::kDamaged);
  EXPECT_NE(flipped.why.find("SHA-256"), std::string::npos) << flipped.why;
  std::filesystem::resize_file(file, 5);
  auto cut = spool::CheckSeal(file);
  EXPECT_EQ(cut.verdict, SealVerdict::kDamaged);
  EXPECT_NE(cut.why.find("5 bytes, not the 25"), std::string::npos) << cut.why;
}

TEST_F(KeptFilesTest, ADeletedFileIsMissingAndOneNeverKeptIsAbsent) {
  std::string file = Sealed("piece", "output\n");
  ::unlink(file.c_str());
  auto check = spool::CheckSeal(file);
  EXPECT_EQ(check.verdict, SealVerdict::kMissing);
  EXPECT_NE(check.why.find("gone"), std::string::npos) << check.why;
  EXPECT_EQ(spool::CheckSeal(Path("never")).verdict, SealVerdict::kAbsent);
  Write(Path("old"), "kept by an older queued\n");
  EXPECT_EQ(spool::CheckSeal(Path("old")).verdict, SealVerdict::kUnsealed);
}

TEST_F(KeptFilesTest, AnUnreadableSealCountsAsDamage) {
  std::string file = Sealed("bundle", "state\n");
  Write(spool::SealPath(file), "not a seal\n");
  EXPECT_EQ(spool::CheckSeal(file).verdict, SealVerdict::kDamaged);
}

TEST_F(KeptFilesTest, ASealWrittenFromTheSendersDigestChecksTheFile) {
  Write(Path("bundle"), "abc");
  Sha256 digest;
  digest.Update("abc");
  ASSERT_TRUE(spool::WriteSeal(Path("bundle"), spool::FileSeal{3, digest.Final()}).ok());
  EXPECT_EQ(spool::CheckSeal(Path("bundle")).verdict, SealVerdict::kGood);
  ASSERT_TRUE(spool::WriteSeal(Path("bundle"), spool::FileSeal{3, std::string(32, 'x')}).ok());
  EXPECT_EQ(spool::CheckSeal(Path("bundle")).verdict, SealVerdict::kDamaged);
}

TEST_F(KeptFilesTest, KeepingANewBundleKeepsTheOldOneAsThePrevious) {
  KeepInput input{Path("incoming"), std::nullopt, Path("kept"), Path("previous"), "", std::nullopt, ""};
  Write(input.bundle, "first");
  ASSERT_TRUE(KeepCheckpoint(input).bundle);
  Write(input.bundle, "second");
  Kept kept = KeepCheckpoint(input);
  EXPECT_TRUE(kept.bundle);
  EXPECT_EQ(kept.note, "");
  EXPECT_EQ(Contents(Path("kept")), "second");
  EXPECT_EQ(Contents(Path("previous")), "first");
  EXPECT_EQ(spool::CheckSeal(Path("kept")).verdict, SealVerdict::kGood);
  EXPECT_EQ(spool::CheckSeal(Path("previous")).verdict, SealVerdict::kGood);
}

TEST_F(KeptFilesTest, AGoodKeptBundleIsUsedAsItIs) {
  Sealed("kept", "second");
  Sealed("previous", "first");
  BundleChoice choice = ChooseRestartBundle(Path("kept"), Path("previous"));
  EXPECT_FALSE(choice.checked_bad);
  EXPECT_EQ(choice.note, "");
  EXPECT_EQ(Contents(Path("kept")), "second");
}

TEST_F(KeptFilesTest, ADamagedBundleGivesWayToThePreviousOne) {
  Sealed("kept", "second");
  Sealed("previous", "first");
  FlipByte(Path("kept"), 0);
  BundleChoice choice = ChooseRestartBundle(Path("kept"), Path("previous"));
  EXPECT_TRUE(choice.checked_bad);
  EXPECT_TRUE(choice.from_previous);
  EXPECT_NE(choice.note.find("checkpoint before"), std::string::npos) << choice.note;
  EXPECT_EQ(Contents(Path("kept")), "first");
  EXPECT_EQ(spool::CheckSeal(Path("kept")).verdict, SealVerdict::kGood);
  EXPECT_FALSE(std::filesystem::exists(Path("previous")));
}

TEST_F(KeptFilesTest, ADamagedBundleWithNoGoodPreviousMeansAFreshStart) {
  Sealed("kept", "second");
  FlipByte(Path("kept"), 1);
  BundleChoice alone = ChooseRestartBundle(Path("kept"), Path("previous"));
  EXPECT_TRUE(alone.checked_bad);
  EXPECT_FALSE(alone.from_previous);
  EXPECT_NE(alone.note.find("starts again from the beginning"), std::string::npos) << alone.note;
  EXPECT_FALSE(std::filesystem::exists(Path("kept")));
  EXPECT_FALSE(std::filesystem::exists(spool::SealPath(Path("kept"))));
  // Both bad: neither is used, and both go.
  Sealed("kept", "second");
  Sealed("previous", "first");
  ::unlink(Path("kept").c_str());
  FlipByte(Path("previous"), 0);
  BundleChoice both = ChooseRestartBundle(Path("kept"), Path("previous"));
  EXPECT_FALSE(both.from_previous);
  EXPECT_NE(both.note.find("gone from the spool"), std::string::npos) << both.note;
  EXPECT_NE(both.note.find("so are those of the checkpoint before"), std::string::npos) << both.note;
  EXPECT_FALSE(std::filesystem::exists(Path("previous")));
}

TEST_F(KeptFilesTest, MissingAndDamagedOutputPiecesAreReported) {
  Sealed("out.0", "run 0\n");
  Sealed("out.1", "run 1\n");
  Sealed("out.2", "run 2\n");
  ::unlink(Path("out.1").c_str());
  FlipByte(Path("out.2"), 0);
  auto pieces = CheckOutputPieces({Path("out.0"), Path("out.1"), Path("out.2"), Path("out.3")},
                                  {"run 0", "run 1", "run 2", "run 3"});
  ASSERT_EQ(pieces.size(), 3u);  // run 3 kept none
  EXPECT_TRUE(pieces[0].include);
  EXPECT_EQ(pieces[0].problem, "");
  EXPECT_FALSE(pieces[1].include);
  EXPECT_NE(pieces[1].problem.find("its output from run 1 is missing"), std::string::npos) << pieces[1].problem;
  EXPECT_TRUE(pieces[2].include);
  EXPECT_NE(pieces[2].problem.find("its output from run 2 is damaged"), std::string::npos) << pieces[2].problem;
}

// The job is queued again as soon as its output so far is kept, before the
// worker seals it: a piece deleted in between must still be found missing.
TEST_F(KeptFilesTest, APieceDeletedBeforeTheWorkerSealsItIsStillFoundMissing) {
  const std::string output = "run 0 wrote this\n";
  Write(Path("incoming.out"), output);
  KeepInput in;
  in.output = Path("incoming.out");
  Sha256 digest;
  digest.Update(output);
  in.output_seal = spool::FileSeal{output.size(), digest.Final()};
  in.piece = Path("out.0");
  MoveCheckpointFiles(in);
  ASSERT_EQ(Contents(Path("out.0")), output);
  ::unlink(Path("out.0").c_str());
  SealCheckpointFiles(in, false);
  auto pieces = CheckOutputPieces({Path("out.0")}, {"run 0"});
  ASSERT_EQ(pieces.size(), 1u) << "the deleted piece was taken for one never kept";
  EXPECT_FALSE(pieces[0].include);
  EXPECT_NE(pieces[0].problem.find("its output from run 0 is missing"), std::string::npos) << pieces[0].problem;
}

}  // namespace
}  // namespace queue::daemon
