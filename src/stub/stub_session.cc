// The stub's event loop: submit, accept the shepherd, relay, mirror the job's end.
// A job that checkpoints (JobStatus kMoved) leaves its shepherd; the stub keeps
// its listener, holds the user's signals and input, and attaches the job's next
// shepherd, on whichever host it restarts, the same way as the first.
#include "stub/stub_session.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include "auth/cluster_key.h"
#include "auth/psk_tls.h"
#include "cluster/hosts_file.h"
#include "stub/daemon_client.h"
#include "term/raw_mode.h"
#include "term/terminal_settings.h"
#include "wire/channel.h"

namespace queue::stub {

namespace {

using asio::ip::tcp;
using TlsStream = asio::ssl::stream<tcp::socket>;
using JobChannel = wire::Channel<TlsStream>;

constexpr size_t kStdinHighWater = 1 << 20;
// A connection that does not finish its TLS handshake in this time is dropped,
// so that a silent stranger cannot keep the job's shepherd out.
constexpr std::chrono::seconds kHandshakeLimit{10};

// Signals the stub forwards to the job. SIGCHLD, SIGPIPE and the unblockable
// ones are not forwarded.
// SIGTTIN and SIGTTOU are not forwarded: the kernel sends them to the stub
// itself when it touches the terminal from the background. SIGTTOU keeps its
// default action (stop, as a local program writing with `stty tostop` would);
// SIGTTIN is ignored so that a read already under way when the user typed
// `bg` fails with EIO instead of stopping the stub (see StartStdinReader).
constexpr int kForwardedSignals[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGUSR1,   SIGUSR2, SIGALRM,  SIGTERM,
                                     SIGCONT, SIGTSTP, SIGURG,  SIGXCPU,   SIGXFSZ, SIGVTALRM, SIGPROF,
                                     SIGWINCH, SIGIO,  SIGPWR,  SIGSYS};

void WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the reader went away; as a local job would, keep going
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

class StubSession : public std::enable_shared_from_this<StubSession> {
 public:
  StubSession(asio::io_context& io, StubOptions options, auth::PskTlsContext tls)
      : io_(io),
        options_(std::move(options)),
        tls_(std::move(tls)),
        acceptor_(io),
        signals_(io),
        timer_(io) {}

  // Returns an exit status, or nullopt when the job's end is reported later.
  std::optional<int> Submit() {
    // From now on a signal is the job's, even before the job exists: it is
    // held and delivered once the shepherd is attached.
    ForwardSignals();
    DaemonClient client;
    if (auto connected = client.Connect(options_.socket_path); !connected.ok()) return Error(connected.message());
    auto self_entry = cluster::ParseHostEntry(client.daemon_name());
    if (!self_entry.ok()) return Error("queued reported a bad host name: " + self_entry.message());
    if (auto listening = Listen(self_entry->host); !listening.ok()) return Error(listening.message());
    auto reply = Call<wire::SubmitReply>(client, wire::SubmitRequest{options_.spec});
    if (!reply.ok()) return Error(reply.message());
    job_id_ = wire::FormatJobId(reply->job);
    exec_host_ = reply->host;
    daemon_ = std::make_shared<wire::Channel<asio::local::stream_protocol::socket>>(
        asio::local::stream_protocol::socket(io_, asio::local::stream_protocol(), client.ReleaseFd()));
    WatchDaemon();
    if (exec_host_.empty()) {
      // No host can take it yet: it waits at the daemon, which tells us when it is placed.
      waiting_ = true;
      std::cerr << "[" << options_.program_name << ": job " << job_id_ << " is waiting: " << reply->waiting_reason
                << "]\n";
    } else {
      StartTimer(NotStartedMessage());
    }
    AcceptShepherd();
    return std::nullopt;
  }

  int exit_status() const { return exit_status_; }

