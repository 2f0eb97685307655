// Moving a job with a large restart file between two hosts (SPEC §10: signal to
// restart under 2 s plus the transfer at >= 80% of the link's bandwidth), over
// one of two links:
//   - by default loopback, both daemons on the test cluster's loopback address
//     (127.X.Y.Z, LoopbackAddress()). Loopback has no rate of
//     its own (it measures memcpy), so there the ratios say what queue's own
//     work costs, not whether the file moves at a link's speed;
//   - with --link-mbit N (root only) a link that has a rate: two network
//     namespaces made for this run, one daemon in each, joined by a veth pair
//     whose two ends tbf shapes to N Mbit/s. Addresses are 10.232.0.1 and
//     10.232.0.2, used only from inside those namespaces.
// Measured in the same run, over the same link:
//   - baseline: the same number of bytes through a plain TCP connection, memory
//     to memory (what the link can do, with no TLS, no disk, no checksum);
//   - baseline: a plain copy of a file of that size, read from one file and
//     written to another, synced (what the link and the disk can do together,
//     with no TLS and no checksum: nc or rcp would do no better);
//   - queue: the job's exit after writing its restart file (it stamps the time)
//     to its restart on the other host (it stamps the time again): packing as the
//     owner, the stream over TLS, the SHA-256 check and the unpack are all inside.
//
// Usage: bench_migrate_transfer [MiB] [--link-mbit N]   (default 512 MiB, loopback)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cluster_fixture.h"

namespace {

using Clock = std::chrono::steady_clock;
using queue::testing::RunCommand;

constexpr const char* kIp = "/usr/sbin/ip";
constexpr const char* kTc = "/usr/sbin/tc";

struct BenchOptions {
  size_t mib = 512;
  unsigned link_mbit = 0;  // 0: loopback
};

std::optional<unsigned long> PositiveNumber(const std::string& text) {
  unsigned long value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value == 0) return std::nullopt;
  return value;
}

std::optional<BenchOptions> ParseOptions(int argc, char** argv) {
  BenchOptions options;
  bool have_mib = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--link-mbit" && i + 1 < argc) {
      auto mbit = PositiveNumber(argv[++i]);
      if (!mbit || *mbit > 100000) return std::nullopt;
      options.link_mbit = static_cast<unsigned>(*mbit);
    } else if (auto mib = PositiveNumber(arg); mib && !have_mib) {
      options.mib = *mib;
      have_mib = true;
    } else {
      return std::nullopt;
    }
  }
  return options;
}

// ---- The shaped link: two network namespaces and a veth pair ----

// Kills what runs in namespace `name` (if it exists), then deletes it.
void DeleteNamespace(const std::string& name) {
  std::string pids = RunCommand({kIp, "netns", "pids", name}).out;
  for (size_t at = 0, end; at < pids.size(); at = end + 1) {
    end = std::min(pids.find('\n', at), pids.size());
    if (auto pid = PositiveNumber(pids.substr(at, end - at))) kill(static_cast<pid_t>(*pid), SIGKILL);
  }
  RunCommand({kIp, "netns", "delete", name});
}

