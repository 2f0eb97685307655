// Tests of the cluster key file: creation, permissions and refusal of unsafe or
// damaged files.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <openssl/crypto.h>

#include "auth/cluster_key.h"

namespace queue::auth {
namespace {

class AuthKeyFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = std::filesystem::temp_directory_path() / "auth_key_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/cluster.key";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `content` to path_ with exactly `mode`.
  void WriteFile(const std::string& content, mode_t mode) {
    std::ofstream(path_) << content;
    ASSERT_EQ(::chmod(path_.c_str(), mode), 0);
  }

  std::string ReadFile() {
    std::ifstream in(path_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string dir_;
  std::string path_;
};

const std::string kHexKey = "00112233445566778899aabbccddeeff0f1e2d3c4b5a69788796a5b4c3d2e1f0";

TEST_F(AuthKeyFile, WrittenKeyLoadsBackAsTheSameBytes) {
  ASSERT_TRUE(WriteNewKeyFile(path_).ok());
  std::string text = ReadFile();
  ASSERT_EQ(text.size(), 65u);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find_first_not_of("0123456789abcdef"), 64u);

  Result<std::string> key = LoadKeyFile(path_);
  ASSERT_TRUE(key.ok()) << key.message();
  ASSERT_EQ(key->size(), kKeyBytes);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char b : *key) {
    hex += kDigits[b >> 4];
    hex += kDigits[b & 15];
  }
  EXPECT_EQ(hex + "\n", text);
}

TEST_F(AuthKeyFile, NewFileHasMode0600EvenUnderAPermissiveUmask) {
  mode_t old = ::umask(0);
  Status written = WriteNewKeyFile(path_);
  ::umask(old);
  ASSERT_TRUE(written.ok()) << written.message();
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(AuthKeyFile, TwoNewKeysDiffer) {
  ASSERT_TRUE(WriteNewKeyFile(path_).ok());
  std::string other = dir_ + "/other.key";
  ASSERT_TRUE(WriteNewKeyFile(other).ok());
  EXPECT_NE(LoadKeyFile(path_).value(), LoadKeyFile(other).value());
}

TEST_F(AuthKeyFile, RefusesToOverwriteAnExistingFile) {
  WriteFile("precious\n", 0600);
  Status written = WriteNewKeyFile(path_);
  ASSERT_FALSE(written.ok());
  EXPECT_NE(written.message().find("overwrite"), std::string::npos) << written.message();
  EXPECT_NE(written.message().find(path_), std::string::npos) << written.message();
  EXPECT_EQ(ReadFile(), "precious\n");
}

TEST_F(AuthKeyFile, RefusesToWriteThroughASymlink) {
  std::string target = dir_ + "/target";
  ASSERT_EQ(::symlink(target.c_str(), path_.c_str()), 0);
  EXPECT_FALSE(WriteNewKeyFile(path_).ok());
  EXPECT_FALSE(std::filesystem::exists(target));
}

TEST_F(AuthKeyFile, LoadsUppercaseDigitsAndTrailingWhitespace) {
  std::string upper = kHexKey;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  WriteFile(upper + " \r\n\n", 0600);
  Result<std::string> key = LoadKeyFile(path_);
  ASSERT_TRUE(key.ok()) << key.message();
  EXPECT_EQ(static_cast<unsigned char>((*key)[0]), 0x00);
  EXPECT_EQ(static_cast<unsigned char>((*key)[1]), 0x11);
  EXPECT_EQ(static_cast<unsigned char>((*key)[31]), 0xf0);
}

TEST_F(AuthKeyFile, AcceptsReadOnlyMode0400) {
  WriteFile(kHexKey + "\n", 0400);
  EXPECT_TRUE(LoadKeyFile(path_).ok());
}

TEST_F(AuthKeyFile, RefusesGroupOrWorldAccess) {
  for (mode_t mode : {0644, 0640, 0604, 0620, 0602, 0610}) {
    WriteFile(kHexKey + "\n", mode);
    Result<std::string> key = LoadKeyFile(path_);
    ASSERT_FALSE(key.ok()) << "mode " << std::oct << mode;
    EXPECT_NE(key.message().find(path_), std::string::npos) << key.message();
    EXPECT_NE(key.message().find("chmod 600"), std::string::npos) << key.message();
  }
}

TEST_F(AuthKeyFile, RefusesAMissingFileNamingIt) {
  Result<std::string> key = LoadKeyFile(path_);
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.message().find(path_), std::string::npos) << key.message();
  EXPECT_NE(key.message().find("--keygen"), std::string::npos) << key.message();
}

TEST_F(AuthKeyFile, RefusesADirectory) {
  ASSERT_EQ(::mkdir(path_.c_str(), 0700), 0);
  Result<std::string> key = LoadKeyFile(path_);
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.message().find("not a regular file"), std::string::npos) << key.message();
}

TEST_F(AuthKeyFile, RefusesAFifoWithoutBlocking) {
  ASSERT_EQ(::mkfifo(path_.c_str(), 0600), 0);
  Result<std::string> key = LoadKeyFile(path_);
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.message().find("not a regular file"), std::string::npos) << key.message();
}