 private:
  int Error(const std::string& message) {
    std::cerr << options_.program_name << ": " << message << "\n";
    exit_status_ = 2;
    return 2;
  }

  Status Listen(const std::string& host) {
    asio::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) {
      tcp::resolver resolver(io_);
      auto results = resolver.resolve(host, "0", ec);
      if (ec || results.empty()) return Fail("cannot resolve this host's address " + host);
      address = results.begin()->endpoint().address();
    }
    acceptor_.open(address.is_v4() ? tcp::v4() : tcp::v6(), ec);
    if (!ec) acceptor_.bind(tcp::endpoint(address, 0), ec);
    if (!ec) acceptor_.listen(4, ec);
    if (ec) return Fail("cannot listen for the job on " + host + ": " + ec.message());
    options_.spec.stub_address = address.to_string();
    options_.spec.stub_port = acceptor_.local_endpoint().port();
    return Status::Ok();
  }

  // The daemon tells us where a waiting or moved job goes, or that it failed
  // before a shepherd could reach us.
  void WatchDaemon() {
    auto self = shared_from_this();
    daemon_->Start([self](wire::MessageType type, std::string_view payload) { self->OnDaemonFrame(type, payload); },
                   [self](const std::string&) { self->OnDaemonLost(); });
  }

  // What the daemon says while a shepherd is attached is about the job's next
  // placement: the daemon hears of a checkpoint before the shepherd's kMoved
  // reaches us, so the news waits for that kMoved (OnMoved).
  void OnDaemonFrame(wire::MessageType type, std::string_view payload) {
    if (type == wire::MessageType::kSubmitReply) {
      auto placed = wire::DecodePayload<wire::SubmitReply>(payload);
      if (!placed.ok()) return;
      if (job_) {
        next_placements_.push_back(std::move(placed.value()));
        return;
      }
      return OnPlaced(*placed);
    }
    if (type != wire::MessageType::kErrorReply) return;
    auto error = wire::DecodePayload<wire::ErrorReply>(payload);
    std::string message = error.ok() ? error->message : error.message();
    if (job_) {
      restart_error_ = std::move(message);
      return;
    }
    Finish(Error(message));
  }

  // A waiting job was placed, or a moved one placed again; the host's shepherd
  // now has start_timeout to reach us. A moved job may wait for a host too.
  void OnPlaced(const wire::SubmitReply& placed) {
    if (placed.host.empty()) {
      if (moving_) PrintNotice("job " + job_id_ + " is waiting: " + placed.waiting_reason);
      return;
    }
    waiting_ = false;
    exec_host_ = placed.host;
    // A moved job placed again: where it goes, and from what (its restart
    // files, or the beginning when it wrote none).
    if (moving_ && !placed.waiting_reason.empty()) PrintNotice(placed.waiting_reason);
    StartTimer(NotStartedMessage());
  }

  void OnDaemonLost() {
    daemon_lost_ = true;
    if (finished_ || job_) return;  // a running job is the shepherd's, not the daemon's
    if (waiting_)
      return Finish(Error("queued went away while job " + job_id_ + " was waiting"));
    // Moving with no word of where to: a restarted daemon may still place it,
    // but nobody will tell us, so give it start_timeout and no more.
    if (moving_ && !timer_armed_) StartTimer(NotRestartedMessage());
  }

  std::string NotStartedMessage() const {
    return "job " + job_id_ + " was accepted by " + exec_host_ + " but did not start within " +
           std::to_string(options_.start_timeout.count()) + " s";
  }

  std::string NotRestartedMessage() const {
    return "queued went away while job " + job_id_ + " was moving, and it did not restart within " +
           std::to_string(options_.start_timeout.count()) + " s";
  }

  // Until a shepherd attaches: then gives up with message.
  void StartTimer(std::string message) {
    auto self = shared_from_this();
    timer_armed_ = true;
    timer_.expires_after(options_.start_timeout);
    timer_.async_wait([self, message = std::move(message)](const asio::error_code& e) {
      if (e) return;
      self->timer_armed_ = false;
      if (!self->job_) self->Finish(self->Error(message));
    });
  }

