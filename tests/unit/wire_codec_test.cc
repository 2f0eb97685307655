// Tests of the bounded codec, frames and message round trips.
#include <gtest/gtest.h>

#include <cmath>

#include "wire/frame.h"
#include "wire/messages.h"

namespace queue::wire {
namespace {

JobSpec SampleSpec() {
  JobSpec s;
  s.argv = {"sh", "-c", "echo hi"};
  s.env = {"PATH=/usr/bin:/bin", "HOME=/root"};
  s.cwd = "/tmp";
  s.umask = 027;
  s.nice = 5;
  s.uid = 1000;
  s.gid = 1000;
  s.groups = {4, 24, 1000};
  s.rlimits = {{4, 0, ResourceLimit::kUnlimited}};
  s.pty = PtyMode::kFull;
  s.terminal.present = true;
  s.terminal.control_chars = {3, 28, 127};
  s.terminal.rows = 40;
  s.terminal.cols = 120;
  s.queue = "wait";
  s.job_name = "build";
  s.stub_address = "127.0.0.1";
  s.stub_port = 4242;
  s.session_key = std::string(kSessionKeyBytes, 'k');
  return s;
}

TEST(Codec, IntegersRoundTrip) {
  Writer w;
  w.u8(0xab);
  w.u16(0xbeef);
  w.u32(0xdeadbeef);
  w.u64(0x0123456789abcdefULL);
  w.i32(-7);
  w.f64(1.25);
  Reader r(w.data());
  EXPECT_EQ(r.u8(), 0xab);
  EXPECT_EQ(r.u16(), 0xbeef);
  EXPECT_EQ(r.u32(), 0xdeadbeefU);
  EXPECT_EQ(r.u64(), 0x0123456789abcdefULL);
  EXPECT_EQ(r.i32(), -7);
  EXPECT_EQ(r.f64(), 1.25);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.at_end());
}

TEST(Codec, ReadPastEndFailsAndStaysFailed) {
  Reader r(std::string_view("\x01\x02", 2));
  EXPECT_EQ(r.u32(), 0U);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.u8(), 0);
  EXPECT_FALSE(r.ok());
}

TEST(Codec, StringOverBoundFails) {
  Writer w;
  w.str(std::string(100, 'x'));
  Reader r(w.data());
  r.str(99);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error().find("bound"), std::string::npos);
}

TEST(Codec, HugeDeclaredLengthDoesNotAllocate) {
  Writer w;
  w.u32(0xffffffff);
  Reader r(w.data());
  r.str(SIZE_MAX);
  EXPECT_FALSE(r.ok());
}

TEST(Messages, JobSpecRoundTrips) {
  SubmitRequest req{SampleSpec()};
  auto decoded = DecodePayload<SubmitRequest>(EncodePayload(req));
  ASSERT_TRUE(decoded.ok()) << decoded.message();
  EXPECT_EQ(decoded->spec, req.spec);
}

TEST(Messages, JobSpecRejectsRelativeCwd) {
  JobSpec s = SampleSpec();
  s.cwd = "tmp";
  auto decoded = DecodePayload<SubmitRequest>(EncodePayload(SubmitRequest{s}));
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.message().find("cwd"), std::string::npos);
}

TEST(Messages, JobSpecRejectsBadQueueName) {
  JobSpec s = SampleSpec();
  s.queue = "../etc";
  EXPECT_FALSE(DecodePayload<SubmitRequest>(EncodePayload(SubmitRequest{s})).ok());
}

TEST(Messages, JobSpecRejectsEmptyCommand) {
  JobSpec s = SampleSpec();
  s.argv.clear();
  EXPECT_FALSE(DecodePayload<SubmitRequest>(EncodePayload(SubmitRequest{s})).ok());
}

TEST(Messages, TrailingBytesRejected) {
  std::string payload = EncodePayload(Signal{2}) + "x";
  EXPECT_FALSE(DecodePayload<Signal>(payload).ok());
}

