// queued's event loop: clients, peers, shepherds, and the load heartbeat.
#include "daemon/daemon.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <sstream>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "auth/cluster_key.h"
#include "auth/psk_tls.h"
#include "cluster/hosts_file.h"
#include "daemon/bundle_sender.h"
#include "daemon/end_reporter.h"
#include "daemon/group_commit.h"
#include "daemon/job_finisher.h"
#include "daemon/job_ledger.h"
#include "daemon/job_names.h"
#include "daemon/job_runner.h"
#include "util/worker_thread.h"
#include "daemon/peer_link.h"
#include "daemon/queue_program.h"
#include "daemon/queue_table.h"
#include "daemon/supervisor_log.h"
#include "daemon/waiting_list.h"
#include "load/load_sampler.h"
#include "load/load_table.h"
#include "migrate/criu.h"
#include "profile/queue_policy.h"
#include "sched/host_chooser.h"
#include "spool/job_store.h"
#include "spool/spool_reserve.h"
#include "spool/spool_dir.h"

namespace queue::daemon {

using asio::ip::tcp;
using LocalSocket = asio::local::stream_protocol::socket;
using ClientChannel = wire::Channel<LocalSocket>;
using PeerChannel = wire::Channel<auth::TlsStream>;

namespace {

// An arrived bundle renamed for the admission that unpacks it.
constexpr const char* kTakenBundleSuffix = ".taken-";
// Restart files sent ahead of an offer that never came (the origin chose
// another host, or is gone for good). A transfer writes to its file every few
// seconds at most, and an origin that restarts sends the files again.
constexpr auto kStaleArrival = std::chrono::minutes(30);

struct PeerCredentials {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;
};

// Who is on the other end of a Unix socket, from the kernel.
Result<PeerCredentials> ReadPeerCredentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return Fail("SO_PEERCRED failed: " + ErrnoText(errno));
  PeerCredentials who{cred.uid, cred.gid, {}};
  std::vector<gid_t> groups(256);
  socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
    groups.resize(bytes / sizeof(gid_t));
    who.groups.assign(groups.begin(), groups.end());
  }
  return who;
}

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

// Placements offered at once from the waiting list: enough to fill a cluster's
// free slots quickly, few enough that a full cluster is not asked thousands of
// times per heartbeat.
constexpr size_t kMaxPlacementsInFlight = 32;

// Said wherever a queue asks for `checkpointmode 1` and CRIU cannot serve it.
std::string NoTransparentCheckpoints(const migrate::CriuAvailability& criu) {
  return "checkpointmode 1 (transparent checkpoints with CRIU) is not available: " + criu.reason +
         "; its jobs are not checkpointed or moved (checkpointmode 2 needs no CRIU: the job saves its own state)";
}

// How long a fence (a run taken for lost, to be ended should its host come
// back) is sent again at most.
constexpr auto kFenceFor = std::chrono::minutes(10);

// A job that moved off a host is not sent back there sooner than this.
constexpr auto kNoMoveBack = std::chrono::seconds(60);
// How long a job moved away for the load counts against it (the 1-minute load's memory).
constexpr double kMovedLoadSeconds = 60;

// `<cwd>/<jobname>.o<id>`, the original's name for a batch job's output, with
// the id as the cluster spells it ("17.2"), so that jobs submitted on several
// hosts into one shared directory never share a name.
std::string OutputPathFor(const wire::JobSpec& spec, const std::string& id) {
  if (wire::DiscardsOutput(spec)) return "";
  std::string name = spec.job_name.empty() ? "job" : spec.job_name;
  for (char& c : name)
    if (c == '/') c = '_';
  return spec.cwd + (spec.cwd.ends_with('/') ? "" : "/") + name + ".o" + id;
}

}  // namespace

class DaemonImpl {
 public:
  DaemonImpl(asio::io_context& io, DaemonConfig config) : io_(io), config_(std::move(config)),
      sampler_(config_.loadavg_file), table_(config_.stale_after), unix_acceptor_(io),
      tcp_acceptor_(io), heartbeat_(io), signals_(io), file_worker_(io) {}

  Status Init();
  void Run();

 private:
  // Start-up.
  Status LoadHosts();
  Status OpenUnixSocket();
  Status OpenTcpSocket();
  void StartLinks();

  // The heartbeat: sample load, refresh queues, tell the peers.
  void Heartbeat();
  void ApplyQueuePolicies();
  void ReapChildren();
  // Checks CRIU (`criu check`, about a second) when some queue has
  // checkpointmode 1: at start-up, and again on every reload.
  void ProbeCriuIfNeeded();
  void Notify(const std::string& queue, const std::string& text);
  std::tm LocalTime() const;
  wire::LoadReport SelfReport();
  double CurrentLoad();

  // Local clients.
  void AcceptClient();
  void OnClientFrame(const std::shared_ptr<ClientChannel>& channel, const PeerCredentials& who,
                     wire::MessageType type, std::string_view payload);
  void Submit(const std::shared_ptr<ClientChannel>& channel, const PeerCredentials& who, wire::JobSpec spec);
  void SubmitBatch(const std::shared_ptr<ClientChannel>& channel, wire::JobSpec spec);
  struct PlacementOutcome {
    std::string host;  // where it runs; empty when no host took it
    bool may_wait = false;  // every refusal was for now, not for good
    std::string why;
    bool unresolved = false;  // offered to a host whose answer never came
  };
  using PlacementCallback = std::function<void(const PlacementOutcome&)>;
  struct PlacementAttempt {
    uint64_t record_id = 0;
    uint32_t attempt = 0;  // the job's restarts so far
    bool resolving = false;  // asking again where an earlier offer went unanswered
    std::string bundle;      // restart files that go with it (a path), or ""
    wire::JobSpec spec;
    std::vector<std::string> candidates;
    size_t next = 0;
    std::vector<std::string> refusals;
    bool any_temporary = false;
  };
  void AddWaitingStored(uint64_t record_id);
  // An interactive job's stub (submitted here, and still connected), to tell
  // it where its job goes; null for a batch job.
  std::shared_ptr<ClientChannel> StubOf(uint64_t record_id) const;
  // The spec a restarted job runs with: QUEUE_RESTART_COUNT, and with restart
  // files RESTARTED=1 and the queue's restartflag.
  wire::JobSpec RestartSpec(const spool::JobRecord& record, wire::JobSpec spec, bool from_bundle) const;
  // Exec side: asks running jobs of checkpointing queues to checkpoint, for the
  // load (`loadcheckpoint`), a drain, or `checkpointperiod`.
  void CheckpointForPolicy();
  bool SomeHostTakesRestarts(const std::string& queue) const;
  // Users' requests about one job, by its number here and its id as they know it ("17.2").
  using JobRequestReply = std::function<void(wire::MessageType type, std::string payload)>;
  void AnswerJobRequest(const PeerCredentials& who, wire::MessageType type, std::string_view payload, bool forwarded,
                        JobRequestReply reply);
  void ForwardJobRequest(const PeerCredentials& who, const wire::JobId& id, wire::MessageType type,
                         const std::string& migrate_host, JobRequestReply reply);
  Result<std::string> Migrate(const PeerCredentials& who, uint64_t number, const std::string& label,
                              const std::string& host);
  // The caller's job submitted here with this number (any job, for root).
  Result<spool::JobRecord> CallersJob(const PeerCredentials& who, uint64_t number, const std::string& label);
  std::string ArrivingDir() const { return config_.spool_dir + "/.queued/arriving"; }
  std::string ArrivingBundle(const std::string& origin, uint64_t origin_id) const {
    return ArrivingDir() + "/" + origin + "-" + std::to_string(origin_id) + ".qrb";
  }
  void RemoveStaleArrivals();
  void ForgetFinishedJobs();
  // Removes finished records older than --keep-finished, a bounded number per pass.
  void ExpireFinishedJobs();
  struct PlacementOptions {
    uint32_t attempt = 0;
    std::string offered_to;
    std::string bundle;
    // Hosts it left lately: a preference, never a reason not to place it.
    std::vector<std::string> avoid;
    // Where its owner asked it to move (queue --migrate ID HOST), for this
    // placement only: the job's own spec keeps what was submitted.
    std::string move_to;
  };
  void StartPlacement(uint64_t record_id, const wire::JobSpec& spec, const PlacementOptions& options,
                      PlacementCallback done);
  void WithdrawOffer(uint64_t record_id, const std::string& host, uint32_t attempt);
  // The job is still waiting, in the same run: a cancel or a restart may have
  // come while its placement was under way.
  bool StillWaiting(const PlacementAttempt& attempt);
  // A restart-file transfer to `host` stalled, moves again, or was given up:
  // said in the log, to an interactive job's stub, and in a batch job's record.
  void TellOfTransfer(const PlacementAttempt& attempt, const std::string& text);
  void ScheduleWaitingPass();
  void TakeWaiting(uint64_t record_id);
  void OnWaitingOutcome(uint64_t record_id, uint64_t generation, const std::string& key,
                        const PlacementOutcome& outcome);
  void Recover();
  void WatchSilentHosts();
  void RemoveTakenBundles();
  void CancelAtCheckpoint(uint64_t record_id);
  Result<wire::OutputReply> OutputOf(const PeerCredentials& who, uint64_t number, const std::string& label);
  void TryNextHost(const std::shared_ptr<PlacementAttempt>& attempt, PlacementCallback done);
  void Placed(uint64_t record_id, const std::string& host, uint32_t attempt);
  void FailRecord(uint64_t record_id, const std::string& why, spool::JobState state = spool::JobState::kFailed);
  void RetryWaiting();
  Result<std::string> ResolveHostOption(const std::string& option) const;
  std::string StatusJson(const PeerCredentials& who);
  nlohmann::json JobsJson(const PeerCredentials& who, bool include_finished);
  static std::string StateShown(const spool::JobRecord& record);
  Result<std::string> Cancel(const PeerCredentials& who, uint64_t number, const std::string& label);

  // Peer daemons.
  void AcceptPeer();
  void OnPeerHandshake(const std::shared_ptr<PeerChannel>& channel, const std::string& address);
  void OnPeerFrame(const std::shared_ptr<PeerChannel>& channel, const std::shared_ptr<std::string>& peer_name,
                   wire::MessageType type, std::string_view payload);

  void OnLocalJobEnded(const spool::JobRecord& record);
  struct Fence;
  // Sends a host's fences (when `send`), after dropping those past their time.
  void SendFences(PeerLink& link, std::vector<Fence>& fences, bool send);
  void TellStubIfNotStarted(const spool::JobRecord& record);

  void WatchSignals();
  void Stop();

