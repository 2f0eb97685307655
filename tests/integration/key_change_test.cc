// A rolling change of the cluster key (SECURITY.md, "The cluster key"): key
// files with a current and another key, reloaded on SIGHUP, while jobs keep
// crossing between hosts after every step, in both directions.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>

#include <chrono>
#include <string>

#include "cluster_fixture.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;

// The first line of a key file: its key as hex digits.
std::string KeyHex(const std::string& path) {
  std::string text = ReadFile(path);
  return text.substr(0, text.find('\n'));
}

// Replaces `path` whole (mode 0600), so a daemon never reads half a file.
void ReplaceKeyFile(const std::string& path, const std::string& text) {
  std::string temporary = path + ".new";
  WriteFile(temporary, text, 0600);
  ASSERT_EQ(::rename(temporary.c_str(), path.c_str()), 0);
}

std::size_t Count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class KeyChange : public ::testing::Test {
 protected:
  void SetUp() override {
    // Host 1 starts with a key of its own, so each host has its own key file
    // and the hosts can be switched one at a time.
    ClusterOptions options;
    options.foreign_key_hosts = {1};
    cluster_ = TestCluster::Start(2, options);
    ASSERT_NE(cluster_->key_file(0), cluster_->key_file(1));
    old_ = KeyHex(cluster_->key_file(0));
    std::string made = cluster_->dir() + "/new.key";
    auto keygen = RunCommand({BinDir() + "/queued", "--keygen", made});
    ASSERT_EQ(keygen.exit_code, 0) << keygen.err;
    new_ = KeyHex(made);
    ASSERT_EQ(old_.size(), 64u);
    ASSERT_EQ(new_.size(), 64u);
    ASSERT_NE(old_, new_);
  }

  // Gives host i's key file `text`, sends SIGHUP and waits until the daemon
  // has loaded it.
  void Rekey(int i, const std::string& text) {
    ReplaceKeyFile(cluster_->key_file(i), text);
    std::size_t loaded = Count(cluster_->log(i), "offering queue-");
    cluster_->SignalDaemon(i, SIGHUP);
    ASSERT_TRUE(WaitUntil([&] { return Count(cluster_->log(i), "offering queue-") > loaded; }, 10s))
        << cluster_->log(i);
  }

  // Restarts host i, so that both its links with the other host are made
  // anew: the handshakes then use the other host's reloaded keys.
  void Restart(int i) {
    cluster_->StopDaemon(i);
    cluster_->StartDaemon(i);
  }

  // A job submitted on `via` and placed on `target`, which must run there.
  ::testing::AssertionResult RunsOn(int via, int target) {
    CommandResult run;
    bool ran = WaitUntil(
        [&] {
          run = cluster_->Queue(via, {"-h", cluster_->entry(target), "-n", "--", "sh", "-c", "echo $QUEUE_HOST"});
          return run.exit_code == 0 && run.out == cluster_->entry(target) + "\n";
        },
        20s);
    if (ran) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "from host " << via << " to host " << target << ": exit "
                                         << run.exit_code << ", out [" << run.out << "], err [" << run.err
                                         << "]\nlog 0:\n"
                                         << cluster_->log(0) << "\nlog 1:\n"
                                         << cluster_->log(1);
  }

  void ExpectJobsCrossBothWays(const std::string& when) {
    SCOPED_TRACE(when);
    ASSERT_TRUE(cluster_->WaitForView(20s)) << cluster_->log(0) << cluster_->log(1);
    EXPECT_TRUE(RunsOn(0, 1));
    EXPECT_TRUE(RunsOn(1, 0));
  }

  std::unique_ptr<TestCluster> cluster_;
  std::string old_, new_;
};

TEST_F(KeyChange, ThreeStepsWithSighupKeepTheClusterTogether) {
  // A SIGHUP gives host 1 the cluster's key: it joins without a restart.
  Rekey(1, old_ + "\n");
  ExpectJobsCrossBothWays("host 1 reloaded the cluster's key");

  // Step 1: the new key as "next" everywhere; every host still offers the old.
  Rekey(0, old_ + "\n" + new_ + "\n");
  Restart(1);
  ExpectJobsCrossBothWays("step 1, host 0 done");
  Rekey(1, old_ + "\n" + new_ + "\n");
  Restart(0);
  ExpectJobsCrossBothWays("step 1 done");

  // Step 2: the new key current, the old kept as the other; host 0 offers the
  // new key to host 1, which still offers the old one.
  Rekey(0, new_ + "\n" + old_ + "\n");
  Restart(1);
  ExpectJobsCrossBothWays("step 2, host 0 done");
  Rekey(1, new_ + "\n" + old_ + "\n");
  Restart(0);
  ExpectJobsCrossBothWays("step 2 done");

  // Step 3: the old key dropped.
  Rekey(0, new_ + "\n");
  Restart(1);
  ExpectJobsCrossBothWays("step 3, host 0 done");
  Rekey(1, new_ + "\n");
  Restart(0);
  ExpectJobsCrossBothWays("step 3 done");

  // A damaged key file keeps the keys the daemon has, and says why.
  ReplaceKeyFile(cluster_->key_file(0), "not a key\n");
  std::size_t kept = Count(cluster_->log(0), "keeping the old cluster keys");
  cluster_->SignalDaemon(0, SIGHUP);
  ASSERT_TRUE(WaitUntil([&] { return Count(cluster_->log(0), "keeping the old cluster keys") > kept; }, 10s))
      << cluster_->log(0);
  EXPECT_NE(cluster_->log(0).find("does not hold one or 2 lines"), std::string::npos) << cluster_->log(0);
  Restart(1);
  ExpectJobsCrossBothWays("after a damaged key file on host 0");
}

TEST_F(KeyChange, AHostLeftWithOnlyTheOldKeyIsRefusedOnceTheOldKeyIsDropped) {
  Rekey(1, new_ + "\n");  // host 1 has finished the change; host 0 never began
  Restart(0);
  ASSERT_TRUE(WaitUntil([&] { return cluster_->log(0).find("does not hold the same key") != std::string::npos; }, 10s))
      << cluster_->log(0);
  auto run = cluster_->Queue(0, {"-h", cluster_->entry(1), "-n", "--", "true"});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  // Host 0 catches up with both keys; it is let in again without a restart.
  Rekey(0, new_ + "\n" + old_ + "\n");
  ExpectJobsCrossBothWays("host 0 reloaded");
}

}  // namespace
}  // namespace queue::testing
