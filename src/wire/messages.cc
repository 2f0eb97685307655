// Field-by-field encoding of every protocol message.
#include "wire/messages.h"

#include <cmath>

namespace queue::wire {

namespace {
bool IsFinite(double v) { return std::isfinite(v); }
}  // namespace

void Hello::Encode(Writer& w) const {
  w.str("QUEUE");
  w.u16(version);
  w.u8(static_cast<uint8_t>(role));
  w.str(name);
}

Hello Hello::Decode(Reader& r) {
  Hello h;
  if (r.str(8) != "QUEUE" && r.ok()) r.fail("not a Queue peer");
  h.version = r.u16();
  uint8_t role = r.u8();
  h.name = r.str(kMaxNameBytes);
  if (role < 1 || role > 4) r.fail("unknown role");
  h.role = static_cast<Role>(role);
  return h;
}

void ErrorReply::Encode(Writer& w) const { w.str(message); }
ErrorReply ErrorReply::Decode(Reader& r) { return {r.str(4096)}; }

void SubmitRequest::Encode(Writer& w) const { spec.Encode(w); }
SubmitRequest SubmitRequest::Decode(Reader& r) { return {JobSpec::Decode(r)}; }

void SubmitReply::Encode(Writer& w) const {
  job.Encode(w);
  w.str(host);
  w.str(waiting_reason);
}
SubmitReply SubmitReply::Decode(Reader& r) {
  SubmitReply s;
  s.job = JobId::Decode(r);
  s.host = r.str(kMaxNameBytes);
  s.waiting_reason = r.str(8192);
  return s;
}

void BulkSubmitRequest::Encode(Writer& w) const {
  spec.Encode(w);
  w.u32(static_cast<uint32_t>(ranges.size()));
  for (const auto& range : ranges) {
    w.u32(range.first);
    w.u32(range.last);
    w.u32(range.step);
  }
  w.strings(lines);
  w.boolean(more);
}

BulkSubmitRequest BulkSubmitRequest::Decode(Reader& r) {
  BulkSubmitRequest b;
  b.spec = JobSpec::Decode(r);
  uint32_t nranges = r.count(kMaxArrayRanges);
  for (uint32_t i = 0; i < nranges && r.ok(); ++i) {
    ArrayRange range;
    range.first = r.u32();
    range.last = r.u32();
    range.step = r.u32();
    b.ranges.push_back(range);
  }
  b.lines = r.strings(kMaxBulkJobs, kMaxArgBytes);
  b.more = r.boolean();
  if (!r.ok()) return b;
  if (!b.spec.batch) r.fail("a bulk submission is of batch jobs");
  if (b.ranges.empty() == b.lines.empty()) r.fail("a bulk submission is an array or lines, one of them");
  if (!b.ranges.empty() && b.more) r.fail("an array comes in one part");
  uint64_t total = 0;
  for (size_t i = 0; i < b.ranges.size(); ++i) {
    const ArrayRange& range = b.ranges[i];
    if (range.step == 0 || range.first > range.last || range.last > kMaxArrayIndex ||
        (range.last - range.first) % range.step != 0) {
      r.fail("malformed array range");
      return b;
    }
    if (i > 0 && range.first <= b.ranges[i - 1].last) {
      r.fail("array ranges overlap or are out of order");
      return b;
    }
    total += range.size();
  }
  if (total > kMaxBulkJobs) r.fail("too many array elements");
  for (const auto& line : b.lines)
    if (line.find('\0') != std::string::npos) r.fail("NUL byte in a command line");
  return b;
}

uint64_t BulkSubmitRequest::JobCount() const {
  uint64_t total = lines.size();
  for (const auto& range : ranges) total += range.size();
  return total;
}

void BulkSubmitReply::Encode(Writer& w) const {
  w.boolean(done);
  w.u64(count);
  array.Encode(w);
}

BulkSubmitReply BulkSubmitReply::Decode(Reader& r) {
  BulkSubmitReply b;
  b.done = r.boolean();
  b.count = r.u64();
  b.array = JobId::Decode(r);
  return b;
}

void TransferProgress::Encode(Writer& w) const {
  job.Encode(w);
  w.boolean(outward);
  w.str(host);
  w.u64(bytes);
  w.u64(size);
  w.u32(elapsed_ms);
  w.boolean(complete);
}

TransferProgress TransferProgress::Decode(Reader& r) {
  TransferProgress t;
  t.job = JobId::Decode(r);
  t.outward = r.boolean();
  t.host = r.str(kMaxNameBytes);
  t.bytes = r.u64();
  t.size = r.u64();
  t.elapsed_ms = r.u32();
  t.complete = r.boolean();
  return t;
}

void StatusReply::Encode(Writer& w) const { w.str(json); }
StatusReply StatusReply::Decode(Reader& r) { return {r.str(16 * 1024 * 1024)}; }

void LoadReport::Encode(Writer& w) const {
  w.str(host);
  w.f64(load1);
  w.u32(cpus);
  w.u32(static_cast<uint32_t>(queues.size()));
  for (const auto& q : queues) {
    w.str(q.name);
    w.u32(q.running);
    w.u32(q.maxexec);
    w.u32(q.vmaxexec);
    w.f64(q.pfactor);
    w.boolean(q.accepting);
    w.str(q.refusal);
    w.boolean(q.takes_restarts);
  }
}

LoadReport LoadReport::Decode(Reader& r) {
  LoadReport l;
  l.host = r.str(kMaxNameBytes);
  l.load1 = r.f64();
  l.cpus = r.u32();
  uint32_t n = r.count(1024);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    QueueLoad q;
    q.name = r.str(kMaxNameBytes);
    q.running = r.u32();
    q.maxexec = r.u32();
    q.vmaxexec = r.u32();
    q.pfactor = r.f64();
    q.accepting = r.boolean();
    q.refusal = r.str(1024);  // as daemon/queue_table.h kMaxRefusalBytes: a sender shortens a longer one
    q.takes_restarts = r.boolean();
    if (!IsFinite(q.pfactor) || q.pfactor <= 0) r.fail("pfactor out of range");
    l.queues.push_back(std::move(q));
  }
  if (!IsFinite(l.load1) || l.load1 < 0) r.fail("load out of range");
  return l;
}

