// queued's event loop: clients, peers, shepherds, and the load heartbeat.
#include "daemon/daemon.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "auth/cluster_key.h"
#include "auth/psk_tls.h"
#include "cluster/hosts_file.h"
#include "daemon/group_commit.h"
#include "daemon/job_runner.h"
#include "daemon/peer_link.h"
#include "daemon/queue_program.h"
#include "daemon/queue_table.h"
#include "daemon/supervisor_log.h"
#include "load/load_sampler.h"
#include "load/load_table.h"
#include "profile/queue_policy.h"
#include "sched/host_chooser.h"
#include "spool/job_store.h"
#include "spool/spool_dir.h"

namespace queue::daemon {

using asio::ip::tcp;
using LocalSocket = asio::local::stream_protocol::socket;
using ClientChannel = wire::Channel<LocalSocket>;
using PeerChannel = wire::Channel<auth::TlsStream>;

namespace {

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

}  // namespace

class DaemonImpl {
 public:
  DaemonImpl(asio::io_context& io, DaemonConfig config) : io_(io), config_(std::move(config)),
      sampler_(config_.loadavg_file), table_(config_.stale_after), unix_acceptor_(io),
      tcp_acceptor_(io), heartbeat_(io), signals_(io) {}

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
  void Notify(const std::string& queue, const std::string& text);
  std::tm LocalTime() const;
  wire::LoadReport SelfReport();
  double CurrentLoad();

  // Local clients.
  void AcceptClient();
  void OnClientFrame(const std::shared_ptr<ClientChannel>& channel, const PeerCredentials& who,
                     wire::MessageType type, std::string_view payload);
  void Submit(const std::shared_ptr<ClientChannel>& channel, const PeerCredentials& who, wire::JobSpec spec);
  struct PlacementOutcome {
    std::string host;  // where it runs; empty when no host took it
    bool may_wait = false;  // every refusal was for now, not for good
    std::string why;
  };
  using PlacementCallback = std::function<void(const PlacementOutcome&)>;
  struct PlacementAttempt {
    uint64_t record_id = 0;
    wire::JobSpec spec;
    std::vector<std::string> candidates;
    size_t next = 0;
    std::vector<std::string> refusals;
    bool any_temporary = false;
  };
  struct WaitingJob {
    wire::JobSpec spec;
    std::weak_ptr<ClientChannel> client;
    bool in_flight = false;
  };
  void StartPlacement(uint64_t record_id, const wire::JobSpec& spec, PlacementCallback done);
  void TryNextHost(const std::shared_ptr<PlacementAttempt>& attempt, PlacementCallback done);
  void Placed(uint64_t record_id, const std::string& host);
  void FailRecord(uint64_t record_id, const std::string& why, spool::JobState state = spool::JobState::kFailed);
  void RetryWaiting();
  Result<std::string> ResolveHostOption(const std::string& option) const;
  std::string StatusJson(const PeerCredentials& who);
  nlohmann::json JobsJson(const PeerCredentials& who, bool include_finished);
  Result<std::string> Cancel(const PeerCredentials& who, uint64_t job_id);
  uint64_t UserJobId(const spool::JobRecord& record) const;

  // Peer daemons.
  void AcceptPeer();
  void OnPeerHandshake(const std::shared_ptr<PeerChannel>& channel, const std::string& address);
  void OnPeerFrame(const std::shared_ptr<PeerChannel>& channel, const std::shared_ptr<std::string>& peer_name,
                   wire::MessageType type, std::string_view payload);

  void TellOrigin(const spool::JobRecord& record);
  void OnJobEnded(const std::string& peer, const wire::JobEnded& ended);

  void WatchSignals();
  void Stop();