// Waits for the bench to end, however it ends (return, exception, signal, even
// SIGKILL: the pipe's write end closes with the process), then kills what still
// runs in the namespaces (a namespace with a process in it lives on, unnamed)
// and deletes them. Forked while the bench has one thread, so it may use
// anything; in its own process group, so a Ctrl-C meant for the bench spares it.
pid_t StartNamespaceGuardian(const std::vector<std::string>& namespaces, int& hold_fd) {
  int ends[2];
  if (pipe2(ends, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(ends[0]);
    close(ends[1]);
    return -1;
  }
  if (pid > 0) {
    close(ends[0]);
    hold_fd = ends[1];
    return pid;
  }
  close(ends[1]);
  setpgid(0, 0);
  char byte;
  while (read(ends[0], &byte, 1) < 0 && errno == EINTR) {
  }
  // Nothing may escape this child: an exception would unwind through the
  // bench's own frames, copied into it by fork.
  try {
    for (const std::string& name : namespaces) DeleteNamespace(name);
  } catch (...) {
  }
  _exit(0);
}

// tbf's bucket: 4 ms of the rate, so that its refills keep up at 10 Gbit/s, and
// never under 128 KiB, so that one GSO packet of 64 KiB (veth passes them whole)
// always fits and tbf need not cut it up.
std::string TbfBurst(unsigned mbit) {
  size_t bytes = std::max<size_t>(static_cast<size_t>(mbit) * 1000000 / 8 / 250, 128 * 1024);
  return std::to_string(bytes) + "b";
}
// How long a packet may wait in tbf's queue: it sizes the queue. Enough for TCP
// to keep the bucket busy without the drops a short queue causes.
constexpr const char* kTbfLatency = "20ms";

// Two network namespaces for this run, qbench<pid>-a and -b, eth0 in each the
// two ends of one veth pair, each end shaped by tbf (data one way, acks the
// other); deleted when this goes, or by the guardian if the bench dies first.
class ShapedLink {
 public:
  explicit ShapedLink(unsigned mbit) : prefix_("qbench" + std::to_string(getpid())), mbit_(mbit) {
    guardian_ = StartNamespaceGuardian({Netns(0), Netns(1)}, guardian_fd_);
    if (guardian_ < 0) {
      error_ = "cannot start the process that deletes the namespaces";
      return;
    }
    Build();
  }
  ~ShapedLink() {
    if (guardian_ < 0) return;
    close(guardian_fd_);  // the guardian's cue
    waitpid(guardian_, nullptr, 0);
  }
  ShapedLink(const ShapedLink&) = delete;
  ShapedLink& operator=(const ShapedLink&) = delete;

  const std::string& error() const { return error_; }  // empty once built
  unsigned mbit() const { return mbit_; }
  std::string Netns(int side) const { return prefix_ + (side == 0 ? "-a" : "-b"); }
  static std::string Address(int side) { return "10.232.0." + std::to_string(side + 1); }
  std::vector<std::string> Wrapper(int side) const { return {kIp, "netns", "exec", Netns(side)}; }
  std::string Name() const { return "veth shaped to " + std::to_string(mbit_) + " Mbit/s"; }
  std::string Shaping() const { return "tbf burst " + TbfBurst(mbit_) + " latency " + kTbfLatency + ", both ends"; }

 private:
  void Build() {
    bool ok = Run({kIp, "netns", "add", Netns(0)}) && Run({kIp, "netns", "add", Netns(1)}) &&
              Run({kIp, "link", "add", "eth0", "netns", Netns(0), "type", "veth", "peer", "name", "eth0", "netns",
                   Netns(1)});
    for (int side = 0; ok && side < 2; ++side)
      ok = RunIn(side, {kIp, "addr", "add", Address(side) + "/24", "dev", "eth0"}) &&
           RunIn(side, {kIp, "link", "set", "eth0", "up"}) && RunIn(side, {kIp, "link", "set", "lo", "up"}) &&
           RunIn(side, {kTc, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", std::to_string(mbit_) + "mbit",
                        "burst", TbfBurst(mbit_), "latency", kTbfLatency});
  }
  bool RunIn(int side, std::vector<std::string> argv) {
    std::vector<std::string> wrapper = Wrapper(side);
    argv.insert(argv.begin(), wrapper.begin(), wrapper.end());
    return Run(argv);
  }
  // Runs argv; on failure keeps the command and what it said as error().
  bool Run(const std::vector<std::string>& argv) {
    auto result = RunCommand(argv);
    if (result.exit_code == 0) return true;
    error_.clear();
    for (const std::string& word : argv) error_ += word + " ";
    error_ += "failed: " + (result.err.empty() ? "exit code " + std::to_string(result.exit_code) : result.err);
    return false;
  }

  std::string prefix_;
  unsigned mbit_;
  pid_t guardian_ = -1;
  int guardian_fd_ = -1;
  std::string error_;
};

// Why this process cannot build the link, or "".
std::string LinkUnavailableBecause() {
  if (geteuid() != 0) return "--link-mbit needs root (it makes network namespaces and shapes a veth pair)";
  for (const char* tool : {kIp, kTc})
    if (access(tool, X_OK) != 0) return std::string("--link-mbit needs ") + tool + " (iproute2)";
  return "";
}

// ---- Baselines: plain TCP and a plain file copy between two ends ----

// Where a baseline's two ends run: a network namespace each ("" for this
// process's own) and the receiver's address inside its namespace.
struct Route {
  std::string sender_netns, receiver_netns;
  in_addr_t receiver_ip;  // network byte order
};

Route LoopbackRoute() { return {"", "", htonl(INADDR_LOOPBACK)}; }
Route RouteAcross(const ShapedLink& link) {
  return {link.Netns(0), link.Netns(1), inet_addr(ShapedLink::Address(1).c_str())};
}

// Moves the calling thread, and only it (setns acts on one thread), into the
// network namespace `name`; "" stays where it is.
bool EnterNetns(const std::string& name) {
  if (name.empty()) return true;
  int fd = open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  bool entered = fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
  if (fd >= 0) close(fd);
  return entered;
}

// A listening socket on an ephemeral port of `ip` (its address in `address`), or -1.
int ListenOn(in_addr_t ip, sockaddr_in& address) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  address = sockaddr_in{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = ip;
  socklen_t length = sizeof address;
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      listen(listener, 1) != 0 || getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (listener >= 0) close(listener);
    return -1;
  }
  return listener;
}

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// WriteAll for a socket: a receiver that gave up makes it fail, not raise
// SIGPIPE (ignoring SIGPIPE instead would pass on to the daemons we exec).
bool SendAll(int socket, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = send(socket, data, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

using Source = std::function<bool(int connection)>;  // sends everything, then returns
using Sink = std::function<bool(int connection)>;    // reads up to the end

struct Listening {
  int listener = -1;
  sockaddr_in address{};
};

// Runs `sink` on a connection accepted in route.receiver_netns and `source` on
// the connection made to it from route.sender_netns, each end on its own thread
// in its own namespace. The seconds from the connection to the sink's end, or -1.
double TimedTransfer(const Route& route, const Source& source, const Sink& sink) {
  std::promise<Listening> listening;
  auto listening_on = listening.get_future();
  bool received = false, sent = false;
  std::thread receiver([&] {
    Listening end;
    if (EnterNetns(route.receiver_netns)) end.listener = ListenOn(route.receiver_ip, end.address);
    listening.set_value(end);
    if (end.listener < 0) return;
    int peer = accept(end.listener, nullptr, nullptr);  // woken by shutdown() if the sender gives up
    received = peer >= 0 && sink(peer);
    if (peer >= 0) close(peer);
    close(end.listener);
  });
  Clock::time_point start;
  std::thread sender([&] {
    Listening to = listening_on.get();
    if (to.listener < 0) return;
    int connection = EnterNetns(route.sender_netns) ? socket(AF_INET, SOCK_STREAM, 0) : -1;
    if (connection >= 0 && connect(connection, reinterpret_cast<sockaddr*>(&to.address), sizeof to.address) == 0) {
      start = Clock::now();
      sent = source(connection);
    } else {
      shutdown(to.listener, SHUT_RDWR);
    }
    if (connection >= 0) close(connection);
  });
  sender.join();
  receiver.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return sent && received ? seconds : -1;
}

// `bytes` from memory to memory: what the link can carry.
double PlainTcpSeconds(const Route& route, size_t bytes) {
  Source source = [bytes](int connection) {
    std::string chunk(1 << 20, 'x');
    for (size_t sent = 0; sent < bytes;) {
      size_t size = std::min(chunk.size(), bytes - sent);
      if (!SendAll(connection, chunk.data(), size)) return false;
      sent += size;
    }
    return true;
  };
  Sink sink = [bytes](int connection) {
    std::string buffer(1 << 20, '\0');
    size_t received = 0;
    for (ssize_t n; (n = read(connection, buffer.data(), buffer.size())) > 0;) received += static_cast<size_t>(n);
    return received == bytes;
  };
  return TimedTransfer(route, source, sink);
}

// Reads `from` and sends it over TCP to a reader that writes it to `to` and
// syncs it: a plain file copy across the link.
double FileCopySeconds(const Route& route, const std::string& from, const std::string& to) {
  int in = open(from.c_str(), O_RDONLY | O_CLOEXEC);  // before the clock starts: the copy is timed, not the open
  if (in < 0) return -1;
  Source source = [in](int connection) {
    std::string chunk(1 << 20, '\0');
    bool ok = true;
    for (ssize_t n; ok && (n = read(in, chunk.data(), chunk.size())) > 0;)
      ok = SendAll(connection, chunk.data(), static_cast<size_t>(n));
    return ok;
  };
  Sink sink = [&to](int connection) {
    int out = open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    std::string buffer(1 << 20, '\0');
    bool ok = out >= 0;
    for (ssize_t n; ok && (n = read(connection, buffer.data(), buffer.size())) > 0;)
      ok = WriteAll(out, buffer.data(), static_cast<size_t>(n));
    ok = ok && fsync(out) == 0;
    if (out >= 0) close(out);
    return ok;
  };
  double seconds = TimedTransfer(route, source, sink);
  close(in);
  return seconds;
}

// ---- queue: the migration between two daemons ----

double StampAt(const std::string& path) {
  std::ifstream in(path);
  double seconds = -1;
  in >> seconds;
  return seconds;
}

queue::testing::ClusterOptions MigrationClusterOptions(const ShapedLink* link) {
  queue::testing::ClusterOptions options;
  options.profile_extra = "checkpointmode 2\nrestartmode 1\ncheckpointgrace 600\nrestartflag --resume\n"
                          "restartflagpos last\n";
  for (int side = 0; link != nullptr && side < 2; ++side) {
    options.host_entries.push_back(ShapedLink::Address(side) + ":1421");
    options.host_wrappers[side] = link->Wrapper(side);
  }
  return options;
}

// Starts a job on host 0 that writes a `bytes` restart file when checkpointed,
// moves it to host 1, and returns the seconds from its exit on host 0 to its
// restart on host 1, or nullopt (saying why on stderr). The job's files are in `cwd`.
std::optional<double> MigrationSeconds(queue::testing::TestCluster& cluster, size_t bytes, const std::string& cwd) {
  using namespace queue::testing;
  // On USR2: write the restart file, stamp the time, exit. Restarted: stamp.
  std::string script =
      "if [ \"$1\" = --resume ]; then date +%s.%N > restarted.at; exit 0; fi; "
      "trap 'head -c " + std::to_string(bytes) + " /dev/zero > \"$QUEUE_RESTART_FILE\"; "
      "date +%s.%N > exited.at; exit 0' USR2; echo ready > ready; while :; do sleep 0.05; done";
  // The stub runs on host 0 (in its namespace, if any): the job's shepherd
  // connects back to the address the stub listens on, host 0's own.
  std::vector<std::string> argv = cluster.OnHost(0);
  std::vector<std::string> stub{"/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", cwd, BinDir() + "/queue", "-n", "-h",
                                cluster.entry(0), "-j", "big", "--", "sh", "-c", script, "sh"};
  argv.insert(argv.end(), stub.begin(), stub.end());
  auto started = StartBackground(argv, {"QUEUE_SOCKET=" + cluster.socket(0)}, cwd + "/stub.out", cwd + "/stub.err");
  if (!WaitUntil([&] { return std::filesystem::exists(cwd + "/ready"); }, std::chrono::seconds(15))) {
    std::fprintf(stderr, "the job did not start\n%s\n", ReadFile(cwd + "/stub.err").c_str());
    return std::nullopt;
  }
  auto asked = cluster.Queue(0, {"--migrate", "1", cluster.entry(1)});
  if (asked.exit_code != 0) {
    std::fprintf(stderr, "--migrate: %s\n", asked.err.c_str());
    return std::nullopt;
  }
  if (!WaitChild(started.pid, std::chrono::seconds(600))) {
    std::fprintf(stderr, "the job did not end\n");
    return std::nullopt;
  }
  return StampAt(cwd + "/restarted.at") - StampAt(cwd + "/exited.at");
}

// ---- Report ----

std::string Format(const char* format, ...) {
  char text[256];
  va_list arguments;
  va_start(arguments, format);
  std::vsnprintf(text, sizeof text, format, arguments);
  va_end(arguments);
  return text;
}

struct Row {
  std::string label, value;
};

// One column of labels, as wide as the longest one needs (37 on loopback, as
// this bench always printed).
void PrintRows(const std::vector<Row>& rows) {
  size_t width = 0;
  for (const Row& row : rows) width = std::max(width, row.label.size() + 2);
  for (const Row& row : rows) std::printf("%-*s%s\n", static_cast<int>(width), row.label.c_str(), row.value.c_str());
}

struct Measured {
  size_t mib;
  double tcp, file_copy, moved;  // seconds
};

void PrintReport(const Measured& m, const ShapedLink* link) {
  double tcp_rate = static_cast<double>(m.mib) / m.tcp, copy_rate = static_cast<double>(m.mib) / m.file_copy;
  double queue_rate = static_cast<double>(m.mib) / m.moved;
  std::vector<Row> rows{{"restart file", Format("%zu MiB", m.mib)}};
  if (link != nullptr) {
    double nominal = link->mbit() * 1e6 / 8 / (1 << 20);
    rows.push_back({"link", Format("%s = %.0f MiB/s (%s)", link->Name().c_str(), nominal, link->Shaping().c_str())});
  }
  std::string plain_tcp = link ? "baseline: plain TCP on " + link->Name() : "baseline: plain TCP on 127.0.0.1";
  std::string file_copy = link ? "baseline: file copy over " + link->Name() : "baseline: file copy over 127.0.0.1";
  rows.push_back({plain_tcp, Format("%8.0f MiB/s (%.2f s)", tcp_rate, m.tcp)});
  rows.push_back({file_copy, Format("%8.0f MiB/s (%.2f s, read, sent, written, synced)", copy_rate, m.file_copy)});
  rows.push_back({"job exit -> restart on the new host", Format("%8.0f MiB/s (%.2f s)", queue_rate, m.moved)});
  rows.push_back({"ratio queue/link", Format("%.3f", queue_rate / tcp_rate)});
  rows.push_back({"ratio queue/file copy", Format("%.3f", queue_rate / copy_rate)});
  PrintRows(rows);
}

int Bench(const BenchOptions& options) {
  using namespace queue::testing;
  // The link comes first, while this process has one thread (its guardian
  // forks), and goes last, after the daemons inside it.
  std::optional<ShapedLink> link;
  if (options.link_mbit > 0) {
    if (std::string why = LinkUnavailableBecause(); !why.empty()) {
      std::fprintf(stderr, "%s\n", why.c_str());
      return 1;
    }
    link.emplace(options.link_mbit);
    if (!link->error().empty()) {
      std::fprintf(stderr, "cannot build the network namespaces: %s\n", link->error().c_str());
      return 1;
    }
  }
  const ShapedLink* shaped = link ? &*link : nullptr;
  const size_t bytes = options.mib << 20;
  auto cluster = TestCluster::Start(2, MigrationClusterOptions(shaped));
  if (!cluster->WaitForView(std::chrono::seconds(15))) {
    std::fprintf(stderr, "cluster did not come up\n%s\n", cluster->log(0).c_str());
    return 1;
  }
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  auto moved = MigrationSeconds(*cluster, bytes, cwd);
  if (!moved) return 1;
  Measured measured{options.mib, -1, -1, *moved};
  Route route = shaped ? RouteAcross(*shaped) : LoopbackRoute();
  measured.tcp = PlainTcpSeconds(route, bytes);
  std::string copy_from = cwd + "/copy.from", copy_to = cwd + "/copy.to";
  std::filesystem::rename(cwd + "/big.restart", copy_from);  // in the page cache, as the job's file was
  measured.file_copy = FileCopySeconds(route, copy_from, copy_to);
  if (measured.moved <= 0 || measured.tcp <= 0 || measured.file_copy <= 0) {
    std::fprintf(stderr, "measurement failed (moved %.3f, plain TCP %.3f, file copy %.3f)\n%s", measured.moved,
                 measured.tcp, measured.file_copy, ReadFile(cwd + "/stub.err").c_str());
    return 1;
  }
  PrintReport(measured, shaped);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto options = ParseOptions(argc, argv);
  if (!options) {
    std::fprintf(stderr, "usage: %s [MiB] [--link-mbit N]\n", argv[0]);
    return 2;
  }
  // Caught so that the stack unwinds: the cluster's daemons are killed and the
  // namespaces deleted on the way.
  try {
    return Bench(*options);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_migrate_transfer: %s\n", error.what());
    return 1;
  }
}