  void StopTimer() {
    timer_armed_ = false;
    timer_.cancel();
  }

  // Accepts while no shepherd is attached; the listener stays open for the
  // stub's life, so the job's next shepherd (after a move) waits in its
  // backlog meanwhile. Each connection gets its own handshake, so that one
  // stranger cannot hold up the others.
  void AcceptShepherd() {
    if (accepting_ || job_ || finished_) return;
    accepting_ = true;
    auto self = shared_from_this();
    acceptor_.async_accept([self](const asio::error_code& e, tcp::socket socket) {
      self->accepting_ = false;
      if (e == asio::error::operation_aborted) return;
      if (!e) self->Handshake(std::move(socket));
      if (!e) return self->AcceptShepherd();
      // Out of fds, say: try again shortly rather than spin or give up.
      auto retry = std::make_shared<asio::steady_timer>(self->io_, std::chrono::milliseconds(100));
      retry->async_wait([self, retry](const asio::error_code&) { self->AcceptShepherd(); });
    });
  }

  void Handshake(tcp::socket socket) {
    asio::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto channel = std::make_shared<JobChannel>(TlsStream(std::move(socket), tls_.context()));
    auto deadline = std::make_shared<asio::steady_timer>(io_, kHandshakeLimit);
    deadline->async_wait([channel](const asio::error_code& e) {
      asio::error_code ignored_close;
      if (!e) channel->stream().lowest_layer().close(ignored_close);
    });
    auto self = shared_from_this();
    channel->stream().async_handshake(asio::ssl::stream_base::server,
                                      [self, channel, deadline](const asio::error_code& he) {
                                        deadline->cancel();
                                        // A stranger or a stale shepherd is ignored; so is a
                                        // second shepherd while one is attached.
                                        if (he || self->job_ || self->finished_) return;
                                        self->Attach(channel);
                                      });
  }

  // The first shepherd and every one after a move attach alike: held signals
  // are delivered and stdin flows again, from where it stopped.
  void Attach(std::shared_ptr<JobChannel> channel) {
    StopTimer();
    asio::error_code ignored;
    acceptor_.cancel(ignored);  // one shepherd at a time
    const bool again = attachments_++ > 0;
    moving_ = false;
    next_placements_.clear();
    restart_error_.reset();
    job_ = channel;
    auto self = shared_from_this();
    // Frames from a shepherd already let go (moved) are not the job's any more.
    const JobChannel* attached = channel.get();
    job_->Start(
        [self, attached](wire::MessageType type, std::string_view payload) {
          if (attached == self->job_.get()) self->OnJobFrame(type, payload);
        },
        [self, attached](const std::string& reason) { self->OnJobLost(attached, reason); });
    if (!raw_mode_ && options_.spec.pty != wire::PtyMode::kNone && isatty(0)) {
      // Only a full pty turns the job's newlines into CRLF; with -o the output
      // arrives raw from pipes and our terminal must keep doing it.
      bool remote_does_output = options_.spec.pty == wire::PtyMode::kFull && isatty(1) != 0;
      auto raw = term::RawModeGuard::Enter(0, remote_does_output);
      if (raw.ok()) raw_mode_.emplace(std::move(raw.value()));
    }
    // The restarted job's pty was sized from the spec captured at submission.
    if (again && options_.spec.pty != wire::PtyMode::kNone) SendWindowSize();
    auto held = std::exchange(held_signals_, {});
    for (int signo : held) OnSignal(signo);
    ResumeStdin();
  }

