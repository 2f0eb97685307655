// Tests of the stub's capture of its local context and of the pty-mode choice.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "stub/local_context.h"
#include "term/terminal_settings.h"

namespace queue::stub {
namespace {

using wire::PtyMode;

Result<wire::JobSpec> Capture() { return CaptureLocalContext({"echo", "hello"}); }

TEST(StubContext, CapturesArgvAndTestSetEnvironment) {
  ASSERT_EQ(setenv("QUEUE_STUB_CONTEXT_TEST", "a value with = and spaces", 1), 0);
  auto spec = Capture();
  unsetenv("QUEUE_STUB_CONTEXT_TEST");
  ASSERT_TRUE(spec.ok()) << spec.message();
  EXPECT_EQ(spec->argv, (std::vector<std::string>{"echo", "hello"}));
  EXPECT_NE(std::find(spec->env.begin(), spec->env.end(),
                      "QUEUE_STUB_CONTEXT_TEST=a value with = and spaces"),
            spec->env.end());

  auto without = Capture();
  ASSERT_TRUE(without.ok());
  for (const auto& var : without->env) EXPECT_NE(var.rfind("QUEUE_STUB_CONTEXT_TEST=", 0), 0u);
}

TEST(StubContext, CapturesCurrentDirectory) {
  auto original = std::filesystem::current_path();
  auto dir = std::filesystem::temp_directory_path();
  ASSERT_EQ(chdir(dir.c_str()), 0);
  auto spec = Capture();
  ASSERT_EQ(chdir(original.c_str()), 0);
  ASSERT_TRUE(spec.ok()) << spec.message();
  EXPECT_EQ(spec->cwd, std::filesystem::canonical(dir).string());

  auto here = Capture();
  ASSERT_TRUE(here.ok());
  EXPECT_EQ(here->cwd, original.string());
}

TEST(StubContext, RemovedCurrentDirectoryIsAClearError) {
  auto original = std::filesystem::current_path();
  std::string tmpl = (std::filesystem::temp_directory_path() / "queue-cwd-XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  ASSERT_EQ(chdir(tmpl.c_str()), 0);
  ASSERT_EQ(rmdir(tmpl.c_str()), 0);
  auto spec = Capture();
  ASSERT_EQ(chdir(original.c_str()), 0);
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.message().find("current directory"), std::string::npos) << spec.message();
}

TEST(StubContext, CapturesUmaskWithoutChangingIt) {
  mode_t saved = umask(027);
  auto spec = Capture();
  mode_t after = umask(saved);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->umask, 027u);
  EXPECT_EQ(after, 027u);

  umask(0);
  auto zero = Capture();
  umask(saved);
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->umask, 0u);
}

TEST(StubContext, CapturesEveryResourceLimit) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_GT(saved.rlim_cur, 16u);
  rlimit lowered = saved;
  lowered.rlim_cur = saved.rlim_cur - 1;  // proves the value is read, not assumed
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
  auto spec = Capture();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(spec.ok());

  ASSERT_EQ(spec->rlimits.size(), 16u);
  for (uint32_t i = 0; i < spec->rlimits.size(); ++i) EXPECT_EQ(spec->rlimits[i].resource, i);
  const auto& nofile = spec->rlimits[RLIMIT_NOFILE];
  EXPECT_EQ(nofile.soft, lowered.rlim_cur);
  EXPECT_EQ(nofile.hard, saved.rlim_max == RLIM_INFINITY ? wire::ResourceLimit::kUnlimited
                                                          : saved.rlim_max);
  rlimit core{};
  ASSERT_EQ(getrlimit(RLIMIT_CORE, &core), 0);
  EXPECT_EQ(spec->rlimits[RLIMIT_CORE].hard,
            core.rlim_max == RLIM_INFINITY ? wire::ResourceLimit::kUnlimited : core.rlim_max);
}