  asio::io_context& io_;
  DaemonConfig config_;
  std::vector<cluster::HostEntry> hosts_;
  cluster::HostEntry self_;
  JobNames names_;  // before runner_ and finisher_, which hold a reference to it
  std::optional<auth::PskTlsContext> server_tls_;
  std::optional<auth::PskTlsContext> client_tls_;
  std::unique_ptr<spool::JobStore> store_;
  std::unique_ptr<GroupCommit> batch_;
  std::unique_ptr<JobLedger> ledger_;  // the only writer of job records
  std::unique_ptr<QueueTable> queues_;
  std::optional<spool::SpoolReserve> reserve_;  // room for records; before runner_, which points to it
  std::unique_ptr<JobRunner> runner_;
  std::unique_ptr<JobFinisher> finisher_;
  IncomingFiles arriving_;  // restart bundles sent ahead of the PlaceJob that needs them
  uint64_t bundles_taken_ = 0;  // arrived bundles renamed for an admission (unique names)
  std::unique_ptr<EndReporter> reporter_;
  QueueProgram programs_;
  std::optional<SupervisorLog> supervisor_log_;
  // Jobs no host could take yet. Batch jobs wait in the spool (their spec is
  // read from there); interactive ones wait with their stub's connection
  // (stubs_).
  WaitingList waiting_;
  // Interactive jobs submitted here: their stubs, to tell them where a job
  // that waits or moved goes next.
  std::map<uint64_t, std::weak_ptr<ClientChannel>> stubs_;
  // Hosts a moved job is not sent back to before the time given (no ping-pong).
  std::map<uint64_t, std::map<std::string, std::chrono::steady_clock::time_point>> avoid_;
  // A host the owner asked a job to move to (queue --migrate ID HOST).
  std::map<uint64_t, std::string> migrate_to_;
  // Runs taken for lost with their silent host (origin id, attempt): ended
  // there should the host come back, as the job runs again elsewhere.
  // Each is sent again every few seconds while the host is heard, until that
  // run's end comes (or for kFenceFor at most): a CancelJob may be lost, or
  // overtake the PlaceJob it is to end.
  struct Fence {
    uint64_t origin_id = 0;
    uint32_t attempt = 0;
    std::chrono::steady_clock::time_point until;
  };
  std::map<std::string, std::vector<Fence>> fenced_;
  std::chrono::steady_clock::time_point next_fences_{};
  // When this host last sent jobs away for its load: each counts against the
  // load for a minute, as the 1-minute average takes that long to show it.
  std::vector<std::chrono::steady_clock::time_point> moved_for_load_;
  bool waiting_pass_posted_ = false;
  std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point next_expiry_{};
  std::map<std::string, std::filesystem::file_time_type> program_failed_at_;  // profile version that failed
  load::LoadSampler sampler_;
  load::LoadTable table_;
  unsigned cpus_ = load::OnlineCpuCount();
  double last_load_ = 0;
  std::string last_load_error_;
  std::map<std::string, std::shared_ptr<PeerLink>> links_;
  asio::local::stream_protocol::acceptor unix_acceptor_;
  tcp::acceptor tcp_acceptor_;
  asio::steady_timer heartbeat_;
  asio::signal_set signals_;
  // Packs, unpacks and delivers files that can take seconds, off the loop.
  // Last, so that it is stopped first: its results call into runner_ and finisher_.
  util::WorkerThread file_worker_;
};

Status DaemonImpl::Init() {
  if (auto hosts = LoadHosts(); !hosts.ok()) return hosts;
  auto key = auth::LoadKeyFile(config_.key_file);
  if (!key.ok()) return Fail(key.message());
  auto server = auth::PskTlsContext::Create(auth::PskTlsContext::Side::kServer, *key, auth::kClusterIdentity);
  auto client = auth::PskTlsContext::Create(auth::PskTlsContext::Side::kClient, *key, auth::kClusterIdentity);
  if (!server.ok()) return Fail(server.message());
  if (!client.ok()) return Fail(client.message());
  server_tls_.emplace(std::move(server.value()));
  client_tls_.emplace(std::move(client.value()));
  if (auto spool = spool::PrepareSpoolDir(config_.spool_dir); !spool.ok()) return spool;
  auto store = spool::JobStore::Open(config_.spool_dir + "/jobs.db");
  if (!store.ok()) return Fail(store.message());
  store_ = std::move(store.value());
  batch_ = std::make_unique<GroupCommit>(io_, *store_, config_.commit_window);
  ledger_ = std::make_unique<JobLedger>(*store_, *batch_);
  supervisor_log_.emplace(self_.entry);
  queues_ = std::make_unique<QueueTable>(config_.spool_dir, self_.entry, cpus_);
  queues_->Refresh(true);
  for (const auto& [name, q] : queues_->queues())
    if (!q.error.empty()) std::cerr << "queued: " << q.error << "\n";
  runner_ = std::make_unique<JobRunner>(io_, *ledger_, names_, *queues_, file_worker_, self_.entry,
                                        config_.shepherd_path, config_.spool_dir);
  ProbeCriuIfNeeded();
  if (auto prepared = runner_->Prepare(); !prepared.ok()) return prepared;
  reserve_.emplace(config_.spool_dir + "/.queued/reserve", spool::kSpoolReserveBytes);
  reserve_->Keep();
  runner_->SetReserve(&*reserve_);
  finisher_ = std::make_unique<JobFinisher>(*ledger_, names_, *runner_, *queues_, file_worker_, config_.spool_dir);
  if (auto prepared = finisher_->Prepare(); !prepared.ok()) return prepared;
  if (std::string dir = ArrivingDir(); mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Fail("cannot create " + dir + ": " + ErrnoText(errno));
  RemoveTakenBundles();
  finisher_->OnRequeue([this](uint64_t record_id, const std::string& avoid) {
    if (!avoid.empty()) avoid_[record_id][avoid] = std::chrono::steady_clock::now() + kNoMoveBack;
    AddWaitingStored(record_id);
    ScheduleWaitingPass();
  });
  reporter_ = std::make_unique<EndReporter>(io_, *ledger_, *runner_, [this](const std::string& host) {
    auto link = links_.find(host);
    return link == links_.end() ? nullptr : link->second;
  });
  runner_->OnJobEnded([this](const spool::JobRecord& record) { OnLocalJobEnded(record); });
  finisher_->OnClosed([this](const spool::JobRecord& record) { TellStubIfNotStarted(record); });
  finisher_->OnStaleEnd([this](const std::string& peer, uint64_t id, uint32_t attempt) {
    auto fenced = fenced_.find(peer);
    if (fenced == fenced_.end()) return;
    std::erase_if(fenced->second, [&](const Fence& f) { return f.origin_id == id && f.attempt == attempt; });
    if (fenced->second.empty()) fenced_.erase(fenced);
  });
  runner_->OnNotice([this](const std::string& queue, const std::string& text) { Notify(queue, text); });
  if (auto load = sampler_.Load1(); !load.ok()) return Fail(load.message());
  if (auto opened = OpenTcpSocket(); !opened.ok()) return opened;
  if (auto opened = OpenUnixSocket(); !opened.ok()) return opened;
  return Status::Ok();
}

Status DaemonImpl::LoadHosts() {
  auto hosts = cluster::LoadHostsFile(config_.hosts_file);
  if (!hosts.ok()) return Fail(hosts.message());
  auto listen = cluster::ParseHostEntry(config_.listen);
  if (!listen.ok()) return Fail("--listen: " + listen.message());
  auto self = cluster::FindSelf(*hosts, *listen);
  if (!self) return Fail("this daemon's address " + config_.listen + " is not in the hosts file " +
                         config_.hosts_file + " (it lists: " + cluster::JoinEntries(*hosts) + ")");
  hosts_ = std::move(hosts.value());
  self_ = hosts_[*self];
  std::vector<std::string> entries;
  for (const auto& h : hosts_) entries.push_back(h.entry);
  names_.SetHosts(std::move(entries), self_.entry);
  return Status::Ok();
}

Status DaemonImpl::OpenTcpSocket() {
  auto listen = cluster::ParseHostEntry(config_.listen);
  asio::error_code ec;
  auto address = asio::ip::make_address(listen->host, ec);
  if (ec) {
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(listen->host, std::to_string(listen->port), ec);
    if (ec || results.empty()) return Fail("--listen: cannot resolve " + listen->host);
    address = results.begin()->endpoint().address();
  }
  tcp::endpoint endpoint(address, listen->port);
  tcp_acceptor_.open(endpoint.protocol(), ec);
  if (!ec) tcp_acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) tcp_acceptor_.bind(endpoint, ec);
  if (!ec) tcp_acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Fail("cannot listen on " + config_.listen + ": " + ec.message());
  return Status::Ok();
}

Status DaemonImpl::OpenUnixSocket() {
  const std::string& path = config_.socket_path;
  LocalSocket probe(io_);
  asio::error_code ec;
  probe.connect(asio::local::stream_protocol::endpoint(path), ec);
  if (!ec) return Fail("another queued is already serving " + path);
  ::unlink(path.c_str());
  unix_acceptor_.open(asio::local::stream_protocol(), ec);
  if (!ec) unix_acceptor_.bind(asio::local::stream_protocol::endpoint(path), ec);
  if (!ec) unix_acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Fail("cannot listen on " + path + ": " + ec.message());
  // Anyone local may ask; who they are comes from the kernel, not from them.
  ::chmod(path.c_str(), 0666);
  return Status::Ok();
}

void DaemonImpl::Run() {
  std::cerr << "queued: " << self_.entry << " serving " << hosts_.size() << " host(s), spool "
            << config_.spool_dir << ", socket " << config_.socket_path << "\n";
  Recover();
  StartLinks();
  AcceptClient();
  AcceptPeer();
  WatchSignals();
  Heartbeat();
  io_.run();
}

void DaemonImpl::StartLinks() {
  for (const auto& host : hosts_) {
    if (host.entry == self_.entry || links_.count(host.entry)) continue;
    auto link = std::make_shared<PeerLink>(io_, *client_tls_, host, self_.entry);
    links_[host.entry] = link;
    link->OnReady([this, peer = host.entry] { reporter_->Resume(peer); });
    link->OnEndAcknowledged(
        [this, peer = host.entry](uint64_t id, uint32_t attempt) { reporter_->OnAcknowledged(peer, id, attempt); });
    link->Start();
  }
}

double DaemonImpl::CurrentLoad() {
  auto load = sampler_.Load1();
  if (load.ok()) {
    last_load_ = *load;
    last_load_error_.clear();
  } else if (load.message() != last_load_error_) {
    last_load_error_ = load.message();
    std::cerr << "queued: " << load.message() << " (keeping the last value)\n";
  }
  return last_load_;
}

wire::LoadReport DaemonImpl::SelfReport() {
  double load1 = CurrentLoad();
  return wire::LoadReport{self_.entry, load1, cpus_, queues_->Loads(load1)};
}

