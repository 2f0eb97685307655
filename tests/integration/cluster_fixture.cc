// Process plumbing and the N-daemon cluster used by the integration tests.
#include "cluster_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace queue::testing {

namespace {

// Forks background processes (daemons, stubs) from one thread that lives as
// long as the test process, so that each can ask for SIGKILL when the test
// process dies, however it dies (a ctest timeout's SIGKILL runs no
// destructor). PR_SET_PDEATHSIG follows the thread that forked, and tests
// restart daemons from threads of their own that end.
class Launcher {
 public:
  // Runs `child` in a new process (it must exec or _exit) and returns its pid.
  static pid_t Fork(std::function<void()> child) {
    // A forked test process has our memory but not our thread: it makes its own.
    static Launcher* launcher = nullptr;
    static pid_t made_in = 0;
    if (launcher == nullptr || made_in != getpid()) {
      launcher = new Launcher;  // never destroyed: its thread runs until the process ends
      made_in = getpid();
    }
    return launcher->Run(std::move(child));
  }

 private:
  struct Request {
    std::function<void()> child;
    std::promise<pid_t> pid;
  };

  Launcher() { std::thread([this] { Serve(); }).detach(); }

  pid_t Run(std::function<void()> child) {
    Request request{std::move(child), {}};
    std::future<pid_t> pid = request.pid.get_future();
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(&request);
    }
    ready_.notify_one();
    return pid.get();
  }

  void Serve() {
    const pid_t test = getpid();
    for (;;) {
      Request* request = nullptr;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return !requests_.empty(); });
        request = requests_.front();
        requests_.pop_front();
      }
      pid_t pid = fork();
      if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != test) _exit(127);  // the test died before the prctl
        request->child();
        _exit(127);
      }
      request->pid.set_value(pid);
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Request*> requests_;
};

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> MergedEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string var = *e;
    std::string name = var.substr(0, var.find('='));
    bool overridden = false;
    for (const auto& x : extra) overridden |= x.substr(0, x.find('=')) == name;
    if (!overridden) env.push_back(var);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// Whether a TCP socket can bind `address` (any port).
bool CanBind(const std::string& address) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in where{};
  where.sin_family = AF_INET;
  bool ok = fd >= 0 && inet_pton(AF_INET, address.c_str(), &where.sin_addr) == 1 &&
            bind(fd, reinterpret_cast<sockaddr*>(&where), sizeof where) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

// A port of `address` that nothing is bound to, held (the socket stays open)
// until the caller closes `*held`, so that the ports of one cluster differ.
// Binds `address`:`port` (0: any) with a socket of `type`; -1 when taken.
int BindPort(const std::string& address, uint16_t port, int type, uint16_t* bound) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  sockaddr_in where{};
  where.sin_family = AF_INET;
  where.sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &where.sin_addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&where), sizeof where) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  socklen_t len = sizeof where;
  getsockname(fd, reinterpret_cast<sockaddr*>(&where), &len);
  *bound = ntohs(where.sin_port);
  return fd;
}

// A free port whose next count - 1 ports are free too (TCP and UDP), held
// (their sockets added to `held`) until the daemons start.
uint16_t FreePort(const std::string& address, std::vector<int>* held, int count = 1) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    uint16_t port = 0;
    int first = BindPort(address, 0, SOCK_STREAM, &port);
    if (first < 0) throw std::runtime_error("cannot bind " + address + ": " + std::strerror(errno));
    std::vector<int> run{first};
    bool free = port <= 65535 - count;
    for (int k = 1; k < count && free; ++k) {
      uint16_t same = 0;
      for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
        int fd = BindPort(address, static_cast<uint16_t>(port + k), type, &same);
        if (fd < 0) free = false;
        else run.push_back(fd);
      }
    }
    if (free) {
      held->insert(held->end(), run.begin(), run.end());
      return port;
    }
    for (int fd : run) close(fd);
  }
  throw std::runtime_error("no " + std::to_string(count) + " free ports in a row on " + address);
}

}  // namespace

std::string BinDir() {
  if (const char* dir = std::getenv("QUEUE_BIN_DIR"); dir != nullptr) return dir;
  return QUEUE_BIN_DIR;
}

