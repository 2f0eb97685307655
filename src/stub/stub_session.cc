// The stub's event loop: submit, accept the shepherd, relay, mirror the job's end.
// A job that checkpoints (JobStatus kMoved) leaves its shepherd; the stub keeps
// its listener, holds the user's signals and input, and attaches the job's next
// shepherd, on whichever host it restarts, the same way as the first.
#include "stub/stub_session.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <asio.hpp>
#include <asio/ssl.hpp>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include "auth/cluster_key.h"
#include "auth/pending_handshakes.h"
#include "auth/psk_tls.h"
#include "cluster/hosts_file.h"
#include "stub/daemon_client.h"
#include "stub/output_writer.h"
#include "stub/status_view.h"
#include "term/raw_mode.h"
#include "term/terminal_settings.h"
#include "util/fd_io.h"
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
// Connections to our listener still in their handshake, at most.
constexpr size_t kMaxHandshakes = 16;

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

// Output queued for our stdout and stderr beyond this pauses the job's
// channel (and so, through TCP, the job), until the writer is down to half.
constexpr size_t kOutputHighWater = 1 << 20;

wire::StreamId OutputStream(int fd) { return fd == 2 ? wire::StreamId::kStderr : wire::StreamId::kStdout; }

class StubSession : public std::enable_shared_from_this<StubSession> {
 public:
  StubSession(asio::io_context& io, StubOptions options)
      : io_(io),
        options_(std::move(options)),
        acceptor_(io),
        signals_(io),
        timer_(io),
        output_(io, [this](int fd, int error) { OnOutputFailed(fd, error); }) {}

  // Returns an exit status, or nullopt when the job's end is reported later.
  std::optional<int> Submit() {
    // From now on a signal is the job's, even before the job exists: it is
    // held and delivered once the shepherd is attached.
    ForwardSignals();
    DaemonClient client;
    if (auto connected = client.Connect(options_.socket); !connected.ok()) return Error(connected.message());
    auto self_entry = cluster::ParseHostEntry(client.daemon_name());
    if (!self_entry.ok()) return Error("queued reported a bad host name: " + self_entry.message());
    if (auto listening = Listen(self_entry->host); !listening.ok()) return Error(listening.message());
    if (auto sent = client.Send(wire::SubmitRequest{options_.spec}); !sent.ok()) return Error(sent.message());
    // OpenSSL's set-up (a few ms of CPU) runs while the daemon records the job
    // and starts its shepherd, rather than before the daemon hears of it; the
    // shepherd's first TLS bytes wait in our listener's backlog meanwhile.
    if (auto tls = MakeTlsContext(); !tls.ok()) return Error(tls.message());
    auto reply = ReceiveReply<wire::SubmitReply>(client);
    if (!reply.ok()) return Error(reply.message());
    job_id_ = wire::FormatJobId(reply->job);
    exec_host_ = reply->host;
    daemon_ = std::make_shared<wire::Channel<asio::local::stream_protocol::socket>>(
        asio::local::stream_protocol::socket(io_, asio::local::stream_protocol(), client.ReleaseFd()));
    WatchDaemon();
    if (exec_host_.empty()) {
      // No host can take it yet: it waits at the daemon, which tells us when it is placed.
      waiting_ = true;
      PrintNotice("job " + job_id_ + " is waiting: " + reply->waiting_reason);
    } else {
      StartTimer(NotStartedMessage());
    }
    AcceptShepherd();
    return std::nullopt;
  }

  int exit_status() const { return exit_status_; }

  // Everything the job wrote is out (or dropped for a reader that left); then
  // says whether writing it failed otherwise, and makes that the exit status
  // when the job itself succeeded (SPEC §4: a loss is never silent).
  // Called once the loop has stopped, so a failure of the last writes is
  // looked at here rather than heard through OnOutputFailed.
  void FinishOutput() {
    output_.Flush();
    for (int fd : {1, 2}) {
      int error = output_.failure(fd);
      if (error == 0 || error == EPIPE || !write_failure_.empty()) continue;
      write_failure_ = DescribeWriteFailure(fd, error);
      (void)WriteFully(2, options_.program_name + ": " + write_failure_ + "\n");
    }
    if (!write_failure_.empty() && died_by_signal_ == 0 && exit_status_ == 0) exit_status_ = 2;
  }

 private:
  int Error(const std::string& message) {
    output_.Write(2, options_.program_name + ": " + message + "\n");
    exit_status_ = 2;
    return 2;
  }

  // Our stdout or stderr failed: nobody reads it any more. As ssh does, the
  // job's side of that stream is closed, so that the job learns it on its
  // next write as it would locally (SIGPIPE), and we end when it ends. An
  // error other than a reader leaving is said (as cat says it).
  void OnOutputFailed(int fd, int error) {
    unread_[fd] = true;
    if (error != EPIPE && write_failure_.empty()) {
      write_failure_ = DescribeWriteFailure(fd, error);
      output_.Write(2, options_.program_name + ": " + write_failure_ + "\n");
    }
    if (job_) job_->Send(wire::StreamClosed{OutputStream(fd)});
  }