void DaemonImpl::Heartbeat() {
  queues_->Refresh(false);
  ApplyQueuePolicies();
  waiting_.ClearBlocked();
  RetryWaiting();
  reporter_->Tick();
  finisher_->RetryHeldOutputs();
  WatchSilentHosts();
  CheckpointForPolicy();
  runner_->StopStuckCriuDumps();
  ForgetFinishedJobs();
  ExpireFinishedJobs();
  RemoveStaleArrivals();
  reserve_->Keep();  // made again once there is room
  auto report = SelfReport();
  table_.Update(report, load::Clock::now());
  for (auto& [name, link] : links_) link->SendLoad(report);
  heartbeat_.expires_after(config_.report_interval);
  heartbeat_.async_wait([this](const asio::error_code& ec) {
    if (!ec) Heartbeat();
  });
}

std::tm DaemonImpl::LocalTime() const {
  std::time_t now = std::time(nullptr);
  if (!config_.clock_file.empty()) {
    std::ifstream in(config_.clock_file);
    long long seconds = 0;
    if (in >> seconds) now = static_cast<std::time_t>(seconds);
  }
  std::tm local{};
  localtime_r(&now, &local);
  return local;
}

// Bundles taken by admissions that a stopped daemon never finished: their
// offers were never answered, so their origins send them again.
void DaemonImpl::RemoveTakenBundles() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(ArrivingDir(), ec))
    if (entry.path().filename().string().find(kTakenBundleSuffix) != std::string::npos)
      std::filesystem::remove(entry.path(), ec);
}

// Taken bundles are the admissions' to remove; an open file unlinked here
// fails its check at the offer, and is sent again.
void DaemonImpl::RemoveStaleArrivals() {
  std::error_code ec;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (const auto& entry : std::filesystem::directory_iterator(ArrivingDir(), ec)) {
    const std::string name = entry.path().filename().string();
    std::error_code stat_error;
    auto written = entry.last_write_time(stat_error);
    if (stat_error || name.find(kTakenBundleSuffix) != std::string::npos || now - written < kStaleArrival) continue;
    if (std::filesystem::remove(entry.path(), stat_error))
      std::cerr << "queued: removed restart files " << name << ": no offer came for them in "
                << std::chrono::duration_cast<std::chrono::minutes>(kStaleArrival).count() << " minutes\n";
  }
}

void DaemonImpl::Notify(const std::string& queue, const std::string& text) {
  const QueueState* q = queues_->Find(queue);
  supervisor_log_->Notify(q != nullptr ? q->policy.supervisor : std::nullopt, queue, text);
}

// Our children are shepherds, queue programs and sendmail; the shepherds'
// ends arrive over their channels, so only the programs' statuses matter here.
void DaemonImpl::ReapChildren() {
  int status = 0;
  for (pid_t pid; (pid = waitpid(-1, &status, WNOHANG)) > 0;)
    if (!programs_.OnChildExit(pid, status)) runner_->OnChildExit(pid, status);
}

void DaemonImpl::ProbeCriuIfNeeded() {
  std::vector<std::string> transparent;
  for (const auto& [name, q] : queues_->queues())
    if (q.policy.checkpoint_mode == profile::CheckpointMode::kTransparent) transparent.push_back(name);
  if (transparent.empty()) return;
  migrate::CriuAvailability criu = migrate::ProbeCriu(config_.criu_path);
  for (const auto& name : transparent)
    std::cerr << "queued: queue " << name << ": checkpointmode 1: "
              << (criu.usable ? migrate::DescribeCriu(criu) : NoTransparentCheckpoints(criu)) << "\n";
  queues_->SetCriuUsable(criu.usable);
  runner_->SetCriu(std::move(criu));
}

void DaemonImpl::ApplyQueuePolicies() {
  static constexpr auto ToAction = [](QueueTransition::Kind kind) {
    switch (kind) {
      case QueueTransition::Kind::kSuspend: return wire::ShepherdAction::kSuspend;
      case QueueTransition::Kind::kResume: return wire::ShepherdAction::kResume;
      case QueueTransition::Kind::kTerminate: return wire::ShepherdAction::kTerminate;
    }
    return wire::ShepherdAction::kResume;
  };
  std::map<std::string, int> verdicts;
  for (const auto& [name, q] : queues_->queues()) {
    auto verdict = programs_.Verdict(name);
    // A program that failed stays off until its profile changes.
    bool failed = verdict && *verdict != 0 && *verdict != 1 && *verdict != 2 && *verdict != 4;
    if (failed) {
      auto seen = program_failed_at_.find(name);
      if (seen == program_failed_at_.end()) {
        program_failed_at_[name] = q.profile_mtime;
      } else if (seen->second != q.profile_mtime) {
        program_failed_at_.erase(seen);
        programs_.Forget(name);
        verdict.reset();
        failed = false;
      }
    }
    if (verdict) verdicts[name] = *verdict;
    if (q.policy.program && !failed) programs_.Start(name, *q.policy.program);
  }
  for (const auto& t : queues_->Evaluate(CurrentLoad(), LocalTime(), verdicts)) {
    Notify(t.queue, t.message);
    runner_->ControlQueue(t.queue, ToAction(t.kind), t.message);
  }
}

void DaemonImpl::AcceptClient() {
  unix_acceptor_.async_accept([this](const asio::error_code& ec, LocalSocket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      auto who = ReadPeerCredentials(socket.native_handle());
      if (!who.ok()) {
        std::cerr << "queued: refused a local client: " << who.message() << "\n";
      } else {
        auto channel = std::make_shared<ClientChannel>(std::move(socket));
        PeerCredentials creds = *who;
        channel->Start(
            [this, weak = std::weak_ptr<ClientChannel>(channel), creds](wire::MessageType type, std::string_view p) {
              if (auto c = weak.lock()) OnClientFrame(c, creds, type, p);
            },
            [uid = creds.uid](const std::string& reason) {
              if (reason != "peer closed")
                std::cerr << "queued: closed a connection from uid " << uid << ": " << reason << "\n";
            });
      }
    }
    AcceptClient();
  });
}

void DaemonImpl::OnClientFrame(const std::shared_ptr<ClientChannel>& channel, const PeerCredentials& who,
                               wire::MessageType type, std::string_view payload) {
  auto refuse = [&](const std::string& why) {
    channel->Send(wire::ErrorReply{why});
    channel->CloseAfterFlush(why);
  };
  switch (type) {
    case wire::MessageType::kHello: {
      auto hello = wire::DecodePayload<wire::Hello>(payload);
      if (!hello.ok()) return refuse(hello.message());
      if (hello->version != wire::kProtocolVersion)
        return refuse("client speaks protocol version " + std::to_string(hello->version) + ", queued speaks " +
                      std::to_string(wire::kProtocolVersion));
      return channel->Send(wire::Hello{wire::kProtocolVersion, wire::Role::kDaemon, self_.entry});
    }
    case wire::MessageType::kSubmitRequest: {
      auto request = wire::DecodePayload<wire::SubmitRequest>(payload);
      if (!request.ok()) return refuse(request.message());
      return Submit(channel, who, std::move(request->spec));
    }
    case wire::MessageType::kStatusRequest:
      return channel->Send(wire::StatusReply{StatusJson(who)});
    case wire::MessageType::kJobsRequest: {
      auto request = wire::DecodePayload<wire::JobsRequest>(payload);
      if (!request.ok()) return refuse(request.message());
      return channel->Send(wire::StatusReply{JobsJson(who, request->include_finished).dump()});
    }
    case wire::MessageType::kCancelRequest:
    case wire::MessageType::kMigrateRequest:
    case wire::MessageType::kOutputRequest: {
      std::weak_ptr<ClientChannel> weak = channel;  // the client may leave before a forwarded answer
      return AnswerJobRequest(who, type, payload, /*forwarded=*/false,
                              [weak](wire::MessageType reply_type, std::string reply) {
                                if (auto client = weak.lock()) client->SendFrame(wire::EncodeFrame(reply_type, reply));
                              });
    }
    default:
      return refuse("unexpected message " + std::to_string(static_cast<int>(type)));
  }
}

Result<std::string> DaemonImpl::ResolveHostOption(const std::string& option) const {
  const cluster::HostEntry* match = nullptr;
  int by_name = 0;
  for (const auto& h : hosts_) {
    if (h.entry == option) return h.entry;
    if (h.host == option) {
      match = &h;
      ++by_name;
    }
  }
  if (by_name == 1) return match->entry;
  return Fail("host " + option + " is not in the hosts file " + config_.hosts_file +
              (by_name > 1 ? " (the name is ambiguous: give its port)" : "") +
              "; authorised hosts: " + cluster::JoinEntries(hosts_));
}

void DaemonImpl::Submit(const std::shared_ptr<ClientChannel>& channel, const PeerCredentials& who,
                        wire::JobSpec spec) {
  spec.uid = who.uid;
  spec.gid = who.gid;
  spec.groups = who.groups;
  for (std::string* option : {&spec.only_host, &spec.preferred_host}) {
    if (option->empty() || *option == "+") {
      option->clear();
      continue;
    }
    auto resolved = ResolveHostOption(*option);
    if (!resolved.ok()) return channel->Send(wire::ErrorReply{resolved.message()});
    *option = *resolved;
  }
  if (spec.batch) return SubmitBatch(channel, std::move(spec));
  // Shepherds connect back to the stub as the job's owner; the stub must be here.
  asio::error_code ec;
  auto stub_address = asio::ip::make_address(spec.stub_address, ec);
  if (ec || stub_address != tcp_acceptor_.local_endpoint().address() || spec.stub_port == 0)
    return channel->Send(wire::ErrorReply{"the stub must listen on this host's address " +
                                          tcp_acceptor_.local_endpoint().address().to_string()});
  spool::JobRecord record;
  record.uid = spec.uid;
  record.gid = spec.gid;
  record.queue = spec.queue;
  record.job_name = spec.job_name;
  record.state = spool::JobState::kWaiting;
  record.submit_time = Now();
  record.spec = wire::EncodeStoredSpec(spec);  // kept to restart it elsewhere
  auto id = ledger_->Submit(std::move(record));
  if (!id.ok()) return channel->Send(wire::ErrorReply{id.message()});
  uint64_t record_id = *id;
  stubs_[record_id] = channel;
  StartPlacement(record_id, spec, {}, [this, channel, record_id, spec](const PlacementOutcome& outcome) {
    if (!outcome.host.empty()) return channel->Send(wire::SubmitReply{{record_id, names_.SelfNumber()}, outcome.host, ""});
    if (!outcome.may_wait) {
      FailRecord(record_id, outcome.why);
      return channel->Send(wire::ErrorReply{outcome.why});
    }
    waiting_.Add(record_id, false, WaitingList::WaitKey(spec), spec);
    channel->Send(wire::SubmitReply{{record_id, names_.SelfNumber()}, "", outcome.why});
  });
}