  asio::io_context& io_;
  DaemonConfig config_;
  std::vector<cluster::HostEntry> hosts_;
  cluster::HostEntry self_;
  std::optional<auth::PskTlsContext> server_tls_;
  std::optional<auth::PskTlsContext> client_tls_;
  std::unique_ptr<spool::JobStore> store_;
  std::unique_ptr<GroupCommit> batch_;
  std::unique_ptr<QueueTable> queues_;
  std::unique_ptr<JobRunner> runner_;
  QueueProgram programs_;
  std::optional<SupervisorLog> supervisor_log_;
  std::map<uint64_t, WaitingJob> waiting_;  // by spool record id: FIFO
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
  supervisor_log_.emplace(self_.entry);
  queues_ = std::make_unique<QueueTable>(config_.spool_dir, self_.entry, cpus_);
  queues_->Refresh(true);
  for (const auto& [name, q] : queues_->queues())
    if (!q.error.empty()) std::cerr << "queued: " << q.error << "\n";
  runner_ = std::make_unique<JobRunner>(io_, *store_, *batch_, *queues_, self_.entry, config_.shepherd_path);
  runner_->OnJobEnded([this](const spool::JobRecord& record) { TellOrigin(record); });
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
  RetryWaiting();
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

void DaemonImpl::Notify(const std::string& queue, const std::string& text) {
  const QueueState* q = queues_->Find(queue);
  supervisor_log_->Notify(q != nullptr ? q->policy.supervisor : std::nullopt, queue, text);
}

// Our children are shepherds, queue programs and sendmail; the shepherds'
// ends arrive over their channels, so only the programs' statuses matter here.
void DaemonImpl::ReapChildren() {
  int status = 0;
  for (pid_t pid; (pid = waitpid(-1, &status, WNOHANG)) > 0;) programs_.OnChildExit(pid, status);
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
    case wire::MessageType::kCancelRequest: {
      auto request = wire::DecodePayload<wire::CancelRequest>(payload);
      if (!request.ok()) return refuse(request.message());
      auto done = Cancel(who, request->job_id);
      if (!done.ok()) return channel->Send(wire::ErrorReply{done.message()});
      return channel->Send(wire::StatusReply{*done});
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
  if (spec.batch) {
    channel->Send(wire::ErrorReply{"batch mode (-r) is not available yet; run the job with -w"});
    return;
  }
  // Shepherds connect back to the stub as the job's owner; the stub must be here.
  asio::error_code ec;
  auto stub_address = asio::ip::make_address(spec.stub_address, ec);
  if (ec || stub_address != tcp_acceptor_.local_endpoint().address() || spec.stub_port == 0)
    return channel->Send(wire::ErrorReply{"the stub must listen on this host's address " +
                                          tcp_acceptor_.local_endpoint().address().to_string()});
  for (std::string* option : {&spec.only_host, &spec.preferred_host}) {
    if (option->empty() || *option == "+") {
      option->clear();
      continue;
    }
    auto resolved = ResolveHostOption(*option);
    if (!resolved.ok()) return channel->Send(wire::ErrorReply{resolved.message()});
    *option = *resolved;
  }
  spool::JobRecord record;
  record.uid = spec.uid;
  record.gid = spec.gid;
  record.queue = spec.queue;
  record.job_name = spec.job_name;
  record.state = spool::JobState::kWaiting;
  record.submit_time = Now();
  batch_->Join();
  auto id = store_->Add(record);
  if (!id.ok()) return channel->Send(wire::ErrorReply{"spool: " + id.message()});
  uint64_t record_id = *id;
  StartPlacement(record_id, spec, [this, channel, record_id, spec](const PlacementOutcome& outcome) {
    if (!outcome.host.empty()) return channel->Send(wire::SubmitReply{record_id, outcome.host, ""});
    if (!outcome.may_wait) {
      FailRecord(record_id, outcome.why);
      return channel->Send(wire::ErrorReply{outcome.why});
    }
    waiting_[record_id] = WaitingJob{spec, channel, false};
    channel->Send(wire::SubmitReply{record_id, "", outcome.why});
  });
}

void DaemonImpl::StartPlacement(uint64_t record_id, const wire::JobSpec& spec, PlacementCallback done) {
  sched::HostChooser chooser(hosts_, self_.entry);
  sched::PlacementRequest request{spec.queue, spec.only_host, spec.preferred_host, {}};
  auto ranking = chooser.Rank(table_, request, load::Clock::now());
  auto attempt = std::make_shared<PlacementAttempt>();
  attempt->record_id = record_id;
  attempt->spec = spec;
  attempt->candidates = std::move(ranking.candidates);
  attempt->refusals = std::move(ranking.refusals);
  attempt->any_temporary = ranking.temporary_refusals > 0;
  TryNextHost(attempt, std::move(done));
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
    bool permanent = false;
    auto admitted = runner_->Admit(AdmitRequest{"", attempt->record_id, attempt->spec}, CurrentLoad(), &permanent);
    if (!admitted.ok()) return refused(admitted.message(), permanent);
    Placed(attempt->record_id, host);
    return done(PlacementOutcome{host, false, ""});
  }
  // Counted at once, not when the answer comes: the submissions of a burst
  // that arrive meanwhile must already see this host as busier.
  table_.AddPlacement(host, load::Clock::now());
  wire::PlaceJob place{0, self_.entry, attempt->record_id, attempt->spec};
  links_.at(host)->Place(std::move(place), config_.place_timeout,
                         [this, attempt, done, host, refused](const wire::PlaceReply& reply) {
                           if (!reply.accepted) return refused(reply.reason, reply.permanent);
                           Placed(attempt->record_id, host);
                           done(PlacementOutcome{host, false, ""});
                         });
}

void DaemonImpl::Placed(uint64_t record_id, const std::string& host) {
  if (host == self_.entry) {  // a remote placement was counted when offered
    table_.AddPlacement(host, load::Clock::now());
    table_.Update(SelfReport(), load::Clock::now());  // its running count is exact
  }
  batch_->Join();
  auto record = store_->Get(record_id);
  if (record.ok() && record->has_value() && host != self_.entry) {
    // The execution host keeps the job's own record; this one says where it went.
    (*record)->state = spool::JobState::kRunning;
    (*record)->exec_host = host;
    (*record)->start_time = Now();
    (void)store_->Update(**record);
  } else if (record.ok() && record->has_value()) {
    (void)store_->Remove(record_id);  // the runner's record is the job's record here
  }
}

void DaemonImpl::FailRecord(uint64_t record_id, const std::string& why, spool::JobState state) {
  batch_->Join();
  auto record = store_->Get(record_id);
  if (!record.ok() || !record->has_value()) return;
  (*record)->state = state;
  (*record)->message = why;
  (*record)->end_time = Now();
  (void)store_->Update(**record);
}

// Jobs no host could take wait here, at their submit host, and are offered
// again on every heartbeat: a job is never handed from spool to spool while
// it waits, so it cannot be lost or run twice on the way.
void DaemonImpl::RetryWaiting() {
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    auto client = it->second.client.lock();
    if (!client || client->closed()) {
      FailRecord(it->first, "withdrawn: its stub went away while it waited", spool::JobState::kCancelled);
      it = waiting_.erase(it);
      continue;
    }
    if (!it->second.in_flight) {
      it->second.in_flight = true;
      uint64_t record_id = it->first;
      StartPlacement(record_id, it->second.spec, [this, record_id](const PlacementOutcome& outcome) {
        auto found = waiting_.find(record_id);
        if (found == waiting_.end()) return;
        found->second.in_flight = false;
        auto client = found->second.client.lock();
        if (outcome.host.empty() && outcome.may_wait) return;  // still nowhere to go
        if (outcome.host.empty()) FailRecord(record_id, outcome.why);
        if (client) {
          if (outcome.host.empty())
            client->Send(wire::ErrorReply{outcome.why});
          else
            client->Send(wire::SubmitReply{record_id, outcome.host, ""});
        }
        waiting_.erase(found);
      });
    }
    ++it;
  }
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
    queues.push_back(entry);
  }
  out["queues"] = queues;
  out["jobs"] = JobsJson(who, false);
  return out.dump();
}

