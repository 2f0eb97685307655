// The waiting list (daemon/waiting_list): FIFO per key, blocked keys, jobs in
// flight, stale results; and a seeded, randomized model test against the way
// the daemon walked the list before it was grouped by key (one std::map by
// record id, walked whole on every pass), which must give the same jobs to
// try, in the same order.
//
// The model test's sequences can be replayed; the environment may set:
//   QUEUE_MODEL_SEED=N QUEUE_MODEL_SEQUENCES=M  sequences N .. N+M-1
//   QUEUE_MODEL_STEPS=K                          steps of each
#include "daemon/waiting_list.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace queue::daemon {
namespace {

using Ids = std::vector<uint64_t>;

Ids PassOrder(WaitingList& list, size_t max_in_flight) {
  Ids taken;
  list.Pass(max_in_flight, [&](uint64_t id) {
    taken.push_back(id);
    list.Take(id);
  });
  return taken;
}

TEST(WaitingListTest, OffersJobsInRecordOrderAcrossKeys) {
  WaitingList list;
  list.Add(3, true, "a|");
  list.Add(1, true, "b|");
  list.Add(2, true, "a|");
  list.Add(5, true, "c|h1");
  list.Add(4, true, "b|");
  EXPECT_EQ(list.NextToTry(32), (Ids{1, 2, 3, 4, 5}));
  EXPECT_EQ(list.NextToTry(3), (Ids{1, 2, 3}));
  EXPECT_EQ(PassOrder(list, 32), (Ids{1, 2, 3, 4, 5}));
  EXPECT_EQ(list.in_flight(), 5u);
  EXPECT_TRUE(list.NextToTry(32).empty());
}

TEST(WaitingListTest, JobsInFlightCountAgainstThePassAndAreNotOfferedAgain) {
  WaitingList list;
  for (uint64_t id = 1; id <= 6; ++id) list.Add(id, true, "q|");
  EXPECT_EQ(PassOrder(list, 2), (Ids{1, 2}));
  EXPECT_EQ(list.in_flight(), 2u);
  EXPECT_TRUE(PassOrder(list, 2).empty());
  EXPECT_EQ(PassOrder(list, 4), (Ids{3, 4}));
  EXPECT_FALSE(list.MayTake(3));
  ASSERT_TRUE(list.Return(3, list.Find(3)->generation));
  EXPECT_EQ(list.NextToTry(10), (Ids{3, 5, 6}));
}

TEST(WaitingListTest, ABlockedKeyHoldsBackItsJobsUntilCleared) {
  WaitingList list;
  list.Add(1, true, "q|");
  list.Add(2, true, "r|");
  list.Add(3, true, "q|");
  list.Block("q|");
  EXPECT_EQ(list.NextToTry(32), (Ids{2}));
  EXPECT_FALSE(list.MayTake(1));
  list.Erase(1);
  list.Erase(3);
  // Blocked with no job left: one that comes meanwhile waits too.
  list.Add(4, true, "q|");
  EXPECT_TRUE(list.Blocked("q|"));
  EXPECT_EQ(list.NextToTry(32), (Ids{2}));
  list.ClearBlocked();
  EXPECT_FALSE(list.Blocked("q|"));
  EXPECT_EQ(list.NextToTry(32), (Ids{2, 4}));
}

TEST(WaitingListTest, AResultForAnEarlierEntryIsStale) {
  WaitingList list;
  uint64_t first = list.Add(7, true, "q|");
  EXPECT_EQ(list.Take(7), first);
  uint64_t second = list.Add(7, true, "q|");  // re-queued meanwhile: a new entry, not in flight
  EXPECT_NE(first, second);
  EXPECT_EQ(list.in_flight(), 0u);
  EXPECT_FALSE(list.Return(7, first));
  EXPECT_TRUE(list.MayTake(7));
  list.Take(7);
  list.Erase(7);
  EXPECT_FALSE(list.Return(7, second));
  EXPECT_EQ(list.in_flight(), 0u);
  EXPECT_TRUE(list.empty());
}

TEST(WaitingListTest, KeepsWhatTheDaemonShowsAndOffers) {
  WaitingList list;
  wire::JobSpec spec;
  spec.queue = "now";
  spec.only_host = "h2";
  spec.argv = {"sleep", "1"};
  list.Add(9, false, WaitingList::WaitKey(spec), spec);
  list.SetWhy(9, "h1: full; h2: full");
  const WaitingList::Job* job = list.Find(9);
  ASSERT_NE(job, nullptr);
  EXPECT_FALSE(job->stored);
  EXPECT_EQ(job->key, "now|h2");
  EXPECT_EQ(job->spec.argv, spec.argv);
  EXPECT_EQ(job->why, "h1: full; h2: full");
  list.Add(9, true, "now|h2");  // entered again: why it waited before no longer holds
  EXPECT_EQ(list.Find(9)->why, "");
  EXPECT_EQ(list.Find(10), nullptr);
}

// The pass chooses its jobs first, then takes each that may still be taken:
// an answer that comes at once (a refusal for now) holds back the rest of its
// key; a job dropped meanwhile leaves its turn unused.
TEST(WaitingListTest, APassHonoursWhatHappensWhileItRuns) {
  WaitingList list;
  list.Add(1, true, "q|");
  list.Add(2, true, "r|");
  list.Add(3, true, "q|");
  list.Add(4, true, "q|");
  list.Add(5, true, "r|");
  Ids taken;
  list.Pass(4, [&](uint64_t id) {
    taken.push_back(id);
    uint64_t generation = list.Take(id);
    if (id == 1) {  // refused for now, at once
      list.Return(id, generation);
      list.Block("q|");
    }
    if (id == 2) list.Erase(5);
  });
  // Chosen: 1, 2, 3, 4. 3 and 4 are held back with 1; 5 was not chosen.
  EXPECT_EQ(taken, (Ids{1, 2}));
  EXPECT_EQ(list.in_flight(), 1u);
}

// The daemon's waiting list as it was: a std::map by record id walked whole.
class ReferenceList {
 public:
  struct Entry {
    bool stored = false;
    std::string key;
    bool in_flight = false;
    uint64_t generation = 0;
    std::string why;
  };
  uint64_t Add(uint64_t id, bool stored, const std::string& key) {
    jobs_[id] = Entry{stored, key, false, ++next_generation_, ""};
    return next_generation_;
  }
  bool Erase(uint64_t id) { return jobs_.erase(id) > 0; }
  const Entry* Find(uint64_t id) const {
    auto found = jobs_.find(id);
    return found == jobs_.end() ? nullptr : &found->second;
  }
  bool MayTake(uint64_t id) const {
    auto it = jobs_.find(id);
    return it != jobs_.end() && !it->second.in_flight && !blocked_.count(it->second.key);
  }
  uint64_t Take(uint64_t id) {
    jobs_.at(id).in_flight = true;
    return jobs_.at(id).generation;
  }
  bool Return(uint64_t id, uint64_t generation) {
    auto found = jobs_.find(id);
    if (found == jobs_.end() || found->second.generation != generation) return false;
    found->second.in_flight = false;
    return true;
  }
  void SetWhy(uint64_t id, const std::string& why) {
    if (auto found = jobs_.find(id); found != jobs_.end()) found->second.why = why;
  }
  void Block(const std::string& key) { blocked_.insert(key); }
  bool Blocked(const std::string& key) const { return blocked_.count(key) > 0; }
  void ClearBlocked() { blocked_.clear(); }
  size_t InFlight() const {
    size_t in_flight = 0;
    for (const auto& [id, job] : jobs_) in_flight += job.in_flight;
    return in_flight;
  }
  size_t size() const { return jobs_.size(); }
  Ids NextToTry(size_t max_in_flight) const {
    size_t in_flight = InFlight();
    Ids ready;
    for (const auto& [id, job] : jobs_) {
      if (ready.size() + in_flight >= max_in_flight) break;
      if (!job.in_flight && !blocked_.count(job.key)) ready.push_back(id);
    }
    return ready;
  }
  void Pass(size_t max_in_flight, const std::function<void(uint64_t)>& take) {
    size_t in_flight = InFlight();
    for (uint64_t id : NextToTry(max_in_flight)) {
      if (in_flight >= max_in_flight) break;
      if (!MayTake(id)) continue;
      ++in_flight;
      take(id);
    }
  }

