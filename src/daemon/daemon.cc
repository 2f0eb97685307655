// queued's event loop: clients, peers, shepherds, and the load heartbeat.
#include "daemon/daemon.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>

#include "auth/cluster_key.h"
#include "auth/psk_tls.h"
#include "cluster/hosts_file.h"
#include "daemon/bundle_sender.h"
#include "daemon/checkpoint_policy.h"
#include "daemon/client_service.h"
#include "daemon/end_reporter.h"
#include "daemon/gossip_members.h"
#include "daemon/group_commit.h"
#include "daemon/host_liveness.h"
#include "daemon/job_finisher.h"
#include "daemon/job_ledger.h"
#include "daemon/job_names.h"
#include "daemon/job_requests.h"
#include "daemon/job_runner.h"
#include "daemon/log_output.h"
#include "daemon/metrics.h"
#include "daemon/metrics_http.h"
#include "daemon/peer_link.h"
#include "daemon/peer_service.h"
#include "daemon/placement.h"
#include "daemon/queue_program.h"
#include "daemon/queue_table.h"
#include "daemon/run_hosts_watch.h"
#include "daemon/scheduler.h"
#include "daemon/service_notifier.h"
#include "daemon/status_report.h"
#include "daemon/supervisor_log.h"
#include "daemon/waiting_list.h"
#include "load/load_sampler.h"
#include "load/load_table.h"
#include "migrate/criu.h"
#include "profile/queue_policy.h"
#include "spool/job_store.h"
#include "spool/spool_dir.h"
#include "spool/spool_layout.h"
#include "spool/spool_reserve.h"
#include "util/log_priority.h"
#include "util/wall_clock.h"
#include "util/worker_thread.h"

namespace queue::daemon {

using asio::ip::tcp;

namespace {

// An arrived bundle renamed for the admission that unpacks it.
constexpr const char* kTakenBundleSuffix = ".taken-";
// Restart files sent ahead of an offer that never came (the origin chose
// another host, or is gone for good). A transfer writes to its file every few
// seconds at most, and an origin that restarts sends the files again.
constexpr auto kStaleArrival = std::chrono::minutes(30);
// A large cluster (Membership::kGossip): the hosts one placement asks, how
// long it waits for their answers, and how long a link made on demand stays
// open unused.
constexpr size_t kProbesPerPlacement = 3;
constexpr auto kProbeTimeout = std::chrono::milliseconds(1000);
constexpr auto kIdleLink = std::chrono::seconds(60);

using util::Now;

// The descriptors this process may open (queued raised it to the hard limit).
uint64_t DescriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 1024;
  return limit.rlim_cur;
}

// The keys of the cluster key file, each under its identity, the one to offer
// first; logs their identities (never the keys), so that an admin changing the
// key can see which keys each daemon offers and accepts.
Result<std::vector<auth::PskKey>> LoadClusterKeys(const std::string& path) {
  auto raw = auth::LoadKeyFileKeys(path);
  if (!raw.ok()) return Fail(raw.message());
  std::vector<auth::PskKey> keys;
  for (std::string& key : *raw) {
    std::string identity = auth::KeyIdentity(key);
    keys.push_back(auth::PskKey{std::move(key), std::move(identity)});
  }
  std::cerr << "queued: cluster key file " << path << ": offering " << keys.front().identity;
  if (keys.size() > 1) {
    std::cerr << "; also accepting";
    for (std::size_t i = 1; i < keys.size(); ++i) std::cerr << " " << keys[i].identity;
  }
  std::cerr << "\n";
  return keys;
}

}  // namespace

// The wiring: owns every module of the daemon, connects their callbacks, runs
// the heartbeat, and answers the few peer messages that concern the exec side
// as a whole (an offer, a cancel, restart files arriving ahead of an offer).
class DaemonImpl {
 public:
  DaemonImpl(asio::io_context& io, DaemonConfig config) : io_(io), config_(std::move(config)),
      sampler_(config_.loadavg_file), table_(config_.stale_after), heartbeat_(io), signals_(io), file_worker_(io) {}

  Status Init();
  void Run();

 private:
  // Start-up.
  Status LoadHosts();
  void StartLinks();
  void MakeServices();
  void RegisterPeerHandlers();

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
  // The link to peer `host`; in a large cluster made on demand. Null when
  // `host` is not in the hosts file.
  std::shared_ptr<PeerLink> LinkTo(const std::string& host);
  std::shared_ptr<PeerLink> MakeLink(const cluster::HostEntry& host);
  // A large cluster: links unused for kIdleLink, with nothing in flight, close.
  void CloseIdleLinks();
  // A large cluster's placement: asks a few hosts up in the gossip (or the
  // one the job names) for their load; `done` gets those that answered, and
  // this host, to rank.
  void Probe(const std::string& named, const std::string& preferred,
             std::function<void(std::vector<std::string>)> done);
  bool PeerUp(const std::string& host, load::Clock::time_point now) const;