TEST(StubContext, CapturesNiceAndCredentials) {
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, 0);
  ASSERT_EQ(errno, 0);
  auto spec = Capture();
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->nice, nice);
  EXPECT_EQ(spec->uid, geteuid());
  EXPECT_EQ(spec->gid, getegid());
  std::vector<gid_t> groups(static_cast<size_t>(getgroups(0, nullptr)));
  ASSERT_EQ(getgroups(static_cast<int>(groups.size()), groups.data()),
            static_cast<int>(groups.size()));
  EXPECT_EQ(spec->groups, std::vector<uint32_t>(groups.begin(), groups.end()));
}

TEST(StubContext, TerminalFollowsStandardDescriptors) {
  auto spec = Capture();
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->stderr_is_tty, isatty(2) == 1);
  EXPECT_EQ(spec->terminal.present, isatty(0) == 1);
  EXPECT_EQ(spec->pty, PtyMode::kNone);  // the caller chooses it
}

TEST(StubContext, CapturesTerminalWhenStdinIsATty) {
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0);
  ASSERT_EQ(grantpt(master), 0);
  ASSERT_EQ(unlockpt(master), 0);
  int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
  ASSERT_GE(slave, 0);
  ASSERT_TRUE(term::SetWindowSize(slave, {.rows = 42, .cols = 132}));

  int saved_stdin = dup(0);
  ASSERT_GE(saved_stdin, 0);
  ASSERT_EQ(dup2(slave, 0), 0);
  auto spec = Capture();
  ASSERT_EQ(dup2(saved_stdin, 0), 0);
  close(saved_stdin);
  auto expected = term::CaptureTerminal(slave);
  close(slave);
  close(master);

  ASSERT_TRUE(spec.ok()) << spec.message();
  ASSERT_TRUE(expected.ok());
  EXPECT_TRUE(spec->terminal.present);
  EXPECT_EQ(spec->terminal.rows, 42);
  EXPECT_EQ(spec->terminal.cols, 132);
  EXPECT_EQ(spec->terminal, expected.value());
}

TEST(StubContext, RefusesWhatTheWireWouldReject) {
  EXPECT_FALSE(CaptureLocalContext({}).ok());

  std::string huge(wire::kMaxEnvBytes + 1, 'x');
  ASSERT_EQ(setenv("QUEUE_STUB_CONTEXT_HUGE", huge.c_str(), 1), 0);
  auto spec = Capture();
  unsetenv("QUEUE_STUB_CONTEXT_HUGE");
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.message().find("environment"), std::string::npos) << spec.message();

  auto long_arg = CaptureLocalContext({"echo", std::string(wire::kMaxArgBytes + 1, 'y')});
  ASSERT_FALSE(long_arg.ok());
  EXPECT_NE(long_arg.message().find("command line"), std::string::npos);
}

TEST(StubContext, ChoosePtyModeTable) {
  struct Row {
    PtyMode requested;
    bool stdin_tty, stdout_tty;
    PtyMode expected;
  };
  const Row table[] = {
      {PtyMode::kNone, false, false, PtyMode::kNone}, {PtyMode::kNone, false, true, PtyMode::kNone},
      {PtyMode::kNone, true, false, PtyMode::kNone},  {PtyMode::kNone, true, true, PtyMode::kNone},
      {PtyMode::kHalf, false, false, PtyMode::kNone}, {PtyMode::kHalf, false, true, PtyMode::kNone},
      {PtyMode::kHalf, true, false, PtyMode::kHalf},  {PtyMode::kHalf, true, true, PtyMode::kHalf},
      {PtyMode::kFull, false, false, PtyMode::kNone}, {PtyMode::kFull, false, true, PtyMode::kNone},
      {PtyMode::kFull, true, false, PtyMode::kHalf},  {PtyMode::kFull, true, true, PtyMode::kFull},
  };
  for (const Row& row : table)
    EXPECT_EQ(ChoosePtyMode(row.requested, row.stdin_tty, row.stdout_tty), row.expected)
        << "requested " << int(row.requested) << " stdin_tty " << row.stdin_tty << " stdout_tty "
        << row.stdout_tty;
}

}  // namespace
}  // namespace queue::stub
