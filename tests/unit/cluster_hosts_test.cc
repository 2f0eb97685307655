// Tests of the hosts file: entry syntax, file parsing, the permission checks on
// loading, finding this daemon's own entry, and the joined list for messages.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cluster/hosts_file.h"

namespace queue::cluster {
namespace {

HostEntry Entry(const std::string& text) {
  auto parsed = ParseHostEntry(text);
  EXPECT_TRUE(parsed.ok()) << text << ": " << parsed.message();
  return parsed.ok() ? *parsed : HostEntry{};
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(ClusterHostEntry, BareNameTakesDefaultPort) {
  HostEntry e = Entry("node1.example.org");
  EXPECT_EQ(e.entry, "node1.example.org");
  EXPECT_EQ(e.host, "node1.example.org");
  EXPECT_EQ(e.port, kDefaultPort);
}

TEST(ClusterHostEntry, NameWithPort) {
  HostEntry e = Entry("127.0.0.1:15002");
  EXPECT_EQ(e.entry, "127.0.0.1:15002");
  EXPECT_EQ(e.host, "127.0.0.1");
  EXPECT_EQ(e.port, 15002);
}

TEST(ClusterHostEntry, BracketedIpv6WithAndWithoutPort) {
  HostEntry with_port = Entry("[::1]:1430");
  EXPECT_EQ(with_port.host, "::1");
  EXPECT_EQ(with_port.port, 1430);
  EXPECT_EQ(with_port.entry, "[::1]:1430");

  HostEntry bare = Entry("[fe80::1]");
  EXPECT_EQ(bare.host, "fe80::1");
  EXPECT_EQ(bare.port, kDefaultPort);
}

TEST(ClusterHostEntry, PortBounds) {
  EXPECT_EQ(Entry("h:1").port, 1);
  EXPECT_EQ(Entry("h:65535").port, 65535);
  for (const char* bad : {"h:0", "h:65536", "h:abc", "h:", "h:12x", "h:-1", "h:+5", "[::1]:0",
                          "[::1]:65536", "[::1]:", "h:99999999999"}) {
    auto e = ParseHostEntry(bad);
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_TRUE(Contains(e.message(), "bad port")) << bad << ": " << e.message();
    EXPECT_TRUE(Contains(e.message(), bad)) << e.message();
  }
}

TEST(ClusterHostEntry, EmptyAndOverlongAreRefused) {
  EXPECT_FALSE(ParseHostEntry("").ok());
  EXPECT_TRUE(ParseHostEntry(std::string(255, 'a')).ok());
  EXPECT_FALSE(ParseHostEntry(std::string(256, 'a')).ok());
}

TEST(ClusterHostEntry, MissingHostIsRefused) {
  for (const char* bad : {":1421", "[]:1421", "[]"}) {
    auto e = ParseHostEntry(bad);
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_TRUE(Contains(e.message(), "no host name")) << e.message();
  }
}

TEST(ClusterHostEntry, BadCharactersAreRefused) {
  for (const char* bad : {"no de", "node/1", "node;rm", "n\xc3\xa9", "node\t1", "[::1 ]:5", "a@b"}) {
    auto e = ParseHostEntry(bad);
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_TRUE(Contains(e.message(), "bad character")) << bad << ": " << e.message();
  }
}

TEST(ClusterHostEntry, UnbracketedIpv6IsRefusedWithAHint) {
  for (const char* bad : {"a:b:c", "::1", "fe80::1:1421"}) {
    auto e = ParseHostEntry(bad);
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_TRUE(Contains(e.message(), "[addr]:port")) << e.message();
  }
}

TEST(ClusterHostEntry, BracketSyntaxErrors) {
  auto unclosed = ParseHostEntry("[::1:1421");
  ASSERT_FALSE(unclosed.ok());
  EXPECT_TRUE(Contains(unclosed.message(), "unclosed")) << unclosed.message();
  auto junk = ParseHostEntry("[::1]x1421");
  ASSERT_FALSE(junk.ok());
  EXPECT_TRUE(Contains(junk.message(), "junk")) << junk.message();
}

TEST(ClusterHostsFile, CommentsBlanksAndTrailingComments) {
  const std::string text =
      "# the cluster\n"
      "\n"
      "   node1\n"
      "\tnode2:1500   # second daemon\n"
      "node3#no blank before the comment\n"
      "  # indented comment\n"
      "node4\r\n"
      "   \t  \n";
  auto hosts = ParseHostsFile(text, "qhostsfile");
  ASSERT_TRUE(hosts.ok()) << hosts.message();
  ASSERT_EQ(hosts->size(), 4u);
  EXPECT_EQ((*hosts)[0], (HostEntry{"node1", "node1", kDefaultPort}));
  EXPECT_EQ((*hosts)[1], (HostEntry{"node2:1500", "node2", 1500}));
  EXPECT_EQ((*hosts)[2], (HostEntry{"node3", "node3", kDefaultPort}));
  EXPECT_EQ((*hosts)[3], (HostEntry{"node4", "node4", kDefaultPort}));
}

TEST(ClusterHostsFile, NameEndsAtTheFirstBlankAsInTheOriginal) {
  auto hosts = ParseHostsFile("node1 ignored words\nnode2\tx:y:z\n", "f");
  ASSERT_TRUE(hosts.ok()) << hosts.message();
  ASSERT_EQ(hosts->size(), 2u);
  EXPECT_EQ((*hosts)[0].entry, "node1");
  EXPECT_EQ((*hosts)[1].entry, "node2");
}

TEST(ClusterHostsFile, LastLineWithoutNewline) {
  auto hosts = ParseHostsFile("a\nb", "f");
  ASSERT_TRUE(hosts.ok()) << hosts.message();
  ASSERT_EQ(hosts->size(), 2u);
  EXPECT_EQ((*hosts)[1].host, "b");
}

TEST(ClusterHostsFile, DuplicatesAreFoldedKeepingTheFirst) {
  auto hosts = ParseHostsFile("a\nb:1500\na:1421\nb:1500\nb:1501\na\n", "f");
  ASSERT_TRUE(hosts.ok()) << hosts.message();
  ASSERT_EQ(hosts->size(), 3u);
  EXPECT_EQ((*hosts)[0].entry, "a");
  EXPECT_EQ((*hosts)[1].entry, "b:1500");
  EXPECT_EQ((*hosts)[2].entry, "b:1501");
}

TEST(ClusterHostsFile, EmptyFileNamesTheFile) {
  for (const char* text : {"", "\n\n", "# only a comment\n   # another\n"}) {
    auto hosts = ParseHostsFile(text, "/etc/queue/hosts");
    ASSERT_FALSE(hosts.ok()) << '"' << text << '"';
    EXPECT_TRUE(Contains(hosts.message(), "/etc/queue/hosts")) << hosts.message();
    EXPECT_TRUE(Contains(hosts.message(), "no hosts")) << hosts.message();
  }
}

TEST(ClusterHostsFile, ErrorsNameFileAndLine) {
  auto hosts = ParseHostsFile("# hosts\nnode1\nnode2:0\nnode3\n", "hosts.txt");
  ASSERT_FALSE(hosts.ok());
  EXPECT_TRUE(Contains(hosts.message(), "hosts.txt:3: ")) << hosts.message();
  EXPECT_TRUE(Contains(hosts.message(), "node2:0")) << hosts.message();

  auto first = ParseHostsFile("a:b:c\n", "h");
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.message().rfind("h:1: ", 0), 0u) << first.message();
}

class ClusterHostsLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("cluster_hosts_test." + std::to_string(getpid()) + "." +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "hosts").string();
    std::ofstream(path_) << "# test cluster\nnode1\nnode2:1500\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(ClusterHostsLoad, Accepts0644) {
  ASSERT_EQ(chmod(path_.c_str(), 0644), 0);
  auto hosts = LoadHostsFile(path_);
  ASSERT_TRUE(hosts.ok()) << hosts.message();
  ASSERT_EQ(hosts->size(), 2u);
  EXPECT_EQ((*hosts)[1].port, 1500);
}

TEST_F(ClusterHostsLoad, RefusesGroupOrWorldWritable) {
  for (mode_t mode : {0664, 0646, 0666, 0620}) {
    ASSERT_EQ(chmod(path_.c_str(), mode), 0);
    auto hosts = LoadHostsFile(path_);
    ASSERT_FALSE(hosts.ok()) << std::oct << mode;
    EXPECT_TRUE(Contains(hosts.message(), "writable by group or others")) << hosts.message();
    EXPECT_TRUE(Contains(hosts.message(), path_)) << hosts.message();
  }
}

TEST_F(ClusterHostsLoad, RefusesAFileOfAnotherUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give the file away";
  ASSERT_EQ(chmod(path_.c_str(), 0644), 0);
  ASSERT_EQ(chown(path_.c_str(), 54321, 54321), 0);
  auto hosts = LoadHostsFile(path_);
  ASSERT_FALSE(hosts.ok());
  EXPECT_TRUE(Contains(hosts.message(), "owned by another user")) << hosts.message();
}

TEST_F(ClusterHostsLoad, MissingFileAndDirectoryAreErrors) {
  auto missing = LoadHostsFile((dir_ / "absent").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(Contains(missing.message(), "absent")) << missing.message();
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  auto directory = LoadHostsFile(dir_.string());
  ASSERT_FALSE(directory.ok());
  EXPECT_TRUE(Contains(directory.message(), "not a regular file")) << directory.message();
}

TEST_F(ClusterHostsLoad, ParseErrorsNameThePath) {
  std::ofstream(path_) << "node1\nbad/host\n";
  ASSERT_EQ(chmod(path_.c_str(), 0644), 0);
  auto hosts = LoadHostsFile(path_);
  ASSERT_FALSE(hosts.ok());
  EXPECT_TRUE(Contains(hosts.message(), path_ + ":2: ")) << hosts.message();
}

TEST(ClusterFindSelf, ExactEntry) {
  std::vector<HostEntry> hosts = {Entry("10.0.0.1:15001"), Entry("10.0.0.1:15002"),
                                  Entry("10.0.0.2:15002")};
  EXPECT_EQ(FindSelf(hosts, Entry("10.0.0.1:15002")), 1u);
  EXPECT_EQ(FindSelf(hosts, Entry("10.0.0.2:15002")), 2u);
}

TEST(ClusterFindSelf, ResolvesNamesToTheListenAddress) {
  std::vector<HostEntry> hosts = {Entry("10.255.255.1:15002"), Entry("localhost:15002")};
  auto self = FindSelf(hosts, Entry("127.0.0.1:15002"));
  ASSERT_TRUE(self.has_value());
  EXPECT_EQ(*self, 1u);
}

TEST(ClusterFindSelf, PortMismatchFindsNothing) {
  std::vector<HostEntry> hosts = {Entry("localhost:15002"), Entry("127.0.0.1:15003")};
  EXPECT_EQ(FindSelf(hosts, Entry("127.0.0.1:15004")), std::nullopt);
  EXPECT_EQ(FindSelf(hosts, Entry("127.0.0.1")), std::nullopt);
  EXPECT_EQ(FindSelf({}, Entry("127.0.0.1:15002")), std::nullopt);
}

TEST(ClusterFindSelf, ExactMatchWinsOverAnEarlierResolvedOne) {
  std::vector<HostEntry> hosts = {Entry("localhost:15002"), Entry("127.0.0.1:15002")};
  EXPECT_EQ(FindSelf(hosts, Entry("127.0.0.1:15002")), 1u);
}

TEST(ClusterJoinEntries, JoinsAsWritten) {
  EXPECT_EQ(JoinEntries({}), "");
  EXPECT_EQ(JoinEntries({Entry("a")}), "a");
  EXPECT_EQ(JoinEntries({Entry("a"), Entry("b:1500"), Entry("[::1]:7")}), "a, b:1500, [::1]:7");
}

}  // namespace
}  // namespace queue::cluster
