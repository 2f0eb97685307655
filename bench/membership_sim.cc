// In-process simulation of failure detection in a large gossip cluster (issue
// 13): how long until a daemon learns that a host died (or hung: to SWIM a
// stopped host is a dead one), and what membership costs each host, at sizes
// this machine cannot start (1,000 and 10,000 hosts).
//
// It follows the protocol of the engine `queued` runs, Serf's memberlist
// (SWIM with Lifeguard's suspicion), with its LAN defaults:
//   - each host probes one member a second, in a shuffled round-robin order,
//     so a dead host is first probed by someone after about a second; a probe
//     that gets no ack (direct or indirect) marks the host suspect at the end
//     of that probe interval;
//   - a suspicion lasts between min = 4 x max(1, log10 N) probe intervals and
//     max = 6 x min: it starts at max and shrinks towards min as
//     k = 4 - 2 = 2 independent suspicions confirm it
//     (max - (max - min) log(c + 1) / log(k + 1)); at its end the host that
//     timed out declares the host dead;
//   - news (suspect, dead) spreads by gossip: every 200 ms each host sends its
//     pending news to 3 random members, each piece sent at most
//     4 x ceil(log10(N + 1)) times by each host, newer news about a host
//     replacing older; the full state is exchanged with one random member
//     every 30 s x (ceil(log2 N - log2 32) + 1) above 32 hosts.
// Left out, which makes the figures a little slow rather than optimistic:
// news piggybacked on probes and acks, and Lifeguard's local-health backoff.
//
// Figures per size: seconds from the death until a given (random) daemon
// knows, and until every host knows (median, 90th percentile, max over the
// trials); messages each host sends per second, idle and during a failure;
// bytes per host per second from the size of a probe packet and of one
// member's entry in a full-state exchange. Neither is known in advance
// (memberlist compresses and encrypts): --packet-bytes is an estimate (a
// ping or an ack is some 30-40 bytes of msgpack, 29 of AES-GCM framing and 28
// of IPv4 and UDP headers), and --measured N:B, the bytes per host per second
// a real N-host cluster sent (bench.py's 200-daemon run), gives the entry's
// size as what the exchanges must account for in that figure.
// Seeded and replayable: --seed.
// Usage: bench_membership_sim [--hosts N,...] [--trials T] [--seed S]
//                             [--packet-bytes B] [--measured N:B]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr double kProbeInterval = 1.0, kGossipInterval = 0.2;
constexpr int kGossipNodes = 3, kSuspicionMult = 4, kSuspicionMaxMult = 6, kRetransmitMult = 4;
constexpr double kPushPullInterval = 30.0;

double MinSuspicion(size_t hosts) {
  return kSuspicionMult * std::max(1.0, std::log10(static_cast<double>(hosts))) * kProbeInterval;
}

int RetransmitLimit(size_t hosts) {
  return kRetransmitMult * static_cast<int>(std::ceil(std::log10(static_cast<double>(hosts) + 1)));
}

double PushPullInterval(size_t hosts) {
  if (hosts <= 32) return kPushPullInterval;
  return kPushPullInterval * (std::ceil(std::log2(static_cast<double>(hosts)) - std::log2(32.0)) + 1);
}

// What one host knows of the failed one, and the news about it it still gossips.
struct HostView {
  bool suspects = false, knows_dead = false;
  double suspicion_start = 0;
  int confirmations = 0;
  std::vector<size_t> suspectors;  // distinct hosts whose suspicion it has heard
  double probe_at = 0;             // its first probe of the failed host after the death
  // The pending broadcast: kind 0 none, 1 suspect (from `from`), 2 dead.
  int news = 0;
  size_t from = 0;
  int sends_left = 0;
};

struct Trial {
  double observer_knows = 0, all_know = 0;
  double gossip_sends_per_host = 0;  // over the whole episode
};

