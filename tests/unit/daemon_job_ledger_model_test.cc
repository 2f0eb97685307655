// A seeded, randomized model test of the job ledger and of the two-phase
// hand-off between a submit host ("s") and one or two execution hosts ("e1",
// "e2"), in one process and without sockets.
//
// Each host is a real spool: a JobStore in a directory of its own, its
// GroupCommit and its JobLedger, and an event loop of its own that the harness
// drives (a crash destroys that loop with whatever was queued on it, as kill -9
// does). The harness plays the daemons' part of the protocol at the ledger
// level, following placement.cc (TryNextHost, Placed), scheduler.cc
// (FailRecord), job_requests.cc (Cancel), daemon.cc (WatchSilentHosts, the
// peer handlers), job_runner.cc (Admit, Enter, EndRecord,
// FinishEnd, Adopt), job_finisher.cc (OnEnded, Requeue, Lost, RecordEnd) and
// end_reporter.cc (Report, Tick, OnAcknowledged); each function below names
// the one it follows. Messages are lost, copied (as a resend would be) and
// reordered, except that each direction of a connection keeps its order, as
// TCP does; any host may crash at any step; a host may be taken for dead
// (silent) whether or not it is.
//
// After every step it checks:
//  (a) a run (job, attempt) is held by at most one execution record, across
//      every execution host, and is ever started (shepherd) on at most one;
//  (b) on the submit host's disk a job's attempt never decreases, and a closed
//      record never changes again (nor does the daemon's own view of it);
//  (c) a job is runnable in exactly one spool: while the submit record of a
//      job is not closed and is on attempt a (in the daemon's view, and on
//      disk), every execution record RUNNING that attempt a is on the host the
//      submit record names (plain WAITING names none). A run the submit host
//      took for lost was requeued (attempt a+1) or closed, so it is not
//      checked here: that is what fences are for;
//  (e) each host's ledger keeps the count and spec bytes of each user's
//      waiting jobs (WaitingOf) as its spool, uncommitted writes included,
//      has them, through disk-full failures and rollbacks;
// and at the end of each sequence, after a quiet phase (no faults, every host
// heard, everything delivered, resent until nothing changes):
//  (d) every job is closed at the submit host, on disk, done, failed or
//      cancelled; no execution record still owes an end (ENDED) or runs.
//
// A failing sequence prints its seed and steps. The environment may set:
//   QUEUE_MODEL_SEED=N QUEUE_MODEL_SEQUENCES=M  sequences N .. N+M-1
//   QUEUE_MODEL_STEPS=K        steps of the faulty phase of each
//   QUEUE_MODEL_FENCES=1       a run taken for lost, or cancelled, must be
//                              ended by its submit host's word: it is never
//                              let end on its own in the quiet phase
//   QUEUE_MODEL_NETWORK=any    messages overtake each other on a connection
//                              too, and a PlaceJob may arrive twice
//   QUEUE_MODEL_DISK_FULL=1    disks fill up and empty again (a SQLite VFS
//                              fails the writes), and each daemon restarts
//                              before the quiet phase (unset: every other
//                              sequence; 0: none)
//   QUEUE_MODEL_AS_SHIPPED=1   the steps marked FOUND BY THIS MODEL do what
//                              the code did before their fix (it then fails)
// The first three find what the code does not promise (see the report in the
// commit); the default must pass.
//
// Not modelled: a job run on its own submit host (AdmitLocal), restart-file
// and output transfers (a checkpointed end always brings its bundle, output
// always arrives whole), checkpoint packing and unpacking (done at once),
// queue limits other than a random refusal, migration, Expire.
#include "daemon/job_ledger.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <asio.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "daemon/job_runner.h"  // WasLost
#include "wire/messages.h"      // CancelJob::kAnyAttempt

namespace queue::daemon {
namespace {

namespace fs = std::filesystem;
using spool::JobRecord;
using spool::JobState;

constexpr uint32_t kAnyAttempt = wire::CancelJob::kAnyAttempt;
// How job_runner.cc marks a run lost with its shepherd (WasLost reads it).
constexpr int32_t kLostWaitStatus = -2;
const std::string kSubmitHost = "s";
// Queues whose profile says `restart`, and not.
const std::string kRestartQueue = "again";
const std::string kOnceQueue = "once";

uint64_t FromEnvironment(const char* name, uint64_t fallback) {
  const char* text = getenv(name);
  return text != nullptr && *text != '\0' ? std::stoull(text) : fallback;
}

// ---------------------------------------------------------------------------
// Randomness: one generator per sequence, so that its seed replays it.
class Dice {
 public:
  explicit Dice(uint64_t seed) : gen_(seed) {}
  bool Chance(double p) { return static_cast<double>(gen_() >> 11) * 0x1.0p-53 < p; }
  size_t Below(size_t n) { return static_cast<size_t>(gen_() % n); }
  template <class T>
  void Shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[Below(i)]);
  }

 private:
  std::mt19937_64 gen_;
};

// ---------------------------------------------------------------------------
// What daemons say to each other about jobs (wire/messages.h, reduced to what
// the ledger sees).
struct Message {
  enum Kind { kPlaceJob, kPlaceReply, kCancelJob, kJobEnded, kJobEndedAck } kind;
  std::string from, to;
  uint64_t request = 0;  // PlaceJob, PlaceReply: the offer it is or answers
  uint64_t job = 0;      // the job's id on its submit host
  uint32_t attempt = 0;  // its run (CancelJob: kAnyAttempt when its owner cancels)
  bool accepted = false, permanent = false;                 // PlaceReply
  bool failed = false, lost = false, checkpointed = false;  // JobEnded

  std::string Describe() const {
    static const char* const kNames[] = {"PlaceJob", "PlaceReply", "CancelJob", "JobEnded", "JobEndedAck"};
    std::string text = std::string(kNames[kind]) + " " + from + "->" + to + " job " + std::to_string(job) + " run " +
                       (attempt == kAnyAttempt ? std::string("any") : std::to_string(attempt));
    if (kind == kPlaceJob || kind == kPlaceReply) text += " request " + std::to_string(request);
    if (kind == kPlaceReply) text += accepted ? " yes" : permanent ? " no (for good)" : " no (for now)";
    if (kind == kJobEnded) text += checkpointed ? " checkpointed" : lost ? " lost" : failed ? " failed" : " done";
    return text;
  }
};

// How a run ends, as its shepherd writes it to its status file.
enum class RunOutcome { kDone, kFailed, kCheckpointed, kLost };

RunEnd EndOf(RunOutcome outcome, int64_t now) {
  RunEnd end;
  const bool done = outcome == RunOutcome::kDone || outcome == RunOutcome::kCheckpointed;
  end.state = done ? JobState::kDone : JobState::kFailed;
  end.wait_status = outcome == RunOutcome::kLost ? kLostWaitStatus : end.state == JobState::kDone ? 0 : 256;
  end.end_time = now;
  end.checkpointed = outcome == RunOutcome::kCheckpointed;
  end.message = outcome == RunOutcome::kLost ? "lost with its shepherd" : "";
  return end;
}

// ---------------------------------------------------------------------------
// Full disks: a SQLite VFS over the default one, made the default for the
// test's duration (JobStore::Open takes the default), whose writes fail with
// SQLITE_FULL for the files under a path prefix marked full. A commit then
// fails and its transaction rolls back, as on a full disk.
class FullDisks {
 public:
  FullDisks() : real_(sqlite3_vfs_find(nullptr)), vfs_(*real_) {
    vfs_.szOsFile = static_cast<int>(sizeof(File)) + real_->szOsFile;
    vfs_.zName = "queue-model-full-disks";
    vfs_.pAppData = this;
    vfs_.xOpen = &FullDisks::Open;
    sqlite3_vfs_register(&vfs_, 1);
  }
  ~FullDisks() {
    sqlite3_vfs_unregister(&vfs_);
    sqlite3_vfs_register(real_, 1);
  }
  FullDisks(const FullDisks&) = delete;
  FullDisks& operator=(const FullDisks&) = delete;

  void SetFull(const std::string& prefix, bool full) {
    if (full) full_.insert(prefix);
    else full_.erase(prefix);
  }