  // Exec side: asks running jobs of checkpointing queues to checkpoint, for the
  // load (`loadcheckpoint`), a drain, or `checkpointperiod` (CheckpointPolicy).
  void CheckpointForPolicy();
  bool SomeHostTakesRestarts(const std::string& queue) const;
  void RemoveStaleArrivals();
  // Removes finished records older than --keep-finished, a bounded number per pass.
  void ExpireFinishedJobs();
  void Recover();
  // The jobs this host placed on a peer taken for dead are lost with it (HostLiveness).
  void WatchSilentHosts();
  void WatchRunHosts(std::vector<std::pair<std::string, int64_t>>& dead);
  void RemoveTakenBundles();

  // Peer daemons' messages (PeerService's dispatch table).
  void OnPlaceJob(const PeerFrame& frame, wire::PlaceJob place);
  void OnCancelJob(const PeerFrame& frame, const wire::CancelJob& cancel);
  void OnBundleChunk(const PeerFrame& frame, const wire::BundleChunk& chunk);

  void OnLocalJobEnded(const spool::JobRecord& record);

  // The metrics as they are now (MetricsHttp's thread asks through RenderOnLoop).
  std::string RenderMetricsNow(MetricsFormat format);
  void StartMetrics();

  void WatchSignals();
  void Reload();
  // Detached: moves the log to a file at its path again (logrotate).
  void ReopenLog();
  // For `systemctl status`: running and waiting jobs, hosts heard from.
  std::string ServiceStatus() const;
  // Loads the key file again into both TLS contexts; on failure keeps the keys.
  void ReloadClusterKeys();
  void Stop();

  asio::io_context& io_;
  DaemonConfig config_;
  spool::SpoolLayout layout_{config_.spool_dir};
  std::vector<cluster::HostEntry> hosts_;
  cluster::HostEntry self_;
  JobNames names_;  // before runner_ and finisher_, which hold a reference to it
  std::optional<auth::PskTlsContext> server_tls_;
  std::optional<auth::PskTlsContext> client_tls_;
  std::unique_ptr<spool::JobStore> store_;
  std::unique_ptr<GroupCommit> batch_;
  std::unique_ptr<JobLedger> ledger_;  // the only writer of job records
  std::unique_ptr<QueueTable> queues_;
  std::optional<spool::SpoolReserve> reserve_;  // room for records, kept in store_
  std::unique_ptr<JobRunner> runner_;
  std::unique_ptr<JobFinisher> finisher_;
  IncomingFiles arriving_;  // restart bundles sent ahead of the PlaceJob that needs them
  uint64_t bundles_taken_ = 0;  // arrived bundles renamed for an admission (unique names)
  std::unique_ptr<EndReporter> reporter_;
  QueueProgram programs_;
  std::optional<SupervisorLog> supervisor_log_;
  CheckpointPolicy checkpoints_;
  std::chrono::steady_clock::time_point next_expiry_{};
  std::map<std::string, std::filesystem::file_time_type> program_failed_at_;  // profile version that failed
  load::LoadSampler sampler_;
  load::LoadTable table_;
  HostLiveness liveness_{config_.host_dead_after, load::Clock::now()};
  unsigned cpus_ = load::OnlineCpuCount();
  double last_load_ = 0;
  std::string last_load_error_;
  std::map<std::string, std::shared_ptr<PeerLink>> links_;
  std::map<std::string, std::chrono::steady_clock::time_point> link_used_;  // large cluster: links made on demand
  std::vector<std::string> cluster_keys_;  // raw, the one offered first: the gossip keyring is derived from them
  std::unique_ptr<GossipMembers> gossip_;  // a large cluster's membership; null for a full mesh
  // A large cluster: the hosts running this host's jobs, asked for their load
  // six times per --host-timeout (between 1 and 10 s apart).
  RunHostsWatch run_watch_{std::clamp<std::chrono::steady_clock::duration>(config_.host_dead_after / 6,
                                                                           std::chrono::seconds(1),
                                                                           std::chrono::seconds(10)),
                           config_.host_dead_after};
  std::mt19937_64 rng_{std::random_device{}()};
  std::unique_ptr<StatusReport> status_;
  std::unique_ptr<Placement> placement_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<JobRequests> requests_;
  std::unique_ptr<ClientService> clients_;
  std::unique_ptr<PeerService> peers_;
  MetricsRegistry metrics_;  // the daemon's counters, bumped by the modules above
  asio::steady_timer heartbeat_;
  asio::signal_set signals_;
  ServiceNotifier notifier_;
  // Packs, unpacks and delivers files that can take seconds, off the loop.
  // Last, so that it is stopped first: its results call into runner_ and finisher_.
  util::WorkerThread file_worker_;
  // Its thread renders through the loop: stopped before anything else.
  std::unique_ptr<MetricsHttp> metrics_http_;
};

