// Tests of Sha256 against published test vectors (FIPS 180-2, NIST CAVS), in one
// piece and in many, and of hashing a file by descriptor.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "util/sha256.h"

namespace queue {
namespace {

std::string HexDigest(std::string_view data) {
  Sha256 digest;
  digest.Update(data);
  return ToHex(digest.Final());
}

TEST(UtilSha256, KnownVectors) {
  EXPECT_EQ(HexDigest(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(HexDigest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexDigest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(HexDigest(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(UtilSha256, FinalIsThirtyTwoRawBytes) {
  Sha256 digest;
  digest.Update("abc");
  std::string raw = digest.Final();
  ASSERT_EQ(raw.size(), Sha256::kDigestBytes);
  EXPECT_EQ(static_cast<unsigned char>(raw[0]), 0xba);
  EXPECT_EQ(static_cast<unsigned char>(raw[31]), 0xad);
}

TEST(UtilSha256, PiecesGiveTheSameDigestAsTheWhole) {
  std::string data;
  for (int i = 0; i < 100000; ++i) data.push_back(static_cast<char>(i * 7 + i / 251));
  Sha256 pieces;
  for (size_t at = 0, step = 1; at < data.size(); at += step, step = step * 3 % 1021 + 1) {
    pieces.Update(std::string_view(data).substr(at, step));
  }
  pieces.Update("");
  EXPECT_EQ(ToHex(pieces.Final()), HexDigest(data));
}

TEST(UtilSha256, FinalStartsANewDigest) {
  Sha256 digest;
  digest.Update("something else");
  (void)digest.Final();
  digest.Update("abc");
  EXPECT_EQ(ToHex(digest.Final()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(ToHex(digest.Final()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(UtilSha256, MovedDigestContinues) {
  Sha256 first;
  first.Update("a");
  Sha256 second(std::move(first));
  second.Update("bc");
  EXPECT_EQ(ToHex(second.Final()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(UtilSha256, HexIsLowercaseTwoDigitsAByte) {
  EXPECT_EQ(ToHex(std::string("\x00\x0f\xa0\xff", 4)), "000fa0ff");
  EXPECT_EQ(ToHex(""), "");
}

TEST(UtilSha256, FileIsHashedFromTheStartWithoutMovingItsOffset) {
  char path[] = "/tmp/util_sha256_test.XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  std::string data(200000, 'q');
  data += "abc";
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ASSERT_EQ(lseek(fd, 1234, SEEK_SET), 1234);

  Result<std::string> digest = Sha256OfFile(fd);
  ASSERT_TRUE(digest.ok()) << digest.message();
  EXPECT_EQ(ToHex(*digest), HexDigest(data));
  EXPECT_EQ(lseek(fd, 0, SEEK_CUR), 1234);
  close(fd);
}

TEST(UtilSha256, EmptyFileHasTheEmptyDigest) {
  char path[] = "/tmp/util_sha256_test.XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  Result<std::string> digest = Sha256OfFile(fd);
  ASSERT_TRUE(digest.ok()) << digest.message();
  EXPECT_EQ(ToHex(*digest),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  close(fd);
}

TEST(UtilSha256, UnreadableDescriptorIsReported) {
  Result<std::string> digest = Sha256OfFile(-1);
  ASSERT_FALSE(digest.ok());
  EXPECT_NE(digest.message().find("Bad file descriptor"), std::string::npos)
      << digest.message();
}

}  // namespace
}  // namespace queue