 private:
  struct File {
    sqlite3_file base;  // first: SQLite sees a File as a sqlite3_file
    FullDisks* disks;
    const char* path;  // valid until xClose
    sqlite3_file* Real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
  };

  static sqlite3_file* RealOf(sqlite3_file* file) { return reinterpret_cast<File*>(file)->Real(); }

  // Each method but xWrite goes to the real file as it is.
  template <auto Method>
  struct Forward;
  template <class R, class... Args, R (*sqlite3_io_methods::*Method)(sqlite3_file*, Args...)>
  struct Forward<Method> {
    static R Call(sqlite3_file* file, Args... args) {
      sqlite3_file* real = RealOf(file);
      return (real->pMethods->*Method)(real, args...);
    }
  };

  static int Write(sqlite3_file* file, const void* data, int size, sqlite3_int64 offset) {
    File* f = reinterpret_cast<File*>(file);
    if (f->path != nullptr)
      for (const auto& prefix : f->disks->full_)
        if (std::string_view(f->path).starts_with(prefix)) return SQLITE_FULL;
    return Forward<&sqlite3_io_methods::xWrite>::Call(file, data, size, offset);
  }

  static const sqlite3_io_methods* Methods(int version) {
    using M = sqlite3_io_methods;
    static const auto make = [](int v) {
      M m{};
      m.iVersion = v;
      m.xClose = Forward<&M::xClose>::Call;
      m.xRead = Forward<&M::xRead>::Call;
      m.xWrite = &Write;
      m.xTruncate = Forward<&M::xTruncate>::Call;
      m.xSync = Forward<&M::xSync>::Call;
      m.xFileSize = Forward<&M::xFileSize>::Call;
      m.xLock = Forward<&M::xLock>::Call;
      m.xUnlock = Forward<&M::xUnlock>::Call;
      m.xCheckReservedLock = Forward<&M::xCheckReservedLock>::Call;
      m.xFileControl = Forward<&M::xFileControl>::Call;
      m.xSectorSize = Forward<&M::xSectorSize>::Call;
      m.xDeviceCharacteristics = Forward<&M::xDeviceCharacteristics>::Call;
      m.xShmMap = Forward<&M::xShmMap>::Call;
      m.xShmLock = Forward<&M::xShmLock>::Call;
      m.xShmBarrier = Forward<&M::xShmBarrier>::Call;
      m.xShmUnmap = Forward<&M::xShmUnmap>::Call;
      m.xFetch = Forward<&M::xFetch>::Call;
      m.xUnfetch = Forward<&M::xUnfetch>::Call;
      return m;
    };
    static const M kMethods[] = {make(1), make(2), make(3)};
    return &kMethods[std::clamp(version, 1, 3) - 1];
  }

  static int Open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
    auto* disks = static_cast<FullDisks*>(vfs->pAppData);
    File* f = reinterpret_cast<File*>(file);
    f->disks = disks;
    f->path = name;
    int rc = disks->real_->xOpen(disks->real_, name, f->Real(), flags, out_flags);
    f->base.pMethods = f->Real()->pMethods != nullptr ? Methods(f->Real()->pMethods->iVersion) : nullptr;
    return rc;
  }

  sqlite3_vfs* real_;
  sqlite3_vfs vfs_;
  std::set<std::string> full_;
};

// ---------------------------------------------------------------------------
// One host's spool and event loop.
class HostSpool {
 public:
  // A new spool is a copy of `empty`, an empty spool made once: creating the
  // schema costs more than all else a host does in a sequence. Only the
  // submit host's committed records are checked (`watch_disk`).
  HostSpool(std::string name, std::string root, const std::string& empty, bool watch_disk)
      : name_(std::move(name)), root_(std::move(root)), watch_disk_(watch_disk) {
    dir_ = NextDir();
    fs::copy_file(empty, dir_ + "/jobs.db");
    Open();
  }
  ~HostSpool() { Close(); }

  const std::string& name() const { return name_; }
  // Whoever goes through the ledger may change the spool.
  JobLedger& ledger() {
    Changed();
    return *ledger_;
  }
  // (e) The ledger's tally of waiting jobs, read without a change.
  Result<WaitingTally> WaitingOf(uint32_t uid) { return ledger_->WaitingOf(uid); }

  // Runs what is ready on this daemon's loop: the commits asked for by
  // AfterCommit, and then what waited for them.
  void RunLoop() {
    io_->restart();
    if (io_->poll() > 0) Changed();
  }
  // The commit window ends: the open batch commits.
  void WindowElapses() {
    (void)batch_->Flush();
    Changed();
  }
  // kill -9 and start again: what was not committed is gone. The spool files
  // are copied as they are (what a crash leaves on disk: SQLite ignores WAL
  // frames of a transaction without its commit) and the daemon reopens the
  // copy; the old spool, loop and handlers are dropped unrun.
  void Crash() {
    std::string next = NextDir();
    for (const char* file : {"/jobs.db", "/jobs.db-wal"})
      if (fs::exists(dir_ + file)) fs::copy_file(dir_ + file, next + file);
    Close();
    fs::remove_all(dir_);
    dir_ = next;
    Open();
    Changed();
  }

  // The spool as this daemon sees it (its uncommitted writes too). Read again
  // only after a step that may have changed it: the invariants are checked
  // after every step, and most steps touch one host.
  const std::vector<JobRecord>& Live() {
    if (!live_) live_ = Listed(ledger_->List({}));
    return *live_;
  }
  // The spool as a crash now would leave it: committed records only.
  const std::vector<JobRecord>& OnDisk() {
    if (!on_disk_)
      on_disk_ = Listed(reader_ ? reader_->List({}) : Result<std::vector<JobRecord>>(Fail("this disk is not watched")));
    return *on_disk_;
  }

 private:
  std::string NextDir() {
    std::string dir = root_ + "/" + name_ + "." + std::to_string(incarnation_++);
    fs::create_directories(dir);
    return dir;
  }
  void Open() {
    io_ = std::make_unique<asio::io_context>();
    store_ = Opened(dir_ + "/jobs.db");
    if (watch_disk_) reader_ = Opened(dir_ + "/jobs.db");
    // A window no step outlasts: a batch commits when someone waits on it
    // (AfterCommit) or when the harness says the window elapsed.
    batch_ = std::make_unique<GroupCommit>(*io_, *store_, std::chrono::hours(1));
    ledger_ = std::make_unique<JobLedger>(*store_, *batch_);
  }
  void Close() {
    ledger_.reset();
    batch_.reset();  // commits into the old files, which a crash throws away
    reader_.reset();
    store_.reset();
    io_.reset();
  }
  static std::unique_ptr<spool::JobStore> Opened(const std::string& path) {
    auto store = spool::JobStore::Open(path);
    if (!store.ok()) throw std::runtime_error("cannot open " + path + ": " + store.message());
    return std::move(store.value());
  }
  void Changed() {
    live_.reset();
    on_disk_.reset();
  }
  static std::vector<JobRecord> Listed(Result<std::vector<JobRecord>> list) {
    if (!list.ok()) throw std::runtime_error("cannot list a spool: " + list.message());
    return std::move(list.value());
  }

  std::string name_, root_, dir_;
  bool watch_disk_;
  int incarnation_ = 0;
  std::unique_ptr<asio::io_context> io_;
  std::unique_ptr<spool::JobStore> store_, reader_;  // reader_: a second connection, which sees commits only
  std::unique_ptr<GroupCommit> batch_;
  std::unique_ptr<JobLedger> ledger_;
  std::optional<std::vector<JobRecord>> live_, on_disk_;
};

// ---------------------------------------------------------------------------
// What each daemon keeps in memory (lost when it crashes), and on disk
// outside its spool (kept).

// One placement under way (daemon.cc's PlacementAttempt).
struct Placement {
  uint64_t job = 0;
  uint32_t attempt = 0;
  uint64_t generation = 0;  // of the waiting-list entry that started it
  std::vector<std::string> candidates;
  size_t next = 0;
  bool any_temporary = false;
};