TEST(Messages, SignalRange) {
  EXPECT_FALSE(DecodePayload<Signal>(EncodePayload(Signal{0})).ok());
  EXPECT_FALSE(DecodePayload<Signal>(EncodePayload(Signal{65})).ok());
  EXPECT_TRUE(DecodePayload<Signal>(EncodePayload(Signal{15})).ok());
}

// Only an output has a reader that can leave; the stub never closes stdin this way.
TEST(Messages, StreamClosedNamesAnOutput) {
  auto out = DecodePayload<StreamClosed>(EncodePayload(StreamClosed{StreamId::kStdout}));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->stream, StreamId::kStdout);
  EXPECT_TRUE(DecodePayload<StreamClosed>(EncodePayload(StreamClosed{StreamId::kStderr})).ok());
  EXPECT_FALSE(DecodePayload<StreamClosed>(EncodePayload(StreamClosed{StreamId::kStdin})).ok());
  EXPECT_FALSE(DecodePayload<StreamClosed>(std::string(1, '\x07')).ok());
}

TEST(Messages, LoadReportRejectsNaN) {
  LoadReport l;
  l.host = "h";
  l.load1 = std::nan("");
  EXPECT_FALSE(DecodePayload<LoadReport>(EncodePayload(l)).ok());
}

// A large cluster's probe: the answer carries the whole report and is held
// to the same bounds (a NaN load is refused inside an answer too).
TEST(Messages, LoadAnswerRoundTripsAReportAndKeepsItsChecks) {
  LoadAnswer a;
  a.request_id = 77;
  a.report.host = "10.0.0.7:15002";
  a.report.load1 = 1.5;
  a.report.cpus = 16;
  a.report.queues = {{"now", 2, 8, 8, 1.0, true, "", false}};
  auto back = DecodePayload<LoadAnswer>(EncodePayload(a));
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(back->request_id, 77u);
  EXPECT_EQ(back->report.host, "10.0.0.7:15002");
  EXPECT_EQ(back->report.cpus, 16u);
  ASSERT_EQ(back->report.queues.size(), 1u);
  EXPECT_EQ(back->report.queues[0].running, 2u);
  a.report.load1 = std::nan("");
  EXPECT_FALSE(DecodePayload<LoadAnswer>(EncodePayload(a)).ok());
  auto query = DecodePayload<LoadQuery>(EncodePayload(LoadQuery{5}));
  ASSERT_TRUE(query.ok());
  EXPECT_EQ(query->request_id, 5u);
}

TEST(Messages, HelloNeedsMagic) {
  Writer w;
  w.str("HTTP/");
  w.u16(1);
  w.u8(1);
  w.str("");
  EXPECT_FALSE(DecodePayload<Hello>(w.data()).ok());
}

ShepherdStart SampleStart() {
  ShepherdStart s;
  s.job = {77, 2};
  s.exec_host = "10.0.0.2:2222";
  s.profile_nice = 3;
  s.allow_root = true;
  s.output_path = "/var/spool/queue/.queued/output/5.out";
  s.status_path = "/var/spool/queue/.queued/run/5.status";
  s.adoptable = true;
  s.checkpoint_exit = 42;
  s.spec = SampleSpec();
  return s;
}

TEST(Messages, ShepherdStartRoundTripsARestore) {
  ShepherdStart start = SampleStart();
  start.restore_images = "/var/spool/queue/.queued/criu/5";
  start.criu_path = "/usr/local/sbin/criu";
  auto decoded = DecodePayload<ShepherdStart>(EncodePayload(start));
  ASSERT_TRUE(decoded.ok()) << decoded.message();
  EXPECT_EQ(decoded->job, start.job);
  EXPECT_EQ(decoded->exec_host, start.exec_host);
  EXPECT_EQ(decoded->profile_nice, start.profile_nice);
  EXPECT_EQ(decoded->allow_root, start.allow_root);
  EXPECT_EQ(decoded->output_path, start.output_path);
  EXPECT_EQ(decoded->status_path, start.status_path);
  EXPECT_EQ(decoded->adoptable, start.adoptable);
  EXPECT_EQ(decoded->checkpoint_exit, start.checkpoint_exit);
  EXPECT_EQ(decoded->spec, start.spec);
  EXPECT_EQ(decoded->restore_images, start.restore_images);
  EXPECT_EQ(decoded->criu_path, start.criu_path);
}

