// Writes the seed corpus of wire_fuzz: one valid payload of every message type,
// the same framed, and one stream of several frames, so the fuzzer starts from
// inputs that get past the length and bounds checks.
//   make_wire_seeds OUTPUT_DIR
#include <fstream>
#include <iostream>
#include <string>

#include "wire/frame.h"
#include "wire/messages.h"

namespace {

using namespace queue::wire;

JobSpec SampleSpec() {
  JobSpec s;
  s.argv = {"sh", "-c", "echo hi"};
  s.env = {"PATH=/usr/bin:/bin", "HOME=/home/u"};
  s.cwd = "/tmp";
  s.uid = 1000;
  s.gid = 1000;
  s.groups = {24, 1000};
  s.rlimits = {{4, 0, ResourceLimit::kUnlimited}};
  s.pty = PtyMode::kFull;
  s.terminal.present = true;
  s.terminal.control_chars = {3, 28, 127, 21};
  s.terminal.rows = 24;
  s.terminal.cols = 80;
  s.queue = "wait";
  s.job_name = "seed";
  s.stub_address = "127.0.0.1";
  s.stub_port = 40000;
  s.session_key = std::string(kSessionKeyBytes, 'k');
  return s;
}

class SeedWriter {
 public:
  explicit SeedWriter(std::string dir) : dir_(std::move(dir)) {}

  template <class M>
  void Message(const std::string& name, const M& message) {
    Write(name, EncodePayload(message));
    Write(name + ".frame", MakeFrame(message));
    stream_ += MakeFrame(message);
  }
  void Stream() { Write("stream.frames", stream_); }
  bool ok() const { return ok_; }

 private:
  void Write(const std::string& name, const std::string& bytes) {
    std::ofstream out(dir_ + "/" + name, std::ios::binary);
    out << bytes;
    ok_ &= static_cast<bool>(out);
  }

  std::string dir_;
  std::string stream_;
  bool ok_ = true;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_wire_seeds OUTPUT_DIR\n";
    return 2;
  }
  SeedWriter seeds(argv[1]);
  seeds.Message("hello", Hello{kProtocolVersion, Role::kDaemon, "127.0.0.1:15002"});
  seeds.Message("error_reply", ErrorReply{"queue \"x\" does not exist on this host"});
  seeds.Message("submit_request", SubmitRequest{SampleSpec()});
  seeds.Message("submit_reply", SubmitReply{{42, 2}, "node1:1421"});
  seeds.Message("status_request", StatusRequest{});
  seeds.Message("status_reply", StatusReply{R"({"hosts":[{"name":"a","load":0.5}]})"});
  LoadReport report;
  report.host = "node1:1421";
  report.load1 = 0.75;
  report.cpus = 8;
  report.queues = {{"now", 1, 8, 8, 1.0, true}, {"wait", 0, 2, 4, 2.5, false}};
  seeds.Message("load_report", report);
  seeds.Message("load_query", LoadQuery{9});
  seeds.Message("load_answer", LoadAnswer{9, report});
  {
    PlaceJob place;
    place.request_id = 7;
    place.origin_host = "node2:1421";
    place.origin_job_id = 99;
    place.spec = SampleSpec();
    seeds.Message("place_job", place);
  }
  seeds.Message("place_reply", PlaceReply{7, false, false, "queue \"now\" is full"});
  {
    ShepherdStart start;
    start.job = {99, 1};
    start.exec_host = "node1:1421";
    start.profile_nice = 5;
    start.spec = SampleSpec();
    seeds.Message("shepherd_start", start);
  }
  seeds.Message("shepherd_event", ShepherdEvent{ShepherdEventKind::kFinished, 1234, 256, 0.5, ""});
  seeds.Message("attach", Attach{99, "node1:1421"});
  seeds.Message("stream_data", StreamData{StreamId::kStdout, "hello, world\n"});
  seeds.Message("stream_eof", StreamEof{StreamId::kStdin});
  seeds.Message("stream_closed", StreamClosed{StreamId::kStdout});
  seeds.Message("signal", Signal{2});
  seeds.Message("window_size", WindowSize{24, 80, 640, 480});
  seeds.Message("job_status", JobStatus{JobStatusKind::kExited, 3, ""});
  seeds.Message("cancel_request", CancelRequest{{17, 3}});
  seeds.Message("cancel_element", CancelRequest{{17, 3}, 5});
  {
    JobSpec batch = SampleSpec();
    batch.batch = true;
    BulkSubmitRequest array{batch, {{1, 9, 2}, {10, 10000, 1}}, {}, false};
    seeds.Message("bulk_submit_array", array);
    batch.argv = {"/bin/sh", "-c"};
    BulkSubmitRequest lines{batch, {}, {"echo one", "make -C dir{1} > out 2>&1"}, true};
    seeds.Message("bulk_submit_lines", lines);
  }
  seeds.Message("bulk_submit_reply", BulkSubmitReply{true, 10000, {17, 3}});
  seeds.Message("transfer_progress", TransferProgress{{17, 3}, true, "127.0.0.1:15002", 1 << 20, 32 << 20, 250, false});
  seeds.Message("forward_request", ForwardRequest{5, 1000, 1000, MessageType::kCancelRequest,
                                                  EncodePayload(CancelRequest{{17, 3}})});
  seeds.Message("forward_reply", ForwardReply{5, MessageType::kStatusReply, EncodePayload(StatusReply{"cancelled"})});
  seeds.Message("notice", Notice{"job suspended: load too high"});
  seeds.Stream();
  if (!seeds.ok()) {
    std::cerr << "make_wire_seeds: cannot write to " << argv[1] << "\n";
    return 1;
  }
  return 0;
}
