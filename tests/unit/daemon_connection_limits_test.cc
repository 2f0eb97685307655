// Tests of the bookkeeping that bounds connections (issue 12): the local
// connection table, the accept throttle, refusal logs, pending handshakes,
// and the capping of a job's limits by its submitter's real ones.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/pending_handshakes.h"
#include "daemon/accept_throttle.h"
#include "daemon/caller_limits.h"
#include "daemon/connection_table.h"

namespace queue::daemon {
namespace {

ConnectionCaps SmallCaps() {
  ConnectionCaps caps;
  caps.total = 10;
  caps.per_uid = 4;
  caps.reserve = 3;
  caps.uid_memory = 100;
  return caps;
}

TEST(ConnectionTable, CapsOneUser) {
  auto table = ConnectionTable::Create(SmallCaps());
  std::vector<std::shared_ptr<ConnectionTable::Slot>> held;
  for (int i = 0; i < 4; ++i) {
    auto a = table->Admit(1000);
    ASSERT_TRUE(a.slot) << a.refusal;
    held.push_back(a.slot);
  }
  auto refused = table->Admit(1000);
  EXPECT_FALSE(refused.slot);
  EXPECT_NE(refused.refusal.find("uid 1000 already holds 4"), std::string::npos) << refused.refusal;
  EXPECT_TRUE(table->Admit(1001).slot);  // another user is not affected
  held.pop_back();                       // one closes
  EXPECT_EQ(table->of(1000), 3u);
  EXPECT_TRUE(table->Admit(1000).slot);
}

TEST(ConnectionTable, KeepsAReserveForUsersWhoHoldNone) {
  auto table = ConnectionTable::Create(SmallCaps());
  std::vector<std::shared_ptr<ConnectionTable::Slot>> held;
  // Two users take all but the reserve (7 of 10).
  for (uint32_t uid : {1u, 1u, 1u, 1u, 2u, 2u, 2u}) held.push_back(table->Admit(uid).slot);
  ASSERT_EQ(table->total(), 7u);
  EXPECT_FALSE(table->Admit(2).slot);  // holds some: not from the reserve
  for (uint32_t uid : {3u, 4u, 5u}) {
    auto a = table->Admit(uid);
    ASSERT_TRUE(a.slot) << uid << ": " << a.refusal;
    held.push_back(a.slot);
  }
  auto full = table->Admit(6);
  EXPECT_FALSE(full.slot);
  EXPECT_NE(full.refusal.find("its limit"), std::string::npos) << full.refusal;
}

TEST(ConnectionTable, OneBudgetPerUidSharedByItsConnections) {
  auto table = ConnectionTable::Create(SmallCaps());
  auto a = table->Admit(7), b = table->Admit(7), c = table->Admit(8);
  EXPECT_EQ(a.budget, b.budget);
  EXPECT_NE(a.budget, c.budget);
  EXPECT_TRUE(a.budget->Charge(60));
  EXPECT_FALSE(b.budget->Charge(60));  // 120 > 100: the user's, not the connection's
  EXPECT_TRUE(c.budget->Charge(60));
  a.budget->Release(60);
  EXPECT_TRUE(b.budget->Charge(60));
}

TEST(ConnectionTable, SlotsOutliveTheirTable) {
  std::shared_ptr<ConnectionTable::Slot> slot;
  {
    auto table = ConnectionTable::Create(SmallCaps());
    slot = table->Admit(1).slot;
  }
  slot.reset();  // gives its place back to a table only it kept alive
}

TEST(ConnectionCaps, FollowTheDescriptorLimit) {
  auto small = ConnectionCaps::ForDescriptorLimit(256);
  EXPECT_EQ(small.total, 64u);
  EXPECT_EQ(small.per_uid, 16u);
  EXPECT_LT(small.reserve, small.total);
  auto large = ConnectionCaps::ForDescriptorLimit(1 << 20);
  EXPECT_EQ(large.total, 4096u);
  EXPECT_EQ(large.per_uid, 256u);
}

TEST(AcceptThrottle, PausesLongerEachTimeAndLogsOncePerInterval) {
  AcceptThrottle throttle("the socket");
  auto t = AcceptThrottle::Clock::time_point{} + std::chrono::hours(1);
  auto first = throttle.Failed("Too many open files", t);
  ASSERT_TRUE(first.log);
  EXPECT_NE(first.log->find("cannot accept on the socket: Too many open files"), std::string::npos);
  EXPECT_EQ(first.pause, AcceptThrottle::kFirstPause);
  std::chrono::steady_clock::duration last = first.pause;
  int logged = 0;
  for (int i = 1; i < 100; ++i) {
    auto v = throttle.Failed("Too many open files", t + std::chrono::milliseconds(100 * i));
    EXPECT_GE(v.pause, last);
    EXPECT_LE(v.pause, AcceptThrottle::kLongestPause);
    last = v.pause;
    logged += v.log.has_value();
  }
  EXPECT_EQ(logged, 0);
  auto later = throttle.Failed("Too many open files", t + AcceptThrottle::kLogInterval + std::chrono::seconds(1));
  ASSERT_TRUE(later.log);
  EXPECT_NE(later.log->find("99 more failures"), std::string::npos) << *later.log;
  throttle.Succeeded();
  EXPECT_EQ(throttle.Failed("x", t + std::chrono::hours(1)).pause, AcceptThrottle::kFirstPause);
}

TEST(RefusalLog, OneLinePerKeyPerInterval) {
  RefusalLog log;
  auto t = RefusalLog::Clock::time_point{} + std::chrono::hours(1);
  EXPECT_TRUE(log.Note("uid 5", "refused", t));
  EXPECT_FALSE(log.Note("uid 5", "refused", t + std::chrono::seconds(1)));
  EXPECT_FALSE(log.Note("uid 5", "refused", t + std::chrono::seconds(2)));
  EXPECT_TRUE(log.Note("uid 6", "refused", t + std::chrono::seconds(2)));
  auto again = log.Note("uid 5", "refused", t + RefusalLog::kInterval);
  ASSERT_TRUE(again);
  EXPECT_NE(again->find("and 2 more like it"), std::string::npos) << *again;
}

TEST(PendingHandshakes, ClosesTheOldestToMakeRoom) {
  auth::PendingHandshakes pending(3);
  std::vector<int> closed;
  std::vector<uint64_t> tickets;
  for (int i = 0; i < 3; ++i) tickets.push_back(pending.Add([&closed, i] { closed.push_back(i); }));
  pending.Done(tickets[1]);  // one proves itself
  pending.Add([&closed] { closed.push_back(3); });
  EXPECT_TRUE(closed.empty());
  size_t evicted = 0;
  pending.Add([&closed] { closed.push_back(4); }, &evicted);
  EXPECT_EQ(evicted, 1u);
  EXPECT_EQ(closed, std::vector<int>{0});
  EXPECT_EQ(pending.size(), 3u);
  EXPECT_EQ(pending.evicted_total(), 1u);
}

constexpr const char* kLimits =
    "Limit                     Soft Limit           Hard Limit           Units     \n"
    "Max cpu time              unlimited            unlimited            seconds   \n"
    "Max file size             unlimited            unlimited            bytes     \n"
    "Max data size             unlimited            unlimited            bytes     \n"
    "Max stack size            8388608              unlimited            bytes     \n"
    "Max core file size        0                    unlimited            bytes     \n"
    "Max resident set          unlimited            unlimited            bytes     \n"
    "Max processes             63448                63448                processes \n"
    "Max open files            256                  256                  files     \n"
    "Max locked memory         65536                65536                bytes     \n"
    "Max address space         unlimited            unlimited            bytes     \n"
    "Max file locks            unlimited            unlimited            locks     \n"
    "Max pending signals       63448                63448                signals   \n"
    "Max msgqueue size         819200               819200               bytes     \n"
    "Max nice priority         0                    0                    \n"
    "Max realtime priority     0                    0                    \n"
    "Max realtime timeout      unlimited            unlimited            us        \n";

TEST(CallerLimits, ParsesProcLimits) {
  auto limits = ParseProcLimits(kLimits);
  ASSERT_TRUE(limits.ok()) << limits.message();
  ASSERT_EQ(limits->size(), 16u);
  EXPECT_EQ((*limits)[RLIMIT_NOFILE], (wire::ResourceLimit{RLIMIT_NOFILE, 256, 256}));
  EXPECT_EQ((*limits)[RLIMIT_STACK], (wire::ResourceLimit{RLIMIT_STACK, 8388608, wire::ResourceLimit::kUnlimited}));
  EXPECT_EQ((*limits)[RLIMIT_RTTIME].resource, static_cast<uint32_t>(RLIMIT_RTTIME));
  EXPECT_FALSE(ParseProcLimits("garbage\n").ok());
  EXPECT_FALSE(ParseProcLimits("Max open files  many  256  files\n").ok());
}

TEST(CallerLimits, CapsClaimsAndFillsWhatIsLeftOut) {
  auto real = ParseProcLimits(kLimits);
  ASSERT_TRUE(real.ok());
  // The attack: nofile 256 and memlock 64 KiB claimed as 20,000 and 8 MiB.
  std::vector<wire::ResourceLimit> wanted = {{RLIMIT_NOFILE, 20000, 20000}, {RLIMIT_MEMLOCK, 8 << 20, 8 << 20},
                                             {RLIMIT_CORE, 0, 0}};
  auto lowered = CapLimits(wanted, *real);
  EXPECT_EQ(lowered.size(), 2u);
  auto find = [&](int resource) {
    for (const auto& w : wanted)
      if (w.resource == static_cast<uint32_t>(resource)) return w;
    return wire::ResourceLimit{999, 0, 0};
  };
  EXPECT_EQ(find(RLIMIT_NOFILE), (wire::ResourceLimit{RLIMIT_NOFILE, 256, 256}));
  EXPECT_EQ(find(RLIMIT_MEMLOCK), (wire::ResourceLimit{RLIMIT_MEMLOCK, 65536, 65536}));
  EXPECT_EQ(find(RLIMIT_CORE), (wire::ResourceLimit{RLIMIT_CORE, 0, 0}));  // lowered by the user: kept
  // Left out: the real ones, where they are finite.
  EXPECT_EQ(find(RLIMIT_NPROC), (wire::ResourceLimit{RLIMIT_NPROC, 63448, 63448}));
  EXPECT_EQ(find(RLIMIT_CPU).resource, 999u);  // unlimited: nothing to add
}

TEST(CallerLimits, ReadsTheConnectingProcesssOwnLimits) {
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  auto limits = ReadPeerLimits(pair[0], getpid(), getuid());
  ASSERT_TRUE(limits.ok()) << limits.message();
  EXPECT_EQ((*limits)[RLIMIT_NOFILE].hard,
            nofile.rlim_max == RLIM_INFINITY ? wire::ResourceLimit::kUnlimited : nofile.rlim_max);
  EXPECT_FALSE(ReadPeerLimits(pair[0], 0, getuid()).ok());
  close(pair[0]);
  close(pair[1]);
}

}  // namespace
}  // namespace queue::daemon