struct SubmitMemory {
  struct Waiting {
    uint64_t generation = 0;
    bool in_flight = false;
  };
  struct Request {
    std::shared_ptr<Placement> placement;
    std::string host;
  };
  struct Delivery {  // an end whose output is being written home (worker thread)
    uint64_t job = 0;
    std::string peer;
    uint32_t attempt = 0;
    bool failed = false;
  };
  std::map<uint64_t, Waiting> waiting;   // DaemonImpl::waiting_
  uint64_t next_generation = 0;
  std::map<uint64_t, Request> requests;  // PeerLink::pending_ (request ids are unique in the model)
  std::set<std::string> silent;          // hosts taken for dead
  std::map<std::string, std::vector<std::pair<uint64_t, uint32_t>>> fenced;  // DaemonImpl::fenced_
  std::set<uint64_t> delivering;         // JobFinisher::delivering_
  std::vector<Delivery> deliveries;
};

struct ExecMemory {
  std::set<uint64_t> admitting;               // admitted, the record not yet on disk: no shepherd yet
  std::set<uint64_t> cancelled_before_start;  // ...and cancelled meanwhile
  std::set<uint64_t> shepherds;               // runs under way (JobRunner::shepherds_)
  std::map<std::pair<uint64_t, uint32_t>, uint64_t> owed;  // EndReporter::owed_: (job, attempt) -> record
};

struct ExecDisk {
  std::map<uint64_t, RunOutcome> status_files;  // <spool>/run/<id>.status, by record
};

// The submit host's restart files (JobFinisher::RestartBundle), by job.
struct SubmitDisk {
  std::set<uint64_t> bundles;
};

// The first invariant that failed, or "".
using Violation = std::string;

// ---------------------------------------------------------------------------
class Model {
 public:
  struct Settings {
    uint64_t seed = 1;
    int steps = 150;
    bool check_fences = false;
    bool any_order = false;   // messages may overtake each other on a connection
    bool as_shipped = false;  // play the bugs marked FOUND BY THIS MODEL as the code had them
    bool disk_full = false;   // disks fill up (and empty again) now and then
  };

  // `empty`: an empty spool file, copied for each host.
  Model(const Settings& settings, const std::string& root, const std::string& empty, FullDisks& disks)
      : settings_(settings), dice_(settings.seed), root_(root), disks_(disks) {
    exec_hosts_ = dice_.Chance(0.7) ? std::vector<std::string>{"e1", "e2"} : std::vector<std::string>{"e1"};
    max_jobs_ = 2 + dice_.Below(5);
    hosts_[kSubmitHost] = std::make_unique<HostSpool>(kSubmitHost, root, empty, true);
    for (const auto& name : exec_hosts_) hosts_[name] = std::make_unique<HostSpool>(name, root, empty, false);
  }

  // Runs the sequence; "" when every invariant held, else the first that did
  // not, with the steps that led there.
  std::string Run() {
    Violation failed;
    for (int i = 0; i < settings_.steps && failed.empty(); ++i) failed = RandomStep();
    if (failed.empty()) failed = Settle();
    if (failed.empty()) return "";
    std::string report = failed + "\nsteps of this sequence:\n";
    for (const auto& line : trace_) report += "  " + line + "\n";
    return report;
  }

 private:
  // ===== Steps ==============================================================

  // Does `action` as step `what`, then checks every invariant.
  Violation Step(const std::string& what, const std::function<void()>& action) {
    ++now_;
    trace_.push_back(std::to_string(now_) + ": " + what);
    action();
    Violation failed = CheckInvariants();
    if (!failed.empty()) failed = "seed " + std::to_string(settings_.seed) + ", step " + std::to_string(now_) + " (" +
                                  what + "): " + failed;
    return failed;
  }

  struct Choice {
    double weight;
    std::string what;
    std::function<void()> action;
  };

  // One step of the faulty phase, chosen at random among those possible now.
  Violation RandomStep() {
    const std::vector<Choice> choices = Choices();
    double total = 0;
    for (const auto& c : choices) total += c.weight;
    double roll = static_cast<double>(dice_.Below(1 << 30)) / (1 << 30) * total;
    for (const auto& c : choices) {
      if (roll < c.weight) return Step(c.what, c.action);
      roll -= c.weight;
    }
    return Step(choices.back().what, choices.back().action);
  }

  // What may happen next, and how often, roughly: messages arrive most
  // often, then the daemons' own turns, and faults least.
  std::vector<Choice> Choices() {
    std::vector<Choice> choices;
    auto add = [&](double weight, std::string what, std::function<void()> action) {
      choices.push_back(Choice{weight, std::move(what), std::move(action)});
    };
    const std::string host = AnyHost(), exec = AnyExecHost();
    if (!network_.empty()) choices.push_back(NetworkChoice());
    add(14, host + " runs its loop", [this, host] { hosts_.at(host)->RunLoop(); });
    add(2, host + "'s commit window elapses", [this, host] { hosts_.at(host)->WindowElapses(); });
    if (submitted_ < max_jobs_) add(3, "a job is submitted", [this] { SubmitJob(); });
    if (auto job = AnyWaitingNotInFlight())
      add(8, "s offers job " + std::to_string(*job), [this, job] { TakeWaiting(*job); });
    if (!s_.deliveries.empty()) {
      size_t i = dice_.Below(s_.deliveries.size());
      add(5, "s: the output of job " + std::to_string(s_.deliveries[i].job) + " is home",
          [this, i] { DeliveryDone(i); });
    }
    if (auto run = AnyRun()) {
      RunOutcome outcome = RandomOutcome();
      add(5, run->first + ": the run of record " + std::to_string(run->second) + " ends",
          [this, run, outcome] { RunEnds(run->first, run->second, outcome); });
    }
    if (!e_[exec].owed.empty()) add(3, exec + " sends the ends it owes again", [this, exec] { ResendEnds(exec); });
    if (!s_.requests.empty()) {
      uint64_t request = std::next(s_.requests.begin(), static_cast<long>(dice_.Below(s_.requests.size())))->first;
      add(2, "s: request " + std::to_string(request) + " gets no answer in time",
          [this, request] { PlaceTimesOut(request); });
    }
    if (submitted_ > 0) {
      uint64_t job = 1 + dice_.Below(submitted_ + 1);
      add(1.5, "the owner of job " + std::to_string(job) + " cancels it", [this, job] { OwnerCancels(job); });
    }
    add(1, "s: " + exec + " is silent (taken for dead)", [this, exec] { HostSilent(exec); });
    if (!s_.silent.empty()) {
      std::string back = *std::next(s_.silent.begin(), static_cast<long>(dice_.Below(s_.silent.size())));
      add(3, "s: " + back + " is heard again", [this, back] { HostHeardAgain(back); });
    }
    add(1.2, host + " crashes and restarts", [this, host] { Crash(host); });
    if (settings_.disk_full) {
      add(0.8, host + "'s disk is full", [this, host] { SetDiskFull(host, true); });
      if (!full_.empty()) {
        std::string room = *std::next(full_.begin(), static_cast<long>(dice_.Below(full_.size())));
        add(4, room + "'s disk has room again", [this, room] { SetDiskFull(room, false); });
      }
    }
    return choices;
  }

  // A message that may arrive next arrives, or is lost, or arrives and is
  // sent again.
  Choice NetworkChoice() {
    const std::vector<size_t> next = Deliverable();
    const size_t i = next[dice_.Below(next.size())];
    const std::string text = network_[i].Describe();
    if (dice_.Chance(0.05))
      return Choice{30, "lost: " + text, [this, i] { network_.erase(network_.begin() + static_cast<long>(i)); }};
    if (dice_.Chance(0.02))
      return Choice{30, "connection lost, with " + text + " and what follows it", [this, i] { BreakLane(i); }};
    // A PlaceJob is answered once per request: a copy would be a second
    // request under the same id, which no daemon sends (an offer asked again
    // is a new request). Any other copy is what a resend would be.
    const bool again = (settings_.any_order || network_[i].kind != Message::kPlaceJob) && dice_.Chance(0.08);
    return Choice{30, (again ? "delivered, and a copy follows: " : "delivered: ") + text,
                  [this, i, again] { Deliver(i, again); }};
  }