class Episode {
 public:
  Episode(size_t hosts, std::mt19937_64& rng)
      : n_(hosts), rng_(rng), views_(hosts), min_(MinSuspicion(hosts)), max_(kSuspicionMaxMult * min_),
        k_(hosts - 2 < static_cast<size_t>(kSuspicionMult - 2) ? 0 : kSuspicionMult - 2),
        limit_(RetransmitLimit(hosts)) {}

  Trial Run() {
    std::uniform_int_distribution<size_t> any(0, n_ - 1);
    failed_ = any(rng_);
    do observer_ = any(rng_); while (observer_ == failed_);
    // Each live host reaches the failed one somewhere in its next round of
    // N - 1 probes, on a whole probe interval.
    std::uniform_int_distribution<size_t> slot(0, n_ - 2);
    for (size_t h = 0; h < n_; ++h) views_[h].probe_at = static_cast<double>(slot(rng_) + 1) * kProbeInterval;
    Trial t;
    size_t knowing = 0, sends = 0;
    for (double now = 0; knowing < n_ - 1; now += kGossipInterval) {
      for (size_t h = 0; h < n_; ++h) {
        if (h == failed_) continue;
        HostView& v = views_[h];
        // Its own probe failed: it suspects at the end of that interval.
        if (!v.knows_dead && v.probe_at + kProbeInterval <= now + 1e-9 && v.probe_at >= 0) {
          v.probe_at = -1;
          HearSuspicion(h, h, now);
        }
        if (v.suspects && !v.knows_dead && now >= Deadline(v) - 1e-9) LearnDead(h, now);
      }
      sends += GossipRound(now);
      knowing = 0;
      for (size_t h = 0; h < n_; ++h) {
        if (h == failed_ || !views_[h].knows_dead) continue;
        ++knowing;
        if (h == observer_ && t.observer_knows == 0) t.observer_knows = now;
      }
      if (knowing == n_ - 1) t.all_know = now;
      if (now > 1e5) break;  // never: every host's own probe ends in a suspicion
    }
    t.gossip_sends_per_host = static_cast<double>(sends) / static_cast<double>(n_ - 1);
    return t;
  }

 private:
  double Deadline(const HostView& v) const {
    if (k_ < 1) return v.suspicion_start + min_;
    const double frac = std::log(v.confirmations + 1.0) / std::log(k_ + 1.0);
    return v.suspicion_start + std::max(min_, max_ - (max_ - min_) * frac);
  }

  void HearSuspicion(size_t h, size_t from, double now) {
    HostView& v = views_[h];
    if (v.knows_dead) return;
    if (std::find(v.suspectors.begin(), v.suspectors.end(), from) != v.suspectors.end()) return;
    v.suspectors.push_back(from);
    if (!v.suspects) {
      v.suspects = true;
      v.suspicion_start = now;
    } else if (v.confirmations < k_) {
      ++v.confirmations;
    } else {
      return;  // enough confirmations: memberlist no longer passes it on
    }
    Queue(v, 1, from);
  }

  void LearnDead(size_t h, double) {
    HostView& v = views_[h];
    if (v.knows_dead) return;
    v.knows_dead = true;
    Queue(v, 2, h);
  }

  void Queue(HostView& v, int news, size_t from) {
    v.news = news;
    v.from = from;
    v.sends_left = limit_;
  }

  // Every host with news sends it to kGossipNodes random members; what they
  // hear they act on in the next round. Returns the messages sent.
  size_t GossipRound(double now) {
    struct Delivery {
      size_t to;
      int news;
      size_t from;
    };
    std::vector<Delivery> deliveries;
    std::uniform_int_distribution<size_t> any(0, n_ - 1);
    for (size_t h = 0; h < n_; ++h) {
      HostView& v = views_[h];
      if (h == failed_ || v.news == 0) continue;
      for (int i = 0; i < kGossipNodes && v.sends_left > 0; ++i) {
        size_t to;
        do to = any(rng_); while (to == h);
        --v.sends_left;
        deliveries.push_back({to, v.news, v.from});
      }
      if (v.sends_left == 0) v.news = 0;
    }
    for (const Delivery& d : deliveries) {
      if (d.to == failed_) continue;
      if (d.news == 2) LearnDead(d.to, now);
      else HearSuspicion(d.to, d.from, now);
    }
    return deliveries.size();
  }