void PlaceJob::Encode(Writer& w) const {
  w.u64(request_id);
  w.str(origin_host);
  w.u64(origin_job_id);
  w.u32(attempt);
  w.u64(bundle_size);
  w.str(bundle_sha256);
  spec.Encode(w);
}

PlaceJob PlaceJob::Decode(Reader& r) {
  PlaceJob p;
  p.request_id = r.u64();
  p.origin_host = r.str(kMaxNameBytes);
  p.origin_job_id = r.u64();
  p.attempt = r.u32();
  p.bundle_size = r.u64();
  p.bundle_sha256 = r.str(32);
  if (!p.bundle_sha256.empty() && p.bundle_sha256.size() != 32) r.fail("bundle digest is not 32 bytes");
  p.spec = JobSpec::Decode(r);
  return p;
}

void PlaceReply::Encode(Writer& w) const {
  w.u64(request_id);
  w.boolean(accepted);
  w.boolean(permanent);
  w.str(reason);
}

PlaceReply PlaceReply::Decode(Reader& r) {
  PlaceReply p;
  p.request_id = r.u64();
  p.accepted = r.boolean();
  p.permanent = r.boolean();
  p.reason = r.str(4096);
  return p;
}

void JobEnded::Encode(Writer& w) const {
  w.u64(origin_job_id);
  w.u32(attempt);
  w.boolean(failed);
  w.boolean(lost);
  w.i32(wait_status);
  w.f64(cpu_seconds);
  w.str(message);
  w.i64(start_time);
  w.i64(end_time);
  w.u64(output_size);
  w.str(output_sha256);
  w.boolean(checkpointed);
  w.boolean(checkpoint_in_place);
  w.u64(bundle_size);
  w.str(bundle_sha256);
}

JobEnded JobEnded::Decode(Reader& r) {
  JobEnded e;
  e.origin_job_id = r.u64();
  e.attempt = r.u32();
  e.failed = r.boolean();
  e.lost = r.boolean();
  e.wait_status = r.i32();
  e.cpu_seconds = r.f64();
  e.message = r.str(4096);
  e.start_time = r.i64();
  e.end_time = r.i64();
  e.output_size = r.u64();
  e.output_sha256 = r.str(32);
  e.checkpointed = r.boolean();
  e.checkpoint_in_place = r.boolean();
  e.bundle_size = r.u64();
  e.bundle_sha256 = r.str(32);
  if (!e.bundle_sha256.empty() && e.bundle_sha256.size() != 32) r.fail("bundle digest is not 32 bytes");
  if (!IsFinite(e.cpu_seconds) || e.cpu_seconds < 0) r.fail("cpu time out of range");
  if (!e.output_sha256.empty() && e.output_sha256.size() != 32) r.fail("output digest is not 32 bytes");
  return e;
}

void JobOutput::Encode(Writer& w) const {
  w.u64(origin_job_id);
  w.u32(attempt);
  w.u64(offset);
  w.str(bytes);
}

JobOutput JobOutput::Decode(Reader& r) {
  JobOutput o;
  o.origin_job_id = r.u64();
  o.attempt = r.u32();
  o.offset = r.u64();
  o.bytes = r.str(kMaxFileChunk);
  return o;
}

