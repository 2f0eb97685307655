#include "util/child_wait.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace queue {
namespace {

TEST(ChildWait, GivesTheExitStatus) {
  pid_t pid = fork();
  if (pid == 0) _exit(3);
  ASSERT_GT(pid, 0);
  auto status = WaitAndClosePidfd(OpenPidfd(pid));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 3);
}

TEST(ChildWait, GivesTheSignalThatKilledIt) {
  pid_t pid = fork();
  if (pid == 0) {
    pause();
    _exit(0);
  }
  ASSERT_GT(pid, 0);
  int pidfd = OpenPidfd(pid);
  ASSERT_GE(pidfd, 0);
  kill(pid, SIGKILL);
  auto status = WaitAndClosePidfd(pidfd);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGKILL);
}

// Another waiter (the daemon's reaper) took the child first: no status, and no
// wait on whatever process has its pid now.
TEST(ChildWait, AChildReapedByAnotherIsNotWaitedFor) {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  ASSERT_GT(pid, 0);
  int pidfd = OpenPidfd(pid);
  ASSERT_GE(pidfd, 0);
  ASSERT_EQ(waitpid(pid, nullptr, 0), pid);
  EXPECT_FALSE(WaitAndClosePidfd(pidfd).has_value());
}

TEST(ChildWait, NoPidfdMeansNoStatus) {
  EXPECT_EQ(OpenPidfd(0), -1);
  EXPECT_FALSE(WaitAndClosePidfd(-1).has_value());
}

}  // namespace
}  // namespace queue