// A batch job is answered once it is on disk; from then on the spool, not the
// client, holds it, and the waiting list offers it to the hosts.
void DaemonImpl::SubmitBatch(const std::shared_ptr<ClientChannel>& channel, wire::JobSpec spec) {
  if (spec.cwd.empty() || spec.cwd.front() != '/')
    return channel->Send(wire::ErrorReply{"a batch job needs an absolute working directory"});
  if (queues_->Find(spec.queue) == nullptr && hosts_.size() == 1)
    return channel->Send(wire::ErrorReply{"no queue \"" + spec.queue + "\" on " + self_.entry});
  spec.pty = wire::PtyMode::kNone;
  spec.stub_address.clear();
  spec.stub_port = 0;
  spec.session_key.clear();
  spool::JobRecord record;
  record.uid = spec.uid;
  record.gid = spec.gid;
  record.queue = spec.queue;
  record.job_name = spec.job_name;
  record.batch = true;
  record.state = spool::JobState::kWaiting;
  record.submit_time = Now();
  record.spec = wire::EncodeStoredSpec(spec);
  auto id = ledger_->Submit(std::move(record),
                            [this, &spec](uint64_t id) { return OutputPathFor(spec, names_.LocalLabel(id)); });
  if (!id.ok()) return channel->Send(wire::ErrorReply{id.message()});
  uint64_t record_id = *id;
  ledger_->AfterCommit([this, channel, record_id](const Status& committed) {
    if (!committed.ok()) {
      waiting_.Erase(record_id);
      return channel->Send(wire::ErrorReply{"spool: the job was not stored: " + committed.message()});
    }
    channel->Send(wire::SubmitReply{{record_id, names_.SelfNumber()}, "", ""});
  });
  waiting_.Add(record_id, true, WaitingList::WaitKey(spec));
  ScheduleWaitingPass();
}

void DaemonImpl::StartPlacement(uint64_t record_id, const wire::JobSpec& spec, const PlacementOptions& options,
                                PlacementCallback done) {
  auto placement = std::make_shared<PlacementAttempt>();
  placement->record_id = record_id;
  placement->attempt = options.attempt;
  placement->spec = spec;
  placement->bundle = options.bundle;
  if (!options.offered_to.empty()) {
    // An earlier offer's answer was lost: that host may have the job, so it is
    // asked again before any other host is.
    placement->candidates = {options.offered_to};
    placement->resolving = true;
  } else {
    sched::HostChooser chooser(hosts_, self_.entry);
    sched::PlacementRequest request{spec.queue, options.move_to.empty() ? spec.only_host : options.move_to,
                                    spec.preferred_host, options.avoid, !options.bundle.empty()};
    auto ranking = chooser.Rank(table_, request, load::Clock::now());
    if (ranking.candidates.empty() && !request.exclude.empty()) {
      request.exclude.clear();  // only hosts it left can take it: better there than nowhere
      ranking = chooser.Rank(table_, request, load::Clock::now());
    }
    placement->candidates = std::move(ranking.candidates);
    placement->refusals = std::move(ranking.refusals);
    placement->any_temporary = ranking.temporary_refusals > 0;
  }
  // A batch job may wait for its named host to come back.
  if (spec.batch && !spec.only_host.empty()) placement->any_temporary = true;
  TryNextHost(placement, std::move(done));
}

void DaemonImpl::TryNextHost(const std::shared_ptr<PlacementAttempt>& attempt, PlacementCallback done) {
  if (attempt->next == attempt->candidates.size()) {
    PlacementOutcome outcome{"", attempt->any_temporary, "no host can run the job now"};
    for (size_t i = 0; i < attempt->refusals.size(); ++i)
      outcome.why += (i == 0 ? ": " : "; ") + attempt->refusals[i];
    return done(outcome);
  }
  const std::string host = attempt->candidates[attempt->next++];
  auto refused = [this, attempt, done, host](const std::string& why, bool permanent) {
    attempt->refusals.push_back(host + ": " + why);
    attempt->any_temporary |= !permanent;
    TryNextHost(attempt, done);
  };
  if (host == self_.entry) {
    return runner_->Admit(AdmitRequest{"", 0, attempt->attempt, attempt->record_id, attempt->spec, attempt->bundle},
                          CurrentLoad(),
                          [this, attempt, done, host, refused](const Result<uint64_t>& admitted, bool permanent) {
                            if (!admitted.ok()) return refused(admitted.message(), permanent);
                            Placed(attempt->record_id, host, attempt->attempt);
                            done(PlacementOutcome{host, false, ""});
                          });
  }
  auto link = links_.find(host);
  if (link == links_.end()) return refused("not in the hosts file any more", false);
  // Counted at once, not when the answer comes: the submissions of a burst
  // that arrive meanwhile must already see this host as busier.
  table_.AddPlacement(host, load::Clock::now());
  // A batch job, or any job restarted from the spool: the offer is two-phase.
  const bool batch = attempt->spec.batch || attempt->attempt > 0;
  auto send = [this, attempt, done, host, refused, batch, link = link->second](const SentBundle& bundle) {
    if (batch && !StillWaiting(*attempt)) return refused("the job is no longer waiting", true);
    wire::PlaceJob place{0, self_.entry, attempt->record_id, attempt->attempt, bundle.size, bundle.sha256,
                         attempt->spec};
    // The host unpacks restart files before it answers: a GiB takes seconds.
    constexpr uint64_t kSlowestUnpackBytesPerMs = 32 << 10;  // 32 MB/s, a loaded host's disk
    auto timeout = config_.place_timeout + std::chrono::milliseconds(bundle.size / kSlowestUnpackBytesPerMs);
    link->Place(std::move(place), timeout,
                [this, attempt, done, host, refused, batch](const wire::PlaceReply& reply, PeerLink::PlaceFate fate) {
                  // Whether the host has the job is unknown until it answers.
                  if (batch && (fate == PeerLink::PlaceFate::kUnknown ||
                                (fate == PeerLink::PlaceFate::kNotSent && attempt->resolving)))
                    return done(PlacementOutcome{"", true, host + " did not answer (" + reply.reason + ")", true});
                  if (!reply.accepted) {
                    if (batch) WithdrawOffer(attempt->record_id, host, attempt->attempt);
                    return refused(reply.reason, reply.permanent);
                  }
                  Placed(attempt->record_id, host, attempt->attempt);
                  done(PlacementOutcome{host, false, ""});
                });
  };
  // Restart files go first, so that the host has them when it takes the job.
  auto ship = [this, attempt, send, refused, host, link = link->second] {
    if (attempt->bundle.empty()) return send(SentBundle{});
    // Bytes sent when the transfer last stalled, if it is stalled now.
    auto stalled_at = std::make_shared<std::optional<BundleProgress>>();
    SendBundle(
        io_, link, self_.entry, attempt->record_id, attempt->attempt, attempt->bundle,
        [this, attempt, send, refused, host, stalled_at](Result<SentBundle> sent) {
          if (!sent.ok()) {
            if (*stalled_at)
              TellOfTransfer(*attempt, "its restart files did not reach " + host + " (" + sent.message() + ") after " +
                                           std::to_string((*stalled_at)->bytes) + " of " +
                                           std::to_string((*stalled_at)->size) +
                                           " bytes; the job is offered to another host, or waits here for one");
            WithdrawOffer(attempt->record_id, host, attempt->attempt);  // the host never saw an offer
            return refused(sent.message(), false);
          }
          // Hashed as it was read: damaged since it was checked, it goes
          // nowhere, and is checked again (and given up) on the next pass.
          if (!finisher_->SentAsKept(attempt->record_id, attempt->bundle, sent->size, sent->sha256)) {
            WithdrawOffer(attempt->record_id, host, attempt->attempt);
            return refused("its restart files changed on disk since they were checked", false);
          }
          send(*sent);
        },
        [this, attempt, host, stalled_at](const BundleProgress& progress) {
          const std::string sent = std::to_string(progress.bytes) + " of " + std::to_string(progress.size) + " bytes";
          if (progress.change == StallWatch::Change::kStalled) {
            *stalled_at = progress;
            return TellOfTransfer(*attempt, "its restart files stalled on the way to " + host + " at " + sent +
                                                ": nothing moved for " + std::to_string(kTransferStallAfter.count()) +
                                                " s (the link may be cut); the transfer waits for the link");
          }
          stalled_at->reset();
          TellOfTransfer(*attempt, "its restart files are moving to " + host + " again (" + sent + " sent)");
        });
  };
  if (!batch) return ship();
  // Two-phase hand-off: the spool says where the job was offered before the
  // offer leaves, so that after a crash it is asked there first, never twice.
  if (Status offered = ledger_->Offer(attempt->record_id, host, attempt->attempt); !offered.ok())
    return refused(offered.message(), false);
  ledger_->AfterCommit([ship, refused](const Status& committed) {
    if (committed.ok()) return ship();
    refused("spool: " + committed.message(), false);
  });
}

bool DaemonImpl::StillWaiting(const PlacementAttempt& attempt) {
  auto record = ledger_->Get(attempt.record_id);
  return record.ok() && record->has_value() && (*record)->state == spool::JobState::kWaiting &&
         (*record)->restarts == attempt.attempt;
}

void DaemonImpl::TellOfTransfer(const PlacementAttempt& attempt, const std::string& text) {
  std::cerr << "queued: job " << names_.LocalLabel(attempt.record_id) << ": " << text << "\n";
  if (!attempt.spec.batch) {
    if (auto client = StubOf(attempt.record_id))
      client->Send(wire::SubmitReply{{attempt.record_id, names_.SelfNumber()}, "", text});
    return;
  }
  // A job that moved on meanwhile (cancelled, placed, lost) is not noted.
  if (!StillWaiting(attempt)) return;
  if (Status noted = ledger_->NoteWhileWaiting(attempt.record_id, attempt.attempt, text); !noted.ok())
    std::cerr << "queued: " << noted.message() << "\n";
}

// A job cancelled, ended, queued again or offered elsewhere meanwhile has no
// offer of this placement's to withdraw: the record says where it is now.
void DaemonImpl::WithdrawOffer(uint64_t record_id, const std::string& host, uint32_t attempt) {
  if (Status withdrawn = ledger_->WithdrawOffer(record_id, host, attempt); !withdrawn.ok())
    std::cerr << "queued: " << withdrawn.message() << "\n";
}

