// The shepherd's event loop: one job, one stub connection, one daemon channel.
#include "exec/shepherd.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <iostream>
#include <memory>
#include <optional>

#include "auth/psk_tls.h"
#include "exec/job_launcher.h"
#include "wire/channel.h"
#include "wire/frame.h"

namespace queue::exec {

namespace {

using asio::ip::tcp;
using TlsStream = asio::ssl::stream<tcp::socket>;
using StubChannel = wire::Channel<TlsStream>;
using DaemonChannel = wire::Channel<asio::local::stream_protocol::socket>;

constexpr size_t kOutputHighWater = 1 << 20;

// Reads the first frame, ShepherdStart, synchronously: nothing else can
// happen before the shepherd knows its job.
Result<wire::ShepherdStart> ReadStart(int fd) {
  wire::FrameSplitter splitter;
  char buffer[65536];
  for (;;) {
    auto next = splitter.Next();
    if (!next.ok()) return next.error();
    if (next->has_value()) {
      if ((*next)->type != wire::MessageType::kShepherdStart)
        return Fail("expected ShepherdStart from the daemon");
      return wire::DecodePayload<wire::ShepherdStart>((*next)->payload);
    }
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Fail("daemon closed the channel before sending the job");
    splitter.Feed(std::string_view(buffer, static_cast<size_t>(n)));
  }
}

// Gives up root for good, becoming the job's owner, before touching input from
// the network (the stub's frames).
Status DropPrivileges(const wire::JobSpec& spec) {
  if (geteuid() != 0) return Status::Ok();
  std::vector<gid_t> groups(spec.groups.begin(), spec.groups.end());
  if (setgroups(groups.size(), groups.data()) != 0 || setresgid(spec.gid, spec.gid, spec.gid) != 0 ||
      setresuid(spec.uid, spec.uid, spec.uid) != 0)
    return Fail("shepherd cannot drop privileges: " + ErrnoText(errno));
  return Status::Ok();
}

class ShepherdSession : public std::enable_shared_from_this<ShepherdSession> {
 public:
  ShepherdSession(asio::io_context& io, const ShepherdOptions& options, wire::ShepherdStart start,
                  auth::PskTlsContext tls)
      : io_(io),
        options_(options),
        start_(std::move(start)),
        tls_(std::move(tls)),
        daemon_(std::make_shared<DaemonChannel>(
            asio::local::stream_protocol::socket(io, asio::local::stream_protocol(), options.daemon_fd))),
        signals_(io, SIGCHLD),
        timer_(io) {}

  // The job starts first and the shepherd then gives up root, so that nothing
  // it reads from the network (the TLS handshake included) is parsed as root.
  void Begin() {
    auto self = shared_from_this();
    daemon_->Start(
        [self](wire::MessageType type, std::string_view payload) {
          if (type != wire::MessageType::kShepherdControl) return;
          auto control = wire::DecodePayload<wire::ShepherdControl>(payload);
          if (control.ok()) self->OnControl(*control);
        },
        [](const std::string&) { /* the job outlives its daemon */ });
    Launch();
    if (auto dropped = DropPrivileges(start_.spec); !dropped.ok()) return Abandon(dropped.message());
    ConnectToStub();
  }

  int exit_status() const { return exit_status_; }

 private:
  void ConnectToStub() {
    auto self = shared_from_this();
    auto socket = std::make_shared<tcp::socket>(io_);
    asio::error_code ec;
    auto address = asio::ip::make_address(start_.spec.stub_address, ec);
    if (ec) return Abandon("bad stub address " + start_.spec.stub_address);
    timer_.expires_after(options_.connect_timeout);
    timer_.async_wait([self, socket](const asio::error_code& e) {
      if (!e) socket->close();
    });
    socket->async_connect(tcp::endpoint(address, start_.spec.stub_port),
                          [self, socket](const asio::error_code& e) {
                            self->timer_.cancel();
                            if (e) return self->Abandon("cannot reach the stub: " + e.message());
                            self->Handshake(std::move(*socket));
                          });
  }

