// Metrics: what `queued --metrics` exposes, and the one place its counters
// live. MetricsRegistry holds every counter; the modules that see an event
// (the ledger's transitions, placement, admission, peer links, the finisher)
// bump it. MetricsSnapshot holds the gauges, read when a scrape asks (load,
// jobs by phase, peers, the process). RenderMetrics turns both into the
// exposition text, a pure function.
//
// Names: `queue_` first, the unit in the name (`_bytes`, `_seconds`), counters
// end in `_total`; the process's own, `process_*`, keep the names every
// Prometheus client library uses, so that stock dashboards find them.
// Label values are bounded sets: queue names (the spool's directories), peers
// (the hosts file), and the enums below, never a free-text reason.
//
// Thread-safety: none. The registry is updated and read on the daemon's event
// loop only; the HTTP thread (metrics_http.h) gets rendered text, never this.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace queue::daemon {

// Where one placement of a job (submitted here) went.
enum class PlacementResult {
  kHere,        // this host runs it
  kPeer,        // a peer took it
  kNoHost,      // every host refused: it waits, or fails when none ever could
  kUnanswered,  // offered to a host whose answer never came: asked there again
};

// Why this host refused to run a job offered to it (its own or a peer's).
enum class AdmissionRefusal {
  kNoQueue,          // no such queue here
  kRootNotAllowed,   // uid 0 and no allowroot
  kSingleUser,       // a daemon not run as root runs only its user's jobs
  kStaleRun,         // an offer of an earlier run of the job
  kQueueNotAccepting,  // exec off or drain, drained by an error or its program
  kQueueClosed,      // timesched, or its program says drain
  kQueueSuspended,   // loadstop, timestop, its program says stop
  kLoad,             // load at or above loadsched
  kMinFree,          // minfree
  kQueueFull,        // maxexec
  kSpoolFull,        // the spool has no room for the record
  kNoRestarts,       // restartmode 0 and the job comes with restart files
  kRestartFiles,     // its restart files could not be unpacked or did not arrive whole
  kNotWaiting,       // the job moved on (cancelled, placed) while it was admitted
  kSpool,            // the record could not be written
};

// Why an offer made from here did not reach a host's admission, or was declined.
enum class OfferFailure {
  kDeclined,            // the host refused (its own counter says why)
  kRestartFilesFailed,  // the restart-file transfer failed
  kRestartFilesChanged, // the restart files changed on disk since they were checked
  kNotAPeer,            // the host left the hosts file
  kSpool,               // the offer could not be recorded here
};

enum class TransferKind { kRestartFiles, kOutput };

const char* ToString(PlacementResult result);
const char* ToString(AdmissionRefusal reason);
const char* ToString(OfferFailure reason);
const char* ToString(TransferKind kind);

struct MetricsRegistry {
  std::map<PlacementResult, uint64_t> placements;
  std::map<AdmissionRefusal, uint64_t> admission_refusals;
  std::map<OfferFailure, uint64_t> offer_failures;
  std::map<std::string, uint64_t> jobs_submitted;  // by queue
  std::map<std::pair<std::string, std::string>, uint64_t> jobs_finished;  // (queue, done|failed|cancelled)
  std::map<std::string, uint64_t> runs_started;  // by queue: runs this host started
  std::map<std::string, uint64_t> jobs_requeued;  // by queue: run again (a checkpoint, a lost host)
  uint64_t checkpoints = 0;  // runs here that ended in a checkpoint
  uint64_t migrations = 0;   // jobs from here checkpointed to go on on another host
  std::map<TransferKind, uint64_t> bytes_sent, bytes_received;
  std::map<TransferKind, uint64_t> transfer_failures;
  uint64_t restart_failures = 0;  // restart files found damaged, or not unpacked: started afresh or elsewhere
};

// Gauges, as they are when the scrape comes.
struct JobCount {
  std::string queue;
  std::string phase;  // job_ledger's: waiting, offered, running, ended
  bool from_peer = false;  // a peer's job that runs (or ran) here
  uint64_t count = 0;
};

struct ProcessStats {
  double cpu_seconds = 0;
  uint64_t resident_bytes = 0;
  uint64_t open_fds = 0;
  uint64_t max_fds = 0;
  double start_time_seconds = 0;  // Unix time
};

struct MetricsSnapshot {
  double load1 = 0;
  unsigned cpus = 0;
  std::vector<JobCount> jobs;
  std::map<std::string, bool> peers;  // peer entry -> its load reports are fresh
  ProcessStats process;
};

enum class MetricsFormat {
  kOpenMetrics,  // application/openmetrics-text; version=1.0.0, ends with # EOF
  kPrometheus,   // text/plain; version=0.0.4
};

std::string RenderMetrics(const MetricsRegistry& counters, const MetricsSnapshot& gauges, MetricsFormat format);

// The content type of each format.
const char* ContentType(MetricsFormat format);

// Which format a scraper asked for in its Accept header: OpenMetrics when it
// names it, the Prometheus text format otherwise.
MetricsFormat FormatFor(const std::string& accept);

// This process's basics from /proc/self; fields it cannot read stay 0.
ProcessStats ReadProcessStats();

}  // namespace queue::daemon