void DaemonImpl::Placed(uint64_t record_id, const std::string& host, uint32_t attempt) {
  if (host == self_.entry) {  // a remote placement was counted when offered
    table_.AddPlacement(host, load::Clock::now());
    table_.Update(SelfReport(), load::Clock::now());  // its running count is exact
  }
  auto record = ledger_->Get(record_id);
  if (!record.ok() || !record->has_value()) return;
  spool::JobRecord& r = **record;
  if (host != self_.entry) {
    // Cancelled while the offer was out: the host must not run it.
    if (r.state == spool::JobState::kCancelled) {
      if (auto link = links_.find(host); link != links_.end()) link->second->SendCancel(wire::CancelJob{record_id});
      return;
    }
    // Its end may have come first (the answer to an earlier offer was lost),
    // or it was queued again meanwhile: a stale acceptance changes nothing.
    if (r.state != spool::JobState::kWaiting || r.restarts != attempt) return;
    // The execution host keeps its own record too; this one says where the job went.
    if (Status placed = ledger_->Placed(record_id, host, attempt, Now()); !placed.ok()) {
      std::cerr << "queued: " << placed.message() << "\n";
      return;
    }
    r.exec_host = host;
  }
  finisher_->MailStart(r, host);
}

// Ends a job that never left this host's waiting list. One that moved on
// meanwhile (placed, ended, cancelled) is someone else's to end: a placement
// that gave up because of that must not overwrite its record.
void DaemonImpl::FailRecord(uint64_t record_id, const std::string& why, spool::JobState state) {
  auto record = ledger_->Get(record_id);
  if (!record.ok() || !record->has_value() || (*record)->state != spool::JobState::kWaiting) return;
  if (Status ended = ledger_->EndWaiting(record_id, state, why, Now()); !ended.ok()) {
    std::cerr << "queued: " << ended.message() << "\n";
    return;
  }
  ledger_->OnceOnDisk([this, record_id] { finisher_->DiscardOriginFiles(record_id); });
}

void DaemonImpl::ScheduleWaitingPass() {
  if (waiting_pass_posted_) return;
  waiting_pass_posted_ = true;
  asio::post(io_, [this] { RetryWaiting(); });
}

// Jobs no host could take wait here, at their submit host, and are offered
// again on every heartbeat and whenever a slot may have freed: a job is never
// handed from spool to spool while it waits, so it cannot be lost or run twice
// on the way. After a refusal for now, the jobs behind it with the same queue
// and host constraint wait for the next heartbeat rather than ask again.
// Only as many as may start now: a pass costs what it starts plus a step per
// queue and host constraint, however long the list (daemon/waiting_list).
// Placements may end (and change the list) before StartPlacement returns.
void DaemonImpl::RetryWaiting() {
  waiting_pass_posted_ = false;
  waiting_.Pass(kMaxPlacementsInFlight, [this](uint64_t record_id) { TakeWaiting(record_id); });
}

std::shared_ptr<ClientChannel> DaemonImpl::StubOf(uint64_t record_id) const {
  auto found = stubs_.find(record_id);
  return found == stubs_.end() ? nullptr : found->second.lock();
}

void DaemonImpl::AddWaitingStored(uint64_t record_id) {
  auto record = ledger_->Get(record_id);
  if (!record.ok() || !record->has_value()) return;
  if ((*record)->cancel_requested) return CancelAtCheckpoint(record_id);
  auto spec = wire::DecodeStoredSpec((*record)->spec);
  if (!spec.ok()) {
    std::cerr << "queued: job " << record_id << " fails: " << spec.message() << "\n";
    return FailRecord(record_id, spec.message());
  }
  waiting_.Add(record_id, true, WaitingList::WaitKey(*spec));
}

// Starts placing one waiting job, or drops it from the list when it is gone.
void DaemonImpl::TakeWaiting(uint64_t record_id) {
  const WaitingList::Job& job = *waiting_.Find(record_id);
  wire::JobSpec spec;
  PlacementOptions options;
  if (job.stored) {
    auto record = ledger_->Get(record_id);
    if (!record.ok()) return;  // the spool is failing; try again later
    if (!record->has_value() || (*record)->state != spool::JobState::kWaiting) {
      waiting_.Erase(record_id);
      return;
    }
    auto decoded = wire::DecodeStoredSpec((*record)->spec);
    if (!decoded.ok()) {
      std::cerr << "queued: job " << record_id << " fails: " << decoded.message() << "\n";
      FailRecord(record_id, decoded.message());
      waiting_.Erase(record_id);
      return;
    }
    const spool::JobRecord& r = **record;
    if (!r.batch && !StubOf(record_id)) {
      FailRecord(record_id, "withdrawn: its stub went away while it waited to go on", spool::JobState::kCancelled);
      waiting_.Erase(record_id);
      return;
    }
    // Its kept restart files are checked before they go anywhere (on the
    // worker: a GiB takes seconds); it is taken again once they are.
    if (!finisher_->RestartBundleChecked(r)) {
      uint64_t generation = waiting_.Take(record_id);
      return finisher_->CheckRestartBundle(r, [this, record_id, generation] {
        if (waiting_.Return(record_id, generation)) ScheduleWaitingPass();
      });
    }
    options.offered_to = r.exec_host;
    options.attempt = r.restarts;
    std::string bundle = finisher_->RestartBundle(record_id);
    if (::access(bundle.c_str(), F_OK) == 0) options.bundle = bundle;
    spec = r.restarts > 0 ? RestartSpec(r, std::move(decoded.value()), !options.bundle.empty())
                          : std::move(decoded.value());
    auto now = std::chrono::steady_clock::now();
    if (auto avoid = avoid_.find(record_id); avoid != avoid_.end())
      for (const auto& [host, until] : avoid->second)
        if (until > now) options.avoid.push_back(host);
    // Where its owner asked it to move overrides where it was first pinned (-h).
    if (auto target = migrate_to_.find(record_id); target != migrate_to_.end()) {
      options.move_to = target->second;
      std::erase(options.avoid, target->second);
    }
  } else {
    auto client = StubOf(record_id);
    if (!client || client->closed()) {
      FailRecord(record_id, "withdrawn: its stub went away while it waited", spool::JobState::kCancelled);
      waiting_.Erase(record_id);
      return;
    }
    spec = job.spec;
  }
  uint64_t generation = waiting_.Take(record_id);
  StartPlacement(record_id, spec, options, [this, record_id, generation, key = job.key](const PlacementOutcome& outcome) {
    OnWaitingOutcome(record_id, generation, key, outcome);
  });
}

wire::JobSpec DaemonImpl::RestartSpec(const spool::JobRecord& record, wire::JobSpec spec, bool from_bundle) const {
  auto set_env = [&spec](const std::string& name, const std::string& value) {
    std::erase_if(spec.env, [&name](const std::string& v) { return v.starts_with(name + "="); });
    spec.env.push_back(name + "=" + value);
  };
  set_env("QUEUE_RESTART_COUNT", std::to_string(record.restarts));
  if (!from_bundle) return spec;
  set_env("RESTARTED", "1");
  const QueueState* queue = queues_->Find(record.queue);
  if (queue == nullptr || queue->policy.restart_flag.empty() || spec.argv.empty()) return spec;
  // Restored from its CRIU image, the job never sees its argv again; started
  // afresh when the image cannot be restored, it has no restart file to read.
  if (queue->policy.checkpoint_mode == profile::CheckpointMode::kTransparent) return spec;
  if (queue->policy.restart_flag_pos == profile::RestartFlagPosition::kLast)
    spec.argv.push_back(queue->policy.restart_flag);
  else
    spec.argv.insert(spec.argv.begin() + 1, queue->policy.restart_flag);
  return spec;
}

void DaemonImpl::OnWaitingOutcome(uint64_t record_id, uint64_t generation, const std::string& key,
                                  const PlacementOutcome& outcome) {
  if (!waiting_.Return(record_id, generation)) return;  // cancelled or re-queued meanwhile
  if (outcome.unresolved) return;  // asked there again on the next pass
  const bool stored = waiting_.Find(record_id)->stored;
  auto client = StubOf(record_id);
  if (outcome.host.empty()) {
    if (auto target = migrate_to_.find(record_id); target != migrate_to_.end()) {
      // The host its owner asked for cannot take it (down, busy, or the transfer
      // failed): it goes on where it can, its own host included, as if never asked.
      std::string note = "it cannot go on on " + target->second + " (" + outcome.why + "); it goes on where it can";
      std::cerr << "queued: job " << names_.LocalLabel(record_id) << ": " << note << "\n";
      migrate_to_.erase(target);
      avoid_.erase(record_id);
      if (client) client->Send(wire::SubmitReply{{record_id, names_.SelfNumber()}, "", note});
      return ScheduleWaitingPass();
    }
  }
  if (outcome.host.empty() && outcome.may_wait) {
    waiting_.SetWhy(record_id, outcome.why);  // shown by queue --jobs
    waiting_.Block(key);
    return;
  }
  if (outcome.host.empty()) FailRecord(record_id, outcome.why);
  if (client) {
    if (outcome.host.empty()) {
      client->Send(wire::ErrorReply{outcome.why});
    } else {
      // A job placed again after a checkpoint: say where, and from what.
      std::string note;
      if (stored)
        if (auto record = ledger_->Get(record_id); record.ok() && record->has_value() && (*record)->restarts > 0)
          note = "job " + names_.LocalLabel(record_id) + " goes on on " + outcome.host + " (" + (*record)->message + ")";
      client->Send(wire::SubmitReply{{record_id, names_.SelfNumber()}, outcome.host, note});
    }
  }
  waiting_.Erase(record_id);
  if (!outcome.host.empty()) {
    migrate_to_.erase(record_id);
    ScheduleWaitingPass();
  }
}

// Start-up: batch jobs waiting in the spool wait again; interactive ones lost
// their stub's connection with the old daemon. Jobs running here are re-adopted,
// and ends not yet delivered or reported are taken up again.
void DaemonImpl::Recover() {
  spool::JobFilter filter;
  filter.states = {spool::JobState::kWaiting};
  filter.local_origin = true;
  auto list = ledger_->List(filter);
  if (!list.ok()) {
    std::cerr << "queued: spool: cannot list waiting jobs: " << list.message() << "\n";
  } else {
    size_t batch_jobs = 0;
    for (const auto& r : *list) {
      if (r.batch) {
        AddWaitingStored(r.id);
        ++batch_jobs;
      } else {
        FailRecord(r.id, "withdrawn: queued restarted while it waited", spool::JobState::kCancelled);
      }
    }
    if (batch_jobs > 0) std::cerr << "queued: " << batch_jobs << " batch job(s) waiting in the spool\n";
  }
  runner_->Adopt();
  finisher_->LoadUnfinished();
  // Ends Adopt read from shepherds' status files are in the open transaction:
  // an end is owed to its submit host only once it is on disk, or the submit
  // host forgets a job whose end this spool then loses. Listed after the
  // commit, whether it worked or not (a failed one leaves only what is on disk).
  ledger_->AfterCommit([this](const Status&) { reporter_->LoadOwed(); });
}

