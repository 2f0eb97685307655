// queue and qsh: the client and stub. Which one is decided by argv[0].
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "auth/psk_tls.h"
#include "stub/command_line.h"
#include "stub/daemon_client.h"
#include "stub/local_context.h"
#include "stub/stub_session.h"

namespace {

using queue::Result;
using queue::stub::Invocation;

// Sends one request whose answer is a StatusReply, and returns its text.
Result<std::string> Ask(const Invocation& inv, auto request) {
  queue::stub::DaemonClient client;
  if (auto connected = client.Connect(queue::stub::ResolveSocketPath(inv.socket_path)); !connected.ok())
    return queue::Fail(connected.message());
  auto reply = queue::stub::Call<queue::wire::StatusReply>(client, request);
  if (!reply.ok()) return reply.error();
  return reply->json;
}

int ShowStatus(const Invocation& inv, const std::string& program) {
  auto reply = Ask(inv, queue::wire::StatusRequest{});
  if (!reply.ok()) {
    std::cerr << program << ": " << reply.message() << "\n";
    return 2;
  }
  if (inv.json) {
    std::cout << *reply << "\n";
    return 0;
  }
  auto status = nlohmann::json::parse(*reply, nullptr, false);
  if (status.is_discarded()) {
    std::cerr << program << ": queued sent malformed status\n";
    return 2;
  }
  std::printf("%-24s %-6s %6s %5s  %s\n", "HOST", "STATE", "LOAD", "CPUS", "QUEUES (running/maxexec)");
  for (const auto& h : status["hosts"]) {
    std::string queues;
    if (h.contains("queues"))
      for (const auto& q : h["queues"])
        queues += q["name"].get<std::string>() + " " + std::to_string(q["running"].get<unsigned>()) + "/" +
                  std::to_string(q["maxexec"].get<unsigned>()) + (q["accepting"].get<bool>() ? "" : " (closed)") + "  ";
    bool alive = h["alive"].get<bool>();
    std::printf("%-24s %-6s %6.2f %5u  %s\n", h["host"].get<std::string>().c_str(), alive ? "up" : "down",
                alive ? h["load1"].get<double>() : 0.0, alive ? h["cpus"].get<unsigned>() : 0U, queues.c_str());
  }
  for (const auto& q : status["queues"])
    for (const char* note : {"error", "warning", "criu"})
      if (q.contains(note))
        std::printf("queue %s: %s\n", q["name"].get<std::string>().c_str(), q[note].get<std::string>().c_str());
  if (!status["jobs"].empty()) {
    std::printf("\n%-10s %-8s %-10s %-24s %s\n", "JOB", "STATE", "QUEUE", "HOST", "NAME");
    for (const auto& j : status["jobs"])
      std::printf("%-10s %-8s %-10s %-24s %s\n", j["id"].get<std::string>().c_str(),
                  j["state"].get<std::string>().c_str(), j["queue"].get<std::string>().c_str(),
                  j["host"].get<std::string>().c_str(), j["name"].get<std::string>().c_str());
  }
  return 0;
}

int ShowJobs(const Invocation& inv, const std::string& program) {
  auto reply = Ask(inv, queue::wire::JobsRequest{inv.all});
  if (!reply.ok()) {
    std::cerr << program << ": " << reply.message() << "\n";
    return 2;
  }
  if (inv.json) {
    std::cout << *reply << "\n";
    return 0;
  }
  auto jobs = nlohmann::json::parse(*reply, nullptr, false);
  if (jobs.is_discarded()) {
    std::cerr << program << ": queued sent a malformed job list\n";
    return 2;
  }
  std::printf("%-10s %-10s %-10s %-24s %-8s %s\n", "JOB", "STATE", "QUEUE", "HOST", "EXIT", "NAME");
  for (const auto& j : jobs) {
    std::string exit = j.contains("exit_code") ? std::to_string(j["exit_code"].get<int>())
                       : j.contains("signal")  ? "sig " + std::to_string(j["signal"].get<int>())
                                               : "-";
    std::printf("%-10s %-10s %-10s %-24s %-8s %s%s\n", j["id"].get<std::string>().c_str(),
                j["state"].get<std::string>().c_str(), j["queue"].get<std::string>().c_str(),
                j["host"].get<std::string>().c_str(), exit.c_str(), j["name"].get<std::string>().c_str(),
                j.contains("message")       ? ("  (" + j["message"].get<std::string>() + ")").c_str()
                : j.contains("waiting_for") ? ("  (waiting: " + j["waiting_for"].get<std::string>() + ")").c_str()
                                            : "");
  }
  if (inv.all) {
    // How far back the list reaches: queued forgets finished jobs after --keep-finished.
    auto status = Ask(inv, queue::wire::StatusRequest{});
    auto parsed = status.ok() ? nlohmann::json::parse(*status, nullptr, false) : nlohmann::json();
    if (parsed.is_object() && parsed.contains("keep_finished_seconds")) {
      int64_t seconds = parsed["keep_finished_seconds"].get<int64_t>();
      std::printf("(finished jobs are listed for %s after they end)\n",
                  seconds % 86400 == 0 ? (std::to_string(seconds / 86400) + " day(s)").c_str()
                  : seconds % 3600 == 0 ? (std::to_string(seconds / 3600) + " hour(s)").c_str()
                                         : (std::to_string(seconds) + " s").c_str());
    }
  }
  return 0;
}

// Verbs whose answer is one sentence: --cancel, --migrate.
template <class Request>
int PrintAnswer(const Invocation& inv, const Request& request, const std::string& program) {
  auto reply = Ask(inv, request);
  if (!reply.ok()) {
    std::cerr << program << ": " << reply.message() << "\n";
    return 2;
  }
  std::cout << *reply << "\n";
  return 0;
}

// Copies the file at `path` to stdout. It is opened as the user running us,
// so the kernel, not the daemon, decides whether they may read it.
queue::Status CopyFileToStdout(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return queue::Fail("cannot read " + path + ": " + queue::ErrnoText(errno));
  char buffer[65536];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int read_errno = errno;
      close(fd);
      if (n < 0) return queue::Fail("cannot read " + path + ": " + queue::ErrnoText(read_errno));
      return queue::Status::Ok();
    }
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(1, buffer + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        int write_errno = errno;
        close(fd);
        return queue::Fail("cannot write the output: " + queue::ErrnoText(write_errno));
      }
      done += w;
    }
  }
}

