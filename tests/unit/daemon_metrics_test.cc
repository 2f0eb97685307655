// Metrics: the exposition text (both formats, checked by a parser here and by
// Prometheus's own promtool), the counters the ledger and the queue table
// feed, and the HTTP endpoint's answers and bounds.
#include "daemon/metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "daemon/job_ledger.h"
#include "daemon/metrics_http.h"
#include "daemon/queue_table.h"

namespace queue::daemon {
namespace {

namespace fs = std::filesystem;

MetricsRegistry SomeCounters() {
  MetricsRegistry c;
  c.placements[PlacementResult::kHere] = 3;
  c.placements[PlacementResult::kPeer] = 2;
  c.admission_refusals[AdmissionRefusal::kQueueFull] = 7;
  c.offer_failures[OfferFailure::kDeclined] = 1;
  c.jobs_submitted["now"] = 5;
  c.jobs_finished[{"now", "done"}] = 4;
  c.jobs_finished[{"now", "cancelled"}] = 1;
  c.runs_started["now"] = 5;
  c.checkpoints = 2;
  c.migrations = 1;
  c.bytes_sent[TransferKind::kOutput] = 1234;
  c.bytes_received[TransferKind::kRestartFiles] = 1 << 20;
  c.transfer_failures[TransferKind::kOutput] = 1;
  c.restart_failures = 1;
  return c;
}

MetricsSnapshot SomeGauges() {
  MetricsSnapshot g;
  g.load1 = 0.25;
  g.cpus = 4;
  g.jobs = {{"now", "waiting", false, 2}, {"now", "running", true, 1}, {"q\"ue\\ue\nx", "ended", false, 1}};
  g.peers = {{"127.0.0.2:1421", true}, {"127.0.0.3:1421", false}};
  g.process = ReadProcessStats();
  return g;
}

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Parsed {
  std::map<std::string, std::string> types;  // family -> type
  std::set<std::string> helps;
  std::vector<Sample> samples;
  bool eof = false;
  std::vector<std::string> errors;
};

// A strict reading of the text format: every sample belongs to the family
// declared last, with HELP and TYPE; label values are quoted and escaped.
Parsed Parse(const std::string& text, MetricsFormat format) {
  Parsed p;
  std::istringstream in(text);
  std::string line, family;
  while (std::getline(in, line)) {
    if (p.eof) p.errors.push_back("text after # EOF: " + line);
    if (line == "# EOF") {
      p.eof = true;
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) {
      p.helps.insert(line.substr(7, line.find(' ', 7) - 7));
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string type;
      words >> family >> type;
      if (p.types.count(family)) p.errors.push_back("family twice: " + family);
      if (!p.helps.count(family)) p.errors.push_back("TYPE before HELP: " + family);
      p.types[family] = type;
      continue;
    }
    Sample s;
    size_t i = line.find_first_of("{ ");
    s.name = line.substr(0, i);
    if (i != std::string::npos && line[i] == '{') {
      ++i;
      while (line[i] != '}') {
        size_t eq = line.find('=', i);
        std::string key = line.substr(i, eq - i), value;
        if (line[eq + 1] != '"') p.errors.push_back("unquoted label: " + line);
        for (i = eq + 2; line[i] != '"'; ++i) {
          if (line[i] == '\\') {
            ++i;
            value += line[i] == 'n' ? '\n' : line[i];
          } else {
            value += line[i];
          }
        }
        s.labels[key] = value;
        ++i;
        if (line[i] == ',') ++i;
      }
      ++i;
    }
    s.value = std::strtod(line.c_str() + i + 1, nullptr);
    const bool counter = p.types[family] == "counter";
    std::string expected = counter && format == MetricsFormat::kOpenMetrics ? family + "_total" : family;
    if (s.name != expected) p.errors.push_back("sample " + s.name + " outside its family " + family);
    if (counter && s.name.size() < 6) p.errors.push_back("short counter " + s.name);
    if (counter && s.name.substr(s.name.size() - 6) != "_total") p.errors.push_back("counter without _total: " + s.name);
    p.samples.push_back(s);
  }
  return p;
}

const Sample* Find(const Parsed& p, const std::string& name, const std::map<std::string, std::string>& labels = {}) {
  for (const Sample& s : p.samples)
    if (s.name == name && s.labels == labels) return &s;
  return nullptr;
}

TEST(MetricsText, OpenMetricsDeclaresEveryFamilyAndEndsWithEof) {
  std::string text = RenderMetrics(SomeCounters(), SomeGauges(), MetricsFormat::kOpenMetrics);
  Parsed p = Parse(text, MetricsFormat::kOpenMetrics);
  EXPECT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors) << "\n" << text;
  EXPECT_TRUE(p.eof);
  EXPECT_EQ(text.substr(text.size() - 6), "# EOF\n");
  EXPECT_EQ(p.types["queue_placements"], "counter");
  EXPECT_EQ(p.types["queue_load"], "gauge");
  ASSERT_NE(Find(p, "queue_placements_total", {{"outcome", "peer"}}), nullptr);
  EXPECT_EQ(Find(p, "queue_placements_total", {{"outcome", "peer"}})->value, 2);
  // Every outcome and reason is there from the start, at 0.
  ASSERT_NE(Find(p, "queue_placements_total", {{"outcome", "unanswered"}}), nullptr);
  EXPECT_EQ(Find(p, "queue_placements_total", {{"outcome", "unanswered"}})->value, 0);
  ASSERT_NE(Find(p, "queue_admission_refusals_total", {{"reason", "queue_full"}}), nullptr);
  EXPECT_EQ(Find(p, "queue_admission_refusals_total", {{"reason", "queue_full"}})->value, 7);
  ASSERT_NE(Find(p, "queue_admission_refusals_total", {{"reason", "spool"}}), nullptr);
  ASSERT_NE(Find(p, "queue_jobs_finished_total", {{"queue", "now"}, {"state", "done"}}), nullptr);
  EXPECT_EQ(Find(p, "queue_jobs_finished_total", {{"queue", "now"}, {"state", "done"}})->value, 4);
  ASSERT_NE(Find(p, "queue_transfer_received_bytes_total", {{"kind", "restart_files"}}), nullptr);
  EXPECT_EQ(Find(p, "queue_transfer_received_bytes_total", {{"kind", "restart_files"}})->value, 1 << 20);
  ASSERT_NE(Find(p, "queue_load"), nullptr);
  EXPECT_EQ(Find(p, "queue_load")->value, 0.25);
  EXPECT_EQ(Find(p, "queue_peers_up")->value, 1);
  EXPECT_EQ(Find(p, "queue_peers_down")->value, 1);
  EXPECT_EQ(Find(p, "queue_peer_up", {{"peer", "127.0.0.3:1421"}})->value, 0);
  ASSERT_NE(Find(p, "queue_jobs", {{"queue", "now"}, {"phase", "running"}, {"origin", "peer"}}), nullptr);
  ASSERT_NE(Find(p, "process_resident_memory_bytes"), nullptr);
  EXPECT_GT(Find(p, "process_resident_memory_bytes")->value, 0);
  EXPECT_GT(Find(p, "process_open_fds")->value, 0);
  EXPECT_GT(Find(p, "process_start_time_seconds")->value, 1.6e9);
}

TEST(MetricsText, PrometheusFormatNamesCountersWithTotalAndHasNoEof) {
  std::string text = RenderMetrics(SomeCounters(), SomeGauges(), MetricsFormat::kPrometheus);
  Parsed p = Parse(text, MetricsFormat::kPrometheus);
  EXPECT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors) << "\n" << text;
  EXPECT_FALSE(p.eof);
  EXPECT_EQ(p.types["queue_placements_total"], "counter");
  EXPECT_EQ(p.types.count("queue_placements"), 0U);
}

