// queue-example-counter: a long, deterministic computation that Queue can
// migrate between hosts, written against include/queue/checkpoint.h alone.
//
//   queue-example-counter [--resume] STEPS [DELAY_SECONDS]
//
// Step i (1..STEPS) folds i*i into an accumulator: acc = (31*acc + i*i) mod p.
// The order matters, so a step skipped or done twice changes the result. On
// the checkpoint signal the program writes "queue-example-counter 1 STEPS STEP
// ACC" to its restart file and exits 0; started with --resume (the queue's
// `restartflag`), or with RESTARTED=1, it goes on from that file. It never
// starts over when asked to resume: a missing or bad file is exit code 2.
// The last line of a finished run is "result ACC". counter.py and counter.sh
// do the same, with the same file format.
#include <time.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "queue/checkpoint.h"

namespace {

constexpr std::uint64_t kModulus = 1000000007;
constexpr std::uint64_t kMaxSteps = 1000000000;  // keeps i*i within 64 bits, in sh too
constexpr std::string_view kMagic = "queue-example-counter";
constexpr int kFormat = 1;
constexpr int kUsageOrResumeError = 2;

struct Progress {
  std::uint64_t total = 0;
  std::uint64_t step = 0;  // steps done
  std::uint64_t acc = 0;
};

struct Options {
  std::uint64_t total = 0;
  double delay_seconds = 0;
  bool resume = false;
};

std::uint64_t Advance(std::uint64_t acc, std::uint64_t i) { return (acc * 31 + i * i % kModulus) % kModulus; }

// A plain decimal number (no sign, no spaces, no leading zeros), as all three
// examples accept it.
std::optional<std::uint64_t> ParseCount(std::string_view text) {
  if (text.empty() || text.size() > 18 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

std::optional<Options> ParseOptions(int argc, char** argv) {
  Options options;
  std::optional<std::uint64_t> total;
  std::optional<double> delay;
  for (int i = 1; i < argc; ++i) {
    std::string_view word = argv[i];
    if (word == "--resume") {
      options.resume = true;
    } else if (!total) {
      total = ParseCount(word);
      if (!total || *total == 0 || *total > kMaxSteps) return std::nullopt;
    } else if (!delay) {
      char* end = nullptr;
      delay = std::strtod(argv[i], &end);
      if (end == argv[i] || *end != '\0' || !std::isfinite(*delay) || *delay < 0 || *delay > 60) return std::nullopt;
    } else {
      return std::nullopt;
    }
  }
  if (!total) return std::nullopt;
  options.total = *total;
  options.delay_seconds = delay.value_or(0);
  options.resume = options.resume || queue_restarted();
  return options;
}

[[noreturn]] void FailResume(const std::string& why) {
  std::fprintf(stderr, "queue-example-counter: cannot resume: %s\n", why.c_str());
  std::exit(kUsageOrResumeError);
}

// The first line of the restart file; exits when it cannot be read.
std::string ReadFirstLineOrExit(const char* path) {
  std::FILE* file = std::fopen(path, "r");
  if (file == nullptr) FailResume(std::string("restart file ") + path + ": " + std::strerror(errno));
  char buffer[256] = {};
  bool read = std::fgets(buffer, sizeof buffer, file) != nullptr;
  std::fclose(file);
  return read ? buffer : "";
}

Progress LoadOrExit(const char* path, std::uint64_t total) {
  std::istringstream fields(ReadFirstLineOrExit(path));
  std::string magic, format, words[3], extra;
  fields >> magic >> format >> words[0] >> words[1] >> words[2];
  auto saved_total = ParseCount(words[0]), step = ParseCount(words[1]), acc = ParseCount(words[2]);
  bool well_formed = !(fields >> extra) && magic == kMagic && format == std::to_string(kFormat) && saved_total &&
                     step && acc && *step <= *saved_total && *acc < kModulus;
  if (!well_formed) FailResume(std::string("restart file ") + path + " is not a counter checkpoint");
  if (*saved_total != total)
    FailResume(std::string("restart file ") + path + " is for " + words[0] + " steps, not " + std::to_string(total));
  return Progress{total, *step, *acc};
}

bool Save(const char* path, const Progress& progress) {
  std::string text = std::string(kMagic) + " " + std::to_string(kFormat) + " " + std::to_string(progress.total) + " " +
                     std::to_string(progress.step) + " " + std::to_string(progress.acc) + "\n";
  return queue_save_atomically(path, text.data(), text.size()) == 0;
}

// Sleeps for the step's delay; the checkpoint signal may cut it short.
void Pause(double seconds) {
  if (seconds <= 0) return;
  timespec delay{};
  delay.tv_sec = static_cast<time_t>(seconds);
  delay.tv_nsec = static_cast<long>((seconds - static_cast<double>(delay.tv_sec)) * 1e9);
  nanosleep(&delay, nullptr);
}

int Checkpoint(const char* path, const Progress& progress) {
  if (!Save(path, progress)) {
    std::fprintf(stderr, "queue-example-counter: cannot save restart file %s: %s\n", path, std::strerror(errno));
    return 1;
  }
  std::printf("checkpoint at step %llu of %llu saved to %s\n", static_cast<unsigned long long>(progress.step),
              static_cast<unsigned long long>(progress.total), path);
  return 0;
}

int Run(const Options& options) {
  const char* path = queue_restart_file();
  Progress progress{options.total, 0, 0};
  if (options.resume) {
    progress = LoadOrExit(path, options.total);
    std::printf("resumed at step %llu of %llu from %s\n", static_cast<unsigned long long>(progress.step),
                static_cast<unsigned long long>(progress.total), path);
  } else {
    std::printf("start at step 0 of %llu\n", static_cast<unsigned long long>(progress.total));
  }
  std::fflush(stdout);
  const std::uint64_t report_every = progress.total >= 10 ? progress.total / 10 : 1;
  while (progress.step < progress.total) {
    if (queue_checkpoint_requested()) return Checkpoint(path, progress);
    ++progress.step;
    progress.acc = Advance(progress.acc, progress.step);
    if (progress.step % report_every == 0) {
      std::printf("step %llu of %llu\n", static_cast<unsigned long long>(progress.step),
                  static_cast<unsigned long long>(progress.total));
      std::fflush(stdout);
    }
    Pause(options.delay_seconds);
  }
  std::printf("result %llu\n", static_cast<unsigned long long>(progress.acc));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // First, so that an early checkpoint signal is not fatal.
  if (queue_checkpoint_init() != 0) {
    std::fprintf(stderr, "queue-example-counter: QUEUE_CHECKPOINT_SIGNAL: %s\n", std::strerror(errno));
    return kUsageOrResumeError;
  }
  auto options = ParseOptions(argc, argv);
  if (!options) {
    std::fprintf(stderr, "usage: queue-example-counter [--resume] STEPS [DELAY_SECONDS]\n"
                         "  STEPS 1..1000000000, DELAY_SECONDS 0..60 per step (default 0)\n");
    return kUsageOrResumeError;
  }
  return Run(*options);
}
