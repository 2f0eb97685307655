// Tests of what queued tells systemd (ServiceNotifier, against a datagram
// socket standing for systemd's), of finding the journal on stderr, and of
// options read from a config file (ConfigFile).
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "daemon/config_file.h"
#include "daemon/log_output.h"
#include "daemon/service_notifier.h"

namespace queue::daemon {
namespace {

// Sets an environment variable for one test and puts back what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::string TempDir(const std::string& what) {
  auto dir = std::filesystem::temp_directory_path() / ("queue-" + what + "-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// The service manager's end: a datagram socket at `path`.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : fd_(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof address.sun_path - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  }
  ~NotifySocket() { close(fd_); }
  // The next message, or "" when none comes within a second.
  std::string Next() {
    pollfd ready{fd_, POLLIN, 0};
    if (poll(&ready, 1, 1000) != 1) return "";
    char text[4096];
    ssize_t n = recv(fd_, text, sizeof text, 0);
    return n > 0 ? std::string(text, static_cast<size_t>(n)) : "";
  }

 private:
  int fd_;
};

TEST(ServiceNotifier, SendsEachStepAndAStatusOnlyWhenItChanges) {
  std::string dir = TempDir("notify");
  NotifySocket manager(dir + "/notify");
  ScopedEnv socket("NOTIFY_SOCKET", dir + "/notify");
  ServiceNotifier notifier;
  notifier.Status("a");
  notifier.Status("a");
  notifier.Status("b");
  notifier.Ready();
  notifier.Reloading();
  notifier.Stopping();
  EXPECT_EQ(manager.Next(), "STATUS=a");
  EXPECT_EQ(manager.Next(), "STATUS=b");
  EXPECT_EQ(manager.Next(), "READY=1");
  EXPECT_EQ(manager.Next(), "RELOADING=1");
  EXPECT_EQ(manager.Next(), "STOPPING=1");
  EXPECT_EQ(manager.Next(), "");
  std::filesystem::remove_all(dir);
}

TEST(ServiceNotifier, WithoutAServiceManagerSendsNothing) {
  ScopedEnv socket("NOTIFY_SOCKET", "");
  EXPECT_FALSE(UnderServiceManager());
  ServiceNotifier notifier;
  notifier.Ready();  // nowhere to go, and no harm
}

TEST(ServiceNotifier, StatusLine) {
  EXPECT_EQ(ServiceStatusLine(3, 2, 3, 3), "3 jobs running, 2 waiting; 3 of 3 hosts up");
  EXPECT_EQ(ServiceStatusLine(1, 0, 1, 1), "1 job running, 0 waiting; 1 of 1 host up");
}

TEST(LogOutput, StderrIsTheJournalOnlyWhenJournalStreamNamesIt) {
  struct stat st {};
  ASSERT_EQ(fstat(2, &st), 0);
  const std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  {
    ScopedEnv stream("JOURNAL_STREAM", mine);
    EXPECT_TRUE(StderrIsJournal());
  }
  {
    ScopedEnv stream("JOURNAL_STREAM", std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1));
    EXPECT_FALSE(StderrIsJournal());
  }
  {
    ScopedEnv stream("JOURNAL_STREAM", "garbage");
    EXPECT_FALSE(StderrIsJournal());
  }
}

// An app with a few options of each kind queued has.
struct Options {
  std::string spool = "/var/spool/queue";
  double timeout = 60;
  bool debug = false;
  std::string keygen;
  CLI::App app{"test"};
  explicit Options(const std::string& default_config) {
    AddConfigFileOption(app, default_config);
    app.add_option("--keygen", keygen)->configurable(false);
    app.add_option("-d,--spooldir", spool);
    app.add_option("--host-timeout", timeout)->check(CLI::Range(1.0, 86400.0));
    app.add_flag("-D,--debug", debug);
  }
  std::optional<int> Parse(std::vector<std::string> args) {
    args.insert(args.begin(), "queued");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return ParseCommandLineAndConfigFile(app, static_cast<int>(argv.size()), argv.data(), "/nonexistent/queued.conf");
  }
};

class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = TempDir("config"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& text) {
    std::string path = dir_ + "/queued.conf";
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

TEST_F(ConfigFile, ValuesComeFromTheFileAndTheCommandLineWins) {
  std::string path = Write("# comment\nspooldir = /srv/spool\nhost-timeout = 5\ndebug = true\n");
  Options a("/nonexistent");
  EXPECT_EQ(a.Parse({"--config", path}), std::nullopt);
  EXPECT_EQ(a.spool, "/srv/spool");
  EXPECT_EQ(a.timeout, 5);
  EXPECT_TRUE(a.debug);
  Options b("/nonexistent");
  EXPECT_EQ(b.Parse({"--config=" + path, "-d", "/other", "--host-timeout", "7"}), std::nullopt);
  EXPECT_EQ(b.spool, "/other");
  EXPECT_EQ(b.timeout, 7);
}

TEST_F(ConfigFile, ABadValueTheCommandLineOverridesDoesNoHarm) {
  std::string path = Write("host-timeout = 0\n");
  Options o("/nonexistent");
  EXPECT_EQ(o.Parse({"--config", path, "--host-timeout", "9"}), std::nullopt);
  EXPECT_EQ(o.timeout, 9);
}

TEST_F(ConfigFile, TheDefaultFileMayBeMissingANamedOneMayNot) {
  Options a("/nonexistent");
  EXPECT_EQ(a.Parse({}), std::nullopt);
  Options b("/nonexistent");
  EXPECT_EQ(b.Parse({"--config", dir_ + "/missing.conf"}), kConfigErrorExit);
}

TEST_F(ConfigFile, UnknownKeysBadValuesAndCommandLineOnlyOptionsAreErrors) {
  for (const char* text : {"spool-dir = /x\n", "host-timeout = 0\n", "host-timeout = soon\n", "keygen = /k\n",
                           "[section]\nspooldir = /x\n"}) {
    Options o("/nonexistent");
    EXPECT_EQ(o.Parse({"--config", Write(text)}), kConfigErrorExit) << text;
  }
}

TEST_F(ConfigFile, ACommandLineErrorIsNotTheFiles) {
  Options o("/nonexistent");
  EXPECT_NE(o.Parse({"--config", Write("spooldir = /x\n"), "--no-such-option"}), kConfigErrorExit);
}

}  // namespace
}  // namespace queue::daemon