// queue --output ID: the daemon says where a batch job's output is, and we read it.
int ShowOutput(const Invocation& inv, const std::string& program) {
  queue::stub::DaemonClient client;
  if (auto connected = client.Connect(queue::stub::ResolveSocketPath(inv.socket_path)); !connected.ok()) {
    std::cerr << program << ": " << connected.message() << "\n";
    return 2;
  }
  auto reply = queue::stub::Call<queue::wire::OutputReply>(client, queue::wire::OutputRequest{inv.output_id});
  if (!reply.ok()) {
    std::cerr << program << ": " << reply.message() << "\n";
    return 1;
  }
  if (reply->path.empty() && !reply->held.empty()) {
    // Held in the spool (its file could not be written): shown from there.
    std::cerr << program << ": " << reply->message << "\n";
    std::cout.write(reply->held.data(), static_cast<std::streamsize>(reply->held.size()));
    std::cout.flush();
    return std::cout ? 0 : 1;
  }
  if (reply->path.empty()) {
    std::cerr << program << ": "
              << (reply->message.empty() ? "queued has no output for job " + queue::wire::FormatJobId(inv.output_id)
                                         : reply->message)
              << "\n";
    return 1;
  }
  if (!reply->complete)
    std::cerr << program << ": job " << queue::wire::FormatJobId(inv.output_id) << " has not ended yet; this is its output so far\n";
  if (auto copied = CopyFileToStdout(reply->path); !copied.ok()) {
    // A job submitted on another host: its file is there, and here only on a shared file system.
    if (!reply->message.empty()) std::cerr << program << ": " << reply->message << "\n";
    std::cerr << program << ": " << copied.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  queue::auth::InitOpenSsl();
  std::string program = std::filesystem::path(argv[0]).filename().string();
  bool is_qsh = program.find("qsh") != std::string::npos;
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = is_qsh ? queue::stub::ParseQshCommandLine(args) : queue::stub::ParseQueueCommandLine(args);
  if (!parsed.ok()) {
    std::cerr << program << ": " << parsed.message() << "\n";
    return 2;
  }
  Invocation inv = std::move(parsed.value());
  switch (inv.verb) {
    case queue::stub::Verb::kHelp: std::cout << inv.help_text; return 0;
    case queue::stub::Verb::kVersion: std::cout << program << " " << QUEUE_VERSION << "\n"; return 0;
    case queue::stub::Verb::kStatus: return ShowStatus(inv, program);
    case queue::stub::Verb::kJobs: return ShowJobs(inv, program);
    case queue::stub::Verb::kCancel: return PrintAnswer(inv, queue::wire::CancelRequest{inv.cancel_id}, program);
    case queue::stub::Verb::kOutput: return ShowOutput(inv, program);
    case queue::stub::Verb::kMigrate:
      return PrintAnswer(inv, queue::wire::MigrateRequest{inv.migrate_id, inv.migrate_host}, program);
    case queue::stub::Verb::kRun: break;
  }
  auto spec = queue::stub::CaptureLocalContext(inv.command);
  if (!spec.ok()) {
    std::cerr << program << ": " << spec.message() << "\n";
    return 2;
  }
  spec->pty = queue::stub::ChoosePtyMode(inv.pty, isatty(0) != 0, isatty(1) != 0);
  if (inv.batch) spec->pty = queue::wire::PtyMode::kNone;
  spec->batch = inv.batch;
  spec->queue = inv.queue;
  spec->job_name = inv.job_name.empty() ? std::filesystem::path(inv.command.front()).filename().string() : inv.job_name;
  spec->only_host = inv.only_host;
  spec->preferred_host = inv.preferred_host;
  queue::stub::StubOptions options;
  options.socket_path = queue::stub::ResolveSocketPath(inv.socket_path);
  options.program_name = program;
  options.spec = std::move(spec.value());
  return queue::stub::RunStub(std::move(options));
}
