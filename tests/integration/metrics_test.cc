// queued --metrics, scraped by a real Prometheus: a cluster of three daemons,
// each with its own metrics port, runs jobs (one on another host), and
// Prometheus's query API must then show what happened.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "cluster_fixture.h"

namespace queue::testing {
namespace {

// GET `path` from ADDR:PORT over HTTP/1.0; the body, or "" on any failure.
std::string HttpGet(const std::string& address, uint16_t port, const std::string& path) {
  sockaddr_in where{};
  where.sin_family = AF_INET;
  where.sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &where.sin_addr);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&where), sizeof where) == 0) {
    std::string request = "GET " + path + " HTTP/1.0\r\nHost: " + address + "\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;) answer.append(buffer, n);
    }
  }
  close(fd);
  auto body = answer.find("\r\n\r\n");
  return answer.rfind("HTTP/1.", 0) == 0 && answer.find(" 200 ") != std::string::npos && body != std::string::npos
             ? answer.substr(body + 4)
             : "";
}

std::string UrlEncode(const std::string& text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '_' || c == '-' || c == '.')
      out += static_cast<char>(c);
    else
      out += std::string("%") + kHex[c >> 4] + kHex[c & 15];
  }
  return out;
}

std::string Which(const std::string& program) {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"})
    if (access((std::string(dir) + "/" + program).c_str(), X_OK) == 0) return std::string(dir) + "/" + program;
  return "";
}

class PrometheusServer {
 public:
  PrometheusServer(const std::string& dir, const std::string& address, const std::vector<std::string>& targets)
      : address_(address), port_(FreePortOn(address)) {
    std::string config = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                         "scrape_configs:\n  - job_name: queue\n    static_configs:\n      - targets: [";
    for (size_t i = 0; i < targets.size(); ++i) config += (i ? ", '" : "'") + targets[i] + "'";
    config += "]\n";
    WriteFile(dir + "/prometheus.yml", config);
    std::filesystem::create_directories(dir + "/tsdb");
    process_ = StartBackground({Which("prometheus"), "--config.file=" + dir + "/prometheus.yml",
                                "--storage.tsdb.path=" + dir + "/tsdb",
                                "--web.listen-address=" + address + ":" + std::to_string(port_)},
                               {}, dir + "/prometheus.out", dir + "/prometheus.err");
    err_path_ = dir + "/prometheus.err";
  }
  ~PrometheusServer() {
    // Our child, not yet reaped: its pid cannot have been reused.
    if (process_.pid > 0) {
      kill(process_.pid, SIGTERM);
      if (!WaitChild(process_.pid, std::chrono::seconds(10))) {
        kill(process_.pid, SIGKILL);
        WaitChild(process_.pid, std::chrono::seconds(10));
      }
    }
  }

  // The value of an instant query that returns one number, or nullopt.
  std::optional<double> Query(const std::string& query) {
    std::string body = HttpGet(address_, port_, "/api/v1/query?query=" + UrlEncode(query));
    auto json = nlohmann::json::parse(body, nullptr, false);
    if (json.is_discarded() || json.value("status", "") != "success") return std::nullopt;
    const auto& result = json["data"]["result"];
    if (!result.is_array() || result.size() != 1) return std::nullopt;
    return std::stod(result[0]["value"][1].get<std::string>());
  }

  // Until `query` gives `expected`; says what it gave last when it never does.
  ::testing::AssertionResult WaitFor(const std::string& query, double expected) {
    std::optional<double> last;
    if (WaitUntil([&] { return (last = Query(query)) && *last == expected; }, std::chrono::seconds(60)))
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << query << " gave " << (last ? std::to_string(*last) : "nothing")
                                         << ", not " << expected << "; prometheus said:\n" << ReadFile(err_path_);
  }

  pid_t pid() const { return process_.pid; }

 private:
  std::string address_;
  uint16_t port_;
  Background process_;
  std::string err_path_;
};

TEST(MetricsTest, APrometheusScrapeOfThreeHostsShowsTheirJobsLoadAndPeers) {
  ASSERT_NE(Which("prometheus"), "") << "prometheus is missing: scripts/install-deps.sh installs it";
  const std::string address = LoopbackAddress();
  ClusterOptions options;
  std::vector<std::string> targets;
  for (int i = 0; i < 3; ++i) {
    targets.push_back(address + ":" + std::to_string(FreePortOn(address)));
    options.host_daemon_args[i] = {"--metrics", targets.back()};
  }
  auto cluster = TestCluster::Start(3, options);
  ASSERT_TRUE(cluster->WaitForView(std::chrono::seconds(20)));
  for (int i = 0; i < 3; ++i) EXPECT_NE(cluster->log(i).find("metrics on http://" + targets[i]), std::string::npos);

  // Three jobs, submitted on host 0: two run there, one on host 1.
  for (int host : {0, 0, 1}) {
    auto run = cluster->Queue(0, {"-n", "-h", cluster->entry(host), "--", "true"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
  }

  PrometheusServer prometheus(cluster->dir(), address, targets);
  ASSERT_GT(prometheus.pid(), 0);
  // Scraped as OpenMetrics (Prometheus asks for it first): `up` is 0 for a
  // target whose text it cannot parse.
  EXPECT_TRUE(prometheus.WaitFor("sum(up{job=\"queue\"})", 3));
  EXPECT_TRUE(prometheus.WaitFor("sum(queue_jobs_finished_total)", 3));
  EXPECT_TRUE(prometheus.WaitFor("sum(queue_jobs_finished_total{state=\"done\"})", 3));
  EXPECT_TRUE(prometheus.WaitFor("sum(queue_runs_started_total)", 3));
  EXPECT_TRUE(prometheus.WaitFor("sum(queue_placements_total{outcome=\"peer\"})", 1));
  EXPECT_TRUE(prometheus.WaitFor("sum(queue_placements_total{outcome=\"here\"})", 2));
  EXPECT_TRUE(prometheus.WaitFor("count(queue_load)", 3));
  EXPECT_TRUE(prometheus.WaitFor("min(queue_peers_up)", 2));
  EXPECT_TRUE(prometheus.WaitFor("count(queue_peers_up)", 3));
  EXPECT_TRUE(prometheus.WaitFor("sum(queue_peers_down)", 0));
  EXPECT_TRUE(prometheus.WaitFor("count(process_resident_memory_bytes)", 3));

  // A host that stops is seen down by the other two.
  cluster->StopDaemon(2);
  EXPECT_TRUE(prometheus.WaitFor("sum(up{job=\"queue\"})", 2));
  EXPECT_TRUE(prometheus.WaitFor("sum(queue_peers_down)", 2));
}

// The endpoint answers nothing but the metrics, and its default is loopback.
TEST(MetricsTest, TheEndpointServesOnlyMetrics) {
  const std::string address = LoopbackAddress();
  const uint16_t port = FreePortOn(address);
  ClusterOptions options;
  options.host_daemon_args[0] = {"--metrics", address + ":" + std::to_string(port)};
  auto cluster = TestCluster::Start(1, options);
  std::string text;
  ASSERT_TRUE(WaitUntil([&] { return !(text = HttpGet(address, port, "/metrics")).empty(); }, std::chrono::seconds(10)))
      << cluster->log(0);
  EXPECT_NE(text.find("# TYPE queue_jobs_submitted_total counter"), std::string::npos) << text;
  EXPECT_EQ(HttpGet(address, port, "/metrics/../etc/passwd"), "");
  EXPECT_EQ(HttpGet(address, port, "/nothing"), "");
}

}  // namespace
}  // namespace queue::testing