 private:
  std::map<uint64_t, Entry> jobs_;
  std::set<std::string> blocked_;
  uint64_t next_generation_ = 0;
};

uint64_t FromEnvironment(const char* name, uint64_t fallback) {
  const char* value = getenv(name);
  return value == nullptr ? fallback : std::strtoull(value, nullptr, 10);
}

std::string Show(const Ids& ids) {
  std::string out = "[";
  for (uint64_t id : ids) out += (out.size() > 1 ? " " : "") + std::to_string(id);
  return out + "]";
}

// One sequence: the same random operations on both lists, compared after
// each. Returns "" or what differed, with the steps that led there.
class WaitingListModel {
 public:
  explicit WaitingListModel(uint64_t seed) : seed_(seed), random_(seed) {}

  std::string Run(int steps) {
    for (int step = 0; step < steps; ++step) {
      Step();
      if (!failed_.empty()) break;
      Compare();
      if (!failed_.empty()) break;
    }
    if (failed_.empty()) return "";
    return "seed " + std::to_string(seed_) + ": " + failed_ + "\nsteps:\n" + log_.str();
  }

 private:
  static constexpr uint64_t kMaxId = 40;
  uint64_t Pick(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(random_); }
  std::string Key() { return KeyNumber(Pick(kKeys)); }
  uint64_t Id() {
    // Mostly new ids (as the spool gives them), some the list may hold (a re-queue).
    if (Pick(3) == 0) return 1 + Pick(kMaxId);
    if (next_id_ < kMaxId) ++next_id_;
    return next_id_;
  }
  void Add(uint64_t id, bool stored, const std::string& key) {
    log_ << "  Add(" << id << ", " << stored << ", " << key << ")\n";
    uint64_t a = list_.Add(id, stored, key);
    uint64_t b = reference_.Add(id, stored, key);
    if (a != b) failed_ = "Add: generation " + std::to_string(a) + " vs " + std::to_string(b);
  }