TEST_F(AuthKeyFile, RefusesBadContent) {
  const std::string cases[] = {
      "",
      "\n",
      kHexKey.substr(0, 62) + "\n",                 // too short
      kHexKey + "00\n",                             // too long
      kHexKey.substr(0, 63) + "g\n",                // not hex
      " " + kHexKey + "\n",                         // leading whitespace
      kHexKey.substr(0, 32) + " " + kHexKey.substr(32) + "\n",  // embedded space
      kHexKey + "\n" + kHexKey + "\n" + kHexKey + "\n",  // three keys
      kHexKey + "\n\n" + kHexKey + "\n",            // a blank line between keys
      kHexKey + "\n" + kHexKey.substr(0, 62) + "\n",  // a short second key
      kHexKey + std::string(600, ' '),              // oversized (over 512 bytes)
  };
  for (const std::string& content : cases) {
    WriteFile(content, 0600);
    Result<std::string> key = LoadKeyFile(path_);
    ASSERT_FALSE(key.ok()) << "accepted: [" << content << "]";
    EXPECT_NE(key.message().find(path_), std::string::npos) << key.message();
  }
}

const std::string kOtherHexKey = "ffeeddccbbaa99887766554433221100f0e1d2c3b4a5968778695a4b3c2d1e0f";

TEST_F(AuthKeyFile, OneKeyFileHoldsOnlyTheCurrentKey) {
  WriteFile(kHexKey + "\n", 0600);
  Result<std::vector<std::string>> keys = LoadKeyFileKeys(path_);
  ASSERT_TRUE(keys.ok()) << keys.message();
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ(keys->front(), LoadKeyFile(path_).value());
}

TEST_F(AuthKeyFile, TwoKeyFileHoldsTheCurrentKeyFirstThenTheOther) {
  WriteFile(kHexKey + "  \r\n" + kOtherHexKey + "\n\n", 0600);
  Result<std::vector<std::string>> keys = LoadKeyFileKeys(path_);
  ASSERT_TRUE(keys.ok()) << keys.message();
  ASSERT_EQ(keys->size(), 2u);
  ASSERT_EQ((*keys)[0].size(), kKeyBytes);
  ASSERT_EQ((*keys)[1].size(), kKeyBytes);
  EXPECT_EQ(static_cast<unsigned char>((*keys)[0][0]), 0x00);
  EXPECT_EQ(static_cast<unsigned char>((*keys)[1][0]), 0xff);
  EXPECT_EQ(static_cast<unsigned char>((*keys)[1][31]), 0x0f);
  // The current key is the first one.
  EXPECT_EQ(LoadKeyFile(path_).value(), (*keys)[0]);
}

TEST_F(AuthKeyFile, TwoKeyFileIsCheckedForPermissionsToo) {
  WriteFile(kHexKey + "\n" + kOtherHexKey + "\n", 0640);
  Result<std::vector<std::string>> keys = LoadKeyFileKeys(path_);
  ASSERT_FALSE(keys.ok());
  EXPECT_NE(keys.message().find("chmod 600"), std::string::npos) << keys.message();
}

TEST(AuthKeyIdentity, IsDerivedFromTheKeyAndDiffersBetweenKeys) {
  std::string a = RandomBytes(kKeyBytes), b = RandomBytes(kKeyBytes);
  std::string id_a = KeyIdentity(a), id_b = KeyIdentity(b);
  EXPECT_EQ(id_a, KeyIdentity(a));
  EXPECT_NE(id_a, id_b);
  ASSERT_EQ(id_a.size(), 6u + 8u);
  EXPECT_EQ(id_a.rfind("queue-", 0), 0u);
  EXPECT_EQ(id_a.find_first_not_of("0123456789abcdef", 6), std::string::npos) << id_a;
  // SHA-256 of 32 zero bytes begins 66687aad.
  EXPECT_EQ(KeyIdentity(std::string(kKeyBytes, '\0')), "queue-66687aad");
}

TEST_F(AuthKeyFile, RefusesAFileOwnedByAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the file to another user";
  WriteFile(kHexKey + "\n", 0600);
  ASSERT_EQ(::chown(path_.c_str(), 65534, 65534), 0);
  Result<std::string> key = LoadKeyFile(path_);
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.message().find("owned by uid 65534"), std::string::npos) << key.message();
}

TEST(AuthRandomBytes, ReturnsTheRequestedLengthAndVaries) {
  EXPECT_EQ(RandomBytes(0).size(), 0u);
  std::string a = RandomBytes(kKeyBytes);
  std::string b = RandomBytes(kKeyBytes);
  EXPECT_EQ(a.size(), kKeyBytes);
  EXPECT_NE(a, b);
}

TEST(AuthRandomBytes, FillsLongRequestsToTheEnd) {
  // getrandom(2) may return less than asked beyond 256 bytes; the rest is drawn too.
  constexpr std::size_t kLong = (3 << 20) + 5;
  std::string bytes = RandomBytes(kLong);
  ASSERT_EQ(bytes.size(), kLong);
  EXPECT_NE(bytes.substr(kLong - 64), std::string(64, '\0'));
}

// OpenSSL's allocations in this process, counted from its start.
std::atomic<int> openssl_allocations{0};
void* CountingMalloc(std::size_t n, const char*, int) {
  ++openssl_allocations;
  return std::malloc(n);
}
void* CountingRealloc(void* p, std::size_t n, const char*, int) {
  ++openssl_allocations;
  return std::realloc(p, n);
}
void PlainFree(void* p, const char*, int) { std::free(p); }

// The stub draws its session key before it submits the job: setting up
// OpenSSL's generator there cost every interactive job about 4 million
// instructions before the daemon heard of it. Run in a fresh child (gtest's
// "threadsafe" death tests start the test binary again), where OpenSSL has not
// been used yet and so has allocated nothing.
TEST(AuthRandomBytes, LeavesOpenSslAlone) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        if (CRYPTO_set_mem_functions(CountingMalloc, CountingRealloc, PlainFree) != 1) std::exit(10);
        std::string key = RandomBytes(kKeyBytes);
        if (key.size() != kKeyBytes) std::exit(11);
        std::exit(openssl_allocations.load() == 0 ? 0 : 12);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace queue::auth
