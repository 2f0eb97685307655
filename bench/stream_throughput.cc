// Stream throughput of commands that pass their input on (`cat`), or only read
// it, or only write: this process feeds `--bytes` bytes from memory into the
// command's stdin and counts what comes out of its stdout, timing the whole
// run. Commands are interleaved run by run: `cat` itself is the floor (one
// local pipe in, one out), and ssh and `queue -n -- cat` add their transport.
//
// Usage: bench_stream_throughput --bytes N [--runs R] --mode both|in|out LABEL=COMMAND...
//   both: N bytes in, N bytes expected out;  in: N in, 0 out;  out: nothing in, N out.
// Prints {"mib_per_s": {LABEL: [...]}}.
#include <nlohmann/json.hpp>
#include <pthread.h>
#include <signal.h>

#include <iostream>
#include <thread>

#include "bench_process.h"

namespace {

using namespace queue::bench;

struct Options {
  long long bytes = 0;
  int runs = 3;
  std::string mode;
  std::vector<LabeledCommand> commands;
};

std::optional<Options> Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--bytes" && i + 1 < argc) {
      o.bytes = std::atoll(argv[++i]);
    } else if (arg == "--runs" && i + 1 < argc) {
      o.runs = std::atoi(argv[++i]);
    } else if (arg == "--mode" && i + 1 < argc) {
      o.mode = argv[++i];
    } else if (auto command = ParseLabeled(arg)) {
      o.commands.push_back(*command);
    } else {
      return std::nullopt;
    }
  }
  if (o.bytes <= 0 || o.runs <= 0 || o.commands.empty() || (o.mode != "both" && o.mode != "in" && o.mode != "out"))
    return std::nullopt;
  return o;
}

// One run; the seconds it took, or -1 (saying why).
double TimedRun(const Options& o, const LabeledCommand& command) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return -1;
  bool feed = o.mode != "out";
  long long expected = o.mode == "in" ? 0 : o.bytes;
  auto start = Clock::now();
  pid_t pid = Spawn(command.argv, feed ? in[0] : -1, out[1], 2);
  close(in[0]);
  close(out[1]);
  if (pid < 0) return -1;
  std::thread writer([&] {
    // SIGPIPE stays blocked in this thread alone, so that a command that dies
    // early fails its run with EPIPE here (the commands get it as usual).
    sigset_t pipe_signal;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
    if (feed) {
      std::string chunk(1 << 20, 'q');
      for (long long sent = 0; sent < o.bytes;) {
        size_t size = static_cast<size_t>(std::min<long long>(static_cast<long long>(chunk.size()), o.bytes - sent));
        ssize_t n = write(in[1], chunk.data(), size);
        if (n <= 0) break;
        sent += n;
      }
    }
    close(in[1]);
  });
  std::string buffer(1 << 20, '\0');
  long long received = 0;
  for (ssize_t n; (n = read(out[0], buffer.data(), buffer.size())) > 0;) received += n;
  close(out[0]);
  writer.join();
  Ended ended = Reap(pid);
  double seconds = Seconds(Clock::now() - start);
  if (!ended.ok() || received != expected) {
    std::fprintf(stderr, "%s: wait status %d, %lld bytes out, %lld expected\n", command.label.c_str(), ended.status,
                 received, expected);
    return -1;
  }
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  auto o = Parse(argc, argv);
  if (!o) {
    std::fprintf(stderr, "usage: %s --bytes N [--runs R] --mode both|in|out LABEL=COMMAND...\n", argv[0]);
    return 2;
  }
  nlohmann::json rates;
  for (int run = 0; run < o->runs; ++run)
    for (const auto& command : o->commands) {
      double seconds = TimedRun(*o, command);
      if (seconds <= 0) return 1;
      rates[command.label].push_back(static_cast<double>(o->bytes) / (1 << 20) / seconds);
    }
  std::cout << nlohmann::json{{"mib_per_s", rates}}.dump() << "\n";
  return 0;
}