  // The job checkpointed and goes on elsewhere: let this shepherd go and wait
  // for the next one, keeping the terminal as it is.
  void OnMoved(const wire::JobStatus& status) {
    PrintNotice("job " + job_id_ + " " + status.message);
    // Closed from the loop, not from inside the channel's own frame handler.
    auto moved = std::exchange(job_, nullptr);
    asio::post(io_, [moved] { moved->Close("the job moved"); });
    moving_ = true;
    if (restart_error_) return Finish(Error(*restart_error_));
    if (!next_placements_.empty()) {
      // In order: why it could not go where it was asked, then where it goes.
      for (const auto& placed : std::exchange(next_placements_, {})) OnPlaced(placed);
    } else if (daemon_lost_) {
      StartTimer(NotRestartedMessage());
    }
    AcceptShepherd();
  }

  // A line of our own on stderr, on a line of its own even in raw mode.
  void PrintNotice(const std::string& text) {
    std::string line = "[" + options_.program_name + ": " + text + "]";
    WriteAll(2, raw_mode_ ? "\r\n" + line + "\r\n" : line + "\n");
  }

  void SendWindowSize() {
    auto size = term::ReadWindowSize(isatty(0) ? 0 : 1);
    if (size.ok()) job_->Send(size.value());
  }

  void OnJobFrame(wire::MessageType type, std::string_view payload) {
    switch (type) {
      case wire::MessageType::kHello:
      case wire::MessageType::kAttach: return;
      case wire::MessageType::kStreamData: {
        auto data = wire::DecodePayload<wire::StreamData>(payload);
        if (!data.ok()) return job_->Close(data.message());
        WriteAll(data->stream == wire::StreamId::kStderr ? 2 : 1, data->bytes);
        return;
      }
      case wire::MessageType::kNotice: {
        auto notice = wire::DecodePayload<wire::Notice>(payload);
        if (notice.ok()) WriteAll(2, "\r\n" + notice->text + "\r\n");
        return;
      }
      case wire::MessageType::kJobStatus: {
        auto status = wire::DecodePayload<wire::JobStatus>(payload);
        if (!status.ok()) return job_->Close(status.message());
        return OnJobStatus(*status);
      }
      default: return job_->Close("unexpected message from the shepherd");
    }
  }

  void OnJobStatus(const wire::JobStatus& status) {
    switch (status.kind) {
      case wire::JobStatusKind::kExited: return Finish(status.value);
      case wire::JobStatusKind::kStartFailed:
        std::cerr << status.message << "\n";
        return Finish(status.value);
      case wire::JobStatusKind::kSignaled:
        died_by_signal_ = status.value;
        return Finish(128 + status.value);
      case wire::JobStatusKind::kStopped: return StopSelf(status.value);
      case wire::JobStatusKind::kMoved: return OnMoved(status);
    }
  }

  // The job stopped: stop ourselves with the same signal so the shell sees it;
  // when we are continued, SIGCONT reaches the job through ForwardSignals.
  void StopSelf(int signo) {
    if (raw_mode_) (void)raw_mode_->Restore();
    asio::error_code ignored;
    signals_.remove(signo, ignored);
    signal(signo, SIG_DFL);
    raise(signo);  // returns once we are continued
    signals_.add(signo, ignored);
    if (raw_mode_ && term::IsForegroundOf(0)) (void)raw_mode_->Reapply();
  }

  void ForwardSignals() {
    asio::error_code ignored;
    for (int signo : kForwardedSignals) signals_.add(signo, ignored);
    WaitSignal();
  }

  void WaitSignal() {
    auto self = shared_from_this();
    signals_.async_wait([self](const asio::error_code& e, int signo) {
      if (e) return;
      self->OnSignal(signo);
      self->WaitSignal();
    });
  }