  // The quiet phase: no more faults, every host heard, every message
  // delivered once, every run ended, everything resent, until nothing
  // changes; then (d).
  Violation Settle() {
    trace_.push_back("---- quiet from here on ----");
    refusals_ = false;
    for (const auto& host : std::set<std::string>(full_)) SetDiskFull(host, false);
    // After a failed commit a daemon's memory is ahead of its spool (a run
    // released, an end no longer owed, ...) until it restarts: restarted
    // here, so that what (d) checks is that nothing is lost for good.
    if (settings_.disk_full)
      for (const auto& [name, host] : hosts_) QuietStep(name + " restarts", [this, name = name] { Crash(name); });
    for (const auto& host : std::set<std::string>(s_.silent))
      QuietStep("s: " + host + " is heard again", [this, host] { HostHeardAgain(host); });
    std::string before;
    for (int round = 0; round < 60 && quiet_failed_.empty(); ++round) {
      QuietRound();
      std::string now = Fingerprint();
      if (now == before && network_.empty()) break;
      before = now;
    }
    return quiet_failed_.empty() ? CheckSettled() : quiet_failed_;
  }

  void QuietRound() {
    QuietStep("every host runs its loop", [this] { RunAllLoops(); });
    while (!network_.empty() && quiet_failed_.empty()) {
      const std::vector<size_t> next = Deliverable();
      const size_t i = next[dice_.Below(next.size())];
      QuietStep("delivered: " + network_[i].Describe(), [this, i] {
        Deliver(i, false);
        RunAllLoops();
      });
    }
    while (!s_.deliveries.empty() && quiet_failed_.empty())
      QuietStep("s: the output of job " + std::to_string(s_.deliveries.front().job) + " is home",
                [this] { DeliveryDone(0); });
    // Nothing is in flight: an offer still unanswered never will be.
    while (!s_.requests.empty() && quiet_failed_.empty()) {
      uint64_t request = s_.requests.begin()->first;
      QuietStep("s: request " + std::to_string(request) + " gets no answer in time",
                [this, request] { PlaceTimesOut(request); });
    }
    for (const auto& exec : exec_hosts_)
      for (uint64_t id : std::set<uint64_t>(e_[exec].shepherds))
        if (!settings_.check_fences || IsCurrentRun(exec, id))
          QuietStep(exec + ": the run of record " + std::to_string(id) + " ends", [this, exec, id] {
            RunEnds(exec, id, dice_.Chance(0.7) ? RunOutcome::kDone : RunOutcome::kFailed);
          });
    for (const auto& exec : exec_hosts_)
      if (!e_[exec].owed.empty()) QuietStep(exec + " sends the ends it owes again", [this, exec] { ResendEnds(exec); });
    for (const auto& [job, entry] : std::map<uint64_t, SubmitMemory::Waiting>(s_.waiting))
      if (!entry.in_flight) QuietStep("s offers job " + std::to_string(job), [this, job = job] { TakeWaiting(job); });
    QuietStep("every host runs its loop, and its commit window elapses", [this] {
      RunAllLoops();
      for (auto& [name, host] : hosts_) host->WindowElapses();
    });
  }

  // A step of the quiet phase; none after the first that fails.
  void QuietStep(const std::string& what, const std::function<void()>& action) {
    if (quiet_failed_.empty()) quiet_failed_ = Step(what, action);
  }

  // ===== The submit host (daemon.cc, job_finisher.cc) =======================

  HostSpool& S() { return *hosts_.at(kSubmitHost); }

  // A client submits a batch job, and is told its id once it is on disk.
  void SubmitJob() {
    JobRecord r;
    // Two users and specs of several sizes for (e), drawn from no dice so
    // that every seed replays as before.
    r.uid = 1000 + static_cast<uint32_t>(submitted_ % 2);
    r.spec = std::string(submitted_ % 7 * 10, 's');
    r.batch = true;
    r.submit_time = now_;
    r.queue = dice_.Chance(0.5) ? kRestartQueue : kOnceQueue;
    auto id = S().ledger().Submit(r, [](uint64_t id) { return "/home/u/job.o" + std::to_string(id); });
    if (!id.ok()) return Note("s: " + id.message());
    ++submitted_;
    const uint64_t job = *id;
    S().ledger().AfterCommit([this, job](const Status& committed) {
      if (committed.ok()) told_.insert(job);
      else s_.waiting.erase(job);  // the client is told it was not stored
    });
    s_.waiting[job] = SubmitMemory::Waiting{++s_.next_generation, false};
  }

  // DaemonImpl::AddWaitingStored: a job queued again (or found waiting at
  // start-up) goes back on the waiting list, unless its owner cancelled it.
  void AddWaitingStored(uint64_t job) {
    auto found = S().ledger().Get(job);
    if (!found.ok() || !found->has_value()) return;
    if ((*found)->cancel_requested)
      return FailRecord(job, JobState::kCancelled, "cancelled by its owner at a checkpoint");
    s_.waiting[job] = SubmitMemory::Waiting{++s_.next_generation, false};
  }

  // DaemonImpl::TakeWaiting and StartPlacement: an offer already out is asked
  // again where it went; otherwise every host heard from is a candidate.
  void TakeWaiting(uint64_t job) {
    auto found = S().ledger().Get(job);
    if (!found.ok()) return;
    if (!found->has_value() || (*found)->state != JobState::kWaiting) {
      s_.waiting.erase(job);
      return;
    }
    const JobRecord& r = **found;
    auto placement = std::make_shared<Placement>();
    placement->job = job;
    placement->attempt = r.restarts;
    placement->generation = s_.waiting.at(job).generation;
    if (!r.exec_host.empty()) {
      placement->candidates = {r.exec_host};
    } else {
      for (const auto& host : exec_hosts_) {
        if (s_.silent.count(host)) placement->any_temporary = true;  // down: may come back
        else placement->candidates.push_back(host);
      }
      dice_.Shuffle(placement->candidates);
    }
    s_.waiting.at(job).in_flight = true;
    TryNextHost(placement);
  }

  // DaemonImpl::TryNextHost, two-phase: "offered to H" is committed before the
  // PlaceJob leaves.
  void TryNextHost(const std::shared_ptr<Placement>& p) {
    if (p->next == p->candidates.size()) return OnOutcome(*p, "", p->any_temporary, false);
    const std::string host = p->candidates[p->next++];
    if (Status offered = S().ledger().Offer(p->job, host, p->attempt); !offered.ok()) {
      Note("s: " + offered.message());
      return Refused(p, false);
    }
    S().ledger().AfterCommit([this, p, host](const Status& committed) {
      if (!committed.ok()) return Refused(p, false);
      if (!StillWaiting(*p)) return Refused(p, true);
      const uint64_t request = ++next_request_;
      s_.requests[request] = SubmitMemory::Request{p, host};
      Send(Message{Message::kPlaceJob, kSubmitHost, host, request, p->job, p->attempt});
    });
  }

  void Refused(const std::shared_ptr<Placement>& p, bool permanent) {
    p->any_temporary |= !permanent;
    TryNextHost(p);
  }

  bool StillWaiting(const Placement& p) {
    auto found = S().ledger().Get(p.job);
    return found.ok() && found->has_value() && (*found)->state == JobState::kWaiting && (*found)->restarts == p.attempt;
  }

  // The PlaceJob callback in TryNextHost, for an answer to a pending request.
  void SubmitGetsPlaceReply(const Message& m) {
    auto pending = s_.requests.find(m.request);
    if (pending == s_.requests.end()) return Note("s: no such request (timed out, or before a restart)");
    SubmitMemory::Request request = pending->second;
    s_.requests.erase(pending);
    const Placement& p = *request.placement;
    if (!m.accepted) {
      if (Status withdrawn = S().ledger().WithdrawOffer(p.job, request.host, p.attempt); !withdrawn.ok())
        Note("s: " + withdrawn.message());
      return Refused(request.placement, m.permanent);
    }
    PlacedOn(p.job, request.host, p.attempt);
    OnOutcome(p, request.host, false, false);
  }

  // PeerLink's timeout (or a lost connection): whether the host has the job
  // is unknown, so it stays offered there and is asked there again.
  void PlaceTimesOut(uint64_t request) {
    auto pending = s_.requests.find(request);
    if (pending == s_.requests.end()) return;
    std::shared_ptr<Placement> placement = pending->second.placement;
    s_.requests.erase(pending);
    OnOutcome(*placement, "", true, true);
  }