std::string LoopbackAddress() {
  // Linux routes all of 127.0.0.0/8 to lo. The pid gives the last three
  // bytes: pid % 253 + 1 the last (never 0 or 255), the rest of it the two
  // before, so that no two pids share one, and no pid gets 127.0.0.1.
  auto n = static_cast<uint32_t>(getpid());
  uint32_t last = 1 + n % 253;
  n /= 253;
  std::string address =
      "127." + std::to_string(n / 256 % 256) + "." + std::to_string(n % 256) + "." + std::to_string(last);
  return CanBind(address) ? address : "127.0.0.1";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void WriteFile(const std::string& path, const std::string& text, int mode) {
  std::ofstream(path) << text;
  chmod(path.c_str(), static_cast<mode_t>(mode));
}

bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

pid_t ParentOf(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close_paren + 2));
  std::string state;
  pid_t parent = -1;
  rest >> state >> parent;
  return parent;
}

CommandResult RunCommand(const std::vector<std::string>& argv_in, const CommandOptions& options) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  std::vector<std::string> argv = argv_in;
  std::vector<std::string> env = MergedEnvironment(options.env);
  auto c_argv = CStrings(argv);
  auto c_env = CStrings(env);
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    if (!options.cwd.empty() && chdir(options.cwd.c_str()) != 0) _exit(126);
    execve(c_argv[0], c_argv.data(), c_env.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  CommandResult result;
  std::string to_write = options.stdin_data;
  size_t written = 0;
  int in_fd = in[1];
  if (to_write.empty()) {
    close(in_fd);
    in_fd = -1;
  } else {
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }
  auto deadline = std::chrono::steady_clock::now() + options.timeout;
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    pollfd fds[3] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}, {in_fd, POLLOUT, 0}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
      break;
    }
    poll(fds, 3, static_cast<int>(std::min<long>(left.count(), 200)));
    char buffer[65536];
    for (int k = 0; k < 2; ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = read(fds[k].fd, buffer, sizeof buffer);
      if (n > 0) (k == 0 ? result.out : result.err).append(buffer, static_cast<size_t>(n));
      else (k == 0 ? out_open : err_open) = false;
    }
    if (in_fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = write(in_fd, to_write.data() + written, to_write.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 || written == to_write.size()) {
        close(in_fd);
        in_fd = -1;
      }
    }
  }
  if (in_fd >= 0) close(in_fd);
  close(out[0]);
  close(err[0]);
  int status = 0;
  auto waited = WaitChild(pid, result.timed_out ? std::chrono::milliseconds(5000) : options.timeout);
  if (!waited) {
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);
    result.timed_out = true;
  } else {
    status = *waited;
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
  return result;
}