Status DaemonImpl::Init() {
  // Caught from here on, before anything exists that a stop must undo (the
  // sockets, the spool's lock): a SIGTERM while we start is then a clean stop
  // once the loop runs, not a death that leaves the socket behind.
  for (int signo : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) signals_.add(signo);
  if (auto hosts = LoadHosts(); !hosts.ok()) return hosts;
  auto keys = LoadClusterKeys(config_.key_file);
  if (!keys.ok()) return Fail(keys.message());
  for (const auto& k : *keys) cluster_keys_.push_back(k.key);
  auto server = auth::PskTlsContext::Create(auth::PskTlsContext::Side::kServer, *keys);
  auto client = auth::PskTlsContext::Create(auth::PskTlsContext::Side::kClient, std::move(*keys));
  if (!server.ok()) return Fail(server.message());
  if (!client.ok()) return Fail(client.message());
  server_tls_.emplace(std::move(server.value()));
  client_tls_.emplace(std::move(client.value()));
  if (auto spool = spool::PrepareSpoolDir(config_.spool_dir); !spool.ok()) return spool;
  if (auto made = layout_.MakePrivateDirs(); !made.ok()) return made;
  if (config_.membership == Membership::kGossip ||
      (config_.membership == Membership::kAuto && hosts_.size() > kMostFullMeshHosts)) {
    GossipConfig gossip{config_.serf_program,   config_.gossip_profile,      layout_.GossipKeyring(),
                        layout_.GossipSnapshot(), layout_.GossipLog(),         layout_.GossipAgentConfig(),
                        cluster_keys_};
    gossip_ = std::make_unique<GossipMembers>(io_, std::move(gossip), hosts_, self_, config_.host_dead_after,
                                              std::chrono::steady_clock::now());
  }
  auto store = spool::JobStore::Open(layout_.Database());
  if (!store.ok()) return Fail(store.message());
  store_ = std::move(store.value());
  batch_ = std::make_unique<GroupCommit>(io_, *store_, config_.commit_window);
  ledger_ = std::make_unique<JobLedger>(*store_, *batch_);
  ledger_->CountIn(&metrics_);
  supervisor_log_.emplace(self_.entry);
  queues_ = std::make_unique<QueueTable>(config_.spool_dir, self_.entry, cpus_);
  queues_->Refresh(true);
  for (const auto& [name, q] : queues_->queues())
    if (!q.error.empty()) std::cerr << "queued: " << q.error << "\n";
  runner_ = std::make_unique<JobRunner>(io_, *ledger_, names_, *queues_, file_worker_, self_.entry,
                                        config_.shepherd_path, config_.spool_dir);
  runner_->CountIn(&metrics_);
  ProbeCriuIfNeeded();
  reserve_.emplace(*store_, config_.spool_dir, spool::kSpoolReserveBytes);
  reserve_->Keep();  // by transactions of its own: before the runner writes ends it finds
  if (auto prepared = runner_->Prepare(); !prepared.ok()) return prepared;
  finisher_ = std::make_unique<JobFinisher>(*ledger_, names_, *runner_, *queues_, file_worker_, config_.spool_dir);
  if (auto prepared = finisher_->Prepare(); !prepared.ok()) return prepared;
  finisher_->CountIn(&metrics_);
  RemoveTakenBundles();
  finisher_->OnRequeue([this](uint64_t record_id, const std::string& left) { scheduler_->Requeued(record_id, left); });
  reporter_ = std::make_unique<EndReporter>(io_, *ledger_, *runner_, [this](const std::string& host) { return LinkTo(host); });
  runner_->OnJobEnded([this](const spool::JobRecord& record) { OnLocalJobEnded(record); });
  finisher_->OnClosed([this](const spool::JobRecord& record) { scheduler_->TellStubIfNotStarted(record); });
  finisher_->OnStaleEnd(
      [this](const std::string& peer, uint64_t id, uint32_t attempt) { liveness_.RunEnded(peer, id, attempt); });
  runner_->OnNotice([this](const std::string& queue, const std::string& text) { Notify(queue, text); });
  if (auto load = sampler_.Load1(); !load.ok()) return Fail(load.message());
  MakeServices();
  if (auto opened = peers_->Open(config_.listen); !opened.ok()) return opened;
  if (auto opened = clients_->Open(config_.socket_path); !opened.ok()) return opened;
  if (!config_.metrics_listen.empty()) {
    auto http = MetricsHttp::Listen(config_.metrics_listen);
    if (!http.ok()) return Fail(http.message());
    metrics_http_ = std::move(http.value());
  }
  return Status::Ok();
}

