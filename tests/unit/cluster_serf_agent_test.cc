// The Serf agent's command line, and the keys it gossips with (derived from
// the cluster keys, never the keys themselves), and HKDF against RFC 5869.
#include "cluster/serf_agent.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "auth/derived_key.h"

namespace queue::cluster {
namespace {

std::string Hex(const std::string& raw) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// RFC 5869, test case 3 (SHA-256, no salt, no info).
TEST(DerivedKey, IsHkdfSha256) {
  auto okm = auth::DeriveKey(std::string(22, '\x0b'), "", 42);
  ASSERT_TRUE(okm.ok()) << okm.message();
  EXPECT_EQ(Hex(*okm), "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
  EXPECT_EQ(auth::Base64("hello"), "aGVsbG8=");
  EXPECT_FALSE(auth::DeriveKey("", "x", 32).ok());
}

TEST(SerfAgent, GossipKeysAreDerivedPerClusterKeyAndWrittenForOwnerOnly) {
  const std::string k1(32, 'a'), k2(32, 'b');
  auto g1 = GossipKey(k1), g2 = GossipKey(k2);
  ASSERT_TRUE(g1.ok() && g2.ok());
  EXPECT_EQ(g1->size(), 44U) << "32 bytes in base64: an AES-256 key for Serf";
  EXPECT_NE(*g1, *g2);
  EXPECT_EQ(*g1, *GossipKey(k1)) << "every host derives the same";
  EXPECT_EQ(g1->find(auth::Base64(k1)), std::string::npos) << "not the cluster key";
  auto dir = std::filesystem::temp_directory_path() / ("serf-keyring-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "keyring").string();
  ASSERT_TRUE(WriteKeyring(path, {k1, k2}).ok());
  std::ifstream in(path);
  auto keys = nlohmann::json::parse(in);
  EXPECT_EQ(keys, nlohmann::json({*g1, *g2})) << "the current key first: the one the agent sends with";
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  EXPECT_FALSE(WriteKeyring(path, {}).ok());
  std::filesystem::remove_all(dir);
}

TEST(SerfAgent, CommandLineNamesTheNodeAddressesKeyringAndTags) {
  SerfAgentConfig c;
  c.node = "10.0.0.1:15000";
  c.bind = "10.0.0.1:15001";
  c.rpc = "127.0.0.1:15002";
  c.keyring_file = "/var/spool/queue/serf.keyring";
  c.snapshot_file = "/var/spool/queue/serf.snapshot";
  c.join = {"10.0.0.2:15001", "10.0.0.3:15001"};
  c.tags = {{"queue", "10.0.0.1:15000"}};
  auto argv = SerfAgentArgv(c);
  auto after = [&](const std::string& flag) {
    auto it = std::find(argv.begin(), argv.end(), flag);
    return it == argv.end() || it + 1 == argv.end() ? std::string() : *(it + 1);
  };
  EXPECT_EQ(argv[0], "serf");
  EXPECT_EQ(argv[1], "agent");
  EXPECT_EQ(after("-node"), "10.0.0.1:15000");
  EXPECT_EQ(after("-bind"), "10.0.0.1:15001");
  EXPECT_EQ(after("-rpc-addr"), "127.0.0.1:15002");
  EXPECT_EQ(after("-keyring-file"), c.keyring_file);
  EXPECT_EQ(after("-snapshot"), c.snapshot_file);
  EXPECT_EQ(after("-tag"), "queue=10.0.0.1:15000");
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "-retry-join"), 2);
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "-encrypt"), 0) << "the key is never on a command line (ps shows it)";
}

}  // namespace
}  // namespace queue::cluster