  static std::string DescribeWriteFailure(int fd, int error) {
    return std::string("cannot write the job's ") + (fd == 1 ? "output" : "errors") + ": " + ErrnoText(error);
  }

  // Data for our stdout or stderr, in the order it came. Past the high-water
  // mark the job's channel waits for the writer, which bounds our memory.
  void WriteOutput(int fd, std::string bytes) {
    if (unread_[fd]) return;
    EndProgressBar();
    output_.Write(fd, std::move(bytes));
    if (!job_ || output_paused_ || output_.pending_bytes() <= kOutputHighWater) return;
    output_paused_ = true;
    job_->Pause();
    auto self = shared_from_this();
    std::weak_ptr<JobChannel> paused = job_;
    output_.WhenAtMost(kOutputHighWater / 2, [self, paused] {
      self->output_paused_ = false;
      if (auto channel = paused.lock()) channel->Resume();
    });
  }

  // The server side of the job's channel, keyed by the session key the spec carries.
  Status MakeTlsContext() {
    auto tls = auth::PskTlsContext::Create(auth::PskTlsContext::Side::kServer, options_.spec.session_key,
                                           auth::kJobIdentity);
    if (!tls.ok()) return tls.error();
    tls_.emplace(std::move(tls.value()));
    return Status::Ok();
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
  // reaches us, so the news waits for that kMoved (OnMoved). But the
  // shepherd of a moved job's new placement may reach us before the daemon's
  // word of that placement does: news that comes while its placement is still
  // awaited is about the job as it runs now, and its note is shown at once.
  void OnDaemonFrame(wire::MessageType type, std::string_view payload) {
    if (type == wire::MessageType::kTransferProgress) return OnTransferProgress(payload);
    if (type == wire::MessageType::kSubmitReply) {
      auto placed = wire::DecodePayload<wire::SubmitReply>(payload);
      if (!placed.ok()) return;
      if (job_ && awaiting_placement_) {
        if (placed->host.empty()) return;  // it waited before it was placed: old news
        awaiting_placement_ = false;
        if (!placed->waiting_reason.empty()) PrintNotice(placed->waiting_reason);
        return;
      }
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
    awaiting_placement_ = false;
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

  // Anyone on the host can connect here; only the shepherd has the session
  // key. Handshakes in progress are capped (the oldest stranger is closed to
  // make room), so a flood can neither use up our descriptors nor keep the
  // shepherd, which finishes in milliseconds, out.
  void Handshake(tcp::socket socket) {
    asio::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto channel = std::make_shared<JobChannel>(TlsStream(std::move(socket), tls_->context()));
    auto close = [weak = std::weak_ptr<JobChannel>(channel)] {
      asio::error_code ignored_close;
      if (auto c = weak.lock()) c->stream().lowest_layer().close(ignored_close);
    };
    const uint64_t ticket = handshakes_.Add(close);
    auto deadline = std::make_shared<asio::steady_timer>(io_, kHandshakeLimit);
    deadline->async_wait([close](const asio::error_code& e) {
      if (!e) close();
    });
    auto self = shared_from_this();
    channel->stream().async_handshake(asio::ssl::stream_base::server,
                                      [self, channel, deadline, ticket](const asio::error_code& he) {
                                        deadline->cancel();
                                        self->handshakes_.Done(ticket);
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
    // A reader that left while the job was elsewhere (or before it attached) is still gone.
    for (int fd : {1, 2})
      if (unread_[fd]) job_->Send(wire::StreamClosed{OutputStream(fd)});
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
    awaiting_placement_ = true;
    if (restart_error_) return Finish(Error(*restart_error_));
    if (!next_placements_.empty()) {
      // In order: why it could not go where it was asked, then where it goes.
      for (const auto& placed : std::exchange(next_placements_, {})) OnPlaced(placed);
    } else if (daemon_lost_) {
      StartTimer(NotRestartedMessage());
    }
    AcceptShepherd();
  }

  // The job's restart files on their way (a checkpoint move): a bar redrawn
  // in place on stderr, when stderr is a terminal; nothing otherwise. The
  // daemon tells a few times a second, and once more at the end, which ends
  // the bar's line.
  void OnTransferProgress(std::string_view payload) {
    auto progress = wire::DecodePayload<wire::TransferProgress>(payload);
    if (!progress.ok() || unread_[2] || isatty(2) == 0) return;
    auto size = term::ReadWindowSize(2);
    int width = size.ok() && size->cols > 0 ? size->cols : 80;
    double seconds = progress->elapsed_ms / 1000.0;
    std::string label = std::string("restart files ") + (progress->outward ? "to " : "from ") + progress->host;
    std::string line = ProgressLine(label, progress->bytes, progress->size,
                                    seconds > 0 ? static_cast<double>(progress->bytes) / seconds : 0, width - 1);
    // Cursor to the line's start, the bar, the rest of the old one cleared.
    output_.Write(2, "\r" + line + "\x1b[K");
    progress_bar_open_ = true;
    if (progress->complete) EndProgressBar();
  }

  void EndProgressBar() {
    if (!std::exchange(progress_bar_open_, false)) return;
    output_.Write(2, raw_mode_ ? "\r\n" : "\n");
  }

  // A line of our own on stderr, on a line of its own even in raw mode.
  void PrintNotice(const std::string& text) {
    const bool after_bar = progress_bar_open_;
    EndProgressBar();
    std::string line = "[" + options_.program_name + ": " + text + "]";
    output_.Write(2, raw_mode_ ? (after_bar ? "" : "\r\n") + line + "\r\n" : line + "\n");
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
        return WriteOutput(data->stream == wire::StreamId::kStderr ? 2 : 1, std::move(data->bytes));
      }
      case wire::MessageType::kNotice: {
        auto notice = wire::DecodePayload<wire::Notice>(payload);
        if (notice.ok() && !unread_[2]) output_.Write(2, "\r\n" + notice->text + "\r\n");
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
        output_.Write(2, status.message + "\n");
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
      PrintNotice("job " + job_id_ + " withdrawn");
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
        // A non-blocking stdin (the caller's to set) is waited on, never taken for its end.
        ssize_t n = ReadSome(0, buffer.data(), buffer.size());
        if (n == -EIO && tty) {  // moved to the background mid-read, or hung up
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          continue;
        }
        if (n <= 0) {
          // A closed or unreadable stdin ends the job's input, as it would end a
          // local program's; any other failure is said first.
          std::string why = n < 0 && n != -EBADF ? "cannot read the input: " + ErrnoText(static_cast<int>(-n)) : "";
          asio::post(self->io_, [self, why] {
            if (!why.empty()) self->PrintNotice(why);
            self->OnStdinEnd();
          });
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
    // The job's last output is drawn before the terminal leaves raw mode.
    if (raw_mode_) {
      output_.Flush();
      (void)raw_mode_->Restore();
    }
    io_.stop();
  }

 public:
  int died_by_signal() const { return died_by_signal_; }

 private:
  asio::io_context& io_;
  StubOptions options_;
  std::optional<auth::PskTlsContext> tls_;  // made in Submit, before the shepherd can be accepted
  tcp::acceptor acceptor_;
  auth::PendingHandshakes handshakes_{kMaxHandshakes};
  asio::signal_set signals_;
  asio::steady_timer timer_;
  std::shared_ptr<wire::Channel<asio::local::stream_protocol::socket>> daemon_;
  std::shared_ptr<JobChannel> job_;
  std::optional<term::RawModeGuard> raw_mode_;
  bool progress_bar_open_ = false;  // a progress line is on stderr, not yet ended
  std::vector<int> held_signals_;  // arrived while no shepherd was attached
  bool waiting_ = false;            // no host has taken the job yet
  bool moving_ = false;             // checkpointed (kMoved), until the next shepherd attaches
  bool awaiting_placement_ = false;  // moved, and the daemon's word of where to has not come yet
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
  // Our stdout and stderr: written from their own thread; by fd, whether
  // their reader has gone; the first write error other than that.
  OutputWriter output_;
  std::array<bool, 3> unread_{};
  bool output_paused_ = false;  // the job's channel waits for the writer
  std::string write_failure_;
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
  if (auto connected = client.Connect(options.socket); !connected.ok()) return fail(connected.message());
  auto reply = Call<wire::SubmitReply>(client, wire::SubmitRequest{options.spec});
  if (!reply.ok()) return fail(reply.message());
  std::string id = wire::FormatJobId(reply->job);
  if (WriteFully(1, id + "\n") != 0) return fail("job " + id + " was submitted, but its id could not be written");
  return 0;
}

}  // namespace

int RunStub(StubOptions options) {
  signal(SIGPIPE, SIG_IGN);
  if (options.spec.batch) return SubmitBatchJob(options);
  signal(SIGTTIN, SIG_IGN);
  options.spec.session_key = auth::RandomBytes(wire::kSessionKeyBytes);
  asio::io_context io;
  auto session = std::make_shared<StubSession>(io, std::move(options));
  if (auto done = session->Submit(); !done.has_value()) io.run();
  session->FinishOutput();
  if (session->died_by_signal() != 0) DieBySignal(session->died_by_signal());
  // The stdin reader thread may be blocked in read(); leave without unwinding it.
  std::fflush(nullptr);
  _exit(session->exit_status());
}

}  // namespace queue::stub