TEST(MetricsText, LabelValuesAreEscaped) {
  std::string text = RenderMetrics(SomeCounters(), SomeGauges(), MetricsFormat::kOpenMetrics);
  EXPECT_NE(text.find("queue=\"q\\\"ue\\\\ue\\nx\""), std::string::npos) << text;
  Parsed p = Parse(text, MetricsFormat::kOpenMetrics);
  EXPECT_NE(Find(p, "queue_jobs", {{"queue", "q\"ue\\ue\nx"}, {"phase", "ended"}, {"origin", "here"}}), nullptr);
}

// Prometheus's own checker (Debian's prometheus package ships promtool): the
// text parses, and its lint finds nothing to say.
TEST(MetricsText, PromtoolChecksThePrometheusFormat) {
  char templ[] = "/tmp/queue-metrics-XXXXXX";
  int fd = mkstemp(templ);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(templ) << RenderMetrics(SomeCounters(), SomeGauges(), MetricsFormat::kPrometheus);
  std::string command = std::string("promtool check metrics < ") + templ + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[512];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  int status = pclose(pipe);
  unlink(templ);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << output << "(is promtool installed? scripts/install-deps.sh installs prometheus)";
  EXPECT_EQ(output, "");
}

TEST(MetricsText, FormatFollowsTheAcceptHeader) {
  EXPECT_EQ(FormatFor("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
            MetricsFormat::kOpenMetrics);
  EXPECT_EQ(FormatFor("text/plain"), MetricsFormat::kPrometheus);
  EXPECT_EQ(FormatFor(""), MetricsFormat::kPrometheus);
  EXPECT_EQ(std::string(ContentType(MetricsFormat::kOpenMetrics)),
            "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

// Every metric the Grafana dashboard draws is one queued exposes.
TEST(MetricsText, TheGrafanaDashboardUsesOnlyExposedMetrics) {
  std::ifstream file(std::string(QUEUE_SOURCE_DIR) + "/packaging/grafana-queue-dashboard.json");
  ASSERT_TRUE(file.good());
  auto dashboard = nlohmann::json::parse(file, nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded());
  Parsed exposed = Parse(RenderMetrics(SomeCounters(), SomeGauges(), MetricsFormat::kPrometheus),
                         MetricsFormat::kPrometheus);
  std::set<std::string> names;
  for (const Sample& s : exposed.samples) names.insert(s.name);
  const std::regex metric(R"(\b(queue|process)_[a-z_]+\b)");
  size_t used = 0;
  ASSERT_TRUE(dashboard["panels"].is_array());
  for (const auto& panel : dashboard["panels"])
    for (const auto& target : panel["targets"]) {
      const std::string expr = target["expr"].get<std::string>();
      for (std::sregex_iterator it(expr.begin(), expr.end(), metric), end; it != end; ++it, ++used)
        EXPECT_TRUE(names.count(it->str())) << it->str() << " in \"" << expr << "\" is not exposed";
    }
  EXPECT_GE(used, 10U);
}

// ---- What feeds the counters ----

TEST(MetricsCounters, TheLedgerCountsSubmissionsRunsAndEnds) {
  char templ[] = "/tmp/queue-metrics-ledger-XXXXXX";
  std::string dir = mkdtemp(templ);
  {
    asio::io_context io;
    auto store = spool::JobStore::Open(dir + "/jobs.db");
    ASSERT_TRUE(store.ok()) << store.message();
    GroupCommit batch(io, **store, std::chrono::milliseconds(5));
    JobLedger ledger(**store, batch);
    MetricsRegistry metrics;
    ledger.CountIn(&metrics);
    spool::JobRecord r;
    r.uid = 1000;
    r.queue = "now";
    auto first = ledger.Submit(r);
    auto second = ledger.Submit(r);
    ASSERT_TRUE(first.ok() && second.ok());
    EXPECT_EQ(metrics.jobs_submitted["now"], 2U);
    ASSERT_TRUE(ledger.AdmitLocal(*first, 0, "me:1", 1).ok());
    EXPECT_EQ(metrics.runs_started["now"], 1U);
    ASSERT_TRUE(ledger.EndRun(*first, 0, RunEnd{spool::JobState::kDone, 0}).ok());  // interactive: closed at once
    ASSERT_TRUE(ledger.EndWaiting(*second, spool::JobState::kCancelled, "cancelled", 2).ok());
    EXPECT_EQ((metrics.jobs_finished[{"now", "done"}]), 1U);
    EXPECT_EQ((metrics.jobs_finished[{"now", "cancelled"}]), 1U);
    // A refused transition counts nothing.
    EXPECT_FALSE(ledger.EndWaiting(*second, spool::JobState::kCancelled, "again", 3).ok());
    EXPECT_EQ((metrics.jobs_finished[{"now", "cancelled"}]), 1U);
    auto counts = store.value()->CountUnfinished();
    ASSERT_TRUE(counts.ok()) << counts.message();
    EXPECT_TRUE(counts->empty());
  }
  fs::remove_all(dir);
}

TEST(MetricsCounters, TheStoreCountsUnfinishedJobsByPhase) {
  char templ[] = "/tmp/queue-metrics-store-XXXXXX";
  std::string dir = mkdtemp(templ);
  {
    auto store = spool::JobStore::Open(dir + "/jobs.db");
    ASSERT_TRUE(store.ok()) << store.message();
    auto add = [&](const char* queue, spool::JobState state, const char* exec_host, const char* origin, bool reported) {
      spool::JobRecord r;
      r.queue = queue;
      r.state = state;
      r.exec_host = exec_host;
      r.origin_host = origin;
      r.origin_id = *origin ? 9 : 0;
      r.end_reported = reported;
      ASSERT_TRUE((*store)->Add(r).ok());
    };
    add("now", spool::JobState::kWaiting, "", "", false);
    add("now", spool::JobState::kWaiting, "", "", false);
    add("now", spool::JobState::kWaiting, "h:1", "", false);
    add("now", spool::JobState::kRunning, "me:1", "h:1", false);
    add("wait", spool::JobState::kDone, "me:1", "h:1", false);
    add("wait", spool::JobState::kDone, "me:1", "", true);  // closed: not counted
    auto counts = (*store)->CountUnfinished();
    ASSERT_TRUE(counts.ok()) << counts.message();
    std::map<std::string, uint64_t> seen;
    for (const auto& c : *counts)
      seen[c.queue + "/" + std::string(spool::ToString(c.state)) + (c.offered ? "/offered" : "") +
           (c.from_peer ? "/peer" : "")] = c.count;
    EXPECT_EQ(seen, (std::map<std::string, uint64_t>{
                        {"now/waiting", 2}, {"now/waiting/offered", 1}, {"now/running/offered/peer", 1},
                        {"wait/done/offered/peer", 1}}));
  }
  fs::remove_all(dir);
}

TEST(MetricsCounters, TheQueueTableSaysWhyByKind) {
  char templ[] = "/tmp/queue-metrics-queues-XXXXXX";
  std::string dir = mkdtemp(templ);
  chmod(dir.c_str(), 0700);
  for (auto [queue, profile] : {std::pair{"off", "exec off\n"}, {"full", "exec on\nmaxexec 0\n"},
                                {"busy", "exec on\nloadsched 1\n"}, {"fine", "exec on\n"}}) {
    fs::create_directories(dir + "/" + queue);
    chmod((dir + "/" + queue).c_str(), 0700);
    std::ofstream(dir + "/" + queue + "/profile") << profile;
  }
  QueueTable table(dir, "me:1", 1);
  table.Refresh(true);
  EXPECT_EQ(table.Refuse("off", 0)->kind, AdmissionRefusal::kQueueNotAccepting);
  EXPECT_EQ(table.Refuse("full", 0)->kind, AdmissionRefusal::kQueueFull);
  EXPECT_EQ(table.Refuse("busy", 5)->kind, AdmissionRefusal::kLoad);
  EXPECT_EQ(table.Refuse("nosuch", 0)->kind, AdmissionRefusal::kNoQueue);
  EXPECT_FALSE(table.Refuse("fine", 0).has_value());
  fs::remove_all(dir);
}

// ---- The HTTP endpoint ----

TEST(MetricsAddress, PortAloneIsLoopback) {
  auto port = ParseMetricsAddress("9421");
  ASSERT_TRUE(port.ok()) << port.message();
  EXPECT_EQ(port->host, "127.0.0.1");
  EXPECT_EQ(port->port, 9421);
  auto full = ParseMetricsAddress("0.0.0.0:80");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->host, "0.0.0.0");
  auto v6 = ParseMetricsAddress("[::1]:9");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  for (const char* bad : {"", "x", "1.2.3.4:", "1.2.3.4:70000", "name:80", ":80x", "-1"})
    EXPECT_FALSE(ParseMetricsAddress(bad).ok()) << bad;
}

// One HTTP/1.0 exchange: the whole answer, the server closing at its end.
std::string Exchange(const std::string& address, const std::string& request) {
  auto colon = address.rfind(':');
  sockaddr_in where{};
  where.sin_family = AF_INET;
  where.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &where.sin_addr);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (connect(fd, reinterpret_cast<sockaddr*>(&where), sizeof where) != 0) {
    close(fd);
    return "";
  }
  (void)!write(fd, request.data(), request.size());
  std::string answer;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;) answer.append(buffer, n);
  close(fd);
  return answer;
}