void BundleChunk::Encode(Writer& w) const {
  w.str(origin_host);
  w.u64(origin_job_id);
  w.u32(attempt);
  w.u64(offset);
  w.str(bytes);
}

BundleChunk BundleChunk::Decode(Reader& r) {
  BundleChunk c;
  c.origin_host = r.str(kMaxNameBytes);
  c.origin_job_id = r.u64();
  c.attempt = r.u32();
  c.offset = r.u64();
  c.bytes = r.str(kMaxFileChunk);
  return c;
}

void MigrateRequest::Encode(Writer& w) const {
  job.Encode(w);
  w.str(host);
}

MigrateRequest MigrateRequest::Decode(Reader& r) {
  MigrateRequest m;
  m.job = JobId::Decode(r);
  m.host = r.str(kMaxNameBytes);
  return m;
}

void ForwardRequest::Encode(Writer& w) const {
  w.u64(request_id);
  w.u32(uid);
  w.u32(gid);
  w.u16(static_cast<uint16_t>(type));
  w.str(payload);
}

ForwardRequest ForwardRequest::Decode(Reader& r) {
  ForwardRequest f;
  f.request_id = r.u64();
  f.uid = r.u32();
  f.gid = r.u32();
  f.type = static_cast<MessageType>(r.u16());
  if (f.type != MessageType::kCancelRequest && f.type != MessageType::kOutputRequest &&
      f.type != MessageType::kMigrateRequest)
    r.fail("a forwarded request must be a cancel, output or migrate request");
  f.payload = r.str(kMaxPayloadBytes);
  return f;
}

void ForwardReply::Encode(Writer& w) const {
  w.u64(request_id);
  w.u16(static_cast<uint16_t>(type));
  w.str(payload);
}

ForwardReply ForwardReply::Decode(Reader& r) {
  ForwardReply f;
  f.request_id = r.u64();
  f.type = static_cast<MessageType>(r.u16());
  if (f.type != MessageType::kStatusReply && f.type != MessageType::kOutputReply &&
      f.type != MessageType::kErrorReply)
    r.fail("a forwarded reply must be a status, output or error reply");
  f.payload = r.str(kMaxPayloadBytes);
  return f;
}

void LoadQuery::Encode(Writer& w) const { w.u64(request_id); }

LoadQuery LoadQuery::Decode(Reader& r) { return LoadQuery{r.u64()}; }

void LoadAnswer::Encode(Writer& w) const {
  w.u64(request_id);
  report.Encode(w);
}

LoadAnswer LoadAnswer::Decode(Reader& r) {
  LoadAnswer a;
  a.request_id = r.u64();
  a.report = LoadReport::Decode(r);
  return a;
}

void MigrateJob::Encode(Writer& w) const {
  w.u64(origin_job_id);
  w.str(reason);
}

MigrateJob MigrateJob::Decode(Reader& r) {
  MigrateJob m;
  m.origin_job_id = r.u64();
  m.reason = r.str(4096);
  return m;
}

void OutputReply::Encode(Writer& w) const {
  w.str(path);
  w.boolean(complete);
  w.str(message);
  w.str(held);
}

OutputReply OutputReply::Decode(Reader& r) {
  OutputReply o;
  o.path = r.str(kMaxPathBytes);
  o.complete = r.boolean();
  o.message = r.str(4096);
  o.held = r.str(kMaxHeldShown);
  return o;
}

void ShepherdStart::Encode(Writer& w) const {
  job.Encode(w);
  w.str(exec_host);
  w.i32(profile_nice);
  w.boolean(allow_root);
  w.str(output_path);
  w.str(status_path);
  w.boolean(adoptable);
  w.i32(checkpoint_exit);
  spec.Encode(w);
  w.str(restore_images);
  w.str(criu_path);
}

ShepherdStart ShepherdStart::Decode(Reader& r) {
  ShepherdStart s;
  s.job = JobId::Decode(r);
  s.exec_host = r.str(kMaxNameBytes);
  s.profile_nice = r.i32();
  s.allow_root = r.boolean();
  s.output_path = r.str(kMaxPathBytes);
  s.status_path = r.str(kMaxPathBytes);
  s.adoptable = r.boolean();
  s.checkpoint_exit = r.i32();
  if (s.checkpoint_exit < -1 || s.checkpoint_exit > 255) r.fail("checkpoint exit code out of range");
  s.spec = JobSpec::Decode(r);
  s.restore_images = r.str(kMaxPathBytes);
  s.criu_path = r.str(kMaxPathBytes);
  if (!s.restore_images.empty() && (s.restore_images.front() != '/' || s.criu_path.empty() ||
                                    s.criu_path.front() != '/'))
    r.fail("a restore needs an absolute image directory and criu path");
  return s;
}