// A host silent for longer than host_dead_after is taken for dead: the jobs
// this host placed there (or offered there without an answer) are lost with it.
// Silence is counted in load reports, not by the TCP connection: a hung daemon
// (stopped, or stuck in the kernel) keeps its connections open. Should such a
// host come back, each run it was thought to have lost is told to end there
// (fenced by its attempt), since the job runs again elsewhere.
void DaemonImpl::WatchSilentHosts() {
  auto now = load::Clock::now();
  const bool send_fences = std::chrono::steady_clock::now() >= next_fences_;
  if (send_fences) next_fences_ = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (const auto& host : hosts_) {
    if (host.entry == self_.entry) continue;
    auto link = links_.find(host.entry);
    if (table_.Fresh(host.entry, now) != nullptr) {
      if (auto fenced = fenced_.find(host.entry); fenced != fenced_.end() && link != links_.end() &&
                                                 link->second->connected())
        SendFences(*link->second, fenced->second, send_fences);
      continue;
    }
    auto heard = table_.hosts().find(host.entry);
    auto last = std::max(started_at_, heard == table_.hosts().end() ? started_at_ : heard->second.heard_at);
    if (now - last < config_.host_dead_after) continue;
    spool::JobFilter filter;
    filter.states = {spool::JobState::kWaiting, spool::JobState::kRunning};
    filter.local_origin = true;
    filter.exec_host = host.entry;
    auto list = ledger_->List(filter);
    if (!list.ok()) continue;
    auto silent = std::chrono::duration_cast<std::chrono::seconds>(now - last).count();
    for (auto& r : *list) {
      waiting_.Erase(r.id);
      fenced_[host.entry].push_back(Fence{r.id, r.restarts, std::chrono::steady_clock::now() + kFenceFor});
      finisher_->Lost(std::move(r), "its host " + host.entry + " was silent for " + std::to_string(silent) + " s");
    }
  }
}

// An interactive job whose shepherd could not be started: its stub hears why
// from here (out of descriptors, say) instead of waiting out its start timeout.
void DaemonImpl::TellStubIfNotStarted(const spool::JobRecord& record) {
  if (record.batch || !record.origin_host.empty() || !HadNoShepherd(record)) return;
  auto stub = stubs_.find(record.id);
  if (stub == stubs_.end()) return;
  if (auto client = stub->second.lock())
    client->Send(wire::ErrorReply{"job " + std::to_string(record.id) + " failed on " + record.exec_host + ": " +
                                  record.message});
}

void DaemonImpl::SendFences(PeerLink& link, std::vector<Fence>& fences, bool send) {
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(fences, [&](const Fence& fence) { return fence.until <= now; });
  if (!send) return;
  for (const Fence& fence : fences) link.SendCancel(wire::CancelJob{fence.origin_id, fence.attempt});
}

void DaemonImpl::OnLocalJobEnded(const spool::JobRecord& record) {
  TellStubIfNotStarted(record);
  if (!record.origin_host.empty())
    reporter_->Report(record);
  else
    finisher_->FinishLocal(record);
  waiting_.ClearBlocked();  // a slot is free
  ScheduleWaitingPass();
}

std::string DaemonImpl::StatusJson(const PeerCredentials& who) {
  using nlohmann::json;
  json out;
  out["host"] = self_.entry;
  auto now = load::Clock::now();
  json hosts = json::array();
  for (const auto& h : hosts_) {
    json entry{{"host", h.entry}};
    const load::HostLoad* fresh = table_.Fresh(h.entry, now);
    entry["alive"] = fresh != nullptr;
    if (fresh != nullptr) {
      entry["load1"] = fresh->report.load1;
      entry["cpus"] = fresh->report.cpus;
      json queues = json::array();
      for (const auto& q : fresh->report.queues)
        queues.push_back({{"name", q.name}, {"running", q.running}, {"maxexec", q.maxexec},
                          {"vmaxexec", q.vmaxexec}, {"pfactor", q.pfactor}, {"accepting", q.accepting}});
      entry["queues"] = queues;
    }
    hosts.push_back(entry);
  }
  out["hosts"] = hosts;
  json queues = json::array();
  for (const auto& [name, q] : queues_->queues()) {
    json entry{{"name", name}, {"running", q.running}, {"policy", profile::DescribePolicy(q.policy)}};
    if (!q.error.empty()) entry["error"] = q.error;
    if (q.policy.checkpoint_mode == profile::CheckpointMode::kTransparent) {
      if (runner_->criu().usable)
        entry["criu"] = "checkpointmode 1: " + migrate::DescribeCriu(runner_->criu());
      else
        entry["warning"] = NoTransparentCheckpoints(runner_->criu());
    }
    queues.push_back(entry);
  }
  out["queues"] = queues;
  out["jobs"] = JobsJson(who, false);
  out["keep_finished_seconds"] = config_.keep_finished.count();
  return out.dump();
}

// A job's state as its owner should read it. A run that ended here whose
// output is not yet home (or that stopped at a checkpoint and is not yet
// queued again) is not finished for its owner: "ending" ("moving"), not "done".
std::string DaemonImpl::StateShown(const spool::JobRecord& r) {
  const bool run_over = r.state == spool::JobState::kDone || r.state == spool::JobState::kFailed;
  if (!run_over || !r.origin_host.empty() || r.end_reported) return std::string(spool::ToString(r.state));
  return r.checkpointed ? "moving" : "ending";
}

nlohmann::json DaemonImpl::JobsJson(const PeerCredentials& who, bool include_finished) {
  spool::JobFilter filter;
  if (!include_finished) filter.states = {spool::JobState::kWaiting, spool::JobState::kRunning};
  if (who.uid != 0) filter.uid = who.uid;
  nlohmann::json jobs = nlohmann::json::array();
  auto list = ledger_->List(filter);
  if (!list.ok()) return jobs;
  for (const auto& r : *list) {
    nlohmann::json job{{"id", names_.Label(r)},
                       {"number", names_.IdOf(r).number},
                       {"origin", r.origin_host.empty() ? self_.entry : r.origin_host},
                       {"uid", r.uid},
                       {"queue", r.queue},
                       {"name", r.job_name},
                       {"state", StateShown(r)},
                       {"host", r.exec_host},
                       {"submit_time", r.submit_time},
                       {"start_time", r.start_time},
                       {"end_time", r.end_time},
                       {"cpu_seconds", r.cpu_seconds},
                       {"batch", r.batch}};
    if (r.batch && r.origin_host.empty()) job["output"] = r.output_path;
    if (r.restarts > 0) job["restarts"] = r.restarts;
    if (r.state == spool::JobState::kDone && r.wait_status >= 0) {
      if (WIFEXITED(r.wait_status)) job["exit_code"] = WEXITSTATUS(r.wait_status);
      if (WIFSIGNALED(r.wait_status)) job["signal"] = WTERMSIG(r.wait_status);
    }
    if (!r.message.empty()) job["message"] = r.message;
    if (const WaitingList::Job* waiting = waiting_.Find(r.id);
        r.state == spool::JobState::kWaiting && r.origin_host.empty() && waiting != nullptr && !waiting->why.empty())
      job["waiting_for"] = waiting->why;
    if (!r.output_held.empty()) {
      job["output_held"] = r.output_held;
      job["message"] = "output held: " + r.output_held;
    }
    jobs.push_back(job);
  }
  return jobs;
}

// A user's cancel, migrate or output request, answered through `reply` (an
// encoded StatusReply, OutputReply or ErrorReply). A job submitted on another
// host is asked of that host, which owns it; a request forwarded here is
// answered here or refused, never forwarded again.
void DaemonImpl::AnswerJobRequest(const PeerCredentials& who, wire::MessageType type, std::string_view payload,
                                  bool forwarded, JobRequestReply reply) {
  auto error = [&reply](const std::string& why) {
    reply(wire::MessageType::kErrorReply, wire::EncodePayload(wire::ErrorReply{why}));
  };
  wire::JobId id;
  std::string migrate_host;
  if (type == wire::MessageType::kCancelRequest) {
    auto request = wire::DecodePayload<wire::CancelRequest>(payload);
    if (!request.ok()) return error(request.message());
    id = request->job;
  } else if (type == wire::MessageType::kOutputRequest) {
    auto request = wire::DecodePayload<wire::OutputRequest>(payload);
    if (!request.ok()) return error(request.message());
    id = request->job;
  } else {
    auto request = wire::DecodePayload<wire::MigrateRequest>(payload);
    if (!request.ok()) return error(request.message());
    id = request->job;
    migrate_host = request->host;
  }
  id = names_.Complete(id);
  if (id.host != names_.SelfNumber()) {
    if (forwarded) return error("job " + wire::FormatJobId(id) + " was not submitted on " + self_.entry);
    return ForwardJobRequest(who, id, type, migrate_host, std::move(reply));
  }
  const std::string label = wire::FormatJobId(id);
  if (type == wire::MessageType::kOutputRequest) {
    auto output = OutputOf(who, id.number, label);
    if (!output.ok()) return error(output.message());
    // Asked on another host: the file is here, and there only on a shared file system.
    if (forwarded && !output->path.empty() && output->message.empty())
      output->message = "job " + label + "'s output is " + output->path + " on " + self_.entry;
    return reply(wire::MessageType::kOutputReply, wire::EncodePayload(*output));
  }
  if (type == wire::MessageType::kMigrateRequest) {
    auto done = Migrate(who, id.number, label, migrate_host);
    if (!done.ok()) return error(done.message());
    return reply(wire::MessageType::kStatusReply, wire::EncodePayload(wire::StatusReply{*done}));
  }
  auto done = Cancel(who, id.number, label);
  if (!done.ok()) return error(done.message());
  // Answered once the cancel is on disk: it must outlive a daemon restart.
  ledger_->AfterCommit([reply = std::move(reply), said = *done](const Status& committed) {
    if (!committed.ok())
      return reply(wire::MessageType::kErrorReply, wire::EncodePayload(wire::ErrorReply{"spool: " + committed.message()}));
    reply(wire::MessageType::kStatusReply, wire::EncodePayload(wire::StatusReply{said}));
  });
}

void DaemonImpl::ForwardJobRequest(const PeerCredentials& who, const wire::JobId& id, wire::MessageType type,
                                   const std::string& migrate_host, JobRequestReply reply) {
  // How long the submit host may take: an output of up to 8 MiB read from its spool.
  constexpr auto kForwardTimeout = std::chrono::seconds(30);
  const std::string host = names_.HostOf(id.host);
  auto link = links_.find(host);
  if (host.empty() || link == links_.end()) {
    std::string why = "job " + wire::FormatJobId(id) + ": the hosts file " + config_.hosts_file + " has no host " +
                      std::to_string(id.host) + " (it lists " + std::to_string(hosts_.size()) + ")";
    // From the loop, as a forwarded answer would come.
    return asio::post(io_, [reply = std::move(reply), why] {
      reply(wire::MessageType::kErrorReply, wire::EncodePayload(wire::ErrorReply{why}));
    });
  }
  // The request names the job as its submit host numbers it, host included.
  std::string named = type == wire::MessageType::kCancelRequest   ? wire::EncodePayload(wire::CancelRequest{id})
                      : type == wire::MessageType::kOutputRequest ? wire::EncodePayload(wire::OutputRequest{id})
                                                                  : wire::EncodePayload(wire::MigrateRequest{id, migrate_host});
  link->second->Forward(wire::ForwardRequest{0, who.uid, who.gid, type, std::move(named)},
                        std::chrono::duration_cast<std::chrono::milliseconds>(kForwardTimeout), std::move(reply));
}

