// What the security tests (issue 12) share: an ordinary user made for the
// test with useradd (and removed after it), running commands as that user,
// and the daemon's footprint (memory, descriptors, CPU time) to compare
// before, during and after an attack.
#pragma once

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "cluster_fixture.h"

namespace queue::testing {

// A user of its own for one test: `useradd` now, `userdel` when destroyed.
class TestUser {
 public:
  explicit TestUser(const std::string& tag) {
    name_ = "qsec" + tag + std::to_string(getpid() % 100000);
    RunCommand({"/usr/sbin/userdel", name_});  // a leftover of a killed run
    auto made = RunCommand({"/usr/sbin/useradd", "-M", "-N", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name_});
    if (passwd* pw = getpwnam(name_.c_str()); made.exit_code == 0 && pw != nullptr) {
      uid_ = pw->pw_uid;
      gid_ = pw->pw_gid;
    }
  }
  ~TestUser() {
    // -f: a process of the user that is still ending must not keep the account.
    if (uid_ != 0) RunCommand({"/usr/sbin/userdel", "-f", name_});
  }
  TestUser(const TestUser&) = delete;
  TestUser& operator=(const TestUser&) = delete;

  bool ok() const { return uid_ != 0; }
  uid_t uid() const { return uid_; }
  gid_t gid() const { return gid_; }
  const std::string& name() const { return name_; }
  // The words that run a command as this user, with no other group.
  std::vector<std::string> As() const {
    return {"/usr/bin/setpriv", "--reuid=" + std::to_string(uid_), "--regid=" + std::to_string(gid_), "--clear-groups",
            "--"};
  }
  // A directory of the cluster's for this user to work in; the cluster's own
  // directory is the test's (0700) and must be passable to reach the socket.
  std::string WorkDir(TestCluster& cluster) const {
    chmod(cluster.dir().c_str(), 0755);
    std::string dir = cluster.dir() + "/work-" + name_;
    std::filesystem::create_directories(dir);
    chown(dir.c_str(), uid_, gid_);
    return dir;
  }

 private:
  std::string name_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

inline std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A process's memory, descriptors and CPU time, from /proc.
struct Footprint {
  long rss_kib = 0;
  long fds = 0;
  long cpu_ticks = 0;  // user + system, in clock ticks
  std::string Text() const {
    return "RSS " + std::to_string(rss_kib / 1024) + " MiB, " + std::to_string(fds) + " fds, CPU " +
           std::to_string(cpu_ticks * 1000 / sysconf(_SC_CLK_TCK)) + " ms";
  }
};

inline Footprint FootprintOf(pid_t pid) {
  Footprint f;
  std::string proc = "/proc/" + std::to_string(pid);
  std::string status = ReadFile(proc + "/status");
  if (auto at = status.find("VmRSS:"); at != std::string::npos) f.rss_kib = std::stol(status.substr(at + 6));
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(proc + "/fd", ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec))
    ++f.fds;
  std::string stat = ReadFile(proc + "/stat");
  if (auto paren = stat.rfind(')'); paren != std::string::npos) {
    std::istringstream rest(stat.substr(paren + 2));
    std::string word;
    long utime = 0, stime = 0;
    for (int field = 3; field <= 15 && rest >> word; ++field) {
      if (field == 14) utime = std::stol(word);
      if (field == 15) stime = std::stol(word);
    }
    f.cpu_ticks = utime + stime;
  }
  return f;
}

inline std::string AttackerPath() { return BinDir() + "/queue-test-attacker"; }

// How many lines of `text` contain `needle`.
inline size_t CountLines(const std::string& text, const std::string& needle) {
  size_t count = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) count += line.find(needle) != std::string::npos;
  return count;
}

}  // namespace queue::testing