void DaemonImpl::MakeServices() {
  placement_ = std::make_unique<Placement>(PlacementContext{
      io_, *ledger_, names_, *runner_, *finisher_, table_, hosts_, self_.entry, config_.place_timeout,
      [this](const std::string& host) { return LinkTo(host); }, [this] { return CurrentLoad(); },
      [this] { table_.Update(SelfReport(), load::Clock::now()); },
      [this](uint64_t record_id) { return scheduler_->StubOf(record_id); }, &metrics_});
  if (gossip_)
    placement_->ProbeFirst([this](const std::string& named, const std::string& preferred,
                                  std::function<void(std::vector<std::string>)> done) {
      Probe(named, preferred, std::move(done));
    });
  scheduler_ = std::make_unique<Scheduler>(SchedulerContext{io_, *ledger_, names_, *queues_, *finisher_, *placement_, hosts_,
                                                            self_.entry, config_.hosts_file,
                                                            [this] { return peers_->address(); }, layout_,
                                                            UserLimits{config_.user_waiting_jobs,
                                                                       config_.user_spool_bytes}});
  // An interactive job's stub draws its restart files' move on the user's
  // terminal (the board tells a few times a second, not per chunk).
  finisher_->transfers().OnNews([this](uint64_t record_id, const Transfer& t) {
    auto stub = scheduler_->StubOf(record_id);
    if (!stub) return;
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(t.updated - t.started).count();
    stub->Send(wire::TransferProgress{{record_id, names_.SelfNumber()}, t.direction == Transfer::Direction::kOut, t.host,
                                      t.bytes, t.size, static_cast<uint32_t>(std::min<int64_t>(elapsed, UINT32_MAX)),
                                      t.complete});
  });
  status_ = std::make_unique<StatusReport>(*ledger_, names_, table_, *queues_, scheduler_->waiting(),
                                           finisher_->transfers(), self_.entry);
  requests_ = std::make_unique<JobRequests>(JobRequestContext{
      io_, *ledger_, names_, *runner_, *finisher_, self_.entry, config_.hosts_file,
      [this](const std::string& host) { return LinkTo(host); },
      [this](uint64_t record_id, const std::string& notice, const std::string& why) {
        scheduler_->CancelWaiting(record_id, notice, why);
      },
      [this](uint64_t record_id, const std::string& host) { scheduler_->MoveTo(record_id, host); },
      [this](const std::string& queue) { return SomeHostTakesRestarts(queue); },
      [this](const std::string& option) { return scheduler_->ResolveHostOption(option); }});
  clients_ = std::make_unique<ClientService>(
      io_, self_.entry,
      ClientHandlers{
          [this](const std::shared_ptr<ClientChannel>& channel, const Caller& who, wire::JobSpec spec) {
            scheduler_->Submit(channel, who, std::move(spec));
          },
          [this](const Caller& who) {
            std::vector<std::string> hosts;
            for (const auto& h : hosts_) hosts.push_back(h.entry);
            std::function<bool(const std::string&)> up;
            if (gossip_) up = [this](const std::string& host) { return gossip_->Up(host); };
            return status_->Status(who.uid, hosts, runner_->criu(), config_.keep_finished.count(), load::Clock::now(),
                                   up);
          },
          [this](const Caller& who, bool include_finished) { return status_->Jobs(who.uid, include_finished).dump(); },
          [this](const Caller& who, wire::MessageType type, std::string_view payload, JobRequestReply reply) {
            requests_->Answer(who, type, payload, /*forwarded=*/false, std::move(reply));
          },
          [this](const std::shared_ptr<ClientChannel>& channel, const Caller& who, wire::BulkSubmitRequest request) {
            scheduler_->SubmitBulk(channel, who, std::move(request));
          }},
      ConnectionCaps::ForDescriptorLimit(DescriptorLimit()));
  // Connections without a Hello yet: a sixteenth of the descriptors, at most 64.
  const size_t max_unproven = static_cast<size_t>(std::clamp<uint64_t>(DescriptorLimit() / 16, 4, 64));
  peers_ = std::make_unique<PeerService>(
      io_, *server_tls_, self_.entry,
      [this](const std::string& name) {
        return std::any_of(hosts_.begin(), hosts_.end(), [&](const auto& h) { return h.entry == name; });
      },
      max_unproven);
  RegisterPeerHandlers();
}

std::shared_ptr<PeerLink> DaemonImpl::LinkTo(const std::string& host) {
  auto link = links_.find(host);
  if (!gossip_) return link == links_.end() ? nullptr : link->second;
  link_used_[host] = std::chrono::steady_clock::now();
  if (link != links_.end()) return link->second;
  auto entry = std::find_if(hosts_.begin(), hosts_.end(), [&](const auto& h) { return h.entry == host; });
  if (entry == hosts_.end() || host == self_.entry) {
    link_used_.erase(host);
    return nullptr;
  }
  return MakeLink(*entry);
}

std::shared_ptr<PeerLink> DaemonImpl::MakeLink(const cluster::HostEntry& host) {
  auto link = std::make_shared<PeerLink>(io_, *client_tls_, host, self_.entry);
  links_[host.entry] = link;
  link->OnReady([this, peer = host.entry] { reporter_->Resume(peer); });
  link->CountIn(&metrics_);
  link->OnEndAcknowledged(
      [this, peer = host.entry](uint64_t id, uint32_t attempt) { reporter_->OnAcknowledged(peer, id, attempt); });
  link->Start();
  return link;
}

void DaemonImpl::CloseIdleLinks() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = links_.begin(); it != links_.end();) {
    auto used = link_used_.find(it->first);
    const bool stale = used == link_used_.end() || now - used->second > kIdleLink;
    if (!stale || !it->second->idle()) {
      ++it;
      continue;
    }
    it->second->Stop();
    link_used_.erase(it->first);
    it = links_.erase(it);
  }
}

