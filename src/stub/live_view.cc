// --watch and --migrate's progress on a terminal.
#include "stub/live_view.h"

#include <signal.h>
#include <time.h>

#include <chrono>
#include <ostream>
#include <sstream>

#include "stub/status_view.h"

namespace queue::stub {

using nlohmann::json;

namespace {

volatile sig_atomic_t g_interrupted = 0;
void OnInterrupt(int) { g_interrupted = 1; }

// SIGINT and SIGTERM set a flag instead of killing us while this lives, so
// that the terminal gets its cursor back; the old handlers come back after.
class InterruptCatcher {
 public:
  InterruptCatcher() {
    g_interrupted = 0;
    struct sigaction action {};
    action.sa_handler = OnInterrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~InterruptCatcher() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  bool interrupted() const { return g_interrupted != 0; }
  // Sleeps up to `duration`, less when interrupted.
  void Sleep(std::chrono::milliseconds duration) const {
    auto until = std::chrono::steady_clock::now() + duration;
    while (!interrupted() && std::chrono::steady_clock::now() < until) {
      timespec step{0, 50'000'000};
      nanosleep(&step, nullptr);
    }
  }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// Text redrawn over the last: each line cleared to its end, then the rest.
std::string InPlace(const std::string& text) {
  std::string out = "\x1b[H";
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) out += line + "\x1b[K\n";
  return out + "\x1b[J";
}

}  // namespace

int Watch(const std::function<Result<std::string>()>& render, int seconds, bool terminal, std::ostream& out,
          std::ostream& err) {
  InterruptCatcher catcher;
  if (terminal) out << "\x1b[?25l\x1b[H\x1b[2J" << std::flush;  // hide the cursor, start on a clear screen
  int status = 0;
  for (bool first = true; !catcher.interrupted(); first = false) {
    auto text = render();
    if (!text.ok()) {
      if (terminal) out << "\x1b[?25h" << std::flush;
      err << text.message() << "\n";
      status = 2;
      break;
    }
    if (terminal)
      out << InPlace(*text) << std::flush;
    else
      out << (first ? "" : "\n") << *text << std::flush;
    catcher.Sleep(std::chrono::seconds(seconds));
  }
  if (terminal && status == 0) out << "\x1b[?25h" << std::flush;  // the cursor back, below the table
  return status;
}

MigrationView ViewMigration(const json& job, uint32_t restarts_before, const json& old_transfer,
                            const std::string& label, int width) {
  if (!job.is_object()) return {true, label + ": no longer listed here"};
  std::string state = job.value("state", std::string());
  uint32_t restarts = job.value("restarts", 0U);
  if (state == "done" || state == "failed" || state == "cancelled")
    return {true, label + ": " + state + (job.contains("message") ? " (" + job.value("message", std::string()) + ")" : "")};
  json transfer = job.value("transfer", json());
  bool this_move = transfer.is_object() && transfer != old_transfer;
  std::string moved;
  if (this_move) {
    double seconds = transfer.value("seconds", 0.0);
    double rate = seconds > 0 ? static_cast<double>(transfer.value("bytes", uint64_t{0})) / seconds : 0.0;
    bool home = transfer.value("direction", std::string()) == "home";
    std::string what = label + (home ? " restart files home from " : " restart files to ") +
                       transfer.value("host", std::string());
    moved = ProgressLine(what, transfer.value("bytes", uint64_t{0}), transfer.value("size", uint64_t{0}), rate, width);
  }
  if (restarts > restarts_before && state == "running")
    return {true, (moved.empty() ? "" : moved + "\n") + label + " goes on on " + job.value("host", std::string())};
  if (!moved.empty()) return {false, moved};
  std::string phase = restarts > restarts_before ? "waiting for a host" : "checkpointing";
  if (job.contains("waiting_for") && state == "waiting") phase += " (" + job.value("waiting_for", std::string()) + ")";
  return {false, ProgressLine(label + " " + phase, 0, 0, 0, width)};
}

namespace {

// The job `id` names in the daemon's list, or null. A bare number is the asked
// daemon's own job.
json FindJob(const json& jobs, const wire::JobId& id, const std::string& self) {
  for (const auto& j : jobs)
    if (j.value("number", uint64_t{0}) == id.number &&
        (id.host == 0 ? j.value("origin", std::string()) == self : j.value("id", std::string()) == wire::FormatJobId(id)))
      return j;
  return nullptr;
}

}  // namespace

void FollowMigration(const std::function<Result<json>()>& jobs, const wire::JobId& id, const std::string& self,
                     int width, std::ostream& err) {
  auto first = jobs();
  if (!first.ok()) return;
  json job = FindJob(*first, id, self);
  if (!job.is_object() || job.value("origin", std::string()) != self) return;
  const uint32_t restarts_before = job.value("restarts", 0U);
  const json old_transfer = job.value("transfer", json());
  const std::string label = "job " + job.value("id", std::string());
  InterruptCatcher catcher;
  while (!catcher.interrupted()) {
    auto list = jobs();
    if (!list.ok()) break;
    MigrationView view = ViewMigration(FindJob(*list, id, self), restarts_before, old_transfer, label, width);
    err << "\r\x1b[K" << view.line << (view.done ? "\n" : "") << std::flush;
    if (view.done) return;
    catcher.Sleep(std::chrono::milliseconds(250));
  }
  err << "\r\x1b[K" << label << ": no longer followed (the move goes on; see queue --jobs)\n" << std::flush;
}

}  // namespace queue::stub