  void OnSignal(int signo) {
    if (!job_ && waiting_ && (signo == SIGINT || signo == SIGTERM || signo == SIGHUP || signo == SIGQUIT)) {
      // Nothing runs yet: the user gives up waiting. Closing our connection withdraws the job.
      std::cerr << "[" << options_.program_name << ": job " << job_id_ << " withdrawn]\n";
      died_by_signal_ = signo;
      return Finish(128 + signo);
    }
    if (!job_) {
      held_signals_.push_back(signo);
      return;
    }
    if (signo == SIGWINCH) SendWindowSize();
    // Continued in the background (bg) the terminal is the shell's: only `fg` gets raw mode back.
    if (signo == SIGCONT && raw_mode_ && term::IsForegroundOf(0)) (void)raw_mode_->Reapply();
    job_->Send(wire::Signal{signo});
  }

  // On each attach: the first starts the reader; later ones get what was read
  // while no shepherd was attached, and the end of input again if it came (the
  // restarted job has a stdin of its own to close).
  void ResumeStdin() {
    if (!stdin_reader_started_) {
      stdin_reader_started_ = true;
      return StartStdinReader();
    }
    if (parked_stdin_) {
      job_->Send(wire::StreamData{wire::StreamId::kStdin, std::move(*parked_stdin_)});
      parked_stdin_.reset();
    }
    if (stdin_ended_) job_->Send(wire::StreamEof{wire::StreamId::kStdin});
    ReleaseStdinReaderWhenDrained();
  }

  // The reader thread waits on `reader` after each chunk. With no shepherd
  // attached the chunk is kept and the reader stays waiting, which bounds what
  // is held to one chunk and loses none of it.
  void OnStdinChunk(std::string chunk, std::shared_ptr<std::promise<void>> reader) {
    stdin_reader_ = std::move(reader);
    if (!job_) {
      parked_stdin_ = std::move(chunk);
      return;
    }
    job_->Send(wire::StreamData{wire::StreamId::kStdin, std::move(chunk)});
    ReleaseStdinReaderWhenDrained();
  }

  void OnStdinEnd() {
    stdin_ended_ = true;
    if (job_) job_->Send(wire::StreamEof{wire::StreamId::kStdin});
  }

  void ReleaseStdinReaderWhenDrained() {
    if (!stdin_reader_ || !job_) return;
    if (job_->pending_bytes() < kStdinHighWater || job_->closed()) return ReleaseStdinReader();
    auto self = shared_from_this();
    const JobChannel* channel = job_.get();
    // A channel let go (moved) never drains; the next attach releases the reader.
    job_->OnDrained([self, channel] {
      if (channel == self->job_.get()) self->ReleaseStdinReader();
    });
  }

  void ReleaseStdinReader() {
    if (auto reader = std::exchange(stdin_reader_, nullptr)) reader->set_value();
  }

  // stdin may be a file, a pipe or a tty, not all of which epoll can watch; a
  // thread does the blocking reads and hands each chunk to the loop, waiting
  // when too much is in flight so memory stays bounded.
  void StartStdinReader() {
    auto self = shared_from_this();
    std::thread([self] {
      std::string buffer(wire::kMaxStreamChunk, '\0');
      const bool tty = isatty(0) != 0;
      for (;;) {
        // A terminal belongs to the foreground job; in the background (after
        // ^Z and bg) we leave it alone, like a local program that has not
        // read yet, rather than being stopped by SIGTTIN on every try.
        if (tty && !term::IsForegroundOf(0)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          continue;
        }
        ssize_t n = read(0, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EIO && tty) {  // moved to the background mid-read, or hung up
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          continue;
        }
        if (n <= 0) {
          asio::post(self->io_, [self] { self->OnStdinEnd(); });
          return;
        }
        auto sent = std::make_shared<std::promise<void>>();
        auto ready = sent->get_future();
        asio::post(self->io_, [self, sent, chunk = buffer.substr(0, static_cast<size_t>(n))]() mutable {
          self->OnStdinChunk(std::move(chunk), std::move(sent));
        });
        ready.wait();
      }
    }).detach();
  }