Result<std::string> DaemonImpl::Cancel(const PeerCredentials& who, uint64_t number, const std::string& label) {
  auto record = CallersJob(who, number, label);
  if (!record.ok()) return record.error();
  const spool::JobRecord& r = *record;
  if (r.state != spool::JobState::kWaiting && r.state != spool::JobState::kRunning)
    return Fail("job " + label + " is not waiting or running (it is " + std::string(spool::ToString(r.state)) + ")");
  const std::string notice = "[job " + label + " cancelled by its owner]";
  if (r.state == spool::JobState::kWaiting) {
    if (waiting_.Erase(r.id))
      if (auto client = StubOf(r.id)) client->Send(wire::ErrorReply{notice});
    // Offered without an answer: the host may have it; tell it too.
    if (auto link = links_.find(r.exec_host); link != links_.end()) link->second->SendCancel(wire::CancelJob{r.id});
    FailRecord(r.id, "cancelled by its owner while it waited", spool::JobState::kCancelled);
    return "cancelled job " + label + " (it had not started)";
  }
  bool sent = r.exec_host == self_.entry && runner_->ControlJob(r.id, wire::ShepherdAction::kTerminate, notice);
  if (auto link = links_.find(r.exec_host); !sent && link != links_.end())
    sent = link->second->SendCancel(wire::CancelJob{r.id});
  if (!sent) return Fail("job " + label + " runs on " + r.exec_host + ", which cannot be reached now");
  // One that stops at a checkpoint meanwhile comes back here to go on: it is cancelled then.
  if (Status noted = ledger_->NoteCancelRequested(r.id); !noted.ok())
    return Fail("job " + label + " was told to stop on " + r.exec_host + ", but " + noted.message());
  return "cancelling job " + label + " on " + r.exec_host;
}

Result<spool::JobRecord> DaemonImpl::CallersJob(const PeerCredentials& who, uint64_t number, const std::string& label) {
  auto record = ledger_->Get(number);
  if (!record.ok()) return Fail("spool: " + record.message());
  if (!record->has_value() || !(*record)->origin_host.empty() || (who.uid != 0 && (*record)->uid != who.uid))
    return Fail("you have no job " + label + " (it would have been submitted on " + self_.entry + ")");
  return std::move(**record);
}

Result<std::string> DaemonImpl::Migrate(const PeerCredentials& who, uint64_t number, const std::string& id_text,
                                        const std::string& host) {
  auto record = CallersJob(who, number, id_text);
  if (!record.ok()) return record.error();
  const spool::JobRecord& r = *record;
  if (r.state != spool::JobState::kRunning) return Fail("job " + id_text + " is not running");
  std::string target;
  if (!host.empty()) {
    auto resolved = ResolveHostOption(host);
    if (!resolved.ok()) return resolved.error();
    target = *resolved;
    if (target == r.exec_host) return Fail("job " + id_text + " already runs on " + target);
  }
  if (!SomeHostTakesRestarts(r.queue) && target.empty())
    return Fail("no other host takes restarted jobs in queue \"" + r.queue + "\" now (restartmode, load)");
  const std::string reason = "[job " + id_text + " is moving at its owner's request]";
  bool asked = false;
  if (r.exec_host == self_.entry) {
    asked = runner_->Checkpoint(r.id, reason);
  } else if (auto link = links_.find(r.exec_host); link != links_.end()) {
    asked = link->second->SendMigrate(wire::MigrateJob{number, reason});
  }
  if (!asked)
    return Fail("job " + id_text + " cannot be checkpointed on " + r.exec_host +
                " (its queue needs checkpointmode 2 there, or 1 with a working CRIU; the host must be reachable; "
                "its log says more)");
  if (!target.empty()) migrate_to_[r.id] = target;
  return "asked job " + id_text + " on " + r.exec_host + " to checkpoint; it will go on " +
         (target.empty() ? "on another host" : "on " + target);
}

bool DaemonImpl::SomeHostTakesRestarts(const std::string& queue) const {
  auto now = load::Clock::now();
  for (const auto& host : hosts_) {
    if (host.entry == self_.entry) continue;
    const load::HostLoad* fresh = table_.Fresh(host.entry, now);
    if (fresh == nullptr) continue;
    for (const auto& q : fresh->report.queues)
      if (q.name == queue && q.takes_restarts && q.accepting) return true;
  }
  return false;
}

// Exec side, every heartbeat. Load: the newest job of a queue whose load is at
// or above its `loadcheckpoint` is asked to checkpoint when another host takes
// restarts, one per heartbeat, each counting against the load for a minute so
// that no more jobs leave than the load needs. Drain: every checkpointable job
// leaves. Period: a job that has run `checkpointperiod` checkpoints (and goes
// on wherever fits, here included).
void DaemonImpl::CheckpointForPolicy() {
  auto now = std::chrono::steady_clock::now();
  std::erase_if(moved_for_load_, [&](const auto& at) { return now - at > std::chrono::seconds(5 * 60); });
  double moved = 0;
  for (const auto& at : moved_for_load_)
    moved += std::exp(-std::chrono::duration<double>(now - at).count() / kMovedLoadSeconds);
  const double load = std::max(0.0, CurrentLoad() - moved);
  for (const auto& [name, q] : queues_->queues()) {
    const profile::QueuePolicy& p = q.policy;
    bool checkpoints = p.checkpoint_mode == profile::CheckpointMode::kUser ||
                       (p.checkpoint_mode == profile::CheckpointMode::kTransparent && runner_->criu().usable);
    if (!checkpoints || !q.error.empty()) continue;
    if (p.checkpoint_period_seconds > 0)
      for (uint64_t id : runner_->DueForPeriodicCheckpoint(name, std::chrono::seconds(p.checkpoint_period_seconds)))
        runner_->Checkpoint(id, "", /*in_place=*/true);
    if (!SomeHostTakesRestarts(name)) continue;
    if (p.exec == profile::ExecState::kDrain) {
      for (uint64_t id : runner_->CheckpointCandidates(name))
        runner_->Checkpoint(id, "[" + self_.entry + " is draining: the job moves to another host]");
      continue;
    }
    if (profile::NormalizedLoad(load, p.load_norm, cpus_) < p.load_checkpoint) continue;
    auto candidates = runner_->CheckpointCandidates(name);
    if (candidates.empty()) continue;
    std::ostringstream why;
    why << "[load " << last_load_ << " on " << self_.entry << " reached loadcheckpoint " << p.load_checkpoint
        << ": the job moves to another host]";
    if (runner_->Checkpoint(candidates.front(), why.str())) moved_for_load_.push_back(now);
    return;  // one per heartbeat: the next pass sees the estimate lowered
  }
}

// Its owner cancelled it while it ran, and it stopped at a checkpoint before
// the cancel reached it: it does not go on.
void DaemonImpl::CancelAtCheckpoint(uint64_t record_id) {
  const std::string why = "cancelled by its owner at a checkpoint";
  if (auto stub = stubs_.find(record_id); stub != stubs_.end())
    if (auto client = stub->second.lock())
      client->Send(wire::ErrorReply{"[job " + names_.LocalLabel(record_id) + " " + why + "]"});
  FailRecord(record_id, why, spool::JobState::kCancelled);
}

void DaemonImpl::ForgetFinishedJobs() {
  std::erase_if(stubs_, [](const auto& entry) { return entry.second.expired(); });
  auto now = std::chrono::steady_clock::now();
  for (auto it = avoid_.begin(); it != avoid_.end();) {
    std::erase_if(it->second, [&](const auto& host) { return host.second <= now; });
    it = it->second.empty() ? avoid_.erase(it) : std::next(it);
  }
}

void DaemonImpl::ExpireFinishedJobs() {
  // At most this many at once: a spool that grew large before shrinks over a
  // few passes without stalling the loop.
  constexpr size_t kMostPerPass = 2000;
  auto now = std::chrono::steady_clock::now();
  if (now < next_expiry_) return;
  auto removed = ledger_->Expire(Now() - config_.keep_finished.count(), kMostPerPass);
  if (!removed.ok()) {
    std::cerr << "queued: spool: cannot remove old finished jobs: " << removed.message() << "\n";
  } else if (*removed == kMostPerPass) {
    return;  // more to go: the next heartbeat goes on
  }
  // Once a minute, or twice per --keep-finished when that is shorter.
  next_expiry_ = now + std::clamp<std::chrono::steady_clock::duration>(config_.keep_finished / 2, std::chrono::seconds(1),
                                                                       std::chrono::minutes(1));
}

Result<wire::OutputReply> DaemonImpl::OutputOf(const PeerCredentials& who, uint64_t number, const std::string& id_text) {
  auto record = CallersJob(who, number, id_text);
  if (!record.ok()) return record.error();
  const spool::JobRecord& r = *record;
  if (!r.batch) return Fail("job " + id_text + " is interactive: its output went to its terminal");
  if (r.output_path.empty()) return wire::OutputReply{"", true, "job " + id_text + " discards its output (QMAIL=FALSE)"};
  switch (r.state) {
    case spool::JobState::kWaiting:
      return wire::OutputReply{"", false, "job " + id_text + " has not started yet"};
    case spool::JobState::kRunning:
      return wire::OutputReply{"", false, "job " + id_text + " is running on " + r.exec_host +
                                              "; its output will be in " + r.output_path + " when it ends"};
    case spool::JobState::kCancelled:
      return wire::OutputReply{"", true, "job " + id_text + " was cancelled before it ran"};
    default:
      if (!r.end_reported) return wire::OutputReply{"", false, "job " + id_text + "'s output is on its way"};
      if (!r.output_held.empty()) {
        std::string said = "job " + id_text + "'s output is held in the spool of " + self_.entry + ", as " +
                           r.output_path + " cannot be written (" + r.output_held + "); it goes there once it can";
        auto held = finisher_->ReadHeldOutput(r.id, wire::OutputReply::kMaxHeldShown);
        if (!held.ok()) return wire::OutputReply{"", true, said + "; " + held.message()};
        return wire::OutputReply{"", true, said, std::move(held.value())};
      }
      return wire::OutputReply{r.output_path, true, ""};
  }
}