  void Step() {
    switch (Pick(10)) {
      case 0:
      case 1:
        return Add(Id(), Pick(2) == 0, Key());
      case 2: {
        uint64_t id = 1 + Pick(kMaxId);
        log_ << "  Erase(" << id << ")\n";
        if (list_.Erase(id) != reference_.Erase(id)) failed_ = "Erase differs";
        return;
      }
      case 3: {  // a placement or a check comes back, for the current entry or a stale one
        uint64_t id = 1 + Pick(kMaxId);
        const ReferenceList::Entry* entry = reference_.Find(id);
        uint64_t generation = entry != nullptr && Pick(4) != 0 ? entry->generation : 1 + Pick(generations() + 1);
        log_ << "  Return(" << id << ", " << generation << ")\n";
        if (list_.Return(id, generation) != reference_.Return(id, generation)) failed_ = "Return differs";
        return;
      }
      case 4: {  // refused for now: why, and its key held back
        uint64_t id = 1 + Pick(kMaxId);
        const ReferenceList::Entry* entry = reference_.Find(id);
        if (entry == nullptr) return;
        std::string key = entry->key, why = "refused " + std::to_string(Pick(100));
        log_ << "  Return(" << id << ", current) SetWhy(" << why << ") Block(" << key << ")\n";
        bool a = list_.Return(id, entry->generation), b = reference_.Return(id, entry->generation);
        if (a != b) failed_ = "Return differs";
        list_.SetWhy(id, why);
        reference_.SetWhy(id, why);
        list_.Block(key);
        reference_.Block(key);
        return;
      }
      case 5: {
        std::string key = Key();
        log_ << "  Block(" << key << ")\n";
        list_.Block(key);
        reference_.Block(key);
        return;
      }
      case 6:
        log_ << "  ClearBlocked()\n";
        list_.ClearBlocked();
        reference_.ClearBlocked();
        return;
      default:
        return Pass();
    }
  }

  // A pass whose takes do what TakeWaiting and an answer that comes at once
  // may do; both lists draw the same choices while they take the same jobs.
  void Pass() {
    const size_t max_in_flight = 1 + Pick(8);
    const uint64_t seed = random_();
    log_ << "  Pass(" << max_in_flight << ", choices " << seed << ")\n";
    Ids a = PassOn(list_, max_in_flight, seed, &WaitingListModel::AddToList);
    Ids b = PassOn(reference_, max_in_flight, seed, &WaitingListModel::AddToReference);
    if (a != b) failed_ = "Pass took " + Show(a) + ", the reference " + Show(b);
  }
  uint64_t AddToList(uint64_t id, const std::string& key) { return list_.Add(id, true, key); }
  uint64_t AddToReference(uint64_t id, const std::string& key) { return reference_.Add(id, true, key); }

