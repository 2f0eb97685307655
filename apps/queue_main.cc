// queue and qsh: the client and stub. Which one is decided by argv[0].
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "auth/psk_tls.h"
#include "util/printable.h"
#include "stub/bulk_submit.h"
#include "stub/command_line.h"
#include "stub/daemon_client.h"
#include "stub/live_view.h"
#include "stub/local_context.h"
#include "stub/qsh_command_line.h"
#include "stub/status_view.h"
#include "stub/stub_session.h"
#include "util/fd_io.h"

namespace {

using queue::Result;
using queue::stub::Invocation;

// Sends one request whose answer is a StatusReply, and returns its text.
Result<std::string> Ask(const queue::stub::DaemonSocket& socket, auto request) {
  queue::stub::DaemonClient client;
  if (auto connected = client.Connect(socket); !connected.ok())
    return queue::Fail(connected.message());
  auto reply = queue::stub::Call<queue::wire::StatusReply>(client, request);
  if (!reply.ok()) return reply.error();
  return reply->json;
}

// `queue --status` or `queue --jobs` once: its JSON document or its table.
Result<std::string> StatusOnce(const Invocation& inv, const queue::stub::DaemonSocket& socket, bool colour) {
  auto reply = Ask(socket, queue::wire::StatusRequest{});
  if (!reply.ok()) return reply.error();
  auto status = nlohmann::json::parse(*reply, nullptr, false);
  if (!status.is_object()) return queue::Fail("queued sent malformed status");
  // Which daemon answered, and how we found it (QUEUE_SOCKET is often dropped on the way).
  auto doc = queue::stub::StatusDocument(std::move(status), socket.path, socket.found_by);
  return inv.json ? doc.dump() + "\n" : queue::stub::StatusText(doc, colour);
}

Result<std::string> JobsOnce(const Invocation& inv, const queue::stub::DaemonSocket& socket, bool colour) {
  auto reply = Ask(socket, queue::wire::JobsRequest{inv.all});
  if (!reply.ok()) return reply.error();
  auto jobs = nlohmann::json::parse(*reply, nullptr, false);
  if (!jobs.is_array()) return queue::Fail("queued sent a malformed job list");
  auto doc = queue::stub::JobsDocument(std::move(jobs));
  if (inv.json) return doc.dump() + "\n";
  // Elements of a job array in the same state, queue and host share a row.
  auto shown = doc;
  shown["jobs"] = queue::stub::CompactArrays(doc["jobs"]);
  std::string text = queue::stub::JobsText(shown, colour);
  if (inv.all) {
    // How far back the list reaches: queued forgets finished jobs after --keep-finished.
    auto status = Ask(socket, queue::wire::StatusRequest{});
    auto parsed = status.ok() ? nlohmann::json::parse(*status, nullptr, false) : nlohmann::json();
    if (parsed.is_object() && parsed.contains("keep_finished_seconds"))
      text += "(finished jobs are listed for " + queue::stub::KeptFor(parsed["keep_finished_seconds"].get<int64_t>()) +
              " after they end)\n";
  }
  return text;
}

// --status and --jobs, once or --watch'ed.
int ShowStatusOrJobs(const Invocation& inv, const std::string& program) {
  auto socket = queue::stub::FindDaemonSocket(inv.socket_path);
  const bool terminal = isatty(1) != 0;
  const bool colour = !inv.json && queue::stub::UseColour(terminal, std::getenv("NO_COLOR"), std::getenv("TERM"));
  auto render = [&]() -> Result<std::string> {
    auto text = inv.verb == queue::stub::Verb::kStatus ? StatusOnce(inv, socket, colour) : JobsOnce(inv, socket, colour);
    if (!text.ok()) return queue::Fail(program + ": " + text.message());
    return text;
  };
  if (inv.watch_seconds > 0) return queue::stub::Watch(render, inv.watch_seconds, terminal, std::cout, std::cerr);
  auto text = render();
  if (!text.ok()) {
    std::cerr << text.message() << "\n";
    return 2;
  }
  std::cout << *text;
  return 0;
}

// Verbs whose answer is one sentence: --cancel, --migrate.
template <class Request>
int PrintAnswer(const Invocation& inv, const Request& request, const std::string& program) {
  auto reply = Ask(queue::stub::FindDaemonSocket(inv.socket_path), request);
  if (!reply.ok()) {
    std::cerr << program << ": " << reply.message() << "\n";
    return 2;
  }
  std::cout << *reply << "\n";
  return 0;
}

// queue --migrate ID [HOST]: the daemon's answer, then, on a terminal, the
// move's progress (stderr: the answer stays alone on stdout for a script).
int Migrate(const Invocation& inv, const std::string& program) {
  if (int answered = PrintAnswer(inv, queue::wire::MigrateRequest{inv.migrate_id, inv.migrate_host}, program);
      answered != 0 || isatty(2) == 0)
    return answered;
  auto socket = queue::stub::FindDaemonSocket(inv.socket_path);
  auto status = Ask(socket, queue::wire::StatusRequest{});
  auto parsed = status.ok() ? nlohmann::json::parse(*status, nullptr, false) : nlohmann::json();
  if (!parsed.is_object()) return 0;
  auto jobs = [&socket]() -> Result<nlohmann::json> {
    auto reply = Ask(socket, queue::wire::JobsRequest{true});
    if (!reply.ok()) return reply.error();
    auto list = nlohmann::json::parse(*reply, nullptr, false);
    if (!list.is_array()) return queue::Fail("queued sent a malformed job list");
    return list;
  };
  winsize size{};
  int width = ioctl(2, TIOCGWINSZ, &size) == 0 && size.ws_col > 0 ? size.ws_col : 80;
  queue::stub::FollowMigration(jobs, inv.migrate_id, parsed.value("host", std::string()), width, std::cerr);
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
    // Our stdout may be a non-blocking pipe (WriteFully waits for it).
    if (int error = queue::WriteFully(1, std::string_view(buffer, static_cast<size_t>(n))); error != 0) {
      close(fd);
      return queue::Fail("cannot write the output: " + queue::ErrnoText(error));
    }
  }
}