  // DaemonImpl::OnWaitingOutcome.
  void OnOutcome(const Placement& p, const std::string& host, bool may_wait, bool unresolved) {
    auto found = s_.waiting.find(p.job);
    if (found == s_.waiting.end() || found->second.generation != p.generation) return;  // cancelled or queued again
    found->second.in_flight = false;
    if (unresolved || (host.empty() && may_wait)) return;  // asked again on a later pass
    if (host.empty()) FailRecord(p.job, JobState::kFailed, "no host can run the job");
    s_.waiting.erase(found);
  }

  // DaemonImpl::Placed, for a peer.
  void PlacedOn(uint64_t job, const std::string& host, uint32_t attempt) {
    auto found = S().ledger().Get(job);
    if (!found.ok() || !found->has_value()) return;
    const JobRecord& r = **found;
    if (r.state == JobState::kCancelled)
      return Send(Message{Message::kCancelJob, kSubmitHost, host, 0, job, kAnyAttempt});
    if (r.state != JobState::kWaiting || r.restarts != attempt) return;
    if (Status placed = S().ledger().Placed(job, host, attempt, now_); !placed.ok()) Note("s: " + placed.message());
  }

  // DaemonImpl::FailRecord.
  void FailRecord(uint64_t job, JobState state, const std::string& why) {
    auto found = S().ledger().Get(job);
    if (!found.ok() || !found->has_value() || (*found)->state != JobState::kWaiting) return;
    if (Status ended = S().ledger().EndWaiting(job, state, why, now_); !ended.ok())
      return Note("s: " + ended.message());
    S().ledger().AfterCommit([this, job](const Status& ok) {
      if (ok.ok()) s_disk_.bundles.erase(job);  // DiscardOriginFiles
    });
  }

  // DaemonImpl::Cancel, for a job submitted here.
  void OwnerCancels(uint64_t job) {
    auto found = S().ledger().Get(job);
    if (!found.ok() || !found->has_value()) return;
    const JobRecord r = **found;
    if (r.state == JobState::kWaiting) {
      s_.waiting.erase(job);
      // Offered without an answer: the host may have it; tell it too.
      if (!r.exec_host.empty()) Send(Message{Message::kCancelJob, kSubmitHost, r.exec_host, 0, job, kAnyAttempt});
      return FailRecord(job, JobState::kCancelled, "cancelled by its owner while it waited");
    }
    if (r.state != JobState::kRunning) return;
    Send(Message{Message::kCancelJob, kSubmitHost, r.exec_host, 0, job, kAnyAttempt});
    if (Status noted = S().ledger().NoteCancelRequested(job); !noted.ok()) Note("s: " + noted.message());
  }

  // DaemonImpl::WatchSilentHosts, for a host silent too long (again, while it
  // stays silent): its jobs, and offers it never answered, are lost.
  void HostSilent(const std::string& host) {
    s_.silent.insert(host);
    spool::JobFilter filter;
    filter.states = {JobState::kWaiting, JobState::kRunning};
    filter.local_origin = true;
    filter.exec_host = host;
    auto list = S().ledger().List(filter);
    if (!list.ok()) return;
    for (const JobRecord& r : *list) {
      s_.waiting.erase(r.id);
      s_.fenced[host].emplace_back(r.id, r.restarts);
      Lost(r, "its host " + host + " was silent");
    }
  }

  // WatchSilentHosts, for a host heard again: each run taken for lost there
  // is told to end (a fence), once.
  void HostHeardAgain(const std::string& host) {
    s_.silent.erase(host);
    for (const auto& [job, attempt] : s_.fenced[host])
      Send(Message{Message::kCancelJob, kSubmitHost, host, 0, job, attempt});
    s_.fenced.erase(host);
  }

  // JobFinisher::Lost.
  void Lost(const JobRecord& r, const std::string& why) {
    const bool restart = r.batch && (r.queue == kRestartQueue || s_disk_.bundles.count(r.id) > 0);
    const RunEnd failed{JobState::kFailed, r.wait_status, r.cpu_seconds, 0, now_, why};
    Status recorded = restart ? S().ledger().Requeue(r.id, r.restarts, "run again after " + why)
                              : S().ledger().Close(r.id, r.restarts, failed);
    if (!recorded.ok()) return Note("s: " + recorded.message());
    const uint64_t job = r.id;
    S().ledger().AfterCommit([this, job, restart](const Status& ok) {
      if (ok.ok() && !restart) s_disk_.bundles.erase(job);
    });
    if (restart) AddWaitingStored(job);
  }

  // job_finisher.cc's IsPlacedOn: running on `peer`, or offered to it with
  // the answer lost, on run `attempt`.
  static bool IsPlacedOn(const JobRecord& r, const std::string& peer, uint32_t attempt) {
    return r.exec_host == peer && r.restarts == attempt &&
           (r.state == JobState::kRunning || r.state == JobState::kWaiting);
  }

  void AckAfterCommit(const Message& ended) {
    S().ledger().AfterCommit([this, ended](const Status& ok) {
      if (ok.ok()) Acknowledge(ended);
    });
  }
  void Acknowledge(const Message& ended) {
    Send(Message{Message::kJobEndedAck, kSubmitHost, ended.from, 0, ended.job, ended.attempt});
  }

  // JobFinisher::OnEnded.
  void SubmitGetsJobEnded(const Message& m) {
    auto found = S().ledger().Get(m.job);
    if (!found.ok()) return;
    if (!found->has_value() || !IsPlacedOn(**found, m.from, m.attempt)) return AckAfterCommit(m);
    JobRecord r = **found;
    if (m.lost) {
      Lost(r, "it was lost on " + m.from);
      return AckAfterCommit(m);
    }
    if (s_.delivering.count(r.id)) return;  // answered once its output is home
    if (m.checkpointed) return Checkpointed(r, m);
    s_.delivering.insert(r.id);
    s_.deliveries.push_back(SubmitMemory::Delivery{r.id, m.from, m.attempt, m.failed});
  }

  // JobFinisher::Checkpointed and Requeue: its restart files are kept, and it
  // waits to go on.
  void Checkpointed(const JobRecord& r, const Message& m) {
    s_disk_.bundles.insert(r.id);
    if (Status requeued = S().ledger().Requeue(r.id, r.restarts, "checkpointed on " + m.from); !requeued.ok())
      return Note("s: " + requeued.message());
    AckAfterCommit(m);
    AddWaitingStored(r.id);
  }

  // The end of JobFinisher::OnEnded, once DeliverThen has written the output
  // home, and RecordEnd.
  void DeliveryDone(size_t i) {
    SubmitMemory::Delivery d = s_.deliveries[i];
    s_.deliveries.erase(s_.deliveries.begin() + static_cast<long>(i));
    s_.delivering.erase(d.job);
    const Message ended{Message::kJobEnded, d.peer, kSubmitHost, 0, d.job, d.attempt};
    auto current = S().ledger().Get(d.job);
    if (!current.ok()) return;
    if (!current->has_value() || !IsPlacedOn(**current, d.peer, d.attempt)) {
      // FOUND BY THIS MODEL, fixed (job_finisher.cc, OnEnded's DeliverThen
      // callback): the code acknowledged at once, though what moved the job on (a Lost() for its
      // host's silence) may not be on disk yet. Should the submit host crash
      // before it is, the job is back to running (or offered) on a host that
      // has forgotten it, and stays so for ever (seed 2333 with
      // QUEUE_MODEL_AS_SHIPPED=1). It now acknowledges once that is on disk,
      // as OnEnded's first branch does.
      if (settings_.as_shipped) return Acknowledge(ended);
      return AckAfterCommit(ended);
    }
    RunEnd end{d.failed ? JobState::kFailed : JobState::kDone, d.failed ? 256 : 0, 1.0, 0, now_, ""};
    if (Status closed = S().ledger().Close(d.job, d.attempt, end); !closed.ok()) return Note("s: " + closed.message());
    S().ledger().AfterCommit([this, ended](const Status& ok) {
      if (!ok.ok()) return;
      s_disk_.bundles.erase(ended.job);
      Acknowledge(ended);
    });
  }