TEST(Messages, ShepherdStartWithoutARestoreRoundTrips) {
  auto decoded = DecodePayload<ShepherdStart>(EncodePayload(SampleStart()));
  ASSERT_TRUE(decoded.ok()) << decoded.message();
  EXPECT_EQ(decoded->restore_images, "");
  EXPECT_EQ(decoded->criu_path, "");
}

TEST(Messages, ShepherdStartRefusesABadRestore) {
  struct Case {
    std::string images, criu;
  };
  const std::vector<Case> cases = {
      {"criu/5", "/usr/local/sbin/criu"},          // relative image directory
      {"/var/spool/queue/.queued/criu/5", ""},     // no criu to restore with
      {"/var/spool/queue/.queued/criu/5", "criu"}, // a criu found who knows where
  };
  for (const Case& c : cases) {
    ShepherdStart start = SampleStart();
    start.restore_images = c.images;
    start.criu_path = c.criu;
    auto decoded = DecodePayload<ShepherdStart>(EncodePayload(start));
    ASSERT_FALSE(decoded.ok()) << c.images << " " << c.criu;
    EXPECT_NE(decoded.message().find("absolute image directory and criu path"), std::string::npos)
        << decoded.message();
  }
  ShepherdStart oversized = SampleStart();
  oversized.restore_images = "/" + std::string(kMaxPathBytes + 10, 'x');
  oversized.criu_path = "/usr/sbin/criu";
  EXPECT_FALSE(DecodePayload<ShepherdStart>(EncodePayload(oversized)).ok());
}

TEST(Messages, ShepherdControlCarriesTheCriuActions) {
  for (ShepherdAction action : {ShepherdAction::kCheckpointByDaemon, ShepherdAction::kCheckpointAbandoned}) {
    ShepherdControl control{action, "moving to a quieter host"};
    auto decoded = DecodePayload<ShepherdControl>(EncodePayload(control));
    ASSERT_TRUE(decoded.ok()) << decoded.message();
    EXPECT_EQ(decoded->action, action);
    EXPECT_EQ(decoded->reason, control.reason);
  }
  EXPECT_EQ(static_cast<int>(ShepherdAction::kCheckpointByDaemon), 5);
  EXPECT_EQ(static_cast<int>(ShepherdAction::kCheckpointAbandoned), 6);
  for (int action : {0, 7, 255}) {
    auto decoded = DecodePayload<ShepherdControl>(
        EncodePayload(ShepherdControl{static_cast<ShepherdAction>(action), ""}));
    ASSERT_FALSE(decoded.ok()) << action;
    EXPECT_NE(decoded.message().find("unknown shepherd action"), std::string::npos) << decoded.message();
  }
}

TEST(Frames, SplitterYieldsFramesAcrossChunks) {
  std::string stream = MakeFrame(Signal{2}) + MakeFrame(Notice{"hello"});
  FrameSplitter splitter;
  std::vector<MessageType> seen;
  for (char c : stream) {
    splitter.Feed(std::string_view(&c, 1));
    auto next = splitter.Next();
    ASSERT_TRUE(next.ok());
    if (next->has_value()) seen.push_back((*next)->type);
  }
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[0], MessageType::kSignal);
  EXPECT_EQ(seen[1], MessageType::kNotice);
}

TEST(Frames, OversizedFrameRejected) {
  Writer w;
  w.u32(kMaxFrameBytes + 3);
  w.u16(1);
  auto header = ParseFrameHeader(w.data());
  ASSERT_FALSE(header.ok());
  EXPECT_NE(header.message().find("exceeds"), std::string::npos);
}

TEST(Frames, UndersizedFrameRejected) {
  Writer w;
  w.u32(1);
  w.u16(1);
  EXPECT_FALSE(ParseFrameHeader(w.data()).ok());
}

}  // namespace
}  // namespace queue::wire