Background StartBackground(const std::vector<std::string>& argv_in, const std::vector<std::string>& env_in,
                           const std::string& out_path, const std::string& err_path) {
  std::vector<std::string> argv = argv_in;
  std::vector<std::string> env = MergedEnvironment(env_in);
  auto c_argv = CStrings(argv);
  auto c_env = CStrings(env);
  pid_t pid = Launcher::Fork([&] {
    setpgid(0, 0);
    int null = open("/dev/null", O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(null, 0);
    dup2(out, 1);
    dup2(err, 2);
    execve(c_argv[0], c_argv.data(), c_env.data());
  });
  return Background{pid, out_path, err_path};
}

std::optional<int> WaitChild(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (done < 0) return std::nullopt;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::unique_ptr<TestCluster> TestCluster::Start(int n, ClusterOptions options) {
  auto cluster = std::unique_ptr<TestCluster>(new TestCluster());
  cluster->options_ = std::move(options);
  char templ[] = "/tmp/queue-test-XXXXXX";
  cluster->dir_ = mkdtemp(templ);
  const std::string& dir = cluster->dir_;
  std::string hosts_text;
  const std::string address = LoopbackAddress();
  std::vector<int> held_ports;
  for (int i = 0; i < n; ++i) {
    Host h;
    if (i < static_cast<int>(cluster->options_.host_entries.size())) {
      h.entry = cluster->options_.host_entries[i];
    } else {
      h.entry = address + ":" + std::to_string(FreePort(address, &held_ports, cluster->options_.ports_per_host));
    }
    std::string base = dir + "/host" + std::to_string(i);
    std::filesystem::create_directories(base);
    h.socket = base + "/queued.sock";
    h.spool = base + "/spool";
    h.loadavg = base + "/loadavg";
    h.clock = base + "/clock";
    h.log = base + "/queued.log";
    hosts_text += h.entry + "\n";
    cluster->hosts_.push_back(h);
  }
  for (int fd : held_ports) close(fd);
  cluster->hosts_file_ = dir + "/hosts";
  WriteFile(cluster->hosts_file_, hosts_text);
  std::string key = dir + "/cluster.key", foreign = dir + "/foreign.key";
  RunCommand({BinDir() + "/queued", "--keygen", key});
  RunCommand({BinDir() + "/queued", "--keygen", foreign});
  for (int i = 0; i < n; ++i) {
    Host& h = cluster->hosts_[i];
    bool is_foreign = std::find(cluster->options_.foreign_key_hosts.begin(), cluster->options_.foreign_key_hosts.end(),
                                i) != cluster->options_.foreign_key_hosts.end();
    h.key = is_foreign ? foreign : key;
    cluster->SetLoad(i, 0.0);
    // The queues exist before the daemon starts, so tests control their profiles.
    for (const char* queue : {"now", "wait"}) {
      std::filesystem::create_directories(h.spool + "/" + queue);
      cluster->WriteProfile(i, queue, "exec on\n");
    }
    chmod(h.spool.c_str(), 0700);
    cluster->StartDaemon(i);
  }
  return cluster;
}

TestCluster::~TestCluster() {
  for (int i = 0; i < size(); ++i) StopDaemon(i, SIGKILL);
  if (std::getenv("QUEUE_KEEP_TEST_DIR") == nullptr) std::filesystem::remove_all(dir_);
}

void TestCluster::SetLoad(int i, double load1) {
  hosts_[i].load1 = load1;
  std::string tmp = hosts_[i].loadavg + ".tmp";
  WriteFile(tmp, std::to_string(load1) + " 0.00 0.00 1/100 1\n");
  std::filesystem::rename(tmp, hosts_[i].loadavg);
}

void TestCluster::SetClock(int i, long long unix_seconds) {
  std::string tmp = hosts_[i].clock + ".tmp";
  WriteFile(tmp, std::to_string(unix_seconds) + "\n");
  std::filesystem::rename(tmp, hosts_[i].clock);
}

void TestCluster::WriteProfile(int i, const std::string& queue, const std::string& text) {
  // Tests run as root in CI; a root-owned cluster must say so to run root's jobs.
  std::string extra = geteuid() == 0 ? "allowroot\n" : "";
  std::string path = hosts_[i].spool + "/" + queue + "/profile";
  std::string tmp = path + ".tmp";
  WriteFile(tmp, text + extra + options_.profile_extra);
  std::filesystem::rename(tmp, path);
}

void TestCluster::StartDaemon(int i) {
  Host& h = hosts_[i];
  std::vector<std::string> argv{BinDir() + "/queued", "-D", "--spooldir", h.spool, "--hosts", hosts_file_, "--key",
                                h.key, "--listen", h.entry, "--socket", h.socket, "--loadavg-file", h.loadavg,
                                "--clock-file", h.clock};
  argv.insert(argv.end(), options_.daemon_args.begin(), options_.daemon_args.end());
  if (auto extra = options_.host_daemon_args.find(i); extra != options_.host_daemon_args.end())
    argv.insert(argv.end(), extra->second.begin(), extra->second.end());
  // A socket left by a daemon killed with SIGKILL would look like a live one.
  if (h.pid <= 0) std::filesystem::remove(h.socket);
  if (auto wrapper = options_.daemon_wrappers.find(i); wrapper != options_.daemon_wrappers.end())
    argv.insert(argv.begin(), wrapper->second.begin(), wrapper->second.end());
  auto on_host = OnHost(i);
  argv.insert(argv.begin(), on_host.begin(), on_host.end());
  auto daemon = StartBackground(argv, {}, h.log, h.log);
  h.pid = daemon.pid;
  WaitUntil([&] { return std::filesystem::exists(h.socket) || WaitChild(h.pid, std::chrono::milliseconds(0)); },
            std::chrono::seconds(10));
}

void TestCluster::SignalDaemon(int i, int signo) {
  if (hosts_[i].pid > 0) kill(hosts_[i].pid, signo);
}

void TestCluster::StopDaemon(int i, int signo) {
  Host& h = hosts_[i];
  if (h.pid <= 0) return;
  kill(h.pid, signo);
  if (!WaitChild(h.pid, std::chrono::seconds(10))) {
    kill(h.pid, SIGKILL);
    WaitChild(h.pid, std::chrono::seconds(10));
  }
  h.pid = -1;
}

std::vector<std::string> TestCluster::OnHost(int i) const {
  auto wrapper = options_.host_wrappers.find(i);
  return wrapper == options_.host_wrappers.end() ? std::vector<std::string>{} : wrapper->second;
}

CommandResult TestCluster::Queue(int i, const std::vector<std::string>& args, CommandOptions options) {
  std::vector<std::string> argv = OnHost(i);
  argv.push_back(BinDir() + "/queue");
  argv.insert(argv.end(), args.begin(), args.end());
  options.env.push_back("QUEUE_SOCKET=" + hosts_[i].socket);
  return RunCommand(argv, options);
}

bool TestCluster::WaitForView(std::chrono::milliseconds timeout, const std::vector<int>& down) {
  return WaitUntil(
      [&] {
        for (int i = 0; i < size(); ++i) {
          if (hosts_[i].pid <= 0) continue;
          auto status = Queue(i, {"--status", "--json"}, {{}, "", std::chrono::milliseconds(5000), ""});
          auto json = nlohmann::json::parse(status.out, nullptr, false);
          if (status.exit_code != 0 || json.is_discarded()) return false;
          for (const auto& h : json["hosts"]) {
            int index = -1;
            for (int k = 0; k < size(); ++k)
              if (hosts_[k].entry == h["host"]) index = k;
            bool expect_alive = std::find(down.begin(), down.end(), index) == down.end();
            if (h["alive"].get<bool>() != expect_alive) return false;
          }
        }
        return true;
      },
      timeout);
}

nlohmann::json TestCluster::Status(int i) {
  auto run = Queue(i, {"--status", "--json"}, {{}, "", std::chrono::milliseconds(5000), ""});
  auto json = nlohmann::json::parse(run.out, nullptr, false);
  if (run.exit_code != 0 || json.is_discarded()) return nullptr;
  return json;
}

bool TestCluster::WaitForLoads(int observer, std::chrono::milliseconds timeout) {
  return WaitUntil(
      [&] {
        auto status = Status(observer);
        if (status.is_null()) return false;
        for (const auto& h : status["hosts"]) {
          int index = -1;
          for (int k = 0; k < size(); ++k)
            if (hosts_[k].entry == h["host"]) index = k;
          if (index < 0 || hosts_[index].pid <= 0) continue;
          if (!h.contains("load1") || h["load1"].get<double>() != hosts_[index].load1)
            return false;
        }
        return true;
      },
      timeout);
}

bool TestCluster::WaitForPolicy(int i, const std::string& queue, const std::string& text,
                                std::chrono::milliseconds timeout) {
  return WaitUntil(
      [&] {
        auto status = Status(i);
        if (status.is_null()) return false;
        for (const auto& q : status["queues"])
          if (q["name"] == queue) return q.value("policy", "").find(text) != std::string::npos;
        return false;
      },
      timeout);
}

nlohmann::json JobOn(TestCluster& cluster, int host, uint64_t id) {
  auto run = cluster.Queue(host, {"--jobs", "--all", "--json"}, {{}, "", std::chrono::seconds(10), ""});
  auto list = JobsOf(run.out);
  if (list.is_discarded()) return {};
  for (const auto& job : list)
    if (job["number"] == id && job["origin"] == cluster.entry(0)) return job;
  return {};
}

nlohmann::json JobOnceIn(TestCluster& cluster, int host, uint64_t id, const std::string& state,
                         std::chrono::milliseconds timeout) {
  nlohmann::json job;
  WaitUntil(
      [&] {
        job = JobOn(cluster, host, id);
        return !job.is_null() && job["state"] == state;
      },
      timeout);
  return job;
}

std::string RunningOn(TestCluster& cluster, uint64_t id) {
  auto job = JobOn(cluster, 0, id);
  if (job.is_null() || job["state"] != "running") return "";
  return job["host"];
}

int IndexOf(TestCluster& cluster, const std::string& entry) {
  for (int i = 0; i < cluster.size(); ++i)
    if (cluster.entry(i) == entry) return i;
  return -1;
}

Background StartStub(TestCluster& cluster, const std::string& cwd, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", cwd, BinDir() + "/queue"};
  argv.insert(argv.end(), args.begin(), args.end());
  return StartBackground(argv, {"QUEUE_SOCKET=" + cluster.socket(0)}, cwd + "/stub.out", cwd + "/stub.err");
}

uint16_t FreePortOn(const std::string& address) {
  uint16_t port = 0;
  int fd = BindPort(address, 0, SOCK_STREAM, &port);
  if (fd < 0) return 0;
  close(fd);
  return port;
}

double RunConcurrently(const std::vector<std::string>& argv, const CommandOptions& options, int total, int clients) {
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&] {
      while (next.fetch_add(1) < total && !failed)
        if (RunCommand(argv, options).exit_code != 0) failed = true;
    });
  for (auto& t : threads) t.join();
  return failed ? -1 : std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace queue::testing
