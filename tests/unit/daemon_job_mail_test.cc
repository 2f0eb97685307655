// Tests of a batch job's owner mail (when it is due, its subject and body) and
// of handing a message to sendmail.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "daemon/job_mail.h"
#include "daemon/mailer.h"

namespace queue::daemon {
namespace {

int ExitedWith(int code) { return code << 8; }
int KilledBy(int signo, bool core = false) { return signo | (core ? 0x80 : 0); }

JobMailInput Job(int wait_status, std::string output = "") {
  JobMailInput job;
  job.job_name = "make";
  job.queue = "now";
  job.host = "node1:15002";
  job.job_id = "42.1";
  job.wait_status = wait_status;
  job.cpu_seconds = 1.5;
  job.output = std::move(output);
  return job;
}

profile::MailEvents Events(bool start, bool end, bool crash) { return {start, end, crash}; }

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(DaemonJobMail, SuccessMailedWhenEndFlagSet) {
  auto mail = ComposeJobMail(Job(ExitedWith(0)), Events(false, true, false));
  ASSERT_TRUE(mail.has_value());
  EXPECT_EQ(mail->subject, "Success: 'make' in 'now' queue_b");
  EXPECT_TRUE(Contains(mail->body, "node1:15002")) << mail->body;
  EXPECT_TRUE(Contains(mail->body, "Exit code: 0")) << mail->body;
  EXPECT_TRUE(Contains(mail->body, "CPU time: 1.50 s")) << mail->body;
  EXPECT_TRUE(Contains(mail->body, "Job 42")) << mail->body;
}

TEST(DaemonJobMail, QuietSuccessNotMailedWithoutEndFlag) {
  EXPECT_FALSE(ComposeJobMail(Job(ExitedWith(0)), Events(true, false, true)).has_value());
}

TEST(DaemonJobMail, OutputAlwaysMailed) {
  auto mail = ComposeJobMail(Job(ExitedWith(0), "hello\n"), Events(false, false, false));
  ASSERT_TRUE(mail.has_value());
  EXPECT_EQ(mail->subject, "Success+Output: 'make' in 'now' queue_b");
  EXPECT_TRUE(Contains(mail->body, "Output:\n\nhello\n")) << mail->body;
  EXPECT_FALSE(Contains(mail->body, "truncated")) << mail->body;
}

TEST(DaemonJobMail, NonZeroExitAlwaysMailed) {
  auto mail = ComposeJobMail(Job(ExitedWith(3)), Events(false, false, false));
  ASSERT_TRUE(mail.has_value());
  EXPECT_EQ(mail->subject, "Unsuccessful: 'make' in 'now' queue_b");
  EXPECT_TRUE(Contains(mail->body, "Exit code: 3")) << mail->body;
  EXPECT_TRUE(Contains(mail->body, "no output")) << mail->body;
}

TEST(DaemonJobMail, SignalNamedWithCore) {
  auto mail = ComposeJobMail(Job(KilledBy(SIGSEGV, true), "partial"), Events(false, false, false));
  ASSERT_TRUE(mail.has_value());
  EXPECT_EQ(mail->subject, "Unsuccessful+Output: 'make' in 'now' queue_b");
  EXPECT_TRUE(Contains(mail->body, "SIGSEGV (core dumped)")) << mail->body;
  EXPECT_TRUE(Contains(mail->body, "partial\n")) << mail->body;

  auto killed = ComposeJobMail(Job(KilledBy(SIGKILL)), Events(false, false, false));
  ASSERT_TRUE(killed.has_value());
  EXPECT_TRUE(Contains(killed->body, "SIGKILL (no core dumped)")) << killed->body;
}

TEST(DaemonJobMail, CrashFollowsItsFlag) {
  JobMailInput job = Job(0);
  job.crashed = true;
  job.failure = "cannot run make: No such file or directory";
  auto mail = ComposeJobMail(job, Events(false, false, true));
  ASSERT_TRUE(mail.has_value());
  EXPECT_EQ(mail->subject, "Crash: 'make' in 'now' queue_b");
  EXPECT_TRUE(Contains(mail->body, "Crashed: cannot run make")) << mail->body;
  EXPECT_FALSE(Contains(mail->body, "Exit code")) << mail->body;

  EXPECT_FALSE(ComposeJobMail(job, Events(true, true, false)).has_value());
  job.output = "some";
  auto with_output = ComposeJobMail(job, Events(false, false, false));
  ASSERT_TRUE(with_output.has_value());
  EXPECT_EQ(with_output->subject, "Crash+Output: 'make' in 'now' queue_b");
}

TEST(DaemonJobMail, TruncatedOutputSaysSo) {
  JobMailInput job = Job(ExitedWith(0), std::string(kMaxMailedOutput, 'x'));
  job.output_truncated = true;
  auto mail = ComposeJobMail(job, Events(false, false, false));
  ASSERT_TRUE(mail.has_value());
  EXPECT_TRUE(Contains(mail->body, "truncated")) << mail->body.substr(mail->body.size() - 200);
  EXPECT_TRUE(Contains(mail->body, std::to_string(kMaxMailedOutput))) << mail->body.substr(mail->body.size() - 200);
}

TEST(DaemonJobMail, StartMailOnlyWithStartFlag) {
  EXPECT_FALSE(ComposeStartMail(Job(0), Events(false, true, true)).has_value());
  auto mail = ComposeStartMail(Job(0), Events(true, false, false));
  ASSERT_TRUE(mail.has_value());
  EXPECT_EQ(mail->subject, "Started: 'make' in 'now' queue_b");
  EXPECT_TRUE(Contains(mail->body, "node1:15002")) << mail->body;
  EXPECT_TRUE(Contains(mail->body, "started")) << mail->body;
}

// A stand-in sendmail that records its arguments and the message it reads.
class FakeSendmail : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("queue-mail-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    program_ = (dir_ / "sendmail").string();
    std::ofstream(program_) << "#!/bin/sh\nprintf '%s\\n' \"$@\" > " << (dir_ / "args").string() << "\ncat > "
                            << (dir_ / "message.part").string() << "\nmv " << (dir_ / "message.part").string() << " "
                            << (dir_ / "message").string() << "\n";
    chmod(program_.c_str(), 0700);
  }
  void TearDown() override {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    std::filesystem::remove_all(dir_);
  }

