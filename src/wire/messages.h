// The messages of Queue's protocol, one struct each, with their type numbers.
//
// Every connection (client <-> daemon, daemon <-> daemon, daemon <-> shepherd,
// shepherd <-> stub) carries frames (see frame.h) whose payload is one of these.
// The first frame each way is Hello, which names the protocol version; a peer
// that speaks another version is refused with a logged reason.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"
#include "wire/codec.h"
#include "wire/job_id.h"
#include "wire/job_spec.h"

namespace queue::wire {

// 3: CancelJob names the run it ends. 4: job ids name their submit host
// (JobId), and a daemon forwards a client's request to the host that has the job.
// 5: job arrays (BulkSubmitRequest), and CancelRequest may name one element.
// 6: LoadQuery/LoadAnswer (placement by sampling in a large cluster).
inline constexpr uint16_t kProtocolVersion = 6;

enum class MessageType : uint16_t {
  kHello = 1,
  kErrorReply = 2,
  // client -> local daemon, over the Unix socket
  kSubmitRequest = 10,
  kSubmitReply = 11,
  kStatusRequest = 12,
  kStatusReply = 13,
  kJobsRequest = 14,
  kCancelRequest = 15,
  kOutputRequest = 16,
  kOutputReply = 17,
  kMigrateRequest = 18,
  kBulkSubmitRequest = 19,
  // daemon <-> daemon, over TLS keyed by the cluster key
  kLoadReport = 20,
  kPlaceJob = 21,
  kPlaceReply = 22,
  kJobEnded = 23,
  kCancelJob = 24,
  kJobOutput = 25,
  kJobEndedAck = 26,
  kBundleChunk = 27,
  kMigrateJob = 28,
  // daemon <-> shepherd, over a Unix socket pair
  kShepherdStart = 30,
  kShepherdEvent = 31,
  kShepherdControl = 32,
  // shepherd <-> stub, over TLS keyed by the job's session key
  kStreamData = 40,
  kStreamEof = 41,
  kSignal = 42,
  kWindowSize = 43,
  kJobStatus = 44,
  kNotice = 45,
  kAttach = 46,
  kStreamClosed = 47,
  // daemon <-> daemon, continued
  kForwardRequest = 50,
  kForwardReply = 51,
  kLoadQuery = 52,
  kLoadAnswer = 53,
  // client <-> local daemon, continued
  kBulkSubmitReply = 60,
  kTransferProgress = 61,
};

enum class Role : uint8_t { kClient = 1, kDaemon = 2, kShepherd = 3, kStub = 4 };

struct Hello {
  static constexpr MessageType kType = MessageType::kHello;
  uint16_t version = kProtocolVersion;
  Role role = Role::kClient;
  std::string name;  // a daemon's host entry, e.g. "127.0.0.1:15002"
  void Encode(Writer& w) const;
  static Hello Decode(Reader& r);
};

struct ErrorReply {
  static constexpr MessageType kType = MessageType::kErrorReply;
  std::string message;
  void Encode(Writer& w) const;
  static ErrorReply Decode(Reader& r);
};

struct SubmitRequest {
  static constexpr MessageType kType = MessageType::kSubmitRequest;
  JobSpec spec;
  void Encode(Writer& w) const;
  static SubmitRequest Decode(Reader& r);
};

// A job's spec as the spool keeps it (an encoded SubmitRequest), for every
// part of the daemon that stores or reads one back.
std::string EncodeStoredSpec(const JobSpec& spec);
Result<JobSpec> DecodeStoredSpec(std::string_view blob);

struct SubmitReply {
  static constexpr MessageType kType = MessageType::kSubmitReply;
  JobId job;  // the number this daemon gave the job, and this daemon's host number
  std::string host;  // execution host entry; empty while the job waits for one
  std::string waiting_reason;  // why no host takes it yet, when host is empty
  void Encode(Writer& w) const;
  static SubmitReply Decode(Reader& r);
};

// Submit daemon -> an interactive job's stub, while the job's restart files
// move (a checkpoint move): how far they are, for a progress bar on the
// user's terminal. A stub that does not know the type ignores it (no
// protocol version is needed: it only ever goes from a daemon to its own
// host's stub).
struct TransferProgress {
  static constexpr MessageType kType = MessageType::kTransferProgress;
  JobId job;
  bool outward = false;   // from the submit host to the next host (else coming home from the last)
  std::string host;       // the other end
  uint64_t bytes = 0;     // moved so far
  uint64_t size = 0;      // 0 while not known (a bundle coming home says its size at its end)
  uint32_t elapsed_ms = 0;
  bool complete = false;
  void Encode(Writer& w) const;
  static TransferProgress Decode(Reader& r);
};

// The largest frame a client may send its local daemon: a job's spec is at
// most ~600 KiB.
inline constexpr size_t kMaxClientRequestBytes = 1 << 20;

// Job arrays (`queue -r --array`, `queue -r --from FILE`).
// The most jobs one bulk submission makes, and the highest array index: far
// above what a user may keep waiting (--user-waiting-jobs), so that the quota,
// not the protocol, says no, with its own reason.
inline constexpr uint32_t kMaxBulkJobs = 1'000'000;
inline constexpr uint32_t kMaxArrayIndex = 4'000'000;
inline constexpr size_t kMaxArrayRanges = 4096;
// What the daemon holds for one --from submission until its last part: the
// lines of all its parts together.
inline constexpr size_t kMaxBulkLineBytes = 64 << 20;

// Indices first, first + step, ... up to last (which it reaches).
struct ArrayRange {
  uint32_t first = 0, last = 0, step = 1;
  bool operator==(const ArrayRange&) const = default;
  uint32_t size() const { return (last - first) / step + 1; }
};

// Submits many batch jobs, all of them or none (SPEC: job arrays). Either an
// array (`ranges`: one job per index, each with the spec's argv) or one part
// of a list of command lines (`lines`: one job per line, the line appended
// to the spec's argv as its last word, e.g. `/bin/sh -c LINE`). A list longer
// than one frame comes in several parts on one connection, each with the same
// spec, every part but the last with `more`; the daemon stores nothing before
// the last part, answers each other part with a BulkSubmitReply that counts
// the lines so far, and forgets the parts when the connection closes first.
struct BulkSubmitRequest {
  static constexpr MessageType kType = MessageType::kBulkSubmitRequest;
  JobSpec spec;
  std::vector<ArrayRange> ranges;  // ascending and disjoint; empty for lines
  std::vector<std::string> lines;  // no NUL; empty for an array
  bool more = false;               // lines only: more parts follow
  void Encode(Writer& w) const;
  // Validates everything above; a bad request marks the reader failed.
  static BulkSubmitRequest Decode(Reader& r);
  // How many jobs this request (this part, for lines) makes.
  uint64_t JobCount() const;
};

struct BulkSubmitReply {
  static constexpr MessageType kType = MessageType::kBulkSubmitReply;
  bool done = false;    // false: a part was taken, send the next
  uint64_t count = 0;   // jobs stored (done), or lines taken so far
  JobId array;          // done: the array's id (the job id of its first element)
  void Encode(Writer& w) const;
  static BulkSubmitReply Decode(Reader& r);
};

struct StatusRequest {
  static constexpr MessageType kType = MessageType::kStatusRequest;
  void Encode(Writer&) const {}
  static StatusRequest Decode(Reader&) { return {}; }
};

struct StatusReply {
  static constexpr MessageType kType = MessageType::kStatusReply;
  std::string json;
  void Encode(Writer& w) const;
  static StatusReply Decode(Reader& r);
};

// Lists the caller's jobs known to this daemon (all of them for root);
// answered with a StatusReply carrying JSON.
struct JobsRequest {
  static constexpr MessageType kType = MessageType::kJobsRequest;
  bool include_finished = false;
  void Encode(Writer& w) const { w.boolean(include_finished); }
  static JobsRequest Decode(Reader& r) { return {r.boolean()}; }
};

// Cancels one of the caller's jobs; answered with a StatusReply (a sentence).
// The id of an array cancels all of it; with `element`, the element of that
// index only.
struct CancelRequest {
  static constexpr MessageType kType = MessageType::kCancelRequest;
  JobId job;
  uint32_t element = kNoElement;
  void Encode(Writer& w) const {
    job.Encode(w);
    w.u32(element);
  }
  static CancelRequest Decode(Reader& r) {
    CancelRequest c{JobId::Decode(r), r.u32()};
    if (c.element != kNoElement && c.element > kMaxArrayIndex) r.fail("array index out of range");
    return c;
  }
};

// Asks where a batch job's output is; answered with OutputReply or ErrorReply.
struct OutputRequest {
  static constexpr MessageType kType = MessageType::kOutputRequest;
  JobId job;
  void Encode(Writer& w) const { job.Encode(w); }
  static OutputRequest Decode(Reader& r) { return {JobId::Decode(r)}; }
};

struct OutputReply {
  static constexpr MessageType kType = MessageType::kOutputReply;
  std::string path;     // the file to read, as the asking user; empty when there is none yet
  bool complete = false;  // the job has ended and the file holds all its output
  std::string message;  // for the user when there is no file (still running elsewhere, discarded)
  // An output held in the submit host's spool (its file could not be written):
  // its bytes, when at most kMaxHeldShown.
  std::string held;
  static constexpr size_t kMaxHeldShown = 8 << 20;
  void Encode(Writer& w) const;
  static OutputReply Decode(Reader& r);
};

// Submit daemon -> execution daemon: the owner cancelled a job placed there.
// Ends a job a submit host placed here: its run `attempt` only (a fence: a run
// its submit host already counted as lost and started again elsewhere), or
// whichever run it is on (kAnyAttempt: its owner cancelled it).
struct CancelJob {
  static constexpr MessageType kType = MessageType::kCancelJob;
  static constexpr uint32_t kAnyAttempt = 0xffffffff;
  uint64_t origin_job_id = 0;
  uint32_t attempt = kAnyAttempt;
  void Encode(Writer& w) const {
    w.u64(origin_job_id);
    w.u32(attempt);
  }
  static CancelJob Decode(Reader& r) {
    CancelJob c;
    c.origin_job_id = r.u64();
    c.attempt = r.u32();
    return c;
  }
};

struct QueueLoad {
  std::string name;
  uint32_t running = 0;
  uint32_t maxexec = 0;
  uint32_t vmaxexec = 0;
  double pfactor = 1.0;
  bool accepting = true;
  std::string refusal;  // why not, when !accepting
  bool takes_restarts = false;  // restartmode is not 0: checkpointed jobs may restart here
  bool operator==(const QueueLoad&) const = default;
};

// What a daemon tells every peer about itself, periodically.
struct LoadReport {
  static constexpr MessageType kType = MessageType::kLoadReport;
  std::string host;
  double load1 = 0;
  uint32_t cpus = 1;
  std::vector<QueueLoad> queues;
  void Encode(Writer& w) const;
  static LoadReport Decode(Reader& r);
};

// Asks a peer to run a job.
struct PlaceJob {
  static constexpr MessageType kType = MessageType::kPlaceJob;
  uint64_t request_id = 0;  // matches the reply to the request on this connection
  std::string origin_host;
  uint64_t origin_job_id = 0;
  // How many times the origin ran this job before (a batch job re-run after its
  // host died): a repeated offer of the same attempt is not run twice.
  uint32_t attempt = 0;
  // A restarted job's restart files: a bundle (migrate/restart_bundle) of this
  // size and SHA-256 was sent just before, in BundleChunks; 0 / empty: none.
  uint64_t bundle_size = 0;
  std::string bundle_sha256;
  JobSpec spec;
  void Encode(Writer& w) const;
  static PlaceJob Decode(Reader& r);
};

struct PlaceReply {
  static constexpr MessageType kType = MessageType::kPlaceReply;
  uint64_t request_id = 0;
  bool accepted = false;
  bool permanent = false;  // refused for good (no such queue, root not allowed), not just now
  std::string reason;  // why not, when refused
  void Encode(Writer& w) const;
  static PlaceReply Decode(Reader& r);
};

// Execution daemon -> submit daemon: how a job it placed here ended. Sent
// again (after its JobOutput chunks, for a batch job) until a JobEndedAck
// comes back, so that an end is never lost to a crash on either side.
struct JobEnded {
  static constexpr MessageType kType = MessageType::kJobEnded;
  uint64_t origin_job_id = 0;
  uint32_t attempt = 0;     // which run of the job (its restarts when placed): an old run's end is not the job's
  bool failed = false;      // never ran, or its shepherd died
  bool lost = false;        // it was running and vanished with its host or shepherd
  int32_t wait_status = 0;  // as from waitpid, when !failed
  double cpu_seconds = 0;
  std::string message;
  int64_t start_time = 0, end_time = 0;  // unix seconds, on the execution host's clock
  uint64_t output_size = 0;  // bytes of batch output sent before this message
  std::string output_sha256;  // 32 raw bytes, or empty when no output travels
  // It stopped after a checkpoint request (or exited with `checkpointexit`) to
  // be restarted: from the restart-file bundle sent before this message when
  // bundle_sha256 is set, else from its previous bundle or from the start.
  bool checkpointed = false;
  bool checkpoint_in_place = false;  // periodic or self-checkpoint: it may restart anywhere
  uint64_t bundle_size = 0;
  std::string bundle_sha256;
  void Encode(Writer& w) const;
  static JobEnded Decode(Reader& r);
};

// Submit daemon -> execution daemon: the end of this job is on disk here.
struct JobEndedAck {
  static constexpr MessageType kType = MessageType::kJobEndedAck;
  uint64_t origin_job_id = 0;
  uint32_t attempt = 0;
  void Encode(Writer& w) const {
    w.u64(origin_job_id);
    w.u32(attempt);
  }
  static JobEndedAck Decode(Reader& r) {
    JobEndedAck a;
    a.origin_job_id = r.u64();
    a.attempt = r.u32();
    return a;
  }
};

// A piece of a restart-file bundle, in order, ahead of the JobEnded (execution ->
// submit host) or PlaceJob (submit -> new execution host) that names it. Offset
// 0 starts the bundle afresh.
struct BundleChunk {
  static constexpr MessageType kType = MessageType::kBundleChunk;
  std::string origin_host;  // the job's submit host
  uint64_t origin_job_id = 0;
  uint32_t attempt = 0;
  uint64_t offset = 0;
  std::string bytes;  // at most kMaxFileChunk
  void Encode(Writer& w) const;
  static BundleChunk Decode(Reader& r);
};

// Client -> its daemon: move one of my jobs (to `host`, or wherever fits).
// Answered with a StatusReply (a sentence) or an ErrorReply.
struct MigrateRequest {
  static constexpr MessageType kType = MessageType::kMigrateRequest;
  JobId job;
  std::string host;  // "" = any host that takes restarts
  void Encode(Writer& w) const;
  static MigrateRequest Decode(Reader& r);
};

// Submit daemon -> execution daemon: checkpoint this job so that it moves.
struct MigrateJob {
  static constexpr MessageType kType = MessageType::kMigrateJob;
  uint64_t origin_job_id = 0;
  std::string reason;
  void Encode(Writer& w) const;
  static MigrateJob Decode(Reader& r);
};

// Daemon -> the daemon that has a job: a user's cancel, output or migrate
// request about a job submitted there (named by its JobId), asked on another
// host. The asking daemon vouches for the user: it read the uid and gid from
// its Unix socket, and it holds the cluster key.
struct ForwardRequest {
  static constexpr MessageType kType = MessageType::kForwardRequest;
  static constexpr size_t kMaxPayloadBytes = 4096;
  uint64_t request_id = 0;  // matches the reply on this connection
  uint32_t uid = 0, gid = 0;
  MessageType type = MessageType::kCancelRequest;  // kCancelRequest, kOutputRequest or kMigrateRequest
  std::string payload;  // the request, encoded
  void Encode(Writer& w) const;
  static ForwardRequest Decode(Reader& r);
};

// The answer to a ForwardRequest, as the client would have had it: a
// StatusReply, an OutputReply or an ErrorReply, encoded.
struct ForwardReply {
  static constexpr MessageType kType = MessageType::kForwardReply;
  static constexpr size_t kMaxPayloadBytes = OutputReply::kMaxHeldShown + 64 * 1024;
  uint64_t request_id = 0;
  MessageType type = MessageType::kErrorReply;
  std::string payload;
  void Encode(Writer& w) const;
  static ForwardReply Decode(Reader& r);
};

// A large cluster's placement asks a few hosts chosen at random for their
// load (issue 13) instead of keeping every host's: one question, answered on
// the same connection with the host's LoadReport as of now.
struct LoadQuery {
  static constexpr MessageType kType = MessageType::kLoadQuery;
  uint64_t request_id = 0;  // matches the answer on this connection
  void Encode(Writer& w) const;
  static LoadQuery Decode(Reader& r);
};

struct LoadAnswer {
  static constexpr MessageType kType = MessageType::kLoadAnswer;
  uint64_t request_id = 0;
  LoadReport report;
  void Encode(Writer& w) const;
  static LoadAnswer Decode(Reader& r);
};

// Execution daemon -> submit daemon: a piece of a batch job's output, in order.
// Offset 0 starts the file afresh (a resend after a broken link starts over).
struct JobOutput {
  static constexpr MessageType kType = MessageType::kJobOutput;
  uint64_t origin_job_id = 0;
  uint32_t attempt = 0;
  uint64_t offset = 0;
  std::string bytes;  // at most kMaxFileChunk
  void Encode(Writer& w) const;
  static JobOutput Decode(Reader& r);
};

// Daemon -> shepherd: run this job.
struct ShepherdStart {
  static constexpr MessageType kType = MessageType::kShepherdStart;
  JobId job;  // as its owner knows it; exported as QUEUE_JOBID
  std::string exec_host;   // this host's entry, exported as QUEUE_HOST
  int32_t profile_nice = 0;
  bool allow_root = false;  // the queue's profile says allowroot
  // Batch jobs (spec.batch): stdout and stderr go to this file, stdin is /dev/null,
  // and no stub is contacted.
  std::string output_path;
  // Where the shepherd writes the job's end (an encoded ShepherdEvent) before it
  // tells the daemon, so that a daemon restarted meanwhile still learns it.
  std::string status_path;
  // The shepherd was given a listening Unix socket as fd 4, on which a restarted
  // daemon reconnects to re-adopt the job.
  bool adoptable = false;
  // The queue's `checkpointexit` code (0..255), or -1: a job that exits with it
  // checkpointed by itself and goes on from its restart files.
  int32_t checkpoint_exit = -1;
  JobSpec spec;
  // checkpointmode 1: the job is not launched but restored by `criu_path` from
  // this image directory of the daemon's, which CRIU leaves in its place.
  std::string restore_images;
  std::string criu_path;
  void Encode(Writer& w) const;
  static ShepherdStart Decode(Reader& r);
};

// kCheckpointArmed answers ShepherdAction::kCheckpointByDaemon: only then may
// the daemon's CRIU dump (and its SIGKILL) begin.
enum class ShepherdEventKind : uint8_t { kStarted = 1, kFinished = 2, kFailed = 3, kCheckpointArmed = 4 };

// Shepherd -> daemon: the job started, finished or could not start.
struct ShepherdEvent {
  static constexpr MessageType kType = MessageType::kShepherdEvent;
  ShepherdEventKind kind = ShepherdEventKind::kStarted;
  int32_t pid = 0;
  int32_t wait_status = 0;  // as from waitpid, for kFinished
  double cpu_seconds = 0;
  std::string message;  // for kFailed
  // kFinished after the shepherd sent the checkpoint signal (kCheckpoint); the
  // signal's time, Unix milliseconds, tells restart files written since apart.
  bool checkpointed = false;
  int64_t signal_time_ms = 0;
  void Encode(Writer& w) const;
  static ShepherdEvent Decode(Reader& r);
};

enum class ShepherdAction : uint8_t {
  kSuspend = 1,    // the queue's loadstop/timestop holds: SIGSTOP the job, tell the user
  kResume = 2,     // it cleared: SIGCONT, tell the user
  kTerminate = 3,  // exec off: SIGTERM, SIGKILL a second later
  kCheckpoint = 4, // send `signo` once; SIGKILL after `grace_seconds`; the job moves
  // The daemon checkpoints the job itself (CRIU, checkpointmode 1), which kills
  // it once its image is complete: a SIGKILL end from now on is that checkpoint.
  kCheckpointByDaemon = 5,
  kCheckpointAbandoned = 6,  // that checkpoint failed: the job carries on here
};

// Daemon -> shepherd: act on the job for the queue's sake.
struct ShepherdControl {
  static constexpr MessageType kType = MessageType::kShepherdControl;
  ShepherdAction action = ShepherdAction::kSuspend;
  std::string reason;  // shown to the user
  int32_t signo = 0;           // kCheckpoint: the queue's checkpointsignal
  uint32_t grace_seconds = 0;  // kCheckpoint: then SIGKILL (0: never)
  void Encode(Writer& w) const;
  static ShepherdControl Decode(Reader& r);
};

// Shepherd -> stub: first frame after Hello; which job this connection carries.
struct Attach {
  static constexpr MessageType kType = MessageType::kAttach;
  uint64_t job_id = 0;
  std::string exec_host;
  void Encode(Writer& w) const;
  static Attach Decode(Reader& r);
};

inline constexpr size_t kMaxStreamChunk = 64 * 1024;
// Files that travel between daemons (restart bundles, batch output) go in
// larger pieces: fewer frames, writes and handler turns per byte.
inline constexpr size_t kMaxFileChunk = 1024 * 1024;

enum class StreamId : uint8_t { kStdin = 0, kStdout = 1, kStderr = 2 };

struct StreamData {
  static constexpr MessageType kType = MessageType::kStreamData;
  StreamId stream = StreamId::kStdout;
  std::string bytes;
  void Encode(Writer& w) const;
  static StreamData Decode(Reader& r);
};

struct StreamEof {
  static constexpr MessageType kType = MessageType::kStreamEof;
  StreamId stream = StreamId::kStdin;
  void Encode(Writer& w) const;
  static StreamEof Decode(Reader& r);
};

// Stub -> shepherd: nobody reads this output stream any more (the stub's own
// stdout or stderr failed: the reader left, EPIPE, or a write error). The
// shepherd stops relaying it and lets the job find out as it would locally: a
// pipe's read end is closed (the job's next write gets SIGPIPE/EPIPE), a pty is
// hung up (SIGHUP). A shepherd older than this message closes the connection
// on it, which hangs the job up too.
struct StreamClosed {
  static constexpr MessageType kType = MessageType::kStreamClosed;
  StreamId stream = StreamId::kStdout;
  void Encode(Writer& w) const;
  static StreamClosed Decode(Reader& r);
};

// Stub -> shepherd: deliver this signal to the job's process group.
struct Signal {
  static constexpr MessageType kType = MessageType::kSignal;
  int32_t signo = 0;
  void Encode(Writer& w) const;
  static Signal Decode(Reader& r);
};

struct WindowSize {
  static constexpr MessageType kType = MessageType::kWindowSize;
  uint16_t rows = 0, cols = 0, xpixel = 0, ypixel = 0;
  void Encode(Writer& w) const;
  static WindowSize Decode(Reader& r);
};

enum class JobStatusKind : uint8_t {
  kExited = 1,     // value = exit code 0..255
  kSignaled = 2,   // value = signal number
  kStopped = 3,    // value = stop signal
  kStartFailed = 4, // value = exit code the stub should use (2), message says why
  kMoved = 5        // the job stopped here to go on elsewhere: keep waiting for the
                    // next shepherd (message says why); value unused
};

// Shepherd -> stub: the job's fate.
struct JobStatus {
  static constexpr MessageType kType = MessageType::kJobStatus;
  JobStatusKind kind = JobStatusKind::kExited;
  int32_t value = 0;
  std::string message;
  void Encode(Writer& w) const;
  static JobStatus Decode(Reader& r);
};

// Shepherd -> stub: a line to show the user (e.g. load suspension notices).
struct Notice {
  static constexpr MessageType kType = MessageType::kNotice;
  std::string text;
  void Encode(Writer& w) const;
  static Notice Decode(Reader& r);
};

// Encodes a message as a frame payload.
template <class M>
std::string EncodePayload(const M& message) {
  Writer w;
  message.Encode(w);
  return w.take();
}

// Decodes a whole payload; trailing bytes or any bound violated is an error.
template <class M>
Result<M> DecodePayload(std::string_view payload) {
  Reader r(payload);
  M message = M::Decode(r);
  if (r.ok() && !r.at_end()) r.fail("trailing bytes after message");
  if (!r.ok()) return Fail("malformed message " + std::to_string(static_cast<int>(M::kType)) +
                           ": " + r.error());
  return message;
}

}  // namespace queue::wire
