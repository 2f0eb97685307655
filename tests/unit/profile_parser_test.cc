// Tests of the profile parser: every keyword, defaults, host prefixes, quoting,
// comments, every error path, file loading, and the policy helpers.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>

#include "profile/profile_parser.h"
#include "profile/signal_names.h"

namespace queue::profile {
namespace {

ProfileContext Context() { return ProfileContext{"/spool/now/profile", "node1.example.org", 8}; }

QueuePolicy Parse(const std::string& text, const ProfileContext& ctx = Context()) {
  auto policy = ParseProfile(text, ctx);
  EXPECT_TRUE(policy.ok()) << (policy.ok() ? "" : policy.message());
  return policy.ok() ? policy.value() : QueuePolicy{};
}

std::string ErrorOf(const std::string& text, const ProfileContext& ctx = Context()) {
  auto policy = ParseProfile(text, ctx);
  EXPECT_FALSE(policy.ok()) << "accepted: " << text;
  return policy.ok() ? "" : policy.message();
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(ProfileParser, EmptyProfileGivesTheDefaults) {
  QueuePolicy p = Parse("");
  EXPECT_EQ(p.exec, ExecState::kOn);
  EXPECT_EQ(p.max_exec, 8u);  // the host's CPU count
  EXPECT_FALSE(p.vmax_exec.has_value());
  EXPECT_EQ(p.effective_vmax_exec(), 8u);
  EXPECT_EQ(p.pfactor, 1.0);
  EXPECT_EQ(p.load_sched, 25.0);
  EXPECT_EQ(p.load_stop, 50.0);
  EXPECT_EQ(p.load_checkpoint, 26.0);
  EXPECT_EQ(p.load_norm, LoadNormalization::kNone);
  EXPECT_FALSE(p.time_sched.has_value());
  EXPECT_FALSE(p.time_stop.has_value());
  EXPECT_EQ(p.nice, 0);
  EXPECT_FALSE(p.min_free.has_value());
  EXPECT_TRUE(p.rlimits.empty());
  EXPECT_FALSE(p.supervisor.has_value());
  EXPECT_EQ(p.mail, (MailEvents{.start = false, .end = true, .crash = true}));
  EXPECT_EQ(p.mail_supervisor, (MailEvents{.start = false, .end = true, .crash = true}));
  EXPECT_FALSE(p.restart);
  EXPECT_FALSE(p.program.has_value());
  EXPECT_FALSE(p.allow_root);
  EXPECT_EQ(p.checkpoint_mode, CheckpointMode::kOff);
  EXPECT_EQ(p.restart_mode, RestartMode::kRefuse);
  EXPECT_EQ(p.restart_flag, "");
  EXPECT_EQ(p.restart_flag_pos, RestartFlagPosition::kFirst);
  EXPECT_EQ(p.checkpoint_signal, SIGUSR2);
  EXPECT_EQ(p.checkpoint_grace_seconds, kDefaultCheckpointGraceSeconds);
  EXPECT_FALSE(p.checkpoint_exit.has_value());
  EXPECT_EQ(p.checkpoint_period_seconds, 0u);
  EXPECT_TRUE(p.restart_files.empty());
}

TEST(ProfileParser, UnknownCpuCountMeansOneJob) {
  ProfileContext ctx = Context();
  ctx.cpu_count = 0;
  EXPECT_EQ(Parse("", ctx).max_exec, 1u);
}

TEST(ProfileParser, EveryKeywordSetsItsField) {
  QueuePolicy p = Parse(
      "exec drain\n"
      "maxexec 12\n"
      "vmaxexec 3\n"
      "pfactor 2.5\n"
      "loadsched 7.5\n"
      "loadstop 12.25\n"
      "loadcheckpoint 9\n"
      "loadnorm cores\n"
      "timesched Wk0900-1700,Sa\n"
      "timestop Night\n"
      "nice 10\n"
      "minfree /var/spool 2048\n"
      "rlimitcpu 3600 7200\n"
      "supervisor /var/log/queue.log\n"
      "mail s\n"
      "mailsupervisor sec\n"
      "restart\n"
      "program /usr/local/sbin/queuecheck\n"
      "allowroot\n"
      "checkpointmode 2\n"
      "restartmode 1\n"
      "restartflag \"--resume=state.ckpt\"\n"
      "restartflagpos last\n"
      "checkpointsignal USR1\n"
      "checkpointgrace 30\n"
      "checkpointexit 85\n"
      "checkpointperiod 3600\n"
      "restartfile state.ckpt \"out dir/*.part\"\n");
  EXPECT_EQ(p.exec, ExecState::kDrain);
  EXPECT_EQ(p.max_exec, 12u);
  EXPECT_EQ(p.vmax_exec, 3u);
  EXPECT_EQ(p.pfactor, 2.5);
  EXPECT_EQ(p.load_sched, 7.5);
  EXPECT_EQ(p.load_stop, 12.25);
  EXPECT_EQ(p.load_checkpoint, 9.0);
  EXPECT_EQ(p.load_norm, LoadNormalization::kCores);
  ASSERT_TRUE(p.time_sched.has_value());
  EXPECT_EQ(p.time_sched->text, "Wk0900-1700,Sa");
  EXPECT_EQ(p.time_sched->elements.size(), 2u);
  ASSERT_TRUE(p.time_stop.has_value());
  EXPECT_EQ(p.time_stop->elements[0].day, DayToken::kNight);
  EXPECT_EQ(p.nice, 10);
  EXPECT_EQ(p.min_free, (DiskSpaceFloor{"/var/spool", 2048}));
  EXPECT_EQ(p.rlimits.at(ResourceKind::kCpu), (ResourceLimitSetting{3600, 7200}));
  EXPECT_EQ(p.supervisor, "/var/log/queue.log");
  EXPECT_EQ(p.mail, (MailEvents{.start = true, .end = false, .crash = false}));
  EXPECT_EQ(p.mail_supervisor, (MailEvents{.start = true, .end = true, .crash = true}));
  EXPECT_TRUE(p.restart);
  EXPECT_EQ(p.program, "/usr/local/sbin/queuecheck");
  EXPECT_TRUE(p.allow_root);
  EXPECT_EQ(p.checkpoint_mode, CheckpointMode::kUser);
  EXPECT_EQ(p.restart_mode, RestartMode::kTransparent);
  EXPECT_EQ(p.restart_flag, "--resume=state.ckpt");
  EXPECT_EQ(p.restart_flag_pos, RestartFlagPosition::kLast);
  EXPECT_EQ(p.checkpoint_signal, SIGUSR1);
  EXPECT_EQ(p.checkpoint_grace_seconds, 30u);
  EXPECT_EQ(p.checkpoint_exit, 85);
  EXPECT_EQ(p.checkpoint_period_seconds, 3600u);
  EXPECT_EQ(p.restart_files, (std::vector<std::string>{"state.ckpt", "out dir/*.part"}));
}

TEST(ProfileParser, ExecForms) {
  EXPECT_EQ(Parse("exec drain\nexec\n").exec, ExecState::kOn);
  EXPECT_EQ(Parse("exec on").exec, ExecState::kOn);
  EXPECT_EQ(Parse("exec off").exec, ExecState::kOff);
  EXPECT_EQ(Parse("EXEC DRAIN").exec, ExecState::kDrain);
  EXPECT_EQ(ErrorOf("exec maybe"),
            "/spool/now/profile:1: exec: \"maybe\" is not one of on, off, drain");
}

TEST(ProfileParser, MaxExecRangeAndVmaxExecDefault) {
  EXPECT_EQ(Parse("maxexec 0").max_exec, 0u);
  EXPECT_EQ(Parse("maxexec 100000").max_exec, 100000u);
  EXPECT_EQ(ErrorOf("maxexec 100001"),
            "/spool/now/profile:1: maxexec: 100001 is out of range (0 to 100000)");
  EXPECT_TRUE(Contains(ErrorOf("maxexec -1"), "out of range"));
  EXPECT_TRUE(Contains(ErrorOf("vmaxexec 100001"), "out of range"));
  EXPECT_EQ(Parse("maxexec 6").effective_vmax_exec(), 6u);
  EXPECT_EQ(Parse("vmaxexec 2\nmaxexec 6").effective_vmax_exec(), 2u);
  EXPECT_EQ(Parse("maxexec 6\nvmaxexec 2").effective_vmax_exec(), 2u);
}

TEST(ProfileParser, DecimalValuesAndTheirRanges) {
  EXPECT_EQ(Parse("pfactor 100").pfactor, 100.0);
  EXPECT_EQ(Parse("pfactor 0.25").pfactor, 0.25);
  EXPECT_TRUE(Contains(ErrorOf("pfactor 0"), "greater than 0"));
  EXPECT_TRUE(Contains(ErrorOf("pfactor -1"), "greater than 0"));
  EXPECT_EQ(Parse("loadsched 0").load_sched, 0.0);
  EXPECT_EQ(Parse("loadsched 100").load_sched, 100.0);
  EXPECT_EQ(Parse("loadstop 1.5").load_stop, 1.5);
  EXPECT_EQ(ErrorOf("loadsched 100.5"),
            "/spool/now/profile:1: loadsched: 100.5 is out of range (0 to 100)");
  EXPECT_TRUE(Contains(ErrorOf("loadstop -1"), "out of range"));
  EXPECT_TRUE(Contains(ErrorOf("loadcheckpoint 0.5"), "out of range (1 to 100)"));
  for (const char* bad : {"abc", "1.5.2", "1,5", "nan", "inf", "+3", "3x", "0x10", ".", "-"}) {
    EXPECT_TRUE(Contains(ErrorOf(std::string("loadsched ") + bad), "is not a number")) << bad;
  }
}

TEST(ProfileParser, LoadNorm) {
  EXPECT_EQ(Parse("loadnorm cores\nloadnorm none").load_norm, LoadNormalization::kNone);
  EXPECT_TRUE(Contains(ErrorOf("loadnorm sockets"), "is not one of none, cores"));
}

TEST(ProfileParser, TimeSpecsMayBeQuotedWithSpaces) {
  QueuePolicy p = Parse("timesched \"Wk0900-1700, Sa\"");
  ASSERT_TRUE(p.time_sched.has_value());
  EXPECT_EQ(p.time_sched->elements.size(), 2u);
  EXPECT_TRUE(Contains(ErrorOf("timesched Wk0900-1700, Sa"), "unexpected \"Sa\""));
  EXPECT_EQ(ErrorOf("timestop Xy"),
            "/spool/now/profile:1: timestop: \"Xy\" is not a day (use Su Mo Tu We Th Fr Sa Wk "
            "Night Evening Any)");
}

TEST(ProfileParser, NiceRange) {
  EXPECT_EQ(Parse("nice -40").nice, -40);
  EXPECT_EQ(Parse("nice 40").nice, 40);
  EXPECT_TRUE(Contains(ErrorOf("nice 41"), "out of range (-40 to 40)"));
  EXPECT_TRUE(Contains(ErrorOf("nice -41"), "out of range"));
  EXPECT_TRUE(Contains(ErrorOf("nice 1.5"), "is not a whole number"));
}

TEST(ProfileParser, MinFree) {
  EXPECT_TRUE(Contains(ErrorOf("minfree spool 10"), "is not an absolute path"));
  EXPECT_TRUE(Contains(ErrorOf("minfree /var"), "missing value"));
  EXPECT_TRUE(Contains(ErrorOf("minfree /var lots"), "is not a whole number"));
  EXPECT_TRUE(Contains(ErrorOf("minfree /var 10 20"), "unexpected \"20\""));
}

TEST(ProfileParser, EveryResourceLimitKeyword) {
  QueuePolicy p = Parse(
      "cpulimit 60\n"
      "rlimitfsize 1000 2000\n"
      "rlimitdata 3000\n"
      "rlimitstack 8388608 unlimited\n"
      "rlimitcore 0 0\n"
      "rlimitrss 4000\n"
      "rlimitnofile 1024 4096\n"
      "rlimitvmem 5000\n");
  EXPECT_EQ(p.rlimits.at(ResourceKind::kCpu), (ResourceLimitSetting{60, std::nullopt}));
  EXPECT_EQ(p.rlimits.at(ResourceKind::kFileSize), (ResourceLimitSetting{1000, 2000}));
  EXPECT_EQ(p.rlimits.at(ResourceKind::kData).soft, 3000u);
  EXPECT_EQ(p.rlimits.at(ResourceKind::kStack),
            (ResourceLimitSetting{8388608, ResourceLimitSetting::kUnlimited}));
  EXPECT_EQ(p.rlimits.at(ResourceKind::kCore), (ResourceLimitSetting{0, 0}));
  EXPECT_EQ(p.rlimits.at(ResourceKind::kRss).soft, 4000u);
  EXPECT_EQ(p.rlimits.at(ResourceKind::kOpenFiles), (ResourceLimitSetting{1024, 4096}));
  EXPECT_EQ(p.rlimits.at(ResourceKind::kAddressSpace).soft, 5000u);
  EXPECT_EQ(Parse("rlimitas 6000").rlimits.at(ResourceKind::kAddressSpace).soft, 6000u);
  EXPECT_EQ(Parse("rlimitcpu unlimited").rlimits.at(ResourceKind::kCpu).soft,
            ResourceLimitSetting::kUnlimited);
}

TEST(ProfileParser, ResourceLimitErrors) {
  EXPECT_TRUE(Contains(ErrorOf("rlimitcpu"), "missing value"));
  EXPECT_TRUE(Contains(ErrorOf("rlimitcpu 10 20 30"), "unexpected \"30\""));
  EXPECT_TRUE(Contains(ErrorOf("rlimitcpu ten"), "is not a limit"));
  EXPECT_TRUE(Contains(ErrorOf("rlimitcpu -5"), "is not a limit"));
  EXPECT_EQ(ErrorOf("rlimitnofile 100 50"),
            "/spool/now/profile:1: rlimitnofile: the soft limit 100 is above the hard limit 50");
}

TEST(ProfileParser, SupervisorAndMail) {
  EXPECT_EQ(Parse("supervisor ops@example.org").supervisor, "ops@example.org");
  EXPECT_TRUE(Contains(ErrorOf("supervisor"), "missing value"));
  EXPECT_TRUE(Contains(ErrorOf("supervisor \"\""), "empty"));
  EXPECT_EQ(Parse("mail").mail, (MailEvents{false, false, false}));
  EXPECT_EQ(Parse("mail \"\"").mail, (MailEvents{false, false, false}));
  EXPECT_EQ(Parse("mail ec").mail, (MailEvents{false, true, true}));
  EXPECT_EQ(Parse("mailsupervisor S").mail_supervisor, (MailEvents{true, false, false}));
  EXPECT_TRUE(Contains(ErrorOf("mail sx"), "is not made of the letters s (start), e (end), c (crash)"));
  EXPECT_TRUE(Contains(ErrorOf("mail s e"), "unexpected \"e\""));
}

TEST(ProfileParser, Flags) {
  EXPECT_TRUE(Parse("restart").restart);
  EXPECT_FALSE(Parse("restart\nrestart off").restart);
  EXPECT_TRUE(Parse("allowroot yes").allow_root);
  EXPECT_FALSE(Parse("allowroot no").allow_root);
  EXPECT_TRUE(Contains(ErrorOf("restart maybe"), "is not one of on, off, yes, no, true, false"));
}

TEST(ProfileParser, ProgramKeepsTheCommandAsWritten) {
  EXPECT_EQ(Parse("program /usr/bin/check --fast 'a  b' # why").program,
            "/usr/bin/check --fast 'a  b'");
  EXPECT_EQ(Parse("program \"/usr/bin/check --fast\"").program, "/usr/bin/check --fast");
  EXPECT_TRUE(Contains(ErrorOf("program"), "missing value"));
  EXPECT_TRUE(Contains(ErrorOf("program \"\""), "empty"));
}

TEST(ProfileParser, SecondProgramIsAnError) {
  EXPECT_EQ(ErrorOf("program /bin/a\n\nprogram /bin/b\n"),
            "/spool/now/profile:3: program: a queue may have only one program line; remove the "
            "others");
  EXPECT_TRUE(Contains(ErrorOf("program /bin/a\nhost node1.example.org program /bin/b"),
                       "only one program line"));
  // One program per host is fine: only the statements that apply count.
  EXPECT_EQ(Parse("host other program /bin/a\nhost node1.example.org program /bin/b").program,
            "/bin/b");
}

TEST(ProfileParser, CheckpointKeywords) {
  EXPECT_EQ(Parse("checkpointmode 1").checkpoint_mode, CheckpointMode::kTransparent);
  EXPECT_EQ(Parse("restartmode 2").restart_mode, RestartMode::kUser);
  EXPECT_EQ(Parse("restartmode 0").restart_mode, RestartMode::kRefuse);
  EXPECT_TRUE(Contains(ErrorOf("checkpointmode 3"), "out of range (0 to 2)"));
  EXPECT_TRUE(Contains(ErrorOf("restartmode -1"), "out of range (0 to 2)"));
  EXPECT_EQ(Parse("restartflagpos first").restart_flag_pos, RestartFlagPosition::kFirst);
  EXPECT_TRUE(Contains(ErrorOf("restartflagpos middle"), "is not one of first, last"));
  EXPECT_EQ(Parse("checkpointgrace 0").checkpoint_grace_seconds, 0u);
  EXPECT_TRUE(Contains(ErrorOf("checkpointgrace 86401"), "out of range"));
  EXPECT_EQ(Parse("checkpointexit 255").checkpoint_exit, 255);
  EXPECT_TRUE(Contains(ErrorOf("checkpointexit 256"), "out of range (1 to 255)"));
  EXPECT_TRUE(Contains(ErrorOf("checkpointexit 0"), "out of range (1 to 255)"));
  EXPECT_TRUE(Contains(ErrorOf("checkpointperiod 60s"), "is not a whole number"));
}

TEST(ProfileParser, RestartFlagQuoting) {
  EXPECT_EQ(Parse("restartflag -restart").restart_flag, "-restart");
  EXPECT_EQ(Parse("restartflag \"--tag=a#b\" # comment").restart_flag, "--tag=a#b");
  EXPECT_EQ(Parse("restartflag \"say \\\"hi\\\" \\\\ now\"").restart_flag, "say \"hi\" \\ now");
  EXPECT_EQ(Parse("restartflag \"\"").restart_flag, "");
  EXPECT_TRUE(Contains(ErrorOf("restartflag"), "missing value"));
}

TEST(ProfileParser, CheckpointSignalForms) {
  EXPECT_EQ(Parse("checkpointsignal SIGUSR1").checkpoint_signal, SIGUSR1);
  EXPECT_EQ(Parse("checkpointsignal usr1").checkpoint_signal, SIGUSR1);
  EXPECT_EQ(Parse("checkpointsignal 15").checkpoint_signal, SIGTERM);
  EXPECT_EQ(Parse("checkpointsignal RTMIN+2").checkpoint_signal, SIGRTMIN + 2);
  EXPECT_EQ(ErrorOf("checkpointsignal KILL"),
            "/spool/now/profile:1: checkpointsignal: SIGKILL cannot be caught, so a job could "
            "not checkpoint on it");
  EXPECT_TRUE(Contains(ErrorOf("checkpointsignal SIGSTOP"), "cannot be caught"));
  EXPECT_TRUE(Contains(ErrorOf("checkpointsignal FOO"), "is not a signal name"));
  EXPECT_TRUE(Contains(ErrorOf("checkpointsignal 0"), "is not a signal number"));
  EXPECT_TRUE(Contains(ErrorOf("checkpointsignal 65"), "is not a signal number"));
  EXPECT_TRUE(Contains(ErrorOf("checkpointsignal 10x"), "is not a signal number"));
}

TEST(ProfileParser, RestartFilesStayBelowTheJobDirectory) {
  EXPECT_EQ(Parse("restartfile a\nrestartfile b c").restart_files,
            (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(Parse("restartfile ..hidden dir/x..y").restart_files.size(), 2u);
  EXPECT_TRUE(Contains(ErrorOf("restartfile"), "missing value"));
  EXPECT_TRUE(Contains(ErrorOf("restartfile /etc/passwd"), "must be relative"));
  for (const char* bad : {"..", "../x", "a/../b", "a/..", "ok b/../../c"}) {
    EXPECT_TRUE(Contains(ErrorOf(std::string("restartfile ") + bad), "must not contain ..")) << bad;
  }
  EXPECT_TRUE(Contains(ErrorOf("restartfile \"\""), "empty"));
}

TEST(ProfileParser, CommentsBlankLinesAndLineEndings) {
  QueuePolicy p = Parse(
      "# a comment line\n"
      "\n"
      "   \t  \n"
      "  loadsched 10   # trailing comment\n"
      "loadstop 20#glued comment\r\n"
      "nice 5\r\n"
      "maxexec 3");  // no final newline
  EXPECT_EQ(p.load_sched, 10.0);
  EXPECT_EQ(p.load_stop, 20.0);
  EXPECT_EQ(p.nice, 5);
  EXPECT_EQ(p.max_exec, 3u);
}

TEST(ProfileParser, LaterLinesWin) {
  QueuePolicy p = Parse("loadsched 10\nloadsched 12\nrlimitcpu 5\nrlimitcpu 6 7");
  EXPECT_EQ(p.load_sched, 12.0);
  EXPECT_EQ(p.rlimits.at(ResourceKind::kCpu), (ResourceLimitSetting{6, 7}));
}

TEST(ProfileParser, ErrorNamesFileLineAndKeyword) {
  EXPECT_EQ(ErrorOf("# c\nexec on\n\n\nnice 1\n\nloadsched abc\n"),
            "/spool/now/profile:7: loadsched: \"abc\" is not a number");
  ProfileContext unnamed = Context();
  unnamed.file_name.clear();
  EXPECT_EQ(ErrorOf("bogus", unnamed), "profile:1: bogus: unknown keyword");
}

TEST(ProfileParser, UnknownAndReservedKeywords) {
  EXPECT_EQ(ErrorOf("loadsched 5\nfrobnicate 3"),
            "/spool/now/profile:2: frobnicate: unknown keyword");
  for (const char* reserved : {"maxqueue 5", "console", "day Mo"}) {
    EXPECT_TRUE(Contains(ErrorOf(reserved), "reserved word with no meaning")) << reserved;
  }
  // A value is not a keyword: the original's reserved-word problem is gone.
  EXPECT_EQ(Parse("supervisor on").supervisor, "on");
}

TEST(ProfileParser, MissingValuesAndTrailingJunk) {
  for (const char* keyword : {"maxexec", "vmaxexec", "pfactor", "loadsched", "loadstop",
                              "loadcheckpoint", "loadnorm", "timesched", "timestop", "nice",
                              "minfree", "checkpointmode", "restartmode", "restartflagpos",
                              "checkpointsignal", "checkpointgrace", "checkpointexit",
                              "checkpointperiod"}) {
    EXPECT_TRUE(Contains(ErrorOf(keyword), std::string(keyword) + ": missing value")) << keyword;
  }
  EXPECT_EQ(ErrorOf("loadsched 10 20"),
            "/spool/now/profile:1: loadsched: unexpected \"20\" after the value (quote a value "
            "that contains spaces)");
  EXPECT_TRUE(Contains(ErrorOf("maxexec 4x"), "\"4x\" is not a whole number"));
  EXPECT_TRUE(Contains(ErrorOf("maxexec 4 jobs"), "unexpected \"jobs\""));
  EXPECT_TRUE(Contains(ErrorOf("exec on off"), "unexpected \"off\""));
  EXPECT_TRUE(Contains(ErrorOf("restart on now"), "unexpected \"now\""));
}

TEST(ProfileParser, QuotingErrors) {
  EXPECT_EQ(ErrorOf("restartflag \"abc"),
            "/spool/now/profile:1: restartflag: a double quote is not closed on this line");
  EXPECT_TRUE(Contains(ErrorOf("restartflag --x=\"a\""), "may only start a word"));
  EXPECT_TRUE(Contains(ErrorOf("restartflag \"a\"b"), "must be followed by a space"));
  EXPECT_TRUE(Contains(ErrorOf(std::string("restartflag a\x01")), "control character"));
  EXPECT_TRUE(Contains(ErrorOf(std::string("nice 1\0 2", 10)), "control character"));
  EXPECT_TRUE(Contains(ErrorOf("restartflag \"" + std::string(5000, 'x') + "\""), "longer than"));
}

TEST(ProfileParser, HostStatementAppliesOnlyOnThatHost) {
  EXPECT_EQ(Parse("host node1.example.org maxexec 3").max_exec, 3u);
  EXPECT_EQ(Parse("host NODE1.Example.ORG maxexec 3").max_exec, 3u);
  EXPECT_EQ(Parse("host node2.example.org maxexec 3").max_exec, 8u);
  EXPECT_EQ(Parse("pfactor 2\nhost node2.example.org pfactor 100").pfactor, 2.0);
  EXPECT_EQ(Parse("host node1.example.org exec off\nhost node2 exec drain").exec, ExecState::kOff);
}

TEST(ProfileParser, HostNameMayOmitTheLocalPort) {
  ProfileContext ctx = Context();
  ctx.local_host = "node1:1430";
  EXPECT_EQ(Parse("host node1 nice 4", ctx).nice, 4);
  EXPECT_EQ(Parse("host node1:1430 nice 4", ctx).nice, 4);
  EXPECT_EQ(Parse("host node1:1431 nice 4", ctx).nice, 0);
  EXPECT_EQ(Parse("host node2 nice 4", ctx).nice, 0);
  ctx.local_host = "[::1]:1430";
  EXPECT_EQ(Parse("host ::1 nice 4", ctx).nice, 4);
}

TEST(ProfileParser, HostStatementErrors) {
  EXPECT_EQ(ErrorOf("host"), "/spool/now/profile:1: host: missing host name");
  EXPECT_EQ(ErrorOf("host node1"), "/spool/now/profile:1: host: missing statement after the host name");
  EXPECT_TRUE(Contains(ErrorOf("host a host b nice 1"), "cannot contain another"));
  // Statements for other hosts are still checked, so typos show everywhere.
  EXPECT_EQ(ErrorOf("host node2 loadsched abc"),
            "/spool/now/profile:1: loadsched: \"abc\" is not a number");
  EXPECT_EQ(ErrorOf("host node2 bogus 1"), "/spool/now/profile:1: bogus: unknown keyword");
}

class ProfileFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("profile_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(ProfileFile, LoadsAndNamesTheFileInErrors) {
  const std::string good = Write("good", "maxexec 2\n");
  auto policy = LoadProfileFile(good, ProfileContext{"", "h", 4});
  ASSERT_TRUE(policy.ok()) << policy.message();
  EXPECT_EQ(policy->max_exec, 2u);
  const std::string bad = Write("bad", "\nnice x\n");
  auto error = LoadProfileFile(bad, ProfileContext{"", "h", 4});
  ASSERT_FALSE(error.ok());
  EXPECT_EQ(error.message(), bad + ":2: nice: \"x\" is not a whole number");
}

TEST_F(ProfileFile, RejectsMissingDirectoriesAndHugeFiles) {
  auto missing = LoadProfileFile((dir_ / "nope").string(), ProfileContext{});
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(Contains(missing.message(), "No such file or directory"));
  auto directory = LoadProfileFile(dir_.string(), ProfileContext{});
  ASSERT_FALSE(directory.ok());
  EXPECT_TRUE(Contains(directory.message(), "not a regular file"));
  std::string lines;
  while (lines.size() <= kMaxProfileBytes) lines += "# padding padding padding padding\n";
  auto huge = LoadProfileFile(Write("huge", lines), ProfileContext{});
  ASSERT_FALSE(huge.ok());
  EXPECT_TRUE(Contains(huge.message(), "is larger than 1048576 bytes"));
  lines.resize(kMaxProfileBytes - 1);
  lines += "\n";
  EXPECT_TRUE(LoadProfileFile(Write("just_fits", lines), ProfileContext{}).ok());
}

TEST(ProfilePolicy, DescribeGivesTheMainValuesOnOneLine) {
  const std::string line = DescribePolicy(DefaultPolicy(4));
  EXPECT_EQ(line,
            "exec on, maxexec 4, vmaxexec 4, pfactor 1, loadsched 25, loadstop 50, "
            "loadcheckpoint 26, loadnorm none, nice 0, minfree none, timesched none, timestop "
            "none, program none, cpulimit unlimited, mail ec, checkpointmode 0, restartmode 0, "
            "checkpointsignal SIGUSR2");
  QueuePolicy p = Parse(
      "exec drain\nmaxexec 2\nloadsched 1.5\ntimesched Wk0900-1700\nminfree /tmp 10\n"
      "cpulimit 60\nprogram /bin/check\nmail\ncheckpointsignal USR1");
  const std::string custom = DescribePolicy(p);
  EXPECT_EQ(custom.find('\n'), std::string::npos);
  for (const char* part : {"exec drain", "maxexec 2", "loadsched 1.5", "timesched Wk0900-1700",
                           "minfree /tmp 10KB", "cpulimit 60s", "program \"/bin/check\"",
                           "mail none", "checkpointsignal SIGUSR1"}) {
    EXPECT_TRUE(Contains(custom, part)) << part << " in " << custom;
  }
}

TEST(ProfilePolicy, VirtualLoadFollowsTheFormula) {
  EXPECT_DOUBLE_EQ(VirtualLoad(0.0, 4, 0, 1.0), 1.0 / 5.0);
  EXPECT_DOUBLE_EQ(VirtualLoad(3.0, 4, 1, 2.0), 4.0 / (4.0 * 2.0));
  EXPECT_DOUBLE_EQ(VirtualLoad(3.0, 4, 4, 1.0), 4.0);
  EXPECT_DOUBLE_EQ(VirtualLoad(3.0, 4, 9, 1.0), 4.0);  // more running than vmaxexec: no underflow
  EXPECT_DOUBLE_EQ(VirtualLoad(1.0, 0, 0, 0.0), 2.0);  // a bad pfactor counts as 1
  EXPECT_LT(VirtualLoad(0.5, 2, 0, 100.0), VirtualLoad(0.5, 2, 0, 1.0));
}

TEST(ProfilePolicy, NormalizedLoad) {
  EXPECT_DOUBLE_EQ(NormalizedLoad(8.0, LoadNormalization::kNone, 4), 8.0);
  EXPECT_DOUBLE_EQ(NormalizedLoad(8.0, LoadNormalization::kCores, 4), 2.0);
  EXPECT_DOUBLE_EQ(NormalizedLoad(8.0, LoadNormalization::kCores, 0), 8.0);
}

TEST(ProfilePolicy, ResourceKindsMapToRlimits) {
  EXPECT_EQ(RlimitResource(ResourceKind::kCpu), RLIMIT_CPU);
  EXPECT_EQ(RlimitResource(ResourceKind::kFileSize), RLIMIT_FSIZE);
  EXPECT_EQ(RlimitResource(ResourceKind::kData), RLIMIT_DATA);
  EXPECT_EQ(RlimitResource(ResourceKind::kStack), RLIMIT_STACK);
  EXPECT_EQ(RlimitResource(ResourceKind::kCore), RLIMIT_CORE);
  EXPECT_EQ(RlimitResource(ResourceKind::kRss), RLIMIT_RSS);
  EXPECT_EQ(RlimitResource(ResourceKind::kOpenFiles), RLIMIT_NOFILE);
  EXPECT_EQ(RlimitResource(ResourceKind::kAddressSpace), RLIMIT_AS);
}

TEST(ProfilePolicy, SignalNamesRoundTrip) {
  EXPECT_EQ(SignalName(SIGUSR2), "SIGUSR2");
  EXPECT_EQ(SignalName(SIGABRT), "SIGABRT");
  EXPECT_EQ(SignalName(SIGRTMIN + 3), "SIGRTMIN+3");
  for (int signal = 1; signal <= SIGRTMAX; ++signal) {
    if (signal > SIGSYS && signal < SIGRTMIN) continue;  // reserved by the C library
    auto parsed = ParseSignal(SignalName(signal));
    ASSERT_TRUE(parsed.ok()) << signal;
    EXPECT_EQ(*parsed, signal);
  }
  EXPECT_EQ(*ParseSignal("RTMAX-1"), SIGRTMAX - 1);
  EXPECT_FALSE(ParseSignal("RTMIN-1").ok());
  EXPECT_FALSE(ParseSignal("").ok());
}

}  // namespace
}  // namespace queue::profile