  // The message sendmail read, once it has read all of it.
  std::string Delivered() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!std::filesystem::exists(dir_ / "message") && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return Read("message");
  }
  std::string Read(const std::string& name) {
    std::ostringstream text;
    text << std::ifstream(dir_ / name).rdbuf();
    return text.str();
  }

  std::filesystem::path dir_;
  std::string program_;
};

TEST_F(FakeSendmail, HandsTheWholeMessageOver) {
  std::string body = std::string(200 * 1024, 'y') + "\n.\nend\n";  // larger than a pipe's buffer
  ASSERT_TRUE(SendMailVia(program_, "alice", "Success: 'make' in 'now' queue_b", body));
  std::string message = Delivered();
  EXPECT_EQ(message.substr(0, message.find("\n\n")),
            "To: alice\nSubject: Success: 'make' in 'now' queue_b\nAuto-Submitted: auto-generated");
  EXPECT_EQ(message.substr(message.find("\n\n") + 2), body);
  EXPECT_EQ(Read("args"), "-oi\n--\nalice\n");
}

TEST_F(FakeSendmail, NoHeaderCanBeAdded) {
  ASSERT_TRUE(SendMailVia(program_, "bob", "x'\nBcc: mallory\r\n", "body\n"));
  std::string message = Delivered();
  std::string headers = message.substr(0, message.find("\n\n"));
  EXPECT_EQ(headers, "To: bob\nSubject: x' Bcc: mallory  \nAuto-Submitted: auto-generated");
}

TEST_F(FakeSendmail, RefusesWhatCannotBeSent) {
  EXPECT_FALSE(SendMailVia((dir_ / "no-such-sendmail").string(), "alice", "s", "b"));
  EXPECT_FALSE(SendMailVia(program_, "", "s", "b"));
}

}  // namespace
}  // namespace queue::daemon