  void OnJobLost(const JobChannel* channel, const std::string& reason) {
    if (finished_ || channel != job_.get()) return;  // a moved job's old shepherd may go
    Finish(Error("lost the connection to job " + job_id_ + " on " + exec_host_ + ": " + reason));
  }

  void Finish(int status) {
    if (finished_) return;
    finished_ = true;
    exit_status_ = status;
    if (raw_mode_) (void)raw_mode_->Restore();
    io_.stop();
  }

 public:
  int died_by_signal() const { return died_by_signal_; }

 private:
  asio::io_context& io_;
  StubOptions options_;
  auth::PskTlsContext tls_;
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer timer_;
  std::shared_ptr<wire::Channel<asio::local::stream_protocol::socket>> daemon_;
  std::shared_ptr<JobChannel> job_;
  std::optional<term::RawModeGuard> raw_mode_;
  std::vector<int> held_signals_;  // arrived while no shepherd was attached
  bool waiting_ = false;            // no host has taken the job yet
  bool moving_ = false;             // checkpointed (kMoved), until the next shepherd attaches
  bool accepting_ = false;
  bool timer_armed_ = false;
  bool daemon_lost_ = false;
  int attachments_ = 0;
  // The daemon's word on the next placement, heard before the shepherd's kMoved.
  std::vector<wire::SubmitReply> next_placements_;  // come while the job was still attached
  std::optional<std::string> restart_error_;
  // stdin: the reader thread's wait, a chunk read while detached, and its end.
  bool stdin_reader_started_ = false;
  std::shared_ptr<std::promise<void>> stdin_reader_;
  std::optional<std::string> parked_stdin_;
  bool stdin_ended_ = false;
  std::string job_id_;  // as the daemon named it: "17.2"
  std::string exec_host_;
  int exit_status_ = 2;
  int died_by_signal_ = 0;
  bool finished_ = false;
};

// Dies of the job's signal; no core file, since the job already dumped its own.
[[noreturn]] void DieBySignal(int signo) {
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  signal(signo, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signo);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);
  raise(signo);
  _exit(128 + signo);
}

// A batch job (-r) needs no listener, session key or TLS: its output goes to a
// file on this host. Submit it, print its id alone on stdout, and leave.
int SubmitBatchJob(const StubOptions& options) {
  auto fail = [&](const std::string& message) {
    std::cerr << options.program_name << ": " << message << "\n";
    return 2;
  };
  DaemonClient client;
  if (auto connected = client.Connect(options.socket_path); !connected.ok()) return fail(connected.message());
  auto reply = Call<wire::SubmitReply>(client, wire::SubmitRequest{options.spec});
  if (!reply.ok()) return fail(reply.message());
  std::cout << wire::FormatJobId(reply->job) << "\n" << std::flush;
  if (!std::cout) return fail("job " + wire::FormatJobId(reply->job) + " was submitted, but its id could not be written");
  return 0;
}

}  // namespace

int RunStub(StubOptions options) {
  signal(SIGPIPE, SIG_IGN);
  if (options.spec.batch) return SubmitBatchJob(options);
  signal(SIGTTIN, SIG_IGN);
  options.spec.session_key = auth::RandomBytes(wire::kSessionKeyBytes);
  auto tls = auth::PskTlsContext::Create(auth::PskTlsContext::Side::kServer, options.spec.session_key,
                                         auth::kJobIdentity);
  if (!tls.ok()) {
    std::cerr << options.program_name << ": " << tls.message() << "\n";
    return 2;
  }
  asio::io_context io;
  auto session = std::make_shared<StubSession>(io, std::move(options), std::move(tls.value()));
  if (auto done = session->Submit(); done.has_value()) return *done;
  io.run();
  std::cout.flush();
  if (session->died_by_signal() != 0) DieBySignal(session->died_by_signal());
  // The stdin reader thread may be blocked in read(); leave without unwinding it.
  std::fflush(nullptr);
  _exit(session->exit_status());
}

}  // namespace queue::stub