  void Handshake(tcp::socket socket) {
    socket.set_option(tcp::no_delay(true));
    stub_ = std::make_shared<StubChannel>(TlsStream(std::move(socket), tls_.context()));
    auto self = shared_from_this();
    stub_->stream().async_handshake(asio::ssl::stream_base::client, [self](const asio::error_code& e) {
      if (e) return self->Abandon(auth::DescribeHandshakeFailure(e));
      self->OnStubConnected();
    });
  }

  void OnStubConnected() {
    auto self = shared_from_this();
    stub_->Send(wire::Hello{wire::kProtocolVersion, wire::Role::kShepherd, start_.exec_host});
    stub_->Send(wire::Attach{start_.job_id, start_.exec_host});
    stub_->Start([self](wire::MessageType type, std::string_view payload) { self->OnStubFrame(type, payload); },
                 [self](const std::string& reason) { self->OnStubLost(reason); });
    if (!launch_error_.empty()) {
      stub_->Send(wire::JobStatus{wire::JobStatusKind::kStartFailed, 2, launch_error_});
      exit_status_ = 2;
      return Finish();
    }
    if (job_.stdin_fd >= 0) stdin_.emplace(io_, job_.stdin_fd);
    // Outputs first: a job that has already exited must still have its output relayed.
    StartOutput(job_.stdout_fd, wire::StreamId::kStdout);
    StartOutput(job_.stderr_fd, wire::StreamId::kStderr);
    // Half pty: what the terminal itself prints (the echo of typed input, and
    // whatever the job writes to /dev/tty) reaches the user too.
    if (start_.spec.pty == wire::PtyMode::kHalf && job_.pty_master >= 0)
      StartOutput(fcntl(job_.pty_master, F_DUPFD_CLOEXEC, 3), wire::StreamId::kStdout);
    WatchChild();
  }

  void Launch() {
    LaunchOptions options;
    options.job_id = start_.job_id;
    options.exec_host = start_.exec_host;
    options.profile_nice = start_.profile_nice;
    options.allow_root = start_.allow_root;
    options.share_session = getsid(0) == getpid();  // spawned by queued with POSIX_SPAWN_SETSID
    auto launched = LaunchJob(start_.spec, options);
    if (!launched.ok()) {
      launch_error_ = launched.message();
      daemon_->Send(wire::ShepherdEvent{wire::ShepherdEventKind::kFailed, 0, 0, 0, launch_error_});
      return;
    }
    job_ = launched.value();
    daemon_->Send(wire::ShepherdEvent{wire::ShepherdEventKind::kStarted, job_.pid, 0, 0, ""});
  }

  void StartOutput(int fd, wire::StreamId id) {
    if (fd < 0) return;
    ++open_outputs_;
    auto reader = std::make_shared<asio::posix::stream_descriptor>(io_, fd);
    ReadOutput(reader, id);
  }

  void ReadOutput(std::shared_ptr<asio::posix::stream_descriptor> reader, wire::StreamId id) {
    auto self = shared_from_this();
    auto buffer = std::make_shared<std::string>(wire::kMaxStreamChunk, '\0');
    reader->async_read_some(asio::buffer(*buffer), [self, reader, id, buffer](const asio::error_code& e,
                                                                              size_t n) {
      if (e) {  // EOF, or EIO from a pty whose slave side closed
        if (--self->open_outputs_ == 0) self->MaybeFinish();
        return;
      }
      buffer->resize(n);
      self->stub_->Send(wire::StreamData{id, std::move(*buffer)});
      if (self->stub_->pending_bytes() < kOutputHighWater) return self->ReadOutput(reader, id);
      self->stub_->OnDrained([self, reader, id] { self->ReadOutput(reader, id); });
    });
  }

  void OnStubFrame(wire::MessageType type, std::string_view payload) {
    switch (type) {
      case wire::MessageType::kHello: return;
      case wire::MessageType::kStreamData: {
        auto data = wire::DecodePayload<wire::StreamData>(payload);
        if (!data.ok()) return stub_->Close(data.message());
        return WriteStdin(std::make_shared<std::string>(std::move(data->bytes)));
      }
      case wire::MessageType::kStreamEof: return CloseStdin();
      case wire::MessageType::kSignal: {
        auto sig = wire::DecodePayload<wire::Signal>(payload);
        if (!sig.ok()) return stub_->Close(sig.message());
        if (suspended_ && sig->signo == SIGCONT) return;
        return SignalJob(sig->signo);
      }
      case wire::MessageType::kWindowSize: {
        auto size = wire::DecodePayload<wire::WindowSize>(payload);
        if (!size.ok()) return stub_->Close(size.message());
        if (job_.pty_master >= 0) {
          (void)ResizePty(job_.pty_master, size->rows, size->cols, size->xpixel, size->ypixel);
          SignalJob(SIGWINCH);
        }
        return;
      }
      default:
        return stub_->Close("unexpected message " + std::to_string(static_cast<int>(type)) + " from the stub");
    }
  }