// A job's id as its owner knows it: the number its submit host gave it.
uint64_t DaemonImpl::UserJobId(const spool::JobRecord& r) const { return r.origin_id != 0 ? r.origin_id : r.id; }

nlohmann::json DaemonImpl::JobsJson(const PeerCredentials& who, bool include_finished) {
  spool::JobFilter filter;
  if (!include_finished) filter.states = {spool::JobState::kWaiting, spool::JobState::kRunning};
  if (who.uid != 0) filter.uid = who.uid;
  nlohmann::json jobs = nlohmann::json::array();
  auto list = store_->List(filter);
  if (!list.ok()) return jobs;
  for (const auto& r : *list) {
    nlohmann::json job{{"id", UserJobId(r)},
                       {"origin", r.origin_host.empty() ? self_.entry : r.origin_host},
                       {"uid", r.uid},
                       {"queue", r.queue},
                       {"name", r.job_name},
                       {"state", spool::ToString(r.state)},
                       {"host", r.exec_host},
                       {"submit_time", r.submit_time},
                       {"start_time", r.start_time},
                       {"end_time", r.end_time},
                       {"cpu_seconds", r.cpu_seconds}};
    if (r.state == spool::JobState::kDone && r.wait_status >= 0) {
      if (WIFEXITED(r.wait_status)) job["exit_code"] = WEXITSTATUS(r.wait_status);
      if (WIFSIGNALED(r.wait_status)) job["signal"] = WTERMSIG(r.wait_status);
    }
    if (!r.message.empty()) job["message"] = r.message;
    jobs.push_back(job);
  }
  return jobs;
}