// The status code of an HTTP answer ("HTTP/1.x 200 OK"), or 0.
int HttpStatus(const std::string& answer) {
  if (answer.rfind("HTTP/1.", 0) != 0 || answer.size() < 12) return 0;
  return std::atoi(answer.c_str() + 9);
}

class MetricsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto http = MetricsHttp::Listen("127.0.0.1:0");
    ASSERT_TRUE(http.ok()) << http.message();
    http_ = std::move(http.value());
    loop_ = std::thread([this] { io_.run(); });
    ASSERT_TRUE(http_
                    ->Start([this](MetricsFormat format) {
                      return RenderOnLoop(
                          io_, [format] { return RenderMetrics(SomeCounters(), SomeGauges(), format); },
                          std::chrono::seconds(2));
                    })
                    .ok());
  }
  void TearDown() override {
    http_.reset();
    work_.reset();
    io_.stop();
    loop_.join();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::thread loop_;
  std::unique_ptr<MetricsHttp> http_;
};

TEST_F(MetricsHttpTest, ServesTheMetricsInTheFormatAskedFor) {
  std::string open = Exchange(http_->address(),
                              "GET /metrics HTTP/1.0\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n");
  EXPECT_EQ(HttpStatus(open), 200) << open;
  EXPECT_NE(open.find("application/openmetrics-text; version=1.0.0; charset=utf-8"), std::string::npos);
  EXPECT_EQ(open.substr(open.size() - 6), "# EOF\n");
  std::string plain = Exchange(http_->address(), "GET /metrics HTTP/1.0\r\n\r\n");
  EXPECT_NE(plain.find("text/plain; version=0.0.4"), std::string::npos) << plain;
  EXPECT_NE(plain.find("# TYPE queue_placements_total counter"), std::string::npos);
}