  // DaemonImpl::Recover, on the submit side.
  void RecoverSubmitHost() {
    s_ = SubmitMemory{};
    spool::JobFilter filter;
    filter.states = {JobState::kWaiting};
    filter.local_origin = true;
    auto list = S().ledger().List(filter);
    if (!list.ok()) return;
    for (const JobRecord& r : *list) AddWaitingStored(r.id);
  }

  // ===== An execution host (job_runner.cc, end_reporter.cc) =================

  // OnPeerFrame kPlaceJob and JobRunner::Admit, Enter: a repeated offer gets
  // the same answer; an offer of an earlier run than one that came here is
  // stale; a batch job is accepted only once it is on disk here.
  void ExecGetsPlaceJob(const std::string& host, const Message& m) {
    JobLedger& ledger = hosts_.at(host)->ledger();
    auto reply = [this, host, m](bool accepted, bool permanent) {
      Message answer{Message::kPlaceReply, host, m.from, m.request, m.job, m.attempt};
      answer.accepted = accepted;
      answer.permanent = permanent;
      Send(answer);
    };
    auto reply_after_commit = [this, &ledger, reply](bool have_it_already) {
      ledger.AfterCommit([this, reply, have_it_already](const Status& committed) {
        // FOUND BY THIS MODEL, fixed (daemon.cc, OnPeerFrame kPlaceJob): an
        // offer asked again of a host that has the job already was refused when the commit it
        // waits for fails (a full disk), though what failed may be another
        // job's write and this one's record is on disk, its run under way:
        // the submit host withdraws the offer and places the job elsewhere
        // too (seed 293, QUEUE_MODEL_DISK_FULL=1 QUEUE_MODEL_AS_SHIPPED=1).
        // Now it gives no answer then (the submit host asks again).
        if (!committed.ok() && have_it_already && !settings_.as_shipped) return;
        reply(committed.ok(), false);
      });
    };
    auto existing = ledger.FindByOrigin(m.from, m.job);
    if (existing.ok() && existing->has_value() && (*existing)->restarts == m.attempt) return reply_after_commit(true);
    if (existing.ok() && existing->has_value() && (*existing)->restarts > m.attempt) return reply(false, true);
    if (refusals_ && dice_.Chance(0.15)) return reply(false, false);  // full, loaded, closed for now
    if (refusals_ && dice_.Chance(0.03)) return reply(false, true);   // this queue will never take it
    JobRecord r;
    r.origin_host = m.from;
    r.origin_id = m.job;
    r.restarts = m.attempt;
    r.uid = 1000;
    r.queue = "q";
    r.batch = true;
    auto added = ledger.AdmitFromPeer(r, host, now_);
    if (!added.ok()) {
      Note(host + ": " + added.message());
      return reply(false, false);
    }
    const uint64_t id = *added;
    e_[host].admitting.insert(id);
    // Its shepherd starts once the record is on disk (Enter's AfterCommit).
    ledger.AfterCommit([this, host, id, m](const Status& committed) {
      e_[host].admitting.erase(id);
      if (committed.ok()) StartShepherd(host, id, m.job, m.attempt);
    });
    reply_after_commit(false);
  }

  // JobRunner::StartShepherd.
  void StartShepherd(const std::string& host, uint64_t id, uint64_t job, uint32_t attempt) {
    ExecMemory& memory = e_[host];
    memory.shepherds.insert(id);
    if (memory.cancelled_before_start.erase(id)) return RunEnds(host, id, RunOutcome::kFailed);
    started_[{job, attempt}].insert(host + " record " + std::to_string(id));
  }

  // The shepherd's end (JobRunner::EndRecord, FinishEnd): its status file is
  // written first; the end is reported at once, before it is committed, as
  // OnLocalJobEnded does.
  void RunEnds(const std::string& host, uint64_t id, RunOutcome outcome) {
    auto& status = exec_disk_[host].status_files;
    if (auto written = status.find(id); written != status.end()) outcome = written->second;
    status[id] = outcome;
    e_[host].shepherds.erase(id);
    JobLedger& ledger = hosts_.at(host)->ledger();
    auto found = ledger.Get(id);
    if (!found.ok() || !found->has_value() || (*found)->state != JobState::kRunning) return;
    auto ended = ledger.EndRun(id, (*found)->restarts, EndOf(outcome, now_));
    if (!ended.ok()) return Note(host + ": " + ended.message());  // the status file stays
    ledger.AfterCommit([this, host, id](const Status& committed) {
      if (committed.ok()) exec_disk_[host].status_files.erase(id);
    });
    Report(host, *ended);
  }

  // EndReporter::Report.
  void Report(const std::string& host, const JobRecord& r) {
    if (r.origin_host.empty() || r.end_reported) return;
    e_[host].owed[{r.origin_id, r.restarts}] = r.id;
    SendEnded(host, r);
  }

  // EndReporter::Continue: the end as the record says it now.
  void SendEnded(const std::string& host, const JobRecord& r) {
    Message m{Message::kJobEnded, host, r.origin_host, 0, r.origin_id, r.restarts};
    m.failed = r.state != JobState::kDone;
    m.lost = WasLost(r);
    m.checkpointed = r.checkpointed;
    Send(m);
  }

  // EndReporter::Tick and Resume.
  void ResendEnds(const std::string& host) {
    ExecMemory& memory = e_[host];
    for (auto it = memory.owed.begin(); it != memory.owed.end();) {
      auto found = hosts_.at(host)->ledger().Get(it->second);
      if (found.ok() && !found->has_value()) {
        it = memory.owed.erase(it);
        continue;
      }
      if (found.ok()) SendEnded(host, **found);
      ++it;
    }
  }

  // EndReporter::OnAcknowledged.
  void ExecGetsAck(const std::string& host, const Message& m) {
    ExecMemory& memory = e_[host];
    auto owed = memory.owed.find({m.job, m.attempt});
    if (owed == memory.owed.end()) return;
    if (Status closed = hosts_.at(host)->ledger().Acknowledge(owed->second); !closed.ok())
      return Note(host + ": " + closed.message());
    memory.owed.erase(owed);
  }

  // OnPeerFrame kCancelJob: a fence ends only the run it names.
  void ExecGetsCancel(const std::string& host, const Message& m) {
    auto found = hosts_.at(host)->ledger().FindByOrigin(m.from, m.job);
    if (!found.ok() || !found->has_value()) return;
    if (m.attempt != kAnyAttempt && (*found)->restarts != m.attempt) return;  // that run is over already
    // JobRunner::ControlJob: terminated, or not started at all.
    const uint64_t id = (*found)->id;
    if (e_[host].shepherds.count(id)) return RunEnds(host, id, RunOutcome::kFailed);
    if (e_[host].admitting.count(id)) e_[host].cancelled_before_start.insert(id);
  }

  // JobRunner::Adopt and EndReporter::LoadOwed after a restart: shepherds
  // outlive their daemon; one that ended meanwhile left its status file.
  void RecoverExecHost(const std::string& host) {
    e_[host] = ExecMemory{};
    JobLedger& ledger = hosts_.at(host)->ledger();
    spool::JobFilter running;
    running.states = {JobState::kRunning};
    running.exec_host = host;
    auto list = ledger.List(running);
    if (!list.ok()) return;
    for (const JobRecord& r : *list) {
      e_[host].shepherds.insert(r.id);
      if (auto ended = exec_disk_[host].status_files.find(r.id); ended != exec_disk_[host].status_files.end())
        RunEnds(host, r.id, ended->second);
    }
    spool::JobFilter owed;
    owed.states = {JobState::kDone, JobState::kFailed, JobState::kCancelled};
    owed.local_origin = false;
    owed.end_reported = false;
    auto ends = ledger.List(owed);
    if (!ends.ok()) return;
    for (const JobRecord& r : *ends) Report(host, r);
  }

  // ===== The world around them ==============================================

  void Send(const Message& m) {
    trace_.push_back("    sends " + m.Describe());
    network_.push_back(m);
  }

  // Which connection a message travels on: the submit host's link (PlaceJob
  // and CancelJob, and the PlaceReply back) or the execution host's (JobEnded,
  // and the JobEndedAck back). TCP keeps the order of each direction of a
  // connection, and no other.
  static std::string Lane(const Message& m) {
    const bool ends = m.kind == Message::kJobEnded || m.kind == Message::kJobEndedAck;
    return m.from + ">" + m.to + (ends ? " (end reporter)" : " (placements)");
  }