  // Suspension for the queue's sake is hidden from the user's shell: the stub
  // is not stopped, the user is told, and their own SIGCONT does not undo it.
  void OnControl(const wire::ShepherdControl& control) {
    switch (control.action) {
      case wire::ShepherdAction::kSuspend:
        if (suspended_) return;
        suspended_ = true;
        SignalJob(SIGSTOP);
        break;
      case wire::ShepherdAction::kResume:
        if (!suspended_) return;
        suspended_ = false;
        SignalJob(SIGCONT);
        break;
      case wire::ShepherdAction::kTerminate: {
        if (terminating_) return;
        terminating_ = true;
        SignalJob(SIGTERM);
        SignalJob(SIGCONT);
        auto self = shared_from_this();
        hangup_timer_ = std::make_unique<asio::steady_timer>(io_, std::chrono::seconds(1));
        hangup_timer_->async_wait([self](const asio::error_code& e) {
          if (!e) self->SignalJob(SIGKILL);
        });
        break;
      }
    }
    if (stub_ && !stub_->closed() && !control.reason.empty()) stub_->Send(wire::Notice{control.reason});
  }

  void WriteStdin(std::shared_ptr<std::string> bytes) {
    if (!stdin_ || bytes->empty()) return;
    stub_->Pause();  // one chunk in flight bounds memory on this hop
    auto self = shared_from_this();
    asio::async_write(*stdin_, asio::buffer(*bytes), [self, bytes](const asio::error_code&, size_t) {
      self->stub_->Resume();  // a job that closed its stdin just loses the rest, as locally
    });
  }

  void CloseStdin() {
    if (!stdin_) return;
    if (start_.spec.pty != wire::PtyMode::kNone) {
      // A pty has no half-close: the line discipline's EOF character ends input.
      termios mode{};
      char eof = tcgetattr(job_.pty_master, &mode) == 0 ? static_cast<char>(mode.c_cc[VEOF]) : '\x04';
      auto bytes = std::make_shared<std::string>(1, eof);
      return WriteStdin(bytes);
    }
    stdin_->close();
    stdin_.reset();
  }

  void SignalJob(int signo) {
    if (job_.pid <= 0 || reaped_) return;
    kill(-job_.pid, signo);
  }

  void WatchChild() {
    auto self = shared_from_this();
    signals_.async_wait([self](const asio::error_code& e, int) {
      if (e) return;
      self->ReapChild();
      if (!self->reaped_) self->WatchChild();
    });
    ReapChild();  // the job may have ended before the handler was installed
  }

  void ReapChild() {
    if (reaped_ || job_.pid <= 0) return;
    int status = 0;
    rusage usage{};
    pid_t pid = wait4(job_.pid, &status, WNOHANG | WUNTRACED | WCONTINUED, &usage);
    if (pid != job_.pid) return;
    if (WIFSTOPPED(status)) {
      if (!suspended_) stub_->Send(wire::JobStatus{wire::JobStatusKind::kStopped, WSTOPSIG(status), ""});
      return;
    }
    if (WIFCONTINUED(status)) {
      if (suspended_) SignalJob(SIGSTOP);  // continued behind our back: the suspension stands
      return;
    }
    reaped_ = true;
    wait_status_ = status;
    cpu_seconds_ = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                   static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    // Output may still be in the pipes; give it a moment to drain, but do not let
    // a daemonised grandchild holding the pipe keep the job alive forever.
    auto self = shared_from_this();
    timer_.expires_after(std::chrono::seconds(2));
    timer_.async_wait([self](const asio::error_code& e) {
      if (!e) self->open_outputs_ = 0, self->MaybeFinish();
    });
    MaybeFinish();
  }