void DaemonImpl::Probe(const std::string& named, const std::string& preferred,
                       std::function<void(std::vector<std::string>)> done) {
  std::vector<std::string> asked;
  if (!named.empty()) {
    if (named != self_.entry) asked.push_back(named);
  } else {
    asked = gossip_->Sample(kProbesPerPlacement, rng_);
    if (!preferred.empty() && preferred != self_.entry && gossip_->Up(preferred) &&
        std::find(asked.begin(), asked.end(), preferred) == asked.end())
      asked.push_back(preferred);
  }
  struct Round {
    size_t left = 0;
    std::vector<std::string> answered;
    std::function<void(std::vector<std::string>)> done;
  };
  auto round = std::make_shared<Round>(Round{asked.size(), {self_.entry}, std::move(done)});
  if (asked.empty()) return asio::post(io_, [round] { round->done(std::move(round->answered)); });
  for (const auto& host : asked) {
    auto link = LinkTo(host);
    if (!link) {
      asio::post(io_, [round] {
        if (--round->left == 0) round->done(std::move(round->answered));
      });
      continue;
    }
    link->QueryLoad(kProbeTimeout, [this, round, host](Result<wire::LoadReport> report) {
      if (report.ok()) {
        table_.Update(*report, load::Clock::now());
        round->answered.push_back(host);
      }
      if (--round->left == 0) round->done(std::move(round->answered));
    });
  }
}