void ShepherdEvent::Encode(Writer& w) const {
  w.u8(static_cast<uint8_t>(kind));
  w.i32(pid);
  w.i32(wait_status);
  w.f64(cpu_seconds);
  w.str(message);
  w.boolean(checkpointed);
  w.i64(signal_time_ms);
}

ShepherdEvent ShepherdEvent::Decode(Reader& r) {
  ShepherdEvent e;
  uint8_t kind = r.u8();
  e.pid = r.i32();
  e.wait_status = r.i32();
  e.cpu_seconds = r.f64();
  e.message = r.str(4096);
  e.checkpointed = r.boolean();
  e.signal_time_ms = r.i64();
  if (kind < 1 || kind > 4) r.fail("unknown shepherd event");
  e.kind = static_cast<ShepherdEventKind>(kind);
  return e;
}

void ShepherdControl::Encode(Writer& w) const {
  w.u8(static_cast<uint8_t>(action));
  w.str(reason);
  w.i32(signo);
  w.u32(grace_seconds);
}

ShepherdControl ShepherdControl::Decode(Reader& r) {
  ShepherdControl c;
  uint8_t action = r.u8();
  c.reason = r.str(4096);
  c.signo = r.i32();
  c.grace_seconds = r.u32();
  if (action < 1 || action > 6) r.fail("unknown shepherd action");
  if (c.signo < 0 || c.signo > 64) r.fail("signal out of range");
  c.action = static_cast<ShepherdAction>(action);
  return c;
}

void Attach::Encode(Writer& w) const {
  w.u64(job_id);
  w.str(exec_host);
}

Attach Attach::Decode(Reader& r) {
  Attach a;
  a.job_id = r.u64();
  a.exec_host = r.str(kMaxNameBytes);
  return a;
}

void StreamData::Encode(Writer& w) const {
  w.u8(static_cast<uint8_t>(stream));
  w.str(bytes);
}

StreamData StreamData::Decode(Reader& r) {
  StreamData d;
  uint8_t stream = r.u8();
  d.bytes = r.str(kMaxStreamChunk);
  if (stream > 2) r.fail("unknown stream");
  d.stream = static_cast<StreamId>(stream);
  return d;
}

void StreamEof::Encode(Writer& w) const { w.u8(static_cast<uint8_t>(stream)); }

StreamEof StreamEof::Decode(Reader& r) {
  StreamEof e;
  uint8_t stream = r.u8();
  if (stream > 2) r.fail("unknown stream");
  e.stream = static_cast<StreamId>(stream);
  return e;
}

void StreamClosed::Encode(Writer& w) const { w.u8(static_cast<uint8_t>(stream)); }

StreamClosed StreamClosed::Decode(Reader& r) {
  StreamClosed c;
  uint8_t stream = r.u8();
  // Only outputs have readers that can leave.
  if (stream != static_cast<uint8_t>(StreamId::kStdout) && stream != static_cast<uint8_t>(StreamId::kStderr))
    r.fail("not an output stream");
  c.stream = static_cast<StreamId>(stream);
  return c;
}

void Signal::Encode(Writer& w) const { w.i32(signo); }

Signal Signal::Decode(Reader& r) {
  Signal s{r.i32()};
  if (s.signo < 1 || s.signo > 64) r.fail("signal out of range");
  return s;
}

void WindowSize::Encode(Writer& w) const {
  w.u16(rows);
  w.u16(cols);
  w.u16(xpixel);
  w.u16(ypixel);
}

WindowSize WindowSize::Decode(Reader& r) {
  WindowSize s;
  s.rows = r.u16();
  s.cols = r.u16();
  s.xpixel = r.u16();
  s.ypixel = r.u16();
  return s;
}

void JobStatus::Encode(Writer& w) const {
  w.u8(static_cast<uint8_t>(kind));
  w.i32(value);
  w.str(message);
}

JobStatus JobStatus::Decode(Reader& r) {
  JobStatus s;
  uint8_t kind = r.u8();
  s.value = r.i32();
  s.message = r.str(4096);
  if (kind < 1 || kind > 5) r.fail("unknown job status");
  s.kind = static_cast<JobStatusKind>(kind);
  if (s.value < 0 || s.value > 255) r.fail("status value out of range");
  return s;
}

void Notice::Encode(Writer& w) const { w.str(text); }
Notice Notice::Decode(Reader& r) { return {r.str(4096)}; }

std::string EncodeStoredSpec(const JobSpec& spec) { return EncodePayload(SubmitRequest{spec}); }

Result<JobSpec> DecodeStoredSpec(std::string_view blob) {
  auto request = DecodePayload<SubmitRequest>(blob);
  if (!request.ok()) return Fail("the job's stored spec is unreadable: " + request.message());
  return std::move(request->spec);
}

}  // namespace queue::wire
