// Tests of what a checkpointed run comes to (restarted from its files, run
// again, finished or failed), and of when a periodic checkpoint is due: the
// decisions that keep a periodic checkpoint from running a job for ever.
#include <gtest/gtest.h>
#include <signal.h>

#include "daemon/job_runner.h"

namespace queue::daemon {
namespace {

using namespace std::chrono_literals;

constexpr int Exited(int code) { return code << 8; }
constexpr int Killed(int signo) { return signo; }

TEST(CheckpointVerdict, RestartFilesWrittenAfterTheSignalGoOnWhateverTheExitStatus) {
  for (int status : {Exited(0), Exited(1), Exited(143), Killed(SIGKILL)})
    for (bool periodic : {false, true})
      for (bool interactive : {false, true})
        EXPECT_EQ(JudgeCheckpointedEnd(true, status, periodic, false, interactive), CheckpointVerdict::kGoesOn)
            << status << periodic << interactive;
}

TEST(CheckpointVerdict, ABatchJobThatExitsZeroWithoutRestartFilesHasFinished) {
  // At its periodic checkpoint, and when asked to move (load, drain, --migrate).
  EXPECT_EQ(JudgeCheckpointedEnd(false, Exited(0), true, false, false), CheckpointVerdict::kFinished);
  EXPECT_EQ(JudgeCheckpointedEnd(false, Exited(0), false, false, false), CheckpointVerdict::kFinished);
  // An interactive job at its periodic checkpoint too: run again, it would be
  // asked again a period later, for ever.
  EXPECT_EQ(JudgeCheckpointedEnd(false, Exited(0), true, false, true), CheckpointVerdict::kFinished);
}

TEST(CheckpointVerdict, AnInteractiveJobAskedToMoveGoesOnSoThatItsStubHearsAnEnd) {
  EXPECT_EQ(JudgeCheckpointedEnd(false, Exited(0), false, false, true), CheckpointVerdict::kStartsAgain);
}

TEST(CheckpointVerdict, AJobThatDiesWithoutRestartFiles) {
  // Asked to move: run again (SPEC §7.4), from earlier files or the beginning.
  EXPECT_EQ(JudgeCheckpointedEnd(false, Killed(SIGKILL), false, false, false), CheckpointVerdict::kStartsAgain);
  EXPECT_EQ(JudgeCheckpointedEnd(false, Exited(1), false, false, true), CheckpointVerdict::kStartsAgain);
  // Asked for a copy only: not run again for it.
  EXPECT_EQ(JudgeCheckpointedEnd(false, Killed(SIGUSR2), true, false, false), CheckpointVerdict::kFailed);
  EXPECT_EQ(JudgeCheckpointedEnd(false, Exited(1), true, false, false), CheckpointVerdict::kFailed);
}

TEST(CheckpointVerdict, CheckpointExitIsRunAgainAsItAsked) {
  EXPECT_EQ(JudgeCheckpointedEnd(false, Exited(85), false, true, false), CheckpointVerdict::kStartsAgain);
  EXPECT_EQ(JudgeCheckpointedEnd(true, Exited(85), false, true, false), CheckpointVerdict::kGoesOn);
}

TEST(PeriodicCheckpoint, ThePeriodIsTheJobsOwnRunningTime) {
  const auto now = std::chrono::steady_clock::now();
  // Admitted long ago, but its shepherd has not said it started: not due (the
  // record's commit and the shepherd's start, on a loaded host, are no work).
  EXPECT_FALSE(PeriodicCheckpointDue(std::nullopt, now, 2s));
  EXPECT_FALSE(PeriodicCheckpointDue(now - 1s, now, 2s));
  EXPECT_TRUE(PeriodicCheckpointDue(now - 2s, now, 2s));
  EXPECT_TRUE(PeriodicCheckpointDue(now - 30s, now, 2s));
}

}  // namespace
}  // namespace queue::daemon