void DaemonImpl::AcceptPeer() {
  tcp_acceptor_.async_accept([this](const asio::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      asio::error_code ignored;
      auto remote = socket.remote_endpoint(ignored);
      std::string address = remote.address().to_string() + ":" + std::to_string(remote.port());
      socket.set_option(tcp::no_delay(true), ignored);
      auto channel = std::make_shared<PeerChannel>(auth::TlsStream(std::move(socket), server_tls_->context()));
      auto deadline = std::make_shared<asio::steady_timer>(io_, std::chrono::seconds(10));
      deadline->async_wait([channel](const asio::error_code& e) {
        if (!e) channel->Close("handshake timed out");
      });
      channel->stream().async_handshake(asio::ssl::stream_base::server,
                                        [this, channel, address, deadline](const asio::error_code& e) {
                                          deadline->cancel();
                                          if (e) {
                                            std::cerr << "queued: refused connection from " << address << ": "
                                                      << auth::DescribeHandshakeFailure(e) << "\n";
                                            return channel->Close("handshake failed");
                                          }
                                          OnPeerHandshake(channel, address);
                                        });
    }
    AcceptPeer();
  });
}

void DaemonImpl::OnPeerHandshake(const std::shared_ptr<PeerChannel>& channel, const std::string& address) {
  auto peer_name = std::make_shared<std::string>();
  channel->Start(
      [this, weak = std::weak_ptr<PeerChannel>(channel), peer_name](wire::MessageType type, std::string_view p) {
        if (auto c = weak.lock()) OnPeerFrame(c, peer_name, type, p);
      },
      [address, peer_name](const std::string& reason) {
        if (reason != "peer closed" && reason != "daemon stopping")
          std::cerr << "queued: connection from " << (peer_name->empty() ? address : *peer_name)
                    << " closed: " << reason << "\n";
      });
}

void DaemonImpl::OnPeerFrame(const std::shared_ptr<PeerChannel>& channel, const std::shared_ptr<std::string>& peer_name,
                             wire::MessageType type, std::string_view payload) {
  if (peer_name->empty() && type != wire::MessageType::kHello) return channel->Close("no Hello from peer");
  switch (type) {
    case wire::MessageType::kHello: {
      auto hello = wire::DecodePayload<wire::Hello>(payload);
      if (!hello.ok()) return channel->Close(hello.message());
      if (hello->version != wire::kProtocolVersion)
        return channel->Close("peer speaks protocol version " + std::to_string(hello->version));
      bool listed = false;
      for (const auto& h : hosts_) listed |= (h.entry == hello->name);
      if (!listed || hello->name == self_.entry) return channel->Close("peer \"" + hello->name + "\" is not in the hosts file");
      *peer_name = hello->name;
      return channel->Send(wire::Hello{wire::kProtocolVersion, wire::Role::kDaemon, self_.entry});
    }
    case wire::MessageType::kLoadReport: {
      auto report = wire::DecodePayload<wire::LoadReport>(payload);
      if (!report.ok()) return channel->Close(report.message());
      if (report->host != *peer_name) return channel->Close("load report for another host");
      table_.Update(std::move(report.value()), load::Clock::now());
      return;
    }
    case wire::MessageType::kPlaceJob: {
      auto place = wire::DecodePayload<wire::PlaceJob>(payload);
      if (!place.ok()) return channel->Close(place.message());
      if (place->origin_host != *peer_name) return channel->Close("job placed on behalf of another host");
      const bool batch = place->spec.batch || place->attempt > 0;
      std::string bundle;
      if (!place->bundle_sha256.empty()) {
        std::string arrived = ArrivingBundle(*peer_name, place->origin_job_id);
        if (!arriving_.Matches(arrived, place->bundle_size, place->bundle_sha256))
          return channel->Send(wire::PlaceReply{place->request_id, false, false,
                                                "its restart files did not arrive whole"});
        // Unpacked on the worker thread: the same job's files sent again (its
        // offer repeated meanwhile) must not be written over these under it.
        bundle = arrived + kTakenBundleSuffix + std::to_string(++bundles_taken_);
        if (::rename(arrived.c_str(), bundle.c_str()) != 0)
          return channel->Send(wire::PlaceReply{place->request_id, false, false,
                                                "cannot keep its restart files: " + ErrnoText(errno)});
      }
      uint64_t request_id = place->request_id;
      const uint64_t origin_id = place->origin_job_id;
      const uint32_t attempt = place->attempt;
      return runner_->Admit(
          AdmitRequest{place->origin_host, place->origin_job_id, place->attempt, 0, std::move(place->spec), bundle},
          CurrentLoad(),
          [this, weak = std::weak_ptr<PeerChannel>(channel), bundle, request_id, batch, peer = *peer_name, origin_id,
           attempt](const Result<uint64_t>& admitted, bool permanent) {
            if (!bundle.empty()) ::unlink(bundle.c_str());
            if (admitted.ok()) table_.Update(SelfReport(), load::Clock::now());
            wire::PlaceReply reply{request_id, admitted.ok(), !admitted.ok() && permanent,
                                   admitted.ok() ? "" : admitted.message()};
            auto reply_to = [weak](const wire::PlaceReply& answer) {
              if (auto c = weak.lock()) c->Send(answer);
            };
            if (!admitted.ok() || !batch) return reply_to(reply);
            // Accepted only once the job is on disk here: the origin may forget it then.
            ledger_->AfterCommit([this, reply_to, reply, peer, origin_id, attempt](const Status& committed) mutable {
              if (!committed.ok()) {
                // What failed may be another job's write: a job that was here
                // already is on disk and running, and must not be refused (its
                // submit host would place it elsewhere too). No answer: it asks again.
                auto here = ledger_->FindByOrigin(peer, origin_id);
                if (here.ok() && here->has_value() && (*here)->restarts == attempt) return;
                reply = wire::PlaceReply{reply.request_id, false, false, "spool: " + committed.message()};
              }
              reply_to(reply);
            });
          });
    }
    case wire::MessageType::kForwardRequest: {
      auto forward = wire::DecodePayload<wire::ForwardRequest>(payload);
      if (!forward.ok()) return channel->Close(forward.message());
      // The peer read the uid from its own socket; it holds the cluster key.
      PeerCredentials who{forward->uid, forward->gid, {}};
      std::weak_ptr<PeerChannel> weak = channel;
      return AnswerJobRequest(who, forward->type, forward->payload, /*forwarded=*/true,
                              [weak, request_id = forward->request_id](wire::MessageType type, std::string reply) {
                                if (auto peer = weak.lock())
                                  peer->Send(wire::ForwardReply{request_id, type, std::move(reply)});
                              });
    }
    case wire::MessageType::kCancelJob: {
      auto cancel = wire::DecodePayload<wire::CancelJob>(payload);
      if (!cancel.ok()) return channel->Close(cancel.message());
      auto record = ledger_->FindByOrigin(*peer_name, cancel->origin_job_id);
      if (!record.ok() || !record->has_value()) return;
      const bool fence = cancel->attempt != wire::CancelJob::kAnyAttempt;
      if (fence && (*record)->restarts != cancel->attempt) return;  // that run is over already
      const std::string label = names_.Label(**record);
      const bool ended = runner_->ControlJob(
          (*record)->id, wire::ShepherdAction::kTerminate,
          fence ? "[job " + label + " was taken for lost while " + self_.entry +
                      " did not answer, and runs again elsewhere: this run ends]"
                : "[job " + label + " cancelled by its owner]");
      if (fence && ended)
        std::cerr << "queued: job " << label << " from " << *peer_name << ": ending run "
                  << cancel->attempt << ", which its submit host took for lost and runs again elsewhere\n";
      return;
    }
    case wire::MessageType::kBundleChunk: {
      auto chunk = wire::DecodePayload<wire::BundleChunk>(payload);
      if (!chunk.ok()) return channel->Close(chunk.message());
      if (chunk->origin_host != *peer_name) return finisher_->OnBundleChunk(*peer_name, *chunk);
      // Restart files of a job that peer is about to place here.
      if (auto stored = arriving_.Store(ArrivingBundle(*peer_name, chunk->origin_job_id), chunk->offset, chunk->bytes);
          !stored.ok())
        std::cerr << "queued: " << stored.message() << "\n";
      return;
    }
    case wire::MessageType::kMigrateJob: {
      auto migrate = wire::DecodePayload<wire::MigrateJob>(payload);
      if (!migrate.ok()) return channel->Close(migrate.message());
      auto record = ledger_->FindByOrigin(*peer_name, migrate->origin_job_id);
      if (record.ok() && record->has_value() && (*record)->state == spool::JobState::kRunning)
        runner_->Checkpoint((*record)->id, migrate->reason);
      return;
    }
    case wire::MessageType::kJobOutput: {
      auto output = wire::DecodePayload<wire::JobOutput>(payload);
      if (!output.ok()) return channel->Close(output.message());
      return finisher_->OnOutput(*peer_name, *output);
    }
    case wire::MessageType::kJobEnded: {
      auto ended = wire::DecodePayload<wire::JobEnded>(payload);
      if (!ended.ok()) return channel->Close(ended.message());
      wire::JobEndedAck ack{ended->origin_job_id, ended->attempt};
      return finisher_->OnEnded(*peer_name, *ended, [weak = std::weak_ptr<PeerChannel>(channel), ack] {
        if (auto c = weak.lock()) c->Send(ack);
      });
    }
    default:
      return channel->Close("unexpected message " + std::to_string(static_cast<int>(type)));
  }
}

void DaemonImpl::WatchSignals() {
  for (int signo : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) signals_.add(signo);
  signals_.async_wait([this](const asio::error_code& ec, int signo) {
    if (ec) return;
    if (signo == SIGCHLD) {
      ReapChildren();
    } else if (signo == SIGHUP) {
      std::cerr << "queued: SIGHUP: reloading the hosts file and profiles\n";
      if (auto reloaded = LoadHosts(); !reloaded.ok())
        std::cerr << "queued: keeping the old hosts list: " << reloaded.message() << "\n";
      StartLinks();
      queues_->Refresh(true);
      ProbeCriuIfNeeded();
    } else {
      std::cerr << "queued: signal " << signo << ": stopping; running jobs stay with their shepherds\n";
      return Stop();
    }
    WatchSignals();
  });
}

void DaemonImpl::Stop() {
  asio::error_code ignored;
  unix_acceptor_.close(ignored);
  tcp_acceptor_.close(ignored);
  ::unlink(config_.socket_path.c_str());
  heartbeat_.cancel();
  if (Status flushed = batch_->Flush(); !flushed.ok())
    std::cerr << "queued: spool: the last changes were not saved: " << flushed.message() << "\n";
  for (auto& [name, link] : links_) link->Stop();
  io_.stop();
}

Result<std::unique_ptr<Daemon>> Daemon::Create(asio::io_context& io, DaemonConfig config) {
  auto impl = std::make_unique<DaemonImpl>(io, std::move(config));
  if (auto ok = impl->Init(); !ok.ok()) return Fail(ok.message());
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

Daemon::Daemon(std::unique_ptr<DaemonImpl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() = default;
void Daemon::Run() { impl_->Run(); }

}  // namespace queue::daemon