  // The messages that may arrive next: the first of each lane (of any, with
  // QUEUE_MODEL_NETWORK=any).
  std::vector<size_t> Deliverable() const {
    std::vector<size_t> next;
    std::set<std::string> lanes;
    for (size_t i = 0; i < network_.size(); ++i)
      if (settings_.any_order || lanes.insert(Lane(network_[i])).second) next.push_back(i);
    return next;
  }

  // A connection breaks: what was in flight on it is lost.
  void BreakLane(size_t i) {
    const std::string lane = Lane(network_[i]);
    std::erase_if(network_, [&lane](const Message& m) { return Lane(m) == lane; });
  }

  // Message i arrives; with `copy_follows`, the same again later, as a resend.
  void Deliver(size_t i, bool copy_follows) {
    const Message m = network_[i];
    network_.erase(network_.begin() + static_cast<long>(i));
    if (copy_follows) network_.push_back(m);
    switch (m.kind) {
      case Message::kPlaceJob: return ExecGetsPlaceJob(m.to, m);
      case Message::kPlaceReply: return SubmitGetsPlaceReply(m);
      case Message::kCancelJob: return ExecGetsCancel(m.to, m);
      case Message::kJobEnded: return SubmitGetsJobEnded(m);
      case Message::kJobEndedAck: return ExecGetsAck(m.to, m);
    }
  }

  void Crash(const std::string& host) {
    hosts_.at(host)->Crash();
    if (host == kSubmitHost) return RecoverSubmitHost();
    RecoverExecHost(host);
  }

  // Every spool of `host`, this one and those after its crashes, is under
  // root_/host.N.
  void SetDiskFull(const std::string& host, bool full) {
    disks_.SetFull(root_ + "/" + host + ".", full);
    if (full) full_.insert(host);
    else full_.erase(host);
  }

  void RunAllLoops() {
    for (auto& [name, host] : hosts_) host->RunLoop();
  }

  void Note(const std::string& text) { trace_.push_back("    " + text); }

  RunOutcome RandomOutcome() {
    static const RunOutcome kOutcomes[] = {RunOutcome::kDone, RunOutcome::kDone, RunOutcome::kFailed,
                                           RunOutcome::kCheckpointed, RunOutcome::kCheckpointed, RunOutcome::kLost};
    return kOutcomes[dice_.Below(std::size(kOutcomes))];
  }

  std::string AnyHost() {
    auto it = hosts_.begin();
    std::advance(it, static_cast<long>(dice_.Below(hosts_.size())));
    return it->first;
  }
  std::string AnyExecHost() { return exec_hosts_[dice_.Below(exec_hosts_.size())]; }

  std::optional<uint64_t> AnyWaitingNotInFlight() {
    std::vector<uint64_t> ready;
    for (const auto& [job, entry] : s_.waiting)
      if (!entry.in_flight) ready.push_back(job);
    if (ready.empty()) return std::nullopt;
    return ready[dice_.Below(ready.size())];
  }

  std::optional<std::pair<std::string, uint64_t>> AnyRun() {
    std::vector<std::pair<std::string, uint64_t>> runs;
    for (const auto& host : exec_hosts_)
      for (uint64_t id : e_[host].shepherds) runs.emplace_back(host, id);
    if (runs.empty()) return std::nullopt;
    return runs[dice_.Below(runs.size())];
  }

  // The run the submit host counts on: the job's current attempt, on the host
  // its record names. Others are stale (taken for lost) or unwanted (cancelled).
  bool IsCurrentRun(const std::string& host, uint64_t id) {
    auto run = hosts_.at(host)->ledger().Get(id);
    if (!run.ok() || !run->has_value()) return false;
    auto job = S().ledger().Get((*run)->origin_id);
    return job.ok() && job->has_value() && PhaseOf(**job) != JobPhase::kClosed && (*job)->exec_host == host &&
           (*job)->restarts == (*run)->restarts;
  }

  // ===== Invariants =========================================================

  static std::string Show(const JobRecord& r) {
    std::string text = "record " + std::to_string(r.id);
    if (!r.origin_host.empty()) text += " (job " + std::to_string(r.origin_id) + ")";
    text += " run " + std::to_string(r.restarts) + " " + ToString(PhaseOf(r)) + " " +
            std::string(spool::ToString(r.state));
    if (!r.exec_host.empty()) text += " on " + r.exec_host;
    return text;
  }

  Violation CheckInvariants() {
    const std::vector<JobRecord>& submit_live = S().Live();
    const std::vector<JobRecord>& submit_disk = S().OnDisk();
    std::map<std::string, std::vector<JobRecord>> exec_live;
    for (const auto& host : exec_hosts_) exec_live[host] = hosts_.at(host)->Live();
    if (Violation v = CheckOneHolderPerRun(exec_live); !v.empty()) return v;
    if (Violation v = CheckSubmitRecordsMoveForward(submit_live, submit_disk); !v.empty()) return v;
    if (Violation v = CheckRunnableInOneSpool(submit_live, exec_live, "as s sees it"); !v.empty()) return v;
    if (Violation v = CheckRunnableInOneSpool(submit_disk, exec_live, "on s's disk"); !v.empty()) return v;
    for (const auto& [name, host] : hosts_)
      if (Violation v = CheckWaitingTally(*host); !v.empty()) return v;
    return "";
  }

  // (e)
  Violation CheckWaitingTally(HostSpool& host) {
    std::map<uint32_t, WaitingTally> counted;
    for (const JobRecord& r : host.Live())
      if (r.origin_host.empty() && r.state == JobState::kWaiting) {
        ++counted[r.uid].jobs;
        counted[r.uid].spec_bytes += r.spec.size();
      }
    for (uint32_t uid : {1000u, 1001u}) {
      auto kept = host.WaitingOf(uid);
      if (!kept.ok()) return "(e) " + host.name() + ": " + kept.message();
      if (!(*kept == counted[uid]))
        return "(e) " + host.name() + " keeps uid " + std::to_string(uid) + " at " + std::to_string(kept->jobs) +
               " waiting jobs of " + std::to_string(kept->spec_bytes) + " bytes; its spool has " +
               std::to_string(counted[uid].jobs) + " of " + std::to_string(counted[uid].spec_bytes);
    }
    return "";
  }

  // (a)
  Violation CheckOneHolderPerRun(const std::map<std::string, std::vector<JobRecord>>& exec_live) {
    std::map<std::pair<uint64_t, uint32_t>, std::vector<std::string>> holders;
    for (const auto& [host, records] : exec_live)
      for (const JobRecord& r : records) holders[{r.origin_id, r.restarts}].push_back(host + ": " + Show(r));
    for (const auto& [run, who] : holders)
      if (who.size() > 1)
        return "(a) run " + std::to_string(run.second) + " of job " + std::to_string(run.first) + " is held by " +
               Joined(who);
    for (const auto& [run, who] : started_)
      if (who.size() > 1)
        return "(a) run " + std::to_string(run.second) + " of job " + std::to_string(run.first) + " was started by " +
               Joined(std::vector<std::string>(who.begin(), who.end()));
    return "";
  }

  // (b)
  Violation CheckSubmitRecordsMoveForward(const std::vector<JobRecord>& live, const std::vector<JobRecord>& disk) {
    std::set<uint64_t> on_disk;
    for (const JobRecord& r : disk) {
      on_disk.insert(r.id);
      uint32_t& highest = highest_attempt_[r.id];
      if (r.restarts < highest)
        return "(b) job " + std::to_string(r.id) + " went back from run " + std::to_string(highest) +
               " on disk: " + Show(r);
      highest = r.restarts;
      auto closed = closed_.find(r.id);
      if (closed == closed_.end() && PhaseOf(r) == JobPhase::kClosed) closed_[r.id] = r;
      if (closed != closed_.end() && !(closed->second == r))
        return "(b) closed job " + std::to_string(r.id) + " changed on disk: " + Show(closed->second) + " became " +
               Show(r);
    }
    for (const auto& [id, r] : closed_)
      if (!on_disk.count(id)) return "(b) closed job " + std::to_string(id) + " is gone from disk";
    for (const JobRecord& r : live) {
      if (auto closed = closed_.find(r.id); closed != closed_.end() && !(closed->second == r))
        return "(b) closed job " + std::to_string(r.id) + " changed in s's view: " + Show(r);
      if (auto highest = highest_attempt_.find(r.id); highest != highest_attempt_.end() && r.restarts < highest->second)
        return "(b) s sees job " + std::to_string(r.id) + " on run " + std::to_string(r.restarts) +
               ", behind its disk's run " + std::to_string(highest->second);
    }
    return "";
  }