  template <typename List>
  Ids PassOn(List& list, size_t max_in_flight, uint64_t seed,
             uint64_t (WaitingListModel::*add)(uint64_t, const std::string&)) {
    std::mt19937_64 choices(seed);
    auto pick = [&](uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(choices); };
    Ids taken;
    list.Pass(max_in_flight, [&](uint64_t id) {
      taken.push_back(id);
      switch (pick(10)) {
        case 0:  // gone from the spool, or failed
          list.Erase(id);
          return;
        case 1:  // the spool failed: taken next time
          return;
        case 2: {  // an answer at once: refused for now
          uint64_t generation = list.Take(id);
          list.Return(id, generation);
          list.Block(list.Find(id)->key);
          return;
        }
        case 3: {  // an answer at once: placed
          list.Take(id);
          list.Erase(id);
          return;
        }
        case 4: {  // an answer at once: asked again next pass
          uint64_t generation = list.Take(id);
          list.Return(id, generation);
          return;
        }
        case 5:  // a restart re-queues another job meanwhile
          (this->*add)(1 + pick(kMaxId), KeyNumber(pick(kKeys)));
          list.Take(id);
          return;
        default:
          list.Take(id);
          return;
      }
    });
    return taken;
  }
  static constexpr uint64_t kKeys = 5;
  static std::string KeyNumber(uint64_t n) {
    static const char* const kNames[kKeys] = {"now|", "now|h2", "batch|", "batch|h3", "wait|"};
    return kNames[n];
  }
  uint64_t generations() const { return list_.size() + next_id_ * 2; }

  void Compare() {
    if (list_.size() != reference_.size()) failed_ = "size differs";
    if (list_.in_flight() != reference_.InFlight())
      failed_ = "in flight " + std::to_string(list_.in_flight()) + " vs " + std::to_string(reference_.InFlight());
    for (uint64_t id = 1; id <= kMaxId && failed_.empty(); ++id) {
      const WaitingList::Job* a = list_.Find(id);
      const ReferenceList::Entry* b = reference_.Find(id);
      if ((a == nullptr) != (b == nullptr)) {
        failed_ = "job " + std::to_string(id) + " is in one list only";
      } else if (a != nullptr && (a->stored != b->stored || a->key != b->key || a->in_flight != b->in_flight ||
                                  a->generation != b->generation || a->why != b->why || a->record_id != id)) {
        failed_ = "job " + std::to_string(id) + " differs";
      } else if (list_.MayTake(id) != reference_.MayTake(id)) {
        failed_ = "MayTake(" + std::to_string(id) + ") differs";
      }
    }
    for (uint64_t n = 0; n < kKeys; ++n)
      if (list_.Blocked(KeyNumber(n)) != reference_.Blocked(KeyNumber(n))) failed_ = "Blocked(" + KeyNumber(n) + ") differs";
    for (size_t max_in_flight : {1, 3, 8, 100}) {
      Ids a = list_.NextToTry(max_in_flight), b = reference_.NextToTry(max_in_flight);
      if (a != b) failed_ = "NextToTry(" + std::to_string(max_in_flight) + ") " + Show(a) + " vs " + Show(b);
    }
  }

  uint64_t seed_;
  std::mt19937_64 random_;
  uint64_t next_id_ = 0;
  WaitingList list_;
  ReferenceList reference_;
  std::ostringstream log_;
  std::string failed_;
};

TEST(WaitingListModelTest, OffersWhatTheWholeWalkOffered) {
  const uint64_t first = FromEnvironment("QUEUE_MODEL_SEED", 1);
  // Fewer under the sanitizers (5x slower at -O0, and CI's longest unit test
  // there): the plain run covers the sequences, the sanitized one the memory
  // and races in them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr uint64_t kDefaultSequences = 100;
#else
  constexpr uint64_t kDefaultSequences = 500;
#endif
  const uint64_t sequences = FromEnvironment("QUEUE_MODEL_SEQUENCES", kDefaultSequences);
  const int steps = static_cast<int>(FromEnvironment("QUEUE_MODEL_STEPS", 300));
  for (uint64_t seed = first; seed < first + sequences; ++seed) {
    std::string failed = WaitingListModel(seed).Run(steps);
    if (!failed.empty()) {
      ADD_FAILURE() << failed << "replay with QUEUE_MODEL_SEED=" << seed << " QUEUE_MODEL_SEQUENCES=1";
      return;
    }
  }
}

}  // namespace
}  // namespace queue::daemon