TEST_F(MetricsHttpTest, AnswersNothingElse) {
  EXPECT_EQ(HttpStatus(Exchange(http_->address(), "GET /etc/passwd HTTP/1.0\r\n\r\n")), 404);
  EXPECT_EQ(HttpStatus(Exchange(http_->address(), "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc")), 405);
  std::string index = Exchange(http_->address(), "GET / HTTP/1.0\r\n\r\n");
  EXPECT_NE(index.find("href=\"/metrics\""), std::string::npos) << index;
  // Headers past the connection's memory are refused, not buffered.
  std::string huge = "GET /metrics HTTP/1.0\r\nX-Long: " + std::string(64 << 10, 'a') + "\r\n\r\n";
  std::string answer = Exchange(http_->address(), huge);
  EXPECT_EQ(answer.find("# TYPE"), std::string::npos);
  EXPECT_TRUE(answer.empty() || HttpStatus(answer) >= 400) << answer.substr(0, 200);
}

TEST(MetricsRenderOnLoop, GivesUpWhenTheLoopDoesNotAnswer) {
  asio::io_context io;  // never run
  auto started = std::chrono::steady_clock::now();
  auto text = RenderOnLoop(io, [] { return std::string("x"); }, std::chrono::milliseconds(100));
  EXPECT_FALSE(text.has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
}

}  // namespace
}  // namespace queue::daemon