  // (c)
  Violation CheckRunnableInOneSpool(const std::vector<JobRecord>& submit,
                                    const std::map<std::string, std::vector<JobRecord>>& exec_live,
                                    const std::string& view) {
    for (const JobRecord& job : submit) {
      if (PhaseOf(job) == JobPhase::kClosed) continue;
      for (const auto& [host, records] : exec_live)
        for (const JobRecord& run : records)
          if (run.origin_id == job.id && run.restarts == job.restarts && run.state == JobState::kRunning &&
              host != job.exec_host)
            return "(c) " + host + " runs " + Show(run) + " while the job, " + view + ", is " + Show(job);
    }
    return "";
  }

  // (d), once settled; and with QUEUE_MODEL_FENCES, that no unwanted run is left.
  Violation CheckSettled() {
    S().RunLoop();
    const std::string where = "seed " + std::to_string(settings_.seed) + ", settled after step " +
                              std::to_string(now_) + ": ";
    for (uint64_t job : told_) {
      bool found = false;
      for (const JobRecord& r : S().OnDisk()) {
        if (r.id != job) continue;
        found = true;
        const bool final_state = r.state == JobState::kDone || r.state == JobState::kFailed ||
                                 r.state == JobState::kCancelled;
        if (PhaseOf(r) != JobPhase::kClosed || !final_state)
          return where + "(d) job " + std::to_string(job) + " is not closed on s's disk: " + Show(r) + Summary();
      }
      if (!found) return where + "(d) job " + std::to_string(job) + " is gone from s's disk" + Summary();
    }
    for (const JobRecord& r : S().Live())
      if (PhaseOf(r) != JobPhase::kClosed) return where + "(d) s still has " + Show(r) + Summary();
    for (const auto& host : exec_hosts_)
      for (const JobRecord& r : hosts_.at(host)->Live())
        if (PhaseOf(r) == JobPhase::kEnded || PhaseOf(r) == JobPhase::kRunning)
          return where + "(d) " + host + " still has " + Show(r) +
                 (PhaseOf(r) == JobPhase::kRunning && settings_.check_fences
                      ? " (a run that its submit host took for lost or cancelled; nothing ended it)"
                      : "") +
                 Summary();
    return "";
  }

  std::string Summary() {
    std::string text = "\nspools now:";
    for (auto& [name, host] : hosts_)
      for (const JobRecord& r : host->Live()) text += "\n  " + name + ": " + Show(r);
    return text;
  }

  std::string Fingerprint() {
    std::string text;
    for (auto& [name, host] : hosts_)
      for (const JobRecord& r : host->Live()) text += name + Show(r) + (r.end_reported ? "+" : "-") + ";";
    return text + std::to_string(s_.waiting.size());
  }

  static std::string Joined(const std::vector<std::string>& parts) {
    std::string text;
    for (const auto& part : parts) text += (text.empty() ? "" : " and ") + part;
    return text;
  }

  Settings settings_;
  Dice dice_;
  std::string root_;
  FullDisks& disks_;
  std::set<std::string> full_;  // hosts whose disk is full
  std::vector<std::string> exec_hosts_;
  size_t max_jobs_ = 0, submitted_ = 0;
  bool refusals_ = true;  // hosts refuse offers now and then (not when quiet)
  Violation quiet_failed_;
  int64_t now_ = 0;
  uint64_t next_request_ = 0;
  std::vector<Message> network_;  // in the order sent; see Deliverable
  std::vector<std::string> trace_;
  SubmitMemory s_;
  SubmitDisk s_disk_;
  std::map<std::string, ExecMemory> e_;
  std::map<std::string, ExecDisk> exec_disk_;
  // What the world knows, whatever the daemons forget.
  std::set<uint64_t> told_;                                                 // jobs whose submitter has an id
  std::map<std::pair<uint64_t, uint32_t>, std::set<std::string>> started_;  // run -> where a shepherd started it
  std::map<uint64_t, uint32_t> highest_attempt_;                            // on s's disk
  std::map<uint64_t, JobRecord> closed_;                                    // as first closed on s's disk
  // Last: destroyed first, with the handlers queued on their loops.
  std::map<std::string, std::unique_ptr<HostSpool>> hosts_;
};

class JobLedgerModelTest : public ::testing::Test {
 protected:
  // On tmpfs when there is one: every commit fsyncs (synchronous=FULL), and a
  // run of the model commits tens of thousands of times. A crash is modelled
  // by copying the spool files, so it needs no real disk.
  void SetUp() override {
    std::string templ = std::string(fs::is_directory("/dev/shm") ? "/dev/shm" : "/tmp") + "/queue-ledger-model-XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    root_ = fs::canonical(templ);  // as SQLite names its files
    empty_ = root_ + "/empty.db";
    auto store = spool::JobStore::Open(empty_);  // closed at once: the WAL goes into the file
    ASSERT_TRUE(store.ok()) << store.message();
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string root_, empty_;
  FullDisks disks_;
};

TEST_F(JobLedgerModelTest, EveryJobRunsInOneSpoolAndEndsOnce) {
  JobRecord lost;
  lost.state = JobState::kFailed;
  lost.wait_status = kLostWaitStatus;
  ASSERT_TRUE(WasLost(lost)) << "job_runner.cc marks a lost run otherwise now: update kLostWaitStatus";
  const uint64_t first = FromEnvironment("QUEUE_MODEL_SEED", 1);
  // Fewer under the sanitizers (5x slower at -O0): the plain run covers the
  // sequences, the sanitized one the memory and undefined behaviour in them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr uint64_t kDefaultSequences = 100;
#else
  constexpr uint64_t kDefaultSequences = 300;
#endif
  const uint64_t sequences = FromEnvironment("QUEUE_MODEL_SEQUENCES", kDefaultSequences);
  Model::Settings settings;
  settings.steps = static_cast<int>(FromEnvironment("QUEUE_MODEL_STEPS", 150));
  settings.check_fences = FromEnvironment("QUEUE_MODEL_FENCES", 0) != 0;
  settings.as_shipped = FromEnvironment("QUEUE_MODEL_AS_SHIPPED", 0) != 0;
  // Unless told, every other sequence fills and empties the disks too.
  const char* disk_full = getenv("QUEUE_MODEL_DISK_FULL");
  settings.any_order = getenv("QUEUE_MODEL_NETWORK") != nullptr && std::string(getenv("QUEUE_MODEL_NETWORK")) == "any";
  for (uint64_t seed = first; seed < first + sequences; ++seed) {
    settings.seed = seed;
    settings.disk_full = disk_full != nullptr ? std::string(disk_full) != "0" : seed % 2 == 0;
    const std::string dir = root_ + "/" + std::to_string(seed);
    std::string failed;
    try {
      Model model(settings, dir, empty_, disks_);
      failed = model.Run();
    } catch (const std::exception& e) {  // a spool that cannot be opened or read
      failed = "seed " + std::to_string(seed) + ": " + e.what() + "\n";
    }
    fs::remove_all(dir);
    if (!failed.empty()) {
      ADD_FAILURE() << failed << "replay with QUEUE_MODEL_SEED=" << seed << " QUEUE_MODEL_SEQUENCES=1"
                    << (settings.check_fences ? " QUEUE_MODEL_FENCES=1" : "")
                    << (settings.any_order ? " QUEUE_MODEL_NETWORK=any" : "")
                    << (settings.as_shipped ? " QUEUE_MODEL_AS_SHIPPED=1" : "")
                    << (settings.disk_full ? " QUEUE_MODEL_DISK_FULL=1" : "");
      return;
    }
  }
}

}  // namespace
}  // namespace queue::daemon
