// Moving a job with a large restart file between two hosts of a loopback
// cluster (SPEC §10: signal to restart under 2 s plus the transfer at >= 80% of
// the link's bandwidth). Measured in the same run:
//   - baseline: the same number of bytes through a plain TCP connection on
//     127.0.0.1 (what the link can do, with no TLS, no disk, no checksum);
//   - baseline: a plain copy of a file of that size over 127.0.0.1, read from
//     one file and written to another, synced (what the link and the disk can
//     do together, with no TLS and no checksum: nc or rcp would do no better);
//   - queue: the job's exit after writing its restart file (it stamps the time)
//     to its restart on the other host (it stamps the time again): packing as the
//     owner, the stream over TLS, the SHA-256 check and the unpack are all inside.
//
// Usage: bench_migrate_transfer [MiB]   (default 512)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "cluster_fixture.h"

namespace {

using Clock = std::chrono::steady_clock;

// A listening socket on an ephemeral port of 127.0.0.1 (its address in `address`), or -1.
int ListenOnLoopback(sockaddr_in& address) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  address = sockaddr_in{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0)
    return -1;
  return listener;
}

double LoopbackSeconds(size_t bytes) {
  sockaddr_in address{};
  int listener = ListenOnLoopback(address);
  if (listener < 0) return -1;
  std::thread reader([listener] {
    int peer = accept(listener, nullptr, nullptr);
    std::string buffer(1 << 20, '\0');
    while (read(peer, buffer.data(), buffer.size()) > 0) {
    }
    close(peer);
  });
  int writer = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(writer, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return -1;
  std::string chunk(1 << 20, 'x');
  auto start = Clock::now();
  for (size_t sent = 0; sent < bytes;) {
    ssize_t n = write(writer, chunk.data(), std::min(chunk.size(), bytes - sent));
    if (n <= 0) return -1;
    sent += static_cast<size_t>(n);
  }
  close(writer);
  reader.join();
  close(listener);
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Reads `from` and sends it over TCP on 127.0.0.1 to a reader that writes it to
// `to` and syncs it: a plain file copy across the loopback link.
double LoopbackFileCopySeconds(const std::string& from, const std::string& to) {
  sockaddr_in address{};
  int listener = ListenOnLoopback(address);
  if (listener < 0) return -1;
  bool written = false;
  std::thread reader([listener, &to, &written] {
    int peer = accept(listener, nullptr, nullptr);
    int out = open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::string buffer(1 << 20, '\0');
    bool ok = out >= 0;
    for (ssize_t n; ok && (n = read(peer, buffer.data(), buffer.size())) > 0;)
      ok = write(out, buffer.data(), static_cast<size_t>(n)) == n;
    written = ok && fsync(out) == 0;
    if (out >= 0) close(out);
    close(peer);
  });
  int in = open(from.c_str(), O_RDONLY);
  int writer = socket(AF_INET, SOCK_STREAM, 0);
  if (in < 0 || connect(writer, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return -1;
  std::string chunk(1 << 20, '\0');
  auto start = Clock::now();
  bool ok = true;
  for (ssize_t n; ok && (n = read(in, chunk.data(), chunk.size())) > 0;)
    ok = write(writer, chunk.data(), static_cast<size_t>(n)) == n;
  close(writer);
  reader.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  close(in);
  close(listener);
  return ok && written ? seconds : -1;
}

double StampAt(const std::string& path) {
  std::ifstream in(path);
  double seconds = -1;
  in >> seconds;
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace queue::testing;
  const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 512;
  const size_t bytes = mib << 20;
  auto cluster = TestCluster::Start(
      2, ClusterOptions{{}, "checkpointmode 2\nrestartmode 1\ncheckpointgrace 600\nrestartflag --resume\n"
                            "restartflagpos last\n"});
  if (!cluster->WaitForView(std::chrono::seconds(15))) {
    std::fprintf(stderr, "cluster did not come up\n%s\n", cluster->log(0).c_str());
    return 1;
  }
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  // On USR2: write the restart file, stamp the time, exit. Restarted: stamp.
  std::string script =
      "if [ \"$1\" = --resume ]; then date +%s.%N > restarted.at; exit 0; fi; "
      "trap 'head -c " + std::to_string(bytes) + " /dev/zero > \"$QUEUE_RESTART_FILE\"; "
      "date +%s.%N > exited.at; exit 0' USR2; echo ready > ready; while :; do sleep 0.05; done";
  auto stub = StartBackground({"/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", cwd, BinDir() + "/queue", "-n", "-h",
                               cluster->entry(0), "-j", "big", "--", "sh", "-c", script, "sh"},
                              {"QUEUE_SOCKET=" + cluster->socket(0)}, cwd + "/stub.out", cwd + "/stub.err");
  if (!WaitUntil([&] { return std::filesystem::exists(cwd + "/ready"); }, std::chrono::seconds(15))) {
    std::fprintf(stderr, "the job did not start\n%s\n", ReadFile(cwd + "/stub.err").c_str());
    return 1;
  }
  auto asked = cluster->Queue(0, {"--migrate", "1", cluster->entry(1)});
  if (asked.exit_code != 0) {
    std::fprintf(stderr, "--migrate: %s\n", asked.err.c_str());
    return 1;
  }
  if (!WaitChild(stub.pid, std::chrono::seconds(600))) {
    std::fprintf(stderr, "the job did not end\n");
    return 1;
  }
  double moved = StampAt(cwd + "/restarted.at") - StampAt(cwd + "/exited.at");
  double loopback = LoopbackSeconds(bytes);
  std::string copy_from = cwd + "/copy.from", copy_to = cwd + "/copy.to";
  std::filesystem::rename(cwd + "/big.restart", copy_from);  // in the page cache, as the job's file was
  double file_copy = LoopbackFileCopySeconds(copy_from, copy_to);
  if (moved <= 0 || loopback <= 0 || file_copy <= 0) {
    std::fprintf(stderr, "measurement failed (moved %.3f, loopback %.3f)\n%s", moved, loopback,
                 ReadFile(cwd + "/stub.err").c_str());
    return 1;
  }
  double queue_rate = static_cast<double>(mib) / moved, link_rate = static_cast<double>(mib) / loopback;
  double copy_rate = static_cast<double>(mib) / file_copy;
  std::printf("restart file                         %zu MiB\n", mib);
  std::printf("baseline: plain TCP on 127.0.0.1     %8.0f MiB/s (%.2f s)\n", link_rate, loopback);
  std::printf("baseline: file copy over 127.0.0.1   %8.0f MiB/s (%.2f s, read, sent, written, synced)\n", copy_rate,
              file_copy);
  std::printf("job exit -> restart on the new host  %8.0f MiB/s (%.2f s)\n", queue_rate, moved);
  std::printf("ratio queue/link                     %.3f\n", queue_rate / link_rate);
  std::printf("ratio queue/file copy                %.3f\n", queue_rate / copy_rate);
  return 0;
}