  void MaybeFinish() {
    if (!reaped_ || open_outputs_ > 0 || finished_) return;
    timer_.cancel();
    wire::JobStatus status;
    if (WIFSIGNALED(wait_status_)) {
      status.kind = wire::JobStatusKind::kSignaled;
      status.value = WTERMSIG(wait_status_);
      exit_status_ = 128 + status.value;
    } else {
      status.kind = wire::JobStatusKind::kExited;
      status.value = WEXITSTATUS(wait_status_);
      exit_status_ = status.value;
    }
    // The daemon hears first, so the slot is free before the user's next command.
    daemon_->Send(wire::ShepherdEvent{wire::ShepherdEventKind::kFinished, job_.pid, wait_status_, cpu_seconds_, ""});
    stub_->Send(status);
    Finish();
  }

  void Finish() {
    finished_ = true;
    signals_.cancel();
    auto self = shared_from_this();
    auto pending = std::make_shared<int>(2);
    auto done = [self, pending] {
      if (--*pending == 0) self->io_.stop();
    };
    if (stub_ && !stub_->closed()) {
      stub_->OnDrained([self, done] {
        self->stub_->stream().async_shutdown([self, done](const asio::error_code&) {
          self->stub_->Close("job finished");
          done();
        });
      });
    } else {
      done();
    }
    daemon_->OnDrained(done);
  }

  void OnStubLost(const std::string& reason) {
    if (finished_) return;
    std::cerr << "queue-shepherd: job " << start_.job_id << ": stub connection lost (" << reason
              << "); hanging up the job\n";
    SignalJob(SIGHUP);
    SignalJob(SIGCONT);
    auto self = shared_from_this();
    hangup_timer_ = std::make_unique<asio::steady_timer>(io_, options_.hangup_grace);
    hangup_timer_->async_wait([self](const asio::error_code& e) {
      if (!e) self->SignalJob(SIGKILL);
    });
  }

  // No stub to serve: the job must not run on without one.
  void Abandon(const std::string& reason) {
    std::cerr << "queue-shepherd: job " << start_.job_id << ": " << reason << "\n";
    if (job_.pid > 0 && !reaped_) {
      kill(-job_.pid, SIGKILL);
      int status = 0;
      waitpid(job_.pid, &status, 0);
      reaped_ = true;
    }
    daemon_->Send(wire::ShepherdEvent{wire::ShepherdEventKind::kFailed, 0, 0, 0, reason});
    exit_status_ = 2;
    Finish();
  }

  asio::io_context& io_;
  ShepherdOptions options_;
  wire::ShepherdStart start_;
  auth::PskTlsContext tls_;
  std::shared_ptr<DaemonChannel> daemon_;
  std::shared_ptr<StubChannel> stub_;
  asio::signal_set signals_;
  asio::steady_timer timer_;
  std::unique_ptr<asio::steady_timer> hangup_timer_;
  std::optional<asio::posix::stream_descriptor> stdin_;
  LaunchedJob job_;
  std::string launch_error_;
  int open_outputs_ = 0;
  bool reaped_ = false;
  bool finished_ = false;
  bool suspended_ = false;
  bool terminating_ = false;
  int wait_status_ = 0;
  double cpu_seconds_ = 0;
  int exit_status_ = 0;
};

}  // namespace

int RunShepherd(const ShepherdOptions& options) {
  signal(SIGPIPE, SIG_IGN);
  // The shepherd controls the job's pty; a hangup of that terminal (the pty
  // closed after a failed start, say) is news to relay, not a reason to die.
  signal(SIGHUP, SIG_IGN);
  auto start = ReadStart(options.daemon_fd);
  if (!start.ok()) {
    std::cerr << "queue-shepherd: " << start.message() << "\n";
    return 2;
  }
  auto tls = auth::PskTlsContext::Create(auth::PskTlsContext::Side::kClient, start->spec.session_key,
                                         auth::kJobIdentity);
  if (!tls.ok()) {
    std::cerr << "queue-shepherd: " << tls.message() << "\n";
    return 2;
  }
  asio::io_context io;
  auto session = std::make_shared<ShepherdSession>(io, options, std::move(start.value()), std::move(tls.value()));
  session->Begin();
  io.run();
  return session->exit_status();
}

}  // namespace queue::exec
