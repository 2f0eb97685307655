// Tests of the search for the local daemon's socket (stub/daemon_socket.h):
// named places win; otherwise the first place a daemon answers on, in the
// order of issue 14: system default, ./run.sh's per-user cluster, config file.
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

#include "stub/daemon_socket.h"

namespace queue::stub {
namespace {

namespace fs = std::filesystem;

class DaemonSocketSearch : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/queue-socket-test-XXXXXX";
    dir_ = mkdtemp(templ);
    places_.home = dir_ + "/home";
    places_.system_socket = dir_ + "/run/queued.sock";
    fs::create_directories(places_.home + "/.config/queue");
  }
  void TearDown() override { fs::remove_all(dir_); }

  DaemonSocket Find() {
    return FindDaemonSocket(places_, [this](const std::string& path) { return live_.contains(path); });
  }
  void WriteConfig(const std::string& text) {
    std::FILE* f = std::fopen((places_.home + "/.config/queue/config").c_str(), "w");
    std::fputs(text.c_str(), f);
    std::fclose(f);
  }

  std::string dir_;
  SocketSearchPlaces places_;
  std::set<std::string> live_;  // the sockets a daemon answers on
};

TEST_F(DaemonSocketSearch, OptionThenEnvironmentAreUsedAsNamed) {
  live_ = {places_.system_socket};
  places_.env_socket = "/env/q.sock";
  EXPECT_EQ(Find().path, "/env/q.sock");
  EXPECT_EQ(Find().found_by, "$QUEUE_SOCKET");
  places_.option = "/opt/q.sock";
  EXPECT_EQ(Find().path, "/opt/q.sock");
  EXPECT_EQ(Find().found_by, "--socket");
}

TEST_F(DaemonSocketSearch, SystemDefaultFirst) {
  WriteConfig("socket /configured.sock\n");
  live_ = {places_.system_socket, places_.home + "/.queue/queued.sock", "/configured.sock"};
  EXPECT_EQ(Find().path, places_.system_socket);
  EXPECT_EQ(Find().found_by, "the system default");
}

TEST_F(DaemonSocketSearch, ThenThePerUserClusterOfRunSh) {
  live_ = {places_.home + "/.queue/queued.sock"};
  EXPECT_EQ(Find().path, places_.home + "/.queue/queued.sock");
  EXPECT_NE(Find().found_by.find("./run.sh"), std::string::npos) << Find().found_by;
  // QUEUE_HOME moves run.sh's cluster, and the search with it.
  places_.queue_home = dir_ + "/elsewhere";
  live_ = {dir_ + "/elsewhere/queued.sock"};
  EXPECT_EQ(Find().path, dir_ + "/elsewhere/queued.sock");
}

TEST_F(DaemonSocketSearch, ThenTheConfigFile) {
  WriteConfig("# where my cluster listens\n\nsocket ~/sockets/q.sock  # the one\n");
  live_ = {places_.home + "/sockets/q.sock"};
  EXPECT_EQ(Find().path, places_.home + "/sockets/q.sock");
  EXPECT_NE(Find().found_by.find("config"), std::string::npos) << Find().found_by;
  // XDG_CONFIG_HOME moves the file.
  places_.xdg_config_home = dir_ + "/xdg";
  fs::create_directories(dir_ + "/xdg/queue");
  std::FILE* f = std::fopen((dir_ + "/xdg/queue/config").c_str(), "w");
  std::fputs("socket /xdg.sock\n", f);
  std::fclose(f);
  live_ = {"/xdg.sock"};
  EXPECT_EQ(Find().path, "/xdg.sock");
}

TEST_F(DaemonSocketSearch, NoDaemonAnywhereNamesEveryPlaceTried) {
  WriteConfig("socket /configured.sock\n");
  DaemonSocket none = Find();
  EXPECT_EQ(none.path, places_.system_socket);
  for (const std::string& place : {places_.system_socket, places_.home + "/.queue/queued.sock",
                                   std::string("/configured.sock"), std::string("QUEUE_SOCKET")})
    EXPECT_NE(none.found_by.find(place), std::string::npos) << place << " in " << none.found_by;
}

TEST(DaemonSocketProbe, AnswersOnlyWhereSomethingListens) {
  EXPECT_FALSE(SocketAnswers("/nonexistent/queued.sock"));
  EXPECT_FALSE(SocketAnswers(""));
}

}  // namespace
}  // namespace queue::stub