bool DaemonImpl::PeerUp(const std::string& host, load::Clock::time_point now) const {
  if (host == self_.entry) return true;
  return gossip_ ? gossip_->Up(host) : table_.IsFresh(host, now);
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

void DaemonImpl::Run() {
  std::cerr << "queued: " << self_.entry << " serving " << hosts_.size() << " host(s), spool "
            << config_.spool_dir << ", socket " << config_.socket_path << "\n";
  Recover();
  // After queued left the terminal: the agent's parent-death signal is tied
  // to this process.
  if (gossip_) {
    if (Status started = gossip_->Start(); !started.ok())
      std::cerr << util::kLogErr << "queued: large cluster: " << started.message()
                << "; no host will be seen up until the serf agent runs\n";
  }
  StartLinks();
  clients_->Start();
  peers_->Start();
  WatchSignals();
  StartMetrics();
  Heartbeat();
  // Once the loop runs, a client is served: both sockets listen (Init), the
  // spool is open and recovered.
  asio::post(io_, [this] { notifier_.Ready(); });
  io_.run();
}

void DaemonImpl::StartLinks() {
  if (gossip_) return;  // a large cluster makes its links on demand
  for (const auto& host : hosts_)
    if (host.entry != self_.entry && !links_.count(host.entry)) MakeLink(host);
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
  scheduler_->Heartbeat();
  reporter_->Tick();
  finisher_->RetryHeldOutputs();
  WatchSilentHosts();
  CheckpointForPolicy();
  runner_->StopStuckCriuDumps();
  ExpireFinishedJobs();
  RemoveStaleArrivals();
  notifier_.Status(ServiceStatus());
  if (!reserve_->Held() && batch_->Flush().ok()) reserve_->Keep();  // made again once there is room
  auto report = SelfReport();
  table_.Update(report, load::Clock::now());
  if (gossip_)
    CloseIdleLinks();  // and no load pushed: a placement asks
  else
    for (auto& [name, link] : links_) link->SendLoad(report);
  heartbeat_.expires_after(config_.report_interval);
  heartbeat_.async_wait([this](const asio::error_code& ec) {
    if (!ec) Heartbeat();
  });
}

void DaemonImpl::StartMetrics() {
  if (!metrics_http_) return;
  // Started here, after queued left the terminal: a fork keeps no thread.
  Status started = metrics_http_->Start([this](MetricsFormat format) {
    return RenderOnLoop(io_, [this, format] { return RenderMetricsNow(format); }, std::chrono::seconds(2));
  });
  if (!started.ok()) {
    std::cerr << "queued: " << started.message() << "; no metrics\n";
    metrics_http_.reset();
    return;
  }
  std::cerr << "queued: metrics on http://" << metrics_http_->address() << "/metrics\n";
}

std::string DaemonImpl::RenderMetricsNow(MetricsFormat format) {
  MetricsSnapshot snapshot;
  snapshot.load1 = CurrentLoad();
  snapshot.cpus = cpus_;
  if (auto counts = store_->CountUnfinished(); counts.ok()) {
    for (const spool::UnfinishedCount& c : *counts) {
      const char* phase = c.state == spool::JobState::kWaiting ? (c.offered ? "offered" : "waiting")
                          : c.state == spool::JobState::kRunning ? "running"
                                                                 : "ended";
      snapshot.jobs.push_back(JobCount{c.queue, phase, c.from_peer, c.count});
    }
  } else {
    std::cerr << "queued: metrics: " << counts.message() << "\n";
  }
  const auto now = load::Clock::now();
  for (const auto& host : hosts_)
    if (host.entry != self_.entry) snapshot.peers[host.entry] = PeerUp(host.entry, now);
  snapshot.process = ReadProcessStats();
  return RenderMetrics(metrics_, snapshot, format);
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
  for (const auto& entry : std::filesystem::directory_iterator(layout_.ArrivingDir(), ec))
    if (entry.path().filename().string().find(kTakenBundleSuffix) != std::string::npos)
      std::filesystem::remove(entry.path(), ec);
}

// Taken bundles are the admissions' to remove; an open file unlinked here
// fails its check at the offer, and is sent again.
void DaemonImpl::RemoveStaleArrivals() {
  std::error_code ec;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (const auto& entry : std::filesystem::directory_iterator(layout_.ArrivingDir(), ec)) {
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

// Start-up: batch jobs waiting in the spool wait again; interactive ones lost
// their stub's connection with the old daemon. Jobs running here are re-adopted,
// and ends not yet delivered or reported are taken up again.
void DaemonImpl::Recover() {
  scheduler_->Recover();
  runner_->Adopt();
  finisher_->LoadUnfinished();
  // Ends Adopt read from shepherds' status files are in the open transaction:
  // an end is owed to its submit host only once it is on disk, or the submit
  // host forgets a job whose end this spool then loses. Listed after the
  // commit, whether it worked or not (a failed one leaves only what is on disk).
  ledger_->AfterCommit([this](const Status&) { reporter_->LoadOwed(); });
}

void DaemonImpl::OnLocalJobEnded(const spool::JobRecord& record) {
  scheduler_->TellStubIfNotStarted(record);
  if (!record.origin_host.empty())
    reporter_->Report(record);
  else
    finisher_->FinishLocal(record);
  scheduler_->SlotFreed();
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

void DaemonImpl::WatchSilentHosts() {
  const auto now = load::Clock::now();
  std::vector<std::string> peers;
  for (const auto& host : hosts_)
    if (host.entry != self_.entry) peers.push_back(host.entry);
  // Silence in the load reports, or in a large cluster the gossip's verdict
  // and the silence of a host running jobs from here.
  auto dead = gossip_ ? gossip_->Dead(std::chrono::steady_clock::now()) : liveness_.Dead(table_, peers, now);
  if (gossip_) WatchRunHosts(dead);
  for (const auto& [host, silent] : dead) {
    spool::JobFilter filter;
    filter.states = {spool::JobState::kWaiting, spool::JobState::kRunning};
    filter.local_origin = true;
    filter.exec_host = host;
    auto list = ledger_->List(filter);
    if (!list.ok()) continue;
    for (auto& r : *list) {
      scheduler_->Forget(r.id);
      liveness_.AddFence(host, Fence{r.id, r.restarts}, now);
      finisher_->Lost(std::move(r), "its host " + host + " was silent for " + std::to_string(silent) + " s");
    }
  }
  // A host heard again is told to end the runs taken for lost with it.
  for (const auto& peer : peers) {
    if (gossip_ && (liveness_.fenced(peer) == 0 || !gossip_->Up(peer))) continue;  // no link made for nothing
    auto link = LinkTo(peer);
    if (!link || !link->connected() || (!gossip_ && table_.Fresh(peer, now) == nullptr)) continue;
    for (const Fence& fence : liveness_.FencesDue(peer, now))
      link->SendCancel(wire::CancelJob{fence.origin_id, fence.attempt});
  }
}

// The gossip sees a host's serf agent, not its daemon: a daemon hung beside a
// running agent is up to the gossip. A host running jobs from here is asked
// for its load every pass; one silent past --host-timeout joins `dead`.
void DaemonImpl::WatchRunHosts(std::vector<std::pair<std::string, int64_t>>& dead) {
  const auto now = std::chrono::steady_clock::now();
  if (run_watch_.PassDue(now)) {
    spool::JobFilter filter;
    filter.states = {spool::JobState::kWaiting, spool::JobState::kRunning};
    filter.local_origin = true;
    auto list = ledger_->List(filter);
    if (!list.ok()) {
      std::cerr << "queued: spool: cannot list the jobs running elsewhere: " << list.message() << "\n";
    } else {
      std::set<std::string> running_on;
      for (const auto& r : *list)
        if (!r.exec_host.empty() && r.exec_host != self_.entry) running_on.insert(r.exec_host);
      for (const auto& host : run_watch_.Pass(running_on, now)) {
        auto link = gossip_->Up(host) ? LinkTo(host) : nullptr;
        if (!link) continue;  // down in the gossip: its verdict comes from there
        link->QueryLoad(kProbeTimeout, [this, host](Result<wire::LoadReport> report) {
          if (!report.ok()) return;
          table_.Update(*report, load::Clock::now());
          run_watch_.Answered(host, std::chrono::steady_clock::now());
        });
      }
    }
  }
  for (auto& [host, silent] : run_watch_.Silent(now)) {
    if (!gossip_->Up(host)) continue;  // the gossip's own verdict applies
    bool listed = false;
    for (const auto& d : dead) listed = listed || d.first == host;
    if (listed) continue;
    std::cerr << "queued: " << host << " is up in the gossip but has not answered for " << silent
              << " s: its daemon is taken for hung\n";
    dead.emplace_back(host, silent);
    run_watch_.Forget(host);
  }
}

void DaemonImpl::CheckpointForPolicy() {
  std::vector<CheckpointQueueView> views;
  for (const auto& [name, q] : queues_->queues()) {
    const profile::QueuePolicy& p = q.policy;
    CheckpointQueueView view{name, p, !q.error.empty()};
    view.can_checkpoint = p.checkpoint_mode == profile::CheckpointMode::kUser ||
                          (p.checkpoint_mode == profile::CheckpointMode::kTransparent && runner_->criu().usable);
    if (!view.can_checkpoint || view.broken) continue;
    if (p.checkpoint_period_seconds > 0)
      view.due_for_period = runner_->DueForPeriodicCheckpoint(name, std::chrono::seconds(p.checkpoint_period_seconds));
    view.others_take_restarts = SomeHostTakesRestarts(name);
    if (view.others_take_restarts) view.candidates = runner_->CheckpointCandidates(name);
    views.push_back(std::move(view));
  }
  const auto now = std::chrono::steady_clock::now();
  for (const CheckpointOrder& order : checkpoints_.Decide(CurrentLoad(), cpus_, self_.entry, views, now))
    if (runner_->Checkpoint(order.record_id, order.reason, order.in_place) && order.for_load)
      checkpoints_.NoteMovedForLoad(now);
}

void DaemonImpl::RegisterPeerHandlers() {
  peers_->Handle<wire::LoadReport>([this](const PeerFrame& frame, wire::LoadReport report) {
    if (report.host != frame.peer) return frame.channel->Close("load report for another host");
    table_.Update(std::move(report), load::Clock::now());
  });
  // A large cluster's placement asks for this host's load as of now.
  peers_->Handle<wire::LoadQuery>([this](const PeerFrame& frame, wire::LoadQuery query) {
    frame.channel->Send(wire::LoadAnswer{query.request_id, SelfReport()});
  });
  peers_->Handle<wire::PlaceJob>([this](const PeerFrame& frame, wire::PlaceJob place) {
    if (place.origin_host != frame.peer) return frame.channel->Close("job placed on behalf of another host");
    OnPlaceJob(frame, std::move(place));
  });
  peers_->Handle<wire::ForwardRequest>([this](const PeerFrame& frame, wire::ForwardRequest forward) {
    // The peer read the uid from its own socket; it holds the cluster key.
    Caller who{forward.uid, forward.gid, {}};
    std::weak_ptr<PeerChannel> weak = frame.channel;
    requests_->Answer(who, forward.type, forward.payload, /*forwarded=*/true,
                     [weak, request_id = forward.request_id](wire::MessageType type, std::string reply) {
                       if (auto peer = weak.lock()) peer->Send(wire::ForwardReply{request_id, type, std::move(reply)});
                     });
  });
  peers_->Handle<wire::CancelJob>([this](const PeerFrame& frame, wire::CancelJob cancel) { OnCancelJob(frame, cancel); });
  peers_->Handle<wire::BundleChunk>(
      [this](const PeerFrame& frame, wire::BundleChunk chunk) {
        metrics_.bytes_received[TransferKind::kRestartFiles] += chunk.bytes.size();
        OnBundleChunk(frame, chunk);
      });
  peers_->Handle<wire::MigrateJob>([this](const PeerFrame& frame, wire::MigrateJob migrate) {
    auto record = ledger_->FindByOrigin(frame.peer, migrate.origin_job_id);
    if (record.ok() && record->has_value() && (*record)->state == spool::JobState::kRunning)
      runner_->Checkpoint((*record)->id, migrate.reason);
  });
  peers_->Handle<wire::JobOutput>(
      [this](const PeerFrame& frame, wire::JobOutput output) {
        metrics_.bytes_received[TransferKind::kOutput] += output.bytes.size();
        finisher_->OnOutput(frame.peer, output);
      });
  peers_->Handle<wire::JobEnded>([this](const PeerFrame& frame, wire::JobEnded ended) {
    wire::JobEndedAck ack{ended.origin_job_id, ended.attempt};
    finisher_->OnEnded(frame.peer, ended, [weak = std::weak_ptr<PeerChannel>(frame.channel), ack] {
      if (auto c = weak.lock()) c->Send(ack);
    });
  });
}

// Exec side: a peer offers a job. Accepted only once the job is on disk here
// (a batch job's), since its origin may forget it then.
void DaemonImpl::OnPlaceJob(const PeerFrame& frame, wire::PlaceJob place) {
  const bool batch = place.spec.batch || place.attempt > 0;
  std::string bundle;
  if (!place.bundle_sha256.empty()) {
    std::string arrived = layout_.Arriving(frame.peer, place.origin_job_id);
    if (!arriving_.Matches(arrived, place.bundle_size, place.bundle_sha256))
      return frame.channel->Send(
          wire::PlaceReply{place.request_id, false, false, "its restart files did not arrive whole"});
    // Unpacked on the worker thread: the same job's files sent again (its
    // offer repeated meanwhile) must not be written over these under it.
    bundle = arrived + kTakenBundleSuffix + std::to_string(++bundles_taken_);
    if (::rename(arrived.c_str(), bundle.c_str()) != 0)
      return frame.channel->Send(
          wire::PlaceReply{place.request_id, false, false, "cannot keep its restart files: " + ErrnoText(errno)});
  }
  const uint64_t request_id = place.request_id;
  const uint64_t origin_id = place.origin_job_id;
  const uint32_t attempt = place.attempt;
  runner_->Admit(
      AdmitRequest{place.origin_host, place.origin_job_id, place.attempt, 0, std::move(place.spec), bundle},
      CurrentLoad(),
      [this, weak = std::weak_ptr<PeerChannel>(frame.channel), bundle, request_id, batch, peer = frame.peer, origin_id,
       attempt](const Result<uint64_t>& admitted, bool permanent) {
        if (!bundle.empty()) ::unlink(bundle.c_str());
        if (admitted.ok()) table_.Update(SelfReport(), load::Clock::now());
        wire::PlaceReply reply{request_id, admitted.ok(), !admitted.ok() && permanent,
                               admitted.ok() ? "" : admitted.message()};
        auto reply_to = [weak](const wire::PlaceReply& answer) {
          if (auto c = weak.lock()) c->Send(answer);
        };
        if (!admitted.ok() || !batch) return reply_to(reply);
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

// The submit host cancels a job here, or fences a run it took for lost.
void DaemonImpl::OnCancelJob(const PeerFrame& frame, const wire::CancelJob& cancel) {
  auto record = ledger_->FindByOrigin(frame.peer, cancel.origin_job_id);
  if (!record.ok() || !record->has_value()) return;
  const bool fence = cancel.attempt != wire::CancelJob::kAnyAttempt;
  if (fence && (*record)->restarts != cancel.attempt) return;  // that run is over already
  const std::string label = names_.Label(**record);
  const bool ended = runner_->ControlJob(
      (*record)->id, wire::ShepherdAction::kTerminate,
      fence ? "[job " + label + " was taken for lost while " + self_.entry +
                  " did not answer, and runs again elsewhere: this run ends]"
            : "[job " + label + " cancelled by its owner]");
  if (fence && ended)
    std::cerr << "queued: job " << label << " from " << frame.peer << ": ending run " << cancel.attempt
              << ", which its submit host took for lost and runs again elsewhere\n";
}

void DaemonImpl::OnBundleChunk(const PeerFrame& frame, const wire::BundleChunk& chunk) {
  // Restart files of a job that ran there, coming home to its submit host.
  if (chunk.origin_host != frame.peer) return finisher_->OnBundleChunk(frame.peer, chunk);
  // Restart files of a job that peer is about to place here.
  if (auto stored = arriving_.Store(layout_.Arriving(frame.peer, chunk.origin_job_id), chunk.offset, chunk.bytes);
      !stored.ok())
    std::cerr << "queued: " << stored.message() << "\n";
}

void DaemonImpl::ReloadClusterKeys() {
  auto keys = LoadClusterKeys(config_.key_file);
  if (!keys.ok()) {
    std::cerr << util::kLogErr << "queued: SIGHUP: keeping the old cluster keys: " << keys.message() << "\n";
    return;
  }
  // The server first: while a key moves from "next" to "current" it is already
  // accepted. Both checks are the same, so the second cannot fail alone.
  if (auto set = server_tls_->SetKeys(*keys); !set.ok()) {
    std::cerr << util::kLogErr << "queued: SIGHUP: keeping the old cluster keys: " << set.message() << "\n";
    return;
  }
  if (auto set = client_tls_->SetKeys(std::move(*keys)); !set.ok())
    std::cerr << "queued: SIGHUP: the server took the new cluster keys but the client did not: " << set.message()
              << "\n";
}

void DaemonImpl::WatchSignals() {
  signals_.async_wait([this](const asio::error_code& ec, int signo) {
    if (ec) return;
    if (signo == SIGCHLD) {
      ReapChildren();
    } else if (signo == SIGHUP) {
      Reload();
    } else {
      std::cerr << util::kLogNotice << "queued: signal " << signo
                << ": stopping; running jobs stay with their shepherds\n";
      return Stop();
    }
    WatchSignals();
  });
}

void DaemonImpl::Reload() {
  notifier_.Reloading();
  ReopenLog();
  std::cerr << util::kLogNotice << "queued: SIGHUP: reloading the hosts file, the cluster key file and profiles\n";
  ReloadClusterKeys();
  if (auto reloaded = LoadHosts(); !reloaded.ok())
    std::cerr << util::kLogErr << "queued: keeping the old hosts list: " << reloaded.message() << "\n";
  if (gossip_) gossip_->SetHosts(hosts_);
  StartLinks();
  queues_->Refresh(true);
  ProbeCriuIfNeeded();
  notifier_.Ready();
  notifier_.Status(ServiceStatus());
}

void DaemonImpl::ReopenLog() {
  if (config_.log_file.empty()) return;
  // The last line in the file logrotate moved away, the next one in the new file.
  std::cerr << "queued: SIGHUP: opening the log file " << config_.log_file << " again\n";
  if (Status opened = OpenLogFile(config_.log_file); !opened.ok())
    std::cerr << util::kLogErr << "queued: SIGHUP: logging on where it went: " << opened.message() << "\n";
}

std::string DaemonImpl::ServiceStatus() const {
  const auto now = load::Clock::now();
  size_t up = std::count_if(hosts_.begin(), hosts_.end(), [&](const auto& h) { return PeerUp(h.entry, now); });
  return ServiceStatusLine(runner_->running(), scheduler_->waiting().size(), up, hosts_.size());
}

void DaemonImpl::Stop() {
  notifier_.Stopping();
  clients_->Stop();
  peers_->Stop();
  heartbeat_.cancel();
  if (Status flushed = batch_->Flush(); !flushed.ok())
    std::cerr << util::kLogErr << "queued: spool: the last changes were not saved: " << flushed.message() << "\n";
  for (auto& [name, link] : links_) link->Stop();
  if (gossip_) gossip_->Stop();
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
