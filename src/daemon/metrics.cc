// The exposition text of queued's metrics.
#include "daemon/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

namespace queue::daemon {

namespace {

constexpr std::array kPlacementResults = {PlacementResult::kHere, PlacementResult::kPeer, PlacementResult::kNoHost,
                                          PlacementResult::kUnanswered};
constexpr std::array kAdmissionRefusals = {
    AdmissionRefusal::kNoQueue,      AdmissionRefusal::kRootNotAllowed,    AdmissionRefusal::kSingleUser,
    AdmissionRefusal::kStaleRun,     AdmissionRefusal::kQueueNotAccepting, AdmissionRefusal::kQueueClosed,
    AdmissionRefusal::kQueueSuspended, AdmissionRefusal::kLoad,            AdmissionRefusal::kMinFree,
    AdmissionRefusal::kQueueFull,    AdmissionRefusal::kSpoolFull,         AdmissionRefusal::kNoRestarts,
    AdmissionRefusal::kRestartFiles, AdmissionRefusal::kNotWaiting,        AdmissionRefusal::kSpool};
constexpr std::array kOfferFailures = {OfferFailure::kDeclined, OfferFailure::kRestartFilesFailed,
                                       OfferFailure::kRestartFilesChanged, OfferFailure::kNotAPeer,
                                       OfferFailure::kSpool};
constexpr std::array kTransferKinds = {TransferKind::kRestartFiles, TransferKind::kOutput};

using Labels = std::vector<std::pair<std::string, std::string>>;

std::string Number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char text[32];
  auto [end, ec] = std::to_chars(text, text + sizeof text, value);
  return ec == std::errc() ? std::string(text, end) : "NaN";
}

// Both formats escape a label value's backslash, double quote and newline.
std::string EscapeLabel(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// Writes metric families. A counter's family is named without `_total` in
// OpenMetrics (its sample has it), and with it in the Prometheus format.
class Exposition {
 public:
  explicit Exposition(MetricsFormat format) : format_(format) {}

  void Counter(const std::string& base, const std::string& help) { Family(base, "counter", help); }
  void Gauge(const std::string& base, const std::string& help) { Family(base, "gauge", help); }

  void Sample(const Labels& labels, double value) {
    out_ << sample_name_;
    if (!labels.empty()) {
      out_ << '{';
      for (size_t i = 0; i < labels.size(); ++i)
        out_ << (i ? "," : "") << labels[i].first << "=\"" << EscapeLabel(labels[i].second) << '"';
      out_ << '}';
    }
    out_ << ' ' << Number(value) << '\n';
  }

  std::string Finish() {
    if (format_ == MetricsFormat::kOpenMetrics) out_ << "# EOF\n";
    return out_.str();
  }

 private:
  void Family(const std::string& base, const char* type, const std::string& help) {
    const bool counter = std::string_view(type) == "counter";
    sample_name_ = counter ? base + "_total" : base;
    const std::string& family = counter && format_ == MetricsFormat::kOpenMetrics ? base : sample_name_;
    out_ << "# HELP " << family << ' ' << help << '\n' << "# TYPE " << family << ' ' << type << '\n';
  }

  MetricsFormat format_;
  std::ostringstream out_;
  std::string sample_name_;
};

template <typename Enum, size_t N>
void EnumCounter(Exposition& e, const std::string& base, const std::string& help, const char* label,
                 const std::array<Enum, N>& values, const std::map<Enum, uint64_t>& counts) {
  e.Counter(base, help);
  for (Enum v : values) {
    auto it = counts.find(v);
    e.Sample({{label, ToString(v)}}, static_cast<double>(it == counts.end() ? 0 : it->second));
  }
}

void QueueCounter(Exposition& e, const std::string& base, const std::string& help,
                  const std::map<std::string, uint64_t>& counts) {
  e.Counter(base, help);
  for (const auto& [queue, n] : counts) e.Sample({{"queue", queue}}, static_cast<double>(n));
}

void RenderCounters(Exposition& e, const MetricsRegistry& c) {
  EnumCounter(e, "queue_placements", "Placements of jobs submitted here, by where they went.", "outcome",
              kPlacementResults, c.placements);
  EnumCounter(e, "queue_admission_refusals", "Jobs this host refused to run, by reason.", "reason",
              kAdmissionRefusals, c.admission_refusals);
  EnumCounter(e, "queue_offer_failures", "Offers from here that a host did not take, by reason.", "reason",
              kOfferFailures, c.offer_failures);
  QueueCounter(e, "queue_jobs_submitted", "Jobs submitted on this host.", c.jobs_submitted);
  e.Counter("queue_jobs_finished", "Jobs submitted here that ended for good, by final state.");
  for (const auto& [key, n] : c.jobs_finished)
    e.Sample({{"queue", key.first}, {"state", key.second}}, static_cast<double>(n));
  QueueCounter(e, "queue_runs_started", "Runs of jobs started on this host (its own and peers').", c.runs_started);
  QueueCounter(e, "queue_jobs_requeued", "Jobs submitted here queued again after a checkpoint or a lost host.",
               c.jobs_requeued);
  e.Counter("queue_checkpoints", "Runs on this host that ended in a checkpoint.");
  e.Sample({}, static_cast<double>(c.checkpoints));
  e.Counter("queue_migrations", "Jobs submitted here checkpointed to go on on another host.");
  e.Sample({}, static_cast<double>(c.migrations));
  e.Counter("queue_transfer_sent_bytes", "Bytes sent to peers: restart files, batch output.");
  for (TransferKind k : kTransferKinds) {
    auto it = c.bytes_sent.find(k);
    e.Sample({{"kind", ToString(k)}}, static_cast<double>(it == c.bytes_sent.end() ? 0 : it->second));
  }
  e.Counter("queue_transfer_received_bytes", "Bytes received from peers: restart files, batch output.");
  for (TransferKind k : kTransferKinds) {
    auto it = c.bytes_received.find(k);
    e.Sample({{"kind", ToString(k)}}, static_cast<double>(it == c.bytes_received.end() ? 0 : it->second));
  }
  EnumCounter(e, "queue_transfer_failures", "File transfers between daemons that failed, by kind.", "kind",
              kTransferKinds, c.transfer_failures);
  e.Counter("queue_restart_failures", "Restart files found damaged or not unpacked.");
  e.Sample({}, static_cast<double>(c.restart_failures));
}

void RenderGauges(Exposition& e, const MetricsSnapshot& g) {
  e.Gauge("queue_load", "This host's 1-minute load average.");
  e.Sample({}, g.load1);
  e.Gauge("queue_cpus", "This host's online CPUs.");
  e.Sample({}, g.cpus);
  e.Gauge("queue_jobs", "Jobs in this host's spool by phase (the job ledger's), queue and origin.");
  for (const JobCount& j : g.jobs)
    e.Sample({{"queue", j.queue}, {"phase", j.phase}, {"origin", j.from_peer ? "peer" : "here"}},
             static_cast<double>(j.count));
  size_t up = 0;
  e.Gauge("queue_peer_up", "1 when a peer's load reports are fresh, 0 when it is silent.");
  for (const auto& [peer, alive] : g.peers) {
    e.Sample({{"peer", peer}}, alive ? 1 : 0);
    up += alive ? 1 : 0;
  }
  e.Gauge("queue_peers_up", "Peers whose load reports are fresh.");
  e.Sample({}, static_cast<double>(up));
  e.Gauge("queue_peers_down", "Peers that are silent.");
  e.Sample({}, static_cast<double>(g.peers.size() - up));
}

void RenderProcess(Exposition& e, const ProcessStats& p) {
  e.Counter("process_cpu_seconds", "User and system CPU time of queued.");
  e.Sample({}, p.cpu_seconds);
  e.Gauge("process_resident_memory_bytes", "Resident memory of queued.");
  e.Sample({}, static_cast<double>(p.resident_bytes));
  e.Gauge("process_open_fds", "Open file descriptors of queued.");
  e.Sample({}, static_cast<double>(p.open_fds));
  e.Gauge("process_max_fds", "queued's limit of open file descriptors.");
  e.Sample({}, static_cast<double>(p.max_fds));
  e.Gauge("process_start_time_seconds", "When queued started, in Unix seconds.");
  e.Sample({}, p.start_time_seconds);
}

}  // namespace

const char* ToString(PlacementResult result) {
  switch (result) {
    case PlacementResult::kHere: return "here";
    case PlacementResult::kPeer: return "peer";
    case PlacementResult::kNoHost: return "no_host";
    case PlacementResult::kUnanswered: return "unanswered";
  }
  return "unknown";
}

const char* ToString(AdmissionRefusal reason) {
  switch (reason) {
    case AdmissionRefusal::kNoQueue: return "no_queue";
    case AdmissionRefusal::kRootNotAllowed: return "root_not_allowed";
    case AdmissionRefusal::kSingleUser: return "single_user";
    case AdmissionRefusal::kStaleRun: return "stale_run";
    case AdmissionRefusal::kQueueNotAccepting: return "queue_not_accepting";
    case AdmissionRefusal::kQueueClosed: return "queue_closed";
    case AdmissionRefusal::kQueueSuspended: return "queue_suspended";
    case AdmissionRefusal::kLoad: return "load";
    case AdmissionRefusal::kMinFree: return "minfree";
    case AdmissionRefusal::kQueueFull: return "queue_full";
    case AdmissionRefusal::kSpoolFull: return "spool_full";
    case AdmissionRefusal::kNoRestarts: return "no_restarts";
    case AdmissionRefusal::kRestartFiles: return "restart_files";
    case AdmissionRefusal::kNotWaiting: return "not_waiting";
    case AdmissionRefusal::kSpool: return "spool";
  }
  return "unknown";
}

const char* ToString(OfferFailure reason) {
  switch (reason) {
    case OfferFailure::kDeclined: return "declined";
    case OfferFailure::kRestartFilesFailed: return "restart_files_failed";
    case OfferFailure::kRestartFilesChanged: return "restart_files_changed";
    case OfferFailure::kNotAPeer: return "not_a_peer";
    case OfferFailure::kSpool: return "spool";
  }
  return "unknown";
}

const char* ToString(TransferKind kind) {
  return kind == TransferKind::kRestartFiles ? "restart_files" : "output";
}

std::string RenderMetrics(const MetricsRegistry& counters, const MetricsSnapshot& gauges, MetricsFormat format) {
  Exposition e(format);
  RenderGauges(e, gauges);
  RenderCounters(e, counters);
  RenderProcess(e, gauges.process);
  return e.Finish();
}

const char* ContentType(MetricsFormat format) {
  return format == MetricsFormat::kOpenMetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                               : "text/plain; version=0.0.4; charset=utf-8";
}

MetricsFormat FormatFor(const std::string& accept) {
  return accept.find("application/openmetrics-text") != std::string::npos ? MetricsFormat::kOpenMetrics
                                                                           : MetricsFormat::kPrometheus;
}

ProcessStats ReadProcessStats() {
  ProcessStats stats;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  // Fields after the command name, which is in parentheses and may hold spaces.
  if (auto close = stat.rfind(')'); close != std::string::npos && ticks > 0) {
    std::istringstream fields(stat.substr(close + 2));
    std::vector<std::string> f;
    for (std::string word; fields >> word;) f.push_back(word);
    // f[0] is field 3 (state): utime 14, stime 15, starttime 22, rss 24.
    if (f.size() > 21) {
      stats.cpu_seconds = (std::strtod(f[11].c_str(), nullptr) + std::strtod(f[12].c_str(), nullptr)) / ticks;
      stats.resident_bytes = std::strtoull(f[21].c_str(), nullptr, 10) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
      std::ifstream proc_stat("/proc/stat");
      for (std::string key; proc_stat >> key;) {
        if (key == "btime") {
          double boot = 0;
          proc_stat >> boot;
          stats.start_time_seconds = boot + std::strtod(f[19].c_str(), nullptr) / ticks;
          break;
        }
      }
    }
  }
  if (DIR* fds = opendir("/proc/self/fd"); fds != nullptr) {
    while (dirent* entry = readdir(fds))
      if (entry->d_name[0] != '.') ++stats.open_fds;
    closedir(fds);
    if (stats.open_fds > 0) --stats.open_fds;  // the directory's own descriptor
  }
  if (rlimit limit{}; getrlimit(RLIMIT_NOFILE, &limit) == 0) stats.max_fds = limit.rlim_cur;
  return stats;
}

}  // namespace queue::daemon
