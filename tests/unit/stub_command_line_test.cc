// Tests of the command lines of `queue` (CLI11 plus the split at the command)
// and of `qsh` (rsh/ssh conventions).
#include <pwd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "stub/command_line.h"
#include "stub/qsh_command_line.h"

namespace queue::stub {
namespace {

using wire::PtyMode;
using Words = std::vector<std::string>;

Invocation Queue(const Words& args) {
  auto inv = ParseQueueCommandLine(args);
  EXPECT_TRUE(inv.ok()) << inv.message();
  return inv.ok() ? *inv : Invocation{};
}

std::string QueueError(const Words& args) {
  auto inv = ParseQueueCommandLine(args);
  EXPECT_FALSE(inv.ok());
  return inv.ok() ? std::string() : inv.message();
}

Invocation Qsh(const Words& args) {
  auto inv = ParseQshCommandLine(args);
  EXPECT_TRUE(inv.ok()) << inv.message();
  return inv.ok() ? *inv : Invocation{};
}

std::string QshError(const Words& args) {
  auto inv = ParseQshCommandLine(args);
  EXPECT_FALSE(inv.ok());
  return inv.ok() ? std::string() : inv.message();
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string MyUserName() {
  passwd* pw = getpwuid(geteuid());
  return pw != nullptr ? pw->pw_name : std::to_string(geteuid());
}

TEST(StubQueueCommandLine, Defaults) {
  Invocation inv = Queue({"--", "make", "all"});
  EXPECT_EQ(inv.verb, Verb::kRun);
  EXPECT_EQ(inv.command, (Words{"make", "all"}));
  EXPECT_EQ(inv.pty, PtyMode::kFull);
  EXPECT_EQ(inv.queue, "now");
  EXPECT_FALSE(inv.batch);
  EXPECT_FALSE(inv.json);
  EXPECT_TRUE(inv.only_host.empty());
  EXPECT_TRUE(inv.preferred_host.empty());
  EXPECT_TRUE(inv.job_name.empty());
}

TEST(StubQueueCommandLine, ImmediateAndWaitQueues) {
  EXPECT_EQ(Queue({"-i", "--", "true"}).queue, "now");
  EXPECT_EQ(Queue({"-q", "--", "true"}).queue, "wait");
  EXPECT_EQ(Queue({"--queue", "true"}).queue, "wait");
  EXPECT_TRUE(Contains(QueueError({"-i", "-q", "--", "true"}), "-i and -q"));
}

TEST(StubQueueCommandLine, NamedQueue) {
  EXPECT_EQ(Queue({"-d", "night", "--", "true"}).queue, "night");
  EXPECT_EQ(Queue({"--queuedir", "night", "true"}).queue, "night");
  EXPECT_EQ(Queue({"--spooldir=night", "true"}).queue, "night");
  // -q does not override an explicitly named queue.
  EXPECT_EQ(Queue({"-q", "-d", "night", "true"}).queue, "night");
}

TEST(StubQueueCommandLine, BadQueueNameIsAnError) {
  for (const char* bad : {"..", ".", "a/b", "../etc", "a-name-far-too-long-for-a-queue-dir"}) {
    std::string error = QueueError({"-d", bad, "--", "true"});
    EXPECT_TRUE(Contains(error, "is not a queue name")) << bad << ": " << error;
    EXPECT_TRUE(Contains(error, bad)) << error;
  }
}

TEST(StubQueueCommandLine, JobName) {
  EXPECT_EQ(Queue({"-j", "build", "--", "make"}).job_name, "build");
  EXPECT_EQ(Queue({"--jobname", "build", "make"}).job_name, "build");
}

TEST(StubQueueCommandLine, PtyModesExcludeEachOther) {
  EXPECT_EQ(Queue({"-p", "--", "vi"}).pty, PtyMode::kFull);
  EXPECT_EQ(Queue({"-o", "--", "vi"}).pty, PtyMode::kHalf);
  EXPECT_EQ(Queue({"-n", "--", "vi"}).pty, PtyMode::kNone);
  EXPECT_EQ(Queue({"--no-pty", "vi"}).pty, PtyMode::kNone);
  for (const Words& both : {Words{"-p", "-o", "--", "x"}, Words{"-p", "-n", "--", "x"},
                            Words{"-o", "-n", "--", "x"}, Words{"-pon", "--", "x"}}) {
    EXPECT_TRUE(Contains(QueueError(both), "-p, -o and -n exclude each other")) << both[0];
  }
}

TEST(StubQueueCommandLine, WaitAndBatchExcludeEachOther) {
  EXPECT_FALSE(Queue({"-w", "--", "x"}).batch);
  EXPECT_TRUE(Queue({"-r", "--", "x"}).batch);
  EXPECT_TRUE(Queue({"--batch", "x"}).batch);
  EXPECT_TRUE(Contains(QueueError({"-w", "-r", "--", "x"}), "-w and -r exclude each other"));
}

TEST(StubQueueCommandLine, HostAndRobustHostExcludeEachOther) {
  EXPECT_EQ(Queue({"-h", "node1", "--", "x"}).only_host, "node1");
  EXPECT_EQ(Queue({"-H", "node2:1500", "--", "x"}).preferred_host, "node2:1500");
  EXPECT_EQ(Queue({"--host", "node1", "x"}).only_host, "node1");
  EXPECT_TRUE(
      Contains(QueueError({"-h", "node1", "-H", "node2", "--", "x"}), "-h and -H exclude each other"));
}

TEST(StubQueueCommandLine, EverythingAfterDashDashIsTheCommand) {
  Invocation inv = Queue({"-n", "--", "sh", "-c", "echo -h -- x", "--", "-r", "-d", "q"});
  EXPECT_EQ(inv.command, (Words{"sh", "-c", "echo -h -- x", "--", "-r", "-d", "q"}));
  EXPECT_EQ(inv.pty, PtyMode::kNone);
  EXPECT_FALSE(inv.batch);
  EXPECT_EQ(inv.queue, "now");
}

TEST(StubQueueCommandLine, CommandStartsAtTheFirstNonOption) {
  Invocation inv = Queue({"-r", "-d", "wait", "-j", "n", "echo", "-n", "-r", "--", "hi"});
  EXPECT_EQ(inv.command, (Words{"echo", "-n", "-r", "--", "hi"}));
  EXPECT_TRUE(inv.batch);
  EXPECT_EQ(inv.queue, "wait");
  EXPECT_EQ(inv.job_name, "n");
  EXPECT_EQ(inv.pty, PtyMode::kFull);
}

TEST(StubQueueCommandLine, ClusteredFlagsWithAValuedLetter) {
  Invocation inv = Queue({"-nh", "node1", "hostname", "-f"});
  EXPECT_EQ(inv.pty, PtyMode::kNone);
  EXPECT_EQ(inv.only_host, "node1");
  EXPECT_EQ(inv.command, (Words{"hostname", "-f"}));

  Invocation attached = Queue({"-hnode1", "hostname"});
  EXPECT_EQ(attached.only_host, "node1");
  EXPECT_EQ(attached.command, (Words{"hostname"}));
}

TEST(StubQueueCommandLine, StatusAndJsonNeedNoCommand) {
  Invocation status = Queue({"--status"});
  EXPECT_EQ(status.verb, Verb::kStatus);
  EXPECT_FALSE(status.json);
  Invocation json = Queue({"--status", "--json"});
  EXPECT_EQ(json.verb, Verb::kStatus);
  EXPECT_TRUE(json.json);
}

TEST(StubQueueCommandLine, WatchTakesAnOptionalInterval) {
  EXPECT_EQ(Queue({"--status"}).watch_seconds, 0);
  EXPECT_EQ(Queue({"--status", "--watch"}).watch_seconds, 2);
  EXPECT_EQ(Queue({"--status", "--watch", "5"}).watch_seconds, 5);
  EXPECT_EQ(Queue({"--status", "--watch=7"}).watch_seconds, 7);
  EXPECT_EQ(Queue({"--watch", "3", "--jobs"}).watch_seconds, 3);
  Invocation json = Queue({"--status", "--watch", "--json"});
  EXPECT_EQ(json.watch_seconds, 2);
  EXPECT_TRUE(json.json);
  // Not a number: a command word, which --status does not take.
  EXPECT_NE(QueueError({"--status", "--watch", "now"}).find("takes no command"), std::string::npos);
  EXPECT_NE(QueueError({"--watch", "--", "ls"}).find("--watch goes with --status or --jobs"), std::string::npos);
  EXPECT_NE(QueueError({"--status", "--watch", "999999"}).find("SECONDS"), std::string::npos);
}

TEST(StubQueueCommandLine, OutputTakesAJobId) {
  Invocation inv = Queue({"--output", "12"});
  EXPECT_EQ(inv.verb, Verb::kOutput);
  EXPECT_EQ(inv.output_id, (wire::JobId{12, 0}));
  EXPECT_TRUE(inv.command.empty());
  EXPECT_EQ(Queue({"--output=7"}).output_id, (wire::JobId{7, 0}));
  // A job submitted on host 3 of the hosts file, asked about from any host.
  EXPECT_EQ(Queue({"--output", "7.3"}).output_id, (wire::JobId{7, 3}));
  EXPECT_EQ(Queue({"--socket", "/tmp/q.sock", "--output", "3"}).socket_path, "/tmp/q.sock");
}

TEST(StubQueueCommandLine, OutputNeedsAGoodJobId) {
  for (const char* bad : {"abc", "-5", "+5", " 5", "5x", "0x10", "18446744073709551616", "", "0", "5.", ".5",
                          "5.0", "5.2.1", "5.-1", "5. 2", "5.4294967296"})
    EXPECT_TRUE(Contains(QueueError({"--output", bad}), "is not a job id")) << bad;
  EXPECT_EQ(Queue({"--output", "18446744073709551615"}).output_id.number, UINT64_MAX);
  EXPECT_EQ(Queue({"--output", "1.4294967295"}).output_id.host, UINT32_MAX);
  EXPECT_FALSE(ParseQueueCommandLine({"--output"}).ok());
  // A second word is not silently taken for a command to run.
  EXPECT_TRUE(Contains(QueueError({"--output", "12", "13"}), "takes no command"));
}

TEST(StubQueueCommandLine, VerbsExcludeEachOther) {
  for (const Words& args : {Words{"--output", "12", "--jobs"}, Words{"--output", "12", "--cancel", "12"},
                            Words{"--status", "--output", "1"}, Words{"--jobs", "--status"},
                            Words{"--cancel", "4", "--jobs"}})
    EXPECT_TRUE(Contains(QueueError(args), "exclude each other")) << args.front() << " " << args.back();
}

TEST(StubQueueCommandLine, CancelNeedsAGoodJobId) {
  Invocation inv = Queue({"--cancel", "9"});
  EXPECT_EQ(inv.verb, Verb::kCancel);
  EXPECT_EQ(inv.cancel_id, (wire::JobId{9, 0}));
  EXPECT_EQ(Queue({"--cancel", "9.2"}).cancel_id, (wire::JobId{9, 2}));
  EXPECT_TRUE(Contains(QueueError({"--cancel", "0"}), "is not a job id"));
  EXPECT_TRUE(Contains(QueueError({"--cancel", "9", "--", "rm"}), "takes no command"));
}

TEST(StubQueueCommandLine, BatchRun) {
  Invocation inv = Queue({"-r", "--", "make"});
  EXPECT_EQ(inv.verb, Verb::kRun);
  EXPECT_TRUE(inv.batch);
  EXPECT_TRUE(Queue({"--batch", "make"}).batch);
  EXPECT_TRUE(Contains(QueueError({"-w", "-r", "--", "make"}), "-w and -r"));
}

TEST(StubQueueCommandLine, Version) {
  EXPECT_EQ(Queue({"-v"}).verb, Verb::kVersion);
  EXPECT_EQ(Queue({"--version"}).verb, Verb::kVersion);
}

TEST(StubQueueCommandLine, HelpGivesHelpText) {
  Invocation inv = Queue({"--help"});
  EXPECT_EQ(inv.verb, Verb::kHelp);
  EXPECT_TRUE(Contains(inv.help_text, "--robust-host")) << inv.help_text;
  EXPECT_TRUE(Contains(inv.help_text, "--batch")) << inv.help_text;
  EXPECT_TRUE(Contains(inv.help_text, "--status")) << inv.help_text;
  EXPECT_TRUE(Contains(inv.help_text, "--output")) << inv.help_text;
}

TEST(StubQueueCommandLine, NoCommandIsAnError) {
  EXPECT_TRUE(Contains(QueueError({}), "no command given"));
  EXPECT_TRUE(Contains(QueueError({"-n", "-r"}), "no command given"));
  EXPECT_TRUE(Contains(QueueError({"-n", "--"}), "no command given"));
}

TEST(StubQueueCommandLine, UnknownOptionOrMissingValueIsAnError) {
  EXPECT_TRUE(Contains(QueueError({"--frobnicate", "--", "x"}), "see queue --help"));
  EXPECT_FALSE(ParseQueueCommandLine({"-h"}).ok());
  EXPECT_FALSE(ParseQueueCommandLine({"-d"}).ok());
}

TEST(StubQueueCommandLine, UserNameIsAccepted) {
  Invocation inv = Queue({"-l", MyUserName(), "--", "id"});
  EXPECT_EQ(inv.command, (Words{"id"}));
}

// -l exists for rsh compatibility only: Queue never runs a job as someone else.
TEST(StubQueueCommandLine, OtherUserNameIsRefused) {
  std::string error = QueueError({"-l", "not-this-user-xyz", "--", "id"});
  EXPECT_TRUE(Contains(error, "not-this-user-xyz")) << error;
}

TEST(StubQshCommandLine, HostThenWordsJoinedForTheShell) {
  Invocation inv = Qsh({"node1", "echo", "a b", "c"});
  EXPECT_EQ(inv.verb, Verb::kRun);
  EXPECT_EQ(inv.only_host, "node1");
  EXPECT_EQ(inv.command, (Words{"/bin/sh", "-c", "echo a b c"}));
  EXPECT_EQ(inv.pty, PtyMode::kNone);
  EXPECT_EQ(inv.queue, "now");
  EXPECT_FALSE(inv.batch);
}

TEST(StubQshCommandLine, DashDashAfterTheHostAndOptionLikeWords) {
  // GNU Parallel's form: host -- exec perl -e ...
  Invocation inv = Qsh({"node1", "--", "exec", "perl", "-e", "print 1"});
  EXPECT_EQ(inv.command, (Words{"/bin/sh", "-c", "exec perl -e print 1"}));
  Invocation words = Qsh({"node1", "ls", "-l", "--", "-t"});
  EXPECT_EQ(words.command, (Words{"/bin/sh", "-c", "ls -l -- -t"}));
  Invocation before = Qsh({"-n", "--", "node1", "true"});
  EXPECT_EQ(before.only_host, "node1");
  EXPECT_EQ(before.command, (Words{"/bin/sh", "-c", "true"}));
}

TEST(StubQshCommandLine, PlusMeansAnyHost) {
  Invocation inv = Qsh({"+", "uptime"});
  EXPECT_TRUE(inv.only_host.empty());
  EXPECT_EQ(inv.command, (Words{"/bin/sh", "-c", "uptime"}));
  EXPECT_TRUE(Qsh({"-p", "1500", "+", "uptime"}).only_host.empty());
}

TEST(StubQshCommandLine, PortMakesTheHostEntry) {
  EXPECT_EQ(Qsh({"-p", "15002", "127.0.0.1", "true"}).only_host, "127.0.0.1:15002");
}

TEST(StubQshCommandLine, OwnUserNameIsAcceptedOthersRefused) {
  Invocation inv = Qsh({"-l", MyUserName(), "node1", "true"});
  EXPECT_EQ(inv.only_host, "node1");
  EXPECT_EQ(Qsh({"-l", std::to_string(geteuid()), "node1", "true"}).only_host, "node1");
  std::string error = QshError({"-l", "not-this-user-xyz", "node1", "true"});
  EXPECT_TRUE(Contains(error, "not-this-user-xyz")) << error;
  EXPECT_TRUE(Contains(error, "only as the calling user")) << error;
}

TEST(StubQshCommandLine, SshOptionsAreIgnored) {
  Invocation inv = Qsh({"-T", "-x", "-q", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                        "node1", "true"});
  EXPECT_EQ(inv.only_host, "node1");
  EXPECT_EQ(inv.pty, PtyMode::kNone);
  EXPECT_EQ(inv.command, (Words{"/bin/sh", "-c", "true"}));
}

TEST(StubQshCommandLine, PtyAndBatchAndQueue) {
  EXPECT_EQ(Qsh({"-t", "node1", "vi"}).pty, PtyMode::kFull);
  // -n is ssh's stdin from /dev/null, not the original's "no pty" (SPEC §2).
  Invocation t_n = Qsh({"-t", "-n", "node1", "vi"});
  EXPECT_EQ(t_n.pty, PtyMode::kFull);
  EXPECT_TRUE(t_n.stdin_null);
  EXPECT_TRUE(Qsh({"-r", "node1", "make"}).batch);
  EXPECT_FALSE(Qsh({"-r", "-w", "node1", "make"}).batch);
  Invocation inv = Qsh({"-d", "wait", "-j", "nightly", "node1", "make"});
  EXPECT_EQ(inv.queue, "wait");
  EXPECT_EQ(inv.job_name, "nightly");
  EXPECT_TRUE(Contains(QshError({"-d", "../x", "node1", "make"}), "is not a queue name"));
}

TEST(StubQshCommandLine, VersionAndHelp) {
  EXPECT_EQ(Qsh({"-v"}).verb, Verb::kVersion);
  Invocation help = Qsh({"--help"});
  EXPECT_EQ(help.verb, Verb::kHelp);
  EXPECT_TRUE(Contains(help.help_text, "usage: qsh")) << help.help_text;
}

TEST(StubQshCommandLine, MissingHostOrCommandOrValueIsAnError) {
  EXPECT_TRUE(Contains(QshError({}), "no host given"));
  EXPECT_TRUE(Contains(QshError({"-t", "-n"}), "no host given"));
  EXPECT_TRUE(Contains(QshError({"node1"}), "no command given"));
  EXPECT_TRUE(Contains(QshError({"node1", "--"}), "no command given"));
  EXPECT_TRUE(Contains(QshError({"-p"}), "-p needs a value"));
  EXPECT_TRUE(Contains(QshError({"-Z", "node1", "true"}), "unknown option -Z"));
}

TEST(StubQshCommandLine, DashNIsStdinFromDevNull) {
  Invocation n = Qsh({"-n", "node1", "cat"});
  EXPECT_TRUE(n.stdin_null);
  EXPECT_EQ(n.pty, PtyMode::kNone);
  EXPECT_FALSE(Qsh({"node1", "cat"}).stdin_null);
  // queue -n keeps its meaning: no pty, stdin as it is.
  Invocation queue = Queue({"-n", "--", "cat"});
  EXPECT_EQ(queue.pty, PtyMode::kNone);
  EXPECT_FALSE(queue.stdin_null);
}

// getopt's forms, as ssh takes them (issue 14).
TEST(StubQshCommandLine, CombinedAndAttachedForms) {
  Invocation tt = Qsh({"-tt", "node1", "top"});
  EXPECT_EQ(tt.pty, PtyMode::kFull);
  EXPECT_TRUE(tt.force_pty);
  EXPECT_FALSE(Qsh({"-t", "node1", "top"}).force_pty);
  EXPECT_EQ(Qsh({"-tT", "node1", "top"}).pty, PtyMode::kNone);
  EXPECT_EQ(Qsh({"-p19371", "127.0.0.1", "true"}).only_host, "127.0.0.1:19371");
  EXPECT_EQ(Qsh({"-p", "19371", "127.0.0.1", "true"}).only_host, "127.0.0.1:19371");
  EXPECT_EQ(Qsh({"-oBatchMode=yes", "node1", "true"}).command, (Words{"/bin/sh", "-c", "true"}));
  EXPECT_EQ(Qsh({"-o", "BatchMode=yes", "node1", "true"}).command, (Words{"/bin/sh", "-c", "true"}));
  EXPECT_EQ(Qsh({"-oPort=2222", "node1", "true"}).only_host, "node1:2222");
  EXPECT_EQ(Qsh({"-o", "Port 2222", "node1", "true"}).only_host, "node1:2222");
  Invocation cluster = Qsh({"-nxTp2222", "node1", "true"});
  EXPECT_TRUE(cluster.stdin_null);
  EXPECT_EQ(cluster.only_host, "node1:2222");
  EXPECT_EQ(Qsh({"-l" + MyUserName(), "node1", "true"}).only_host, "node1");
  EXPECT_TRUE(Contains(QshError({"-pnope", "node1", "true"}), "not a port number"));
  EXPECT_TRUE(Contains(QshError({"-p", "70000", "node1", "true"}), "not a port number"));
}

TEST(StubQshCommandLine, OptionsMayFollowTheHostAsInSsh) {
  Invocation inv = Qsh({"node1", "-p", "2222", "-l", MyUserName(), "uptime", "-p"});
  EXPECT_EQ(inv.only_host, "node1:2222");
  EXPECT_EQ(inv.command, (Words{"/bin/sh", "-c", "uptime -p"}));
  // `--` before the host ends the options for good, as in ssh.
  Invocation ended = Qsh({"--", "node1", "-p", "2222"});
  EXPECT_EQ(ended.only_host, "node1");
  EXPECT_EQ(ended.command, (Words{"/bin/sh", "-c", "-p 2222"}));
}

TEST(StubQshCommandLine, UserAtHostMustBeTheCaller) {
  Invocation inv = Qsh({MyUserName() + "@node1", "true"});
  EXPECT_EQ(inv.only_host, "node1");
  std::string error = QshError({"someone-else-xyz@node1", "true"});
  EXPECT_TRUE(Contains(error, "someone-else-xyz")) << error;
  EXPECT_TRUE(Contains(error, "only as the calling user")) << error;
  EXPECT_TRUE(Contains(QshError({"-o", "User=someone-else-xyz", "node1", "true"}), "someone-else-xyz"));
}

TEST(StubQshCommandLine, SshUriDestination) {
  EXPECT_EQ(Qsh({"ssh://" + MyUserName() + "@node1:2222", "true"}).only_host, "node1:2222");
  EXPECT_EQ(Qsh({"ssh://node1", "true"}).only_host, "node1");
  EXPECT_TRUE(Contains(QshError({"ssh://node1/some/path", "true"}), "not a path"));
}

// git runs `qsh -G [-o SendEnv=GIT_PROTOCOL] [-p PORT] host` to learn whether
// qsh takes ssh's options; exit 0 makes it pass ports with -p.
TEST(StubQshCommandLine, DashGPrintsTheConfigurationWithoutACommand) {
  Invocation inv = Qsh({"-G", "-o", "SendEnv=GIT_PROTOCOL", "-p", "19371", "127.0.0.1"});
  EXPECT_EQ(inv.verb, Verb::kPrintConfig);
  EXPECT_TRUE(Contains(inv.help_text, "user " + MyUserName() + "\n")) << inv.help_text;
  EXPECT_TRUE(Contains(inv.help_text, "hostname 127.0.0.1\n")) << inv.help_text;
  EXPECT_TRUE(Contains(inv.help_text, "port 19371\n")) << inv.help_text;
  EXPECT_EQ(Qsh({"-G", "node1", "ignored", "command"}).verb, Verb::kPrintConfig);
  EXPECT_TRUE(Contains(QshError({"-G"}), "no host given"));
}

TEST(StubQshCommandLine, SshsOtherOptionsAreAcceptedAndIgnored) {
  for (const char* flag : {"-4", "-6", "-A", "-a", "-C", "-f", "-g", "-K", "-k", "-M", "-N", "-q", "-s", "-X", "-x",
                           "-Y", "-y"}) {
    Invocation inv = Qsh({flag, "node1", "true"});
    EXPECT_EQ(inv.only_host, "node1") << flag;
    EXPECT_EQ(inv.command, (Words{"/bin/sh", "-c", "true"})) << flag;
  }
  for (const char* valued : {"-B", "-b", "-c", "-D", "-E", "-e", "-F", "-I", "-i", "-J", "-L", "-m", "-O", "-o", "-P",
                             "-Q", "-R", "-S", "-W"}) {
    Invocation inv = Qsh({valued, "value", "node1", "true"});
    EXPECT_EQ(inv.only_host, "node1") << valued;
    EXPECT_EQ(inv.command, (Words{"/bin/sh", "-c", "true"})) << valued;
  }
  EXPECT_EQ(Qsh({"-V"}).verb, Verb::kVersion);
}

}  // namespace
}  // namespace queue::stub