  size_t n_;
  std::mt19937_64& rng_;
  std::vector<HostView> views_;
  double min_, max_;
  int k_, limit_;
  size_t failed_ = 0, observer_ = 0;
};

double Quantile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(q * static_cast<double>(values.size())))];
}

std::vector<size_t> ParseList(const char* text) {
  std::vector<size_t> out;
  for (const char* p = text; *p;) {
    char* end = nullptr;
    out.push_back(std::strtoull(p, &end, 10));
    p = end;
    if (*p == ',') ++p;
    else if (*p) break;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<size_t> sizes{200, 1000, 10000};
  int trials = 20;
  uint64_t seed = 1;
  double packet_bytes = 90, member_bytes = 0;
  size_t measured_hosts = 0;
  double measured_bytes = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--hosts")) sizes = ParseList(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--trials")) trials = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seed")) seed = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--packet-bytes")) packet_bytes = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--measured"))
      std::sscanf(argv[i + 1], "%zu:%lf", &measured_hosts, &measured_bytes);
    else {
      std::fprintf(stderr, "bench_membership_sim: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (trials < 1 || sizes.empty() || std::any_of(sizes.begin(), sizes.end(), [](size_t n) { return n < 3; })) {
    std::fprintf(stderr, "bench_membership_sim: at least 1 trial and 3 hosts\n");
    return 2;
  }
  // Idle, each host sends a ping and an ack a second (its own probe, and its
  // answer to the one probing it), and starts a full-state exchange (its
  // state out, the peer's back) every PushPullInterval seconds; it answers as
  // many as it starts.
  auto idle_bytes = [&](size_t hosts, double entry) {
    return packet_bytes * 2.0 / kProbeInterval + 4.0 * entry * static_cast<double>(hosts) / PushPullInterval(hosts);
  };
  if (measured_hosts >= 3) {
    member_bytes = std::max(0.0, (measured_bytes - idle_bytes(measured_hosts, 0)) /
                                     (4.0 * static_cast<double>(measured_hosts) / PushPullInterval(measured_hosts)));
  }
  std::mt19937_64 rng(seed);
  std::printf("| hosts | a daemon learns of the death (s): median / p90 / max | every host knows (s): median / max | "
              "suspicion min-max (s) | messages sent per host per s, idle | extra messages per host per failure | "
              "bytes per host per s, idle | full-state exchange every (s) |\n|---|---|---|---|---|---|---|---|\n");
  for (size_t hosts : sizes) {
    std::vector<double> observer, all, sends;
    for (int i = 0; i < trials; ++i) {
      Trial t = Episode(hosts, rng).Run();
      observer.push_back(t.observer_knows);
      all.push_back(t.all_know);
      sends.push_back(t.gossip_sends_per_host);
    }
    const double push_pull = PushPullInterval(hosts);
    const double idle_messages = 2.0 / kProbeInterval + 2.0 / push_pull;
    std::printf("| %zu | %.1f / %.1f / %.1f | %.1f / %.1f | %.0f-%.0f | %.2f | %.1f | %.0f | %.0f |\n", hosts,
                Quantile(observer, 0.5), Quantile(observer, 0.9), Quantile(observer, 1.0), Quantile(all, 0.5),
                Quantile(all, 1.0), MinSuspicion(hosts), kSuspicionMaxMult * MinSuspicion(hosts), idle_messages,
                Quantile(sends, 0.5), idle_bytes(hosts, member_bytes), push_pull);
  }
  std::printf("\n%d trials per size, seed %llu. Bytes: %.0f per probe packet (an estimate) and %.0f per member in a "
              "full-state exchange (%s)\n",
              trials, static_cast<unsigned long long>(seed), packet_bytes, member_bytes,
              measured_hosts >= 3 ? ("what the measured " + std::to_string(measured_hosts) + "-host figure leaves for them")
                                        .c_str()
                                  : "no measured figure given: 0, so the byte figures count probes alone");
  return 0;
}