// queue --output ID: the daemon says where a batch job's output is, and we read it.
int ShowOutput(const Invocation& inv, const std::string& program) {
  queue::stub::DaemonClient client;
  if (auto connected = client.Connect(queue::stub::FindDaemonSocket(inv.socket_path)); !connected.ok()) {
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
    if (int error = queue::WriteFully(1, reply->held); error != 0) {
      std::cerr << program << ": cannot write the output: " << queue::ErrnoText(error) << "\n";
      return 1;
    }
    return 0;
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

// Reads all of `path` ("-": stdin).
Result<std::string> ReadAll(const std::string& path) {
  int fd = path == "-" ? 0 : open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return queue::Fail("--from: cannot open " + path + ": " + queue::ErrnoText(errno));
  std::string text;
  char buffer[65536];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      if (fd != 0) close(fd);
      return queue::Fail("--from: cannot read " + path + ": " + queue::ErrnoText(error));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  if (fd != 0) close(fd);
  return text;
}

// queue -r --array INDICES -- cmd, queue -r --from FILE: many batch jobs,
// stored all or none; prints the array's id alone (queue --cancel takes it).
int SubmitMany(const Invocation& inv, const std::string& program) {
  std::vector<queue::wire::ArrayRange> ranges;
  std::vector<std::string> lines;
  if (inv.array) {
    auto parsed = queue::stub::ParseArrayIndices(*inv.array);
    if (!parsed.ok()) {
      std::cerr << program << ": " << parsed.message() << "\n";
      return 2;
    }
    ranges = std::move(parsed.value());
  } else {
    auto text = ReadAll(*inv.from);
    auto parsed = text.ok() ? queue::stub::ParseCommandLines(*text) : Result<std::vector<std::string>>(text.error());
    if (!parsed.ok()) {
      std::cerr << program << ": " << parsed.message() << "\n";
      return 2;
    }
    lines = std::move(parsed.value());
  }
  // The submitter's context, captured once and shared by every job.
  auto spec = queue::stub::CaptureLocalContext(inv.from ? std::vector<std::string>{"/bin/sh", "-c"} : inv.command);
  if (!spec.ok()) {
    std::cerr << program << ": " << spec.message() << "\n";
    return 2;
  }
  spec->pty = queue::wire::PtyMode::kNone;
  spec->batch = true;
  spec->queue = inv.queue;
  spec->job_name = !inv.job_name.empty() ? inv.job_name
                                         : std::filesystem::path(spec->argv.front()).filename().string();
  spec->only_host = inv.only_host;
  spec->preferred_host = inv.preferred_host;
  queue::stub::DaemonClient client;
  if (auto connected = client.Connect(queue::stub::FindDaemonSocket(inv.socket_path)); !connected.ok()) {
    std::cerr << program << ": " << connected.message() << "\n";
    return 2;
  }
  const bool terminal = isatty(2) != 0;
  auto progress = [&](size_t sent, size_t total) {
    if (terminal) std::cerr << "\r" << program << ": sent " << sent << " of " << total << " commands" << std::flush;
  };
  auto reply = queue::stub::SubmitBulk(client, *spec, ranges, std::move(lines), progress);
  if (terminal && inv.from) std::cerr << "\n";
  if (!reply.ok()) {
    std::cerr << program << ": " << reply.message() << "\n";
    return 2;
  }
  const std::string id = queue::wire::FormatJobId(reply->array);
  if (terminal)
    std::cerr << program << ": " << reply->count << " jobs submitted as array " << id << " (elements " << id
              << "_INDEX; queue --cancel " << id << " cancels them all)\n";
  std::cout << id << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  queue::auth::InitOpenSsl(queue::auth::OpenSslUse::kPerJob);
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
    case queue::stub::Verb::kPrintConfig: std::cout << inv.help_text; return 0;
    case queue::stub::Verb::kVersion: std::cout << program << " " << QUEUE_VERSION << "\n"; return 0;
    case queue::stub::Verb::kStatus:
    case queue::stub::Verb::kJobs: return ShowStatusOrJobs(inv, program);
    case queue::stub::Verb::kCancel:
      return PrintAnswer(inv, queue::wire::CancelRequest{inv.cancel_id, inv.cancel_element}, program);
    case queue::stub::Verb::kOutput: return ShowOutput(inv, program);
    case queue::stub::Verb::kMigrate: return Migrate(inv, program);
    case queue::stub::Verb::kRun: break;
  }
  // qsh -n: stdin from /dev/null, as ssh -n does it, before anything looks at stdin.
  if (inv.stdin_null) {
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0) {
      std::cerr << program << ": cannot open /dev/null: " << queue::ErrnoText(errno) << "\n";
      return 2;
    }
    if (null != 0) close(null);
  }
  if (inv.array || inv.from) return SubmitMany(inv, program);
  auto spec = queue::stub::CaptureLocalContext(inv.command);
  if (!spec.ok()) {
    std::cerr << program << ": " << spec.message() << "\n";
    return 2;
  }
  // qsh -tt: a pty even without a terminal here, as ssh -tt.
  spec->pty = inv.force_pty ? queue::wire::PtyMode::kFull
                            : queue::stub::ChoosePtyMode(inv.pty, isatty(0) != 0, isatty(1) != 0);
  if (inv.batch) spec->pty = queue::wire::PtyMode::kNone;
  spec->batch = inv.batch;
  spec->queue = inv.queue;
  spec->job_name = inv.job_name.empty() ? std::filesystem::path(inv.command.front()).filename().string() : inv.job_name;
  spec->only_host = inv.only_host;
  spec->preferred_host = inv.preferred_host;
  queue::stub::StubOptions options;
  options.socket = queue::stub::FindDaemonSocket(inv.socket_path);
  options.program_name = program;
  options.spec = std::move(spec.value());
  return queue::stub::RunStub(std::move(options));
}