Result<std::string> DaemonImpl::Cancel(const PeerCredentials& who, uint64_t job_id) {
  spool::JobFilter filter;
  filter.states = {spool::JobState::kWaiting, spool::JobState::kRunning};
  if (who.uid != 0) filter.uid = who.uid;
  auto list = store_->List(filter);
  if (!list.ok()) return Fail("spool: " + list.message());
  for (const auto& r : *list) {
    if (UserJobId(r) != job_id || !(r.origin_host.empty() || r.exec_host == self_.entry)) continue;
    const std::string notice = "[job " + std::to_string(job_id) + " cancelled by its owner]";
    if (r.exec_host == self_.entry && runner_->ControlJob(r.id, wire::ShepherdAction::kTerminate, notice))
      return "cancelling job " + std::to_string(job_id) + " on " + self_.entry;
    auto link = links_.find(r.exec_host);
    if (link != links_.end() && link->second->SendCancel(wire::CancelJob{job_id}))
      return "cancelling job " + std::to_string(job_id) + " on " + r.exec_host;
    return Fail("job " + std::to_string(job_id) + " runs on " + r.exec_host + ", which cannot be reached now");
  }
  return Fail("you have no waiting or running job " + std::to_string(job_id) + " on this host");
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
      bool permanent = false;
      auto admitted = runner_->Admit(AdmitRequest{place->origin_host, place->origin_job_id, place->spec},
                                     CurrentLoad(), &permanent);
      if (admitted.ok()) table_.Update(SelfReport(), load::Clock::now());
      return channel->Send(wire::PlaceReply{place->request_id, admitted.ok(), !admitted.ok() && permanent,
                                            admitted.ok() ? "" : admitted.message()});
    }
    case wire::MessageType::kCancelJob: {
      auto cancel = wire::DecodePayload<wire::CancelJob>(payload);
      if (!cancel.ok()) return channel->Close(cancel.message());
      auto record = store_->FindByOrigin(*peer_name, cancel->origin_job_id);
      if (record.ok() && record->has_value())
        runner_->ControlJob((*record)->id, wire::ShepherdAction::kTerminate,
                            "[job " + std::to_string(cancel->origin_job_id) + " cancelled by its owner]");
      return;
    }
    case wire::MessageType::kJobEnded: {
      auto ended = wire::DecodePayload<wire::JobEnded>(payload);
      if (!ended.ok()) return channel->Close(ended.message());
      return OnJobEnded(*peer_name, *ended);
    }
    default:
      return channel->Close("unexpected message " + std::to_string(static_cast<int>(type)));
  }
}

// The submit host keeps a record of a job it placed elsewhere; tell it the end.
void DaemonImpl::TellOrigin(const spool::JobRecord& record) {
  if (record.origin_host.empty()) return;
  auto link = links_.find(record.origin_host);
  if (link == links_.end()) return;
  link->second->SendJobEnded(wire::JobEnded{record.origin_id, record.state == spool::JobState::kFailed,
                                            record.wait_status, record.cpu_seconds, record.message});
}

void DaemonImpl::OnJobEnded(const std::string& peer, const wire::JobEnded& ended) {
  auto record = store_->Get(ended.origin_job_id);
  if (!record.ok() || !record->has_value()) return;
  spool::JobRecord& r = **record;
  if (r.exec_host != peer || r.state != spool::JobState::kRunning) return;  // not that peer's to end
  r.state = ended.failed ? spool::JobState::kFailed : spool::JobState::kDone;
  r.wait_status = ended.wait_status;
  r.cpu_seconds = ended.cpu_seconds;
  r.message = ended.message;
  r.end_time = Now();
  batch_->Join();
  (void)store_->Update(r);
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
  (void)batch_->Flush();
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
