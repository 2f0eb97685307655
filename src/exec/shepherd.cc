// The shepherd's event loop: one job, at most one stub connection, one daemon
// channel at a time (replaced when a restarted daemon re-adopts the job).
#include "exec/shepherd.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <asio.hpp>
#include <asio/ssl.hpp>
#include <iostream>
#include <memory>
#include <optional>
#include <vector>

#include "auth/psk_tls.h"
#include "exec/job_launcher.h"
#include "exec/job_restorer.h"
#include "exec/shepherd_status.h"
#include "wire/channel.h"
#include "wire/frame.h"

namespace queue::exec {

namespace {

using asio::ip::tcp;
using TlsStream = asio::ssl::stream<tcp::socket>;
using StubChannel = wire::Channel<TlsStream>;
using UnixSocket = asio::local::stream_protocol::socket;
using DaemonChannel = wire::Channel<UnixSocket>;

constexpr size_t kOutputHighWater = 1 << 20;

bool ReadExactly(int fd, std::string& buffer) {
  size_t have = 0;
  while (have < buffer.size()) {
    ssize_t n = read(fd, buffer.data() + have, buffer.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    have += static_cast<size_t>(n);
  }
  return true;
}

// Reads the first frame, ShepherdStart, synchronously: nothing else can
// happen before the shepherd knows its job. It reads that frame and no more,
// so that a ShepherdControl sent right behind it reaches the event loop.
Result<wire::ShepherdStart> ReadStart(int fd) {
  std::string header(wire::kFrameHeaderBytes, '\0');
  if (!ReadExactly(fd, header)) return Fail("daemon closed the channel before sending the job");
  auto parsed = wire::ParseFrameHeader(header);
  if (!parsed.ok()) return parsed.error();
  if (parsed->type != wire::MessageType::kShepherdStart) return Fail("expected ShepherdStart from the daemon");
  std::string payload(parsed->payload_bytes, '\0');
  if (!ReadExactly(fd, payload)) return Fail("daemon closed the channel in the middle of the job");
  return wire::DecodePayload<wire::ShepherdStart>(payload);
}

// A batch job's output file, created as root and given to the job's owner; an
// empty path discards the output.
Result<int> OpenBatchOutput(const wire::ShepherdStart& start) {
  const std::string& path = start.output_path;
  auto failure = [&](const std::string& what) {
    return Fail("queued: cannot " + what + " the output file " + path + " of job " + wire::FormatJobId(start.job) +
                " on host " + start.exec_host + ": " + ErrnoText(errno) + ".");
  };
  if (path.empty()) {
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return failure("open");
    return fd;
  }
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return failure("create");
  if (geteuid() == 0 && fchown(fd, start.spec.uid, start.spec.gid) != 0) {
    auto error = failure("give away");
    close(fd);
    return error;
  }
  return fd;
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
  // starting_uid: the real uid the shepherd had before it gave up root; a
  // re-adopting daemon must run as root or as that user.
  ShepherdSession(asio::io_context& io, const ShepherdOptions& options, wire::ShepherdStart start,
                  uid_t starting_uid)
      : io_(io),
        options_(options),
        start_(std::move(start)),
        starting_uid_(starting_uid),
        signals_(io, SIGCHLD),
        timer_(io),
        drain_timer_(io),
        accept_retry_timer_(io) {}

  // The job starts first and the shepherd then gives up root, so that nothing
  // it reads from the network (the TLS handshake included) is parsed as root.
  // What needs root besides (the status and output files) is opened before.
  void Begin() {
    AttachDaemon(UnixSocket(io_, asio::local::stream_protocol(), options_.daemon_fd));
    if (start_.adoptable) ListenForAdoption();
    if (auto prepared = Prepare(); prepared.ok())
      Launch();
    else
      FailToStart(prepared.message());
    if (auto dropped = DropPrivileges(start_.spec); !dropped.ok()) return Abandon(dropped.message());
    bool started = launch_error_.empty();
    if (start_.spec.batch) return started ? WatchChild() : EndWithoutStub();
    if (!tls_) return EndWithoutStub();  // no way to tell the stub why
    ConnectToStub();
  }

  int exit_status() const { return exit_status_; }

  // After the loop has stopped: drops the channels, whose stored handlers hold
  // this session, so that the session and they are freed with the io_context.
  void Release() {
    daemon_.reset();
    stub_.reset();
    acceptor_.reset();
    stdin_.reset();
    outputs_.clear();
  }

 private:
  // The stub's TLS context first (without it no failure reaches the user),
  // then the status file, then a batch job's output. A failure here means the
  // job does not start.
  Status Prepare() {
    if (!start_.spec.batch) {
      auto tls = auth::PskTlsContext::Create(auth::PskTlsContext::Side::kClient, start_.spec.session_key,
                                             auth::kJobIdentity);
      if (!tls.ok()) return tls.error();
      tls_.emplace(std::move(tls.value()));
    }
    if (!start_.status_path.empty()) {
      auto file = ShepherdStatusFile::Create(start_.status_path);
      if (!file.ok()) return Fail("queued: job " + wire::FormatJobId(start_.job) + " on host " + start_.exec_host +
                                  ": " + file.message() + ".");
      status_file_.emplace(std::move(file.value()));
    }
    if (start_.spec.batch) {
      auto output = OpenBatchOutput(start_);
      if (!output.ok()) return output.error();
      batch_output_fd_ = *output;
    }
    return Status::Ok();
  }

  // Makes socket the daemon channel, replacing (and closing) any previous one.
  void AttachDaemon(UnixSocket socket) {
    auto previous = std::exchange(daemon_, std::make_shared<DaemonChannel>(std::move(socket)));
    if (previous) previous->Close("replaced by a re-adopting daemon");
    auto self = shared_from_this();
    const DaemonChannel* channel = daemon_.get();
    daemon_->Start(
        [self](wire::MessageType type, std::string_view payload) {
          if (type != wire::MessageType::kShepherdControl) return;
          auto control = wire::DecodePayload<wire::ShepherdControl>(payload);
          if (control.ok()) self->OnControl(*control);
        },
        // The job outlives its daemon; only a shepherd on its way out cares.
        [self, channel](const std::string&) {
          if (channel == self->daemon_.get() && self->finished_) self->DaemonSettled();
        });
  }

  void ListenForAdoption() {
    acceptor_.emplace(io_);
    asio::error_code ec;
    acceptor_->assign(asio::local::stream_protocol(), options_.adoption_fd, ec);
    if (ec) {
      std::cerr << "queue-shepherd: job " << wire::FormatJobId(start_.job) << ": no adoption socket on fd " << options_.adoption_fd
                << " (" << ec.message() << "); a restarted daemon cannot re-adopt this job\n";
      acceptor_.reset();
      return;
    }
    AcceptAdopter();
  }

  void AcceptAdopter() {
    auto self = shared_from_this();
    acceptor_->async_accept([self](const asio::error_code& e, UnixSocket socket) {
      if (e == asio::error::operation_aborted) return;
      if (!e) {
        self->OnAdopterConnected(std::move(socket));
        return self->AcceptAdopter();
      }
      // Out of fds, say: try again later rather than spin.
      self->accept_retry_timer_.expires_after(std::chrono::seconds(1));
      self->accept_retry_timer_.async_wait([self](const asio::error_code& e2) {
        if (!e2) self->AcceptAdopter();
      });
    });
  }

  // Only root or the user this shepherd started as may speak for the daemon.
  void OnAdopterConnected(UnixSocket socket) {
    ucred peer{};
    socklen_t length = sizeof peer;
    if (getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 ||
        (peer.uid != 0 && peer.uid != starting_uid_)) {
      std::cerr << "queue-shepherd: job " << wire::FormatJobId(start_.job) << ": refused a re-adoption by uid " << peer.uid << "\n";
      return;
    }
    AttachDaemon(std::move(socket));
    if (job_.pid > 0) daemon_->Send(wire::ShepherdEvent{wire::ShepherdEventKind::kStarted, job_.pid, 0, 0, ""});
    if (end_event_) daemon_->Send(*end_event_);
    if (finished_) WaitForDaemon();  // let the new daemon hear the end before exiting
  }

  // The job's end: on disk first, so that a daemon restarted before it reads
  // the event still learns it, then to the daemon. Once only.
  void ReportEnd(wire::ShepherdEvent event) {
    if (end_event_) return;
    if (event.message.size() > kMaxStatusMessageBytes) event.message.resize(kMaxStatusMessageBytes);
    if (status_file_) {
      if (auto written = status_file_->Write(event); !written.ok())
        std::cerr << "queue-shepherd: job " << wire::FormatJobId(start_.job) << ": " << written.message() << "\n";
    }
    end_event_ = event;
    daemon_->Send(event);
  }

  void FailToStart(const std::string& reason) {
    launch_error_ = reason;
    ReportEnd(wire::ShepherdEvent{wire::ShepherdEventKind::kFailed, 0, 0, 0, reason});
  }

  // The job did not start and there is no stub to tell.
  void EndWithoutStub() {
    exit_status_ = 2;
    Finish();
  }

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
    stub_ = std::make_shared<StubChannel>(TlsStream(std::move(socket), tls_->context()));
    auto self = shared_from_this();
    stub_->stream().async_handshake(asio::ssl::stream_base::client, [self](const asio::error_code& e) {
      if (e) return self->Abandon(auth::DescribeHandshakeFailure(e));
      self->OnStubConnected();
    });
  }

  void OnStubConnected() {
    auto self = shared_from_this();
    stub_->Send(wire::Hello{wire::kProtocolVersion, wire::Role::kShepherd, start_.exec_host});
    stub_->Send(wire::Attach{start_.job.number, start_.exec_host});
    stub_->Start([self](wire::MessageType type, std::string_view payload) { self->OnStubFrame(type, payload); },
                 [self](const std::string& reason) { self->OnStubLost(reason); });
    stub_ready_ = true;
    for (const std::string& notice : std::exchange(pending_notices_, {})) stub_->Send(wire::Notice{notice});
    if (!launch_error_.empty()) {
      stub_->Send(wire::JobStatus{wire::JobStatusKind::kStartFailed, 2, launch_error_});
      exit_status_ = 2;
      return Finish();
    }
    if (job_.stdin_fd >= 0) stdin_.emplace(io_, job_.stdin_fd);
    // Outputs first: a job that has already exited must still have its output relayed.
    bool stdout_is_pty = start_.spec.pty == wire::PtyMode::kFull;  // a copy of the pty master
    StartOutput(job_.stdout_fd, wire::StreamId::kStdout, stdout_is_pty ? Unread::kHangUp : Unread::kClose);
    StartOutput(job_.stderr_fd, wire::StreamId::kStderr, Unread::kClose);
    // Half pty: what the terminal itself prints (the echo of typed input, and
    // whatever the job writes to /dev/tty) reaches the user too.
    if (start_.spec.pty == wire::PtyMode::kHalf && job_.pty_master >= 0)
      StartOutput(fcntl(job_.pty_master, F_DUPFD_CLOEXEC, 3), wire::StreamId::kStdout, Unread::kDiscard);
    WatchChild();
  }

  void Launch() {
    LaunchOptions options;
    options.job_id = wire::FormatJobId(start_.job);
    options.exec_host = start_.exec_host;
    options.profile_nice = start_.profile_nice;
    options.allow_root = start_.allow_root;
    options.share_session = getsid(0) == getpid();  // spawned by queued with POSIX_SPAWN_SETSID
    options.batch_output_fd = batch_output_fd_;
    auto launched = start_.restore_images.empty() ? LaunchJob(start_.spec, options) : RestoreOrLaunch(options);
    if (batch_output_fd_ >= 0) close(std::exchange(batch_output_fd_, -1));  // the job has its own copy
    if (!launched.ok()) return FailToStart(launched.message());
    job_ = launched.value();
    launched_at_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
    daemon_->Send(wire::ShepherdEvent{wire::ShepherdEventKind::kStarted, job_.pid, 0, 0, ""});
  }

  // checkpointmode 1: the job goes on from its CRIU image; if that cannot be,
  // it starts again from the beginning, and the user is told so.
  Result<LaunchedJob> RestoreOrLaunch(const LaunchOptions& options) {
    migrate::CriuIdentity owner{start_.spec.uid, start_.spec.gid, start_.spec.groups};
    auto restored = RestoreJob({start_.restore_images, start_.criu_path, owner, batch_output_fd_});
    if (restored.ok()) return restored;
    std::string note = "[job " + wire::FormatJobId(start_.job) + " could not be restored on " + start_.exec_host +
                       " (" + restored.message() + "); it starts again from the beginning]";
    std::cerr << "queue-shepherd: " << note << "\n";
    TellStub(note);
    return LaunchJob(start_.spec, options);
  }

  // What becomes of an output reader once the stub says nobody reads that
  // stream (StreamClosed): a pipe's read end is closed, so that the job's next
  // write fails as it would locally (SIGPIPE); a pty has no read end to close,
  // so its job is hung up, as when a terminal goes away, and what it still
  // writes is read and dropped; the half pty's echo is just dropped.
  enum class Unread { kClose, kHangUp, kDiscard };
  struct OutputReader {
    std::shared_ptr<asio::posix::stream_descriptor> descriptor;
    wire::StreamId id;
    Unread unread;
  };

  void StartOutput(int fd, wire::StreamId id, Unread unread) {
    if (fd < 0) return;
    ++open_outputs_;
    auto reader = std::make_shared<asio::posix::stream_descriptor>(io_, fd);
    outputs_.push_back({reader, id, unread});
    ReadOutput(reader, id);
  }

  static size_t Index(wire::StreamId id) { return static_cast<size_t>(id); }

  // The stub's reader of stream `id` is gone (StreamClosed).
  void OnOutputUnread(wire::StreamId id) {
    if (std::exchange(unread_[Index(id)], true)) return;
    bool hang_up = false;
    for (const auto& reader : outputs_) {
      if (reader.id != id) continue;
      if (reader.unread == Unread::kHangUp) hang_up = true;
      asio::error_code ignored;
      // A pending read ends with operation_aborted, which counts the output closed.
      if (reader.unread == Unread::kClose) reader.descriptor->close(ignored);
    }
    if (hang_up) {
      SignalJob(SIGHUP);
      SignalJob(SIGCONT);
    }
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
      if (self->unread_[Index(id)]) return self->ReadOutput(reader, id);  // nobody reads it: dropped
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
      case wire::MessageType::kStreamClosed: {
        auto closed = wire::DecodePayload<wire::StreamClosed>(payload);
        if (!closed.ok()) return stub_->Close(closed.message());
        return OnOutputUnread(closed->stream);
      }
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
        // During the daemon's checkpoint the job runs on (a stopped job would
        // be restored stopped): the hold applies if the checkpoint is abandoned.
        if (checkpoint_by_daemon_) {
          suspended_before_checkpoint_ = true;
          break;
        }
        if (suspended_) return;
        suspended_ = true;
        SignalJob(SIGSTOP);
        break;
      case wire::ShepherdAction::kResume:
        if (checkpoint_by_daemon_) {
          suspended_before_checkpoint_ = false;
          break;
        }
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
      case wire::ShepherdAction::kCheckpoint:
        if (!RequestCheckpoint(control)) return;
        break;
      case wire::ShepherdAction::kCheckpointByDaemon:
        if (checkpoint_by_daemon_ && !reaped_) {  // asked again (its daemon restarted): still armed
          daemon_->Send(wire::ShepherdEvent{wire::ShepherdEventKind::kCheckpointArmed, job_.pid, 0, 0, ""});
          return;
        }
        if (checkpointed() || job_.pid <= 0 || reaped_ || finished_ || terminating_) return;
        checkpoint_signal_time_ms_ = NowMs();
        checkpoint_by_daemon_ = true;
        suspended_before_checkpoint_ = suspended_;
        if (suspended_) {  // a stopped job would be restored stopped, with nobody to continue it
          suspended_ = false;
          SignalJob(SIGCONT);
        }
        daemon_->Send(wire::ShepherdEvent{wire::ShepherdEventKind::kCheckpointArmed, job_.pid, 0, 0, ""});
        break;
      case wire::ShepherdAction::kCheckpointAbandoned:
        if (!checkpoint_by_daemon_ || reaped_) return;
        checkpoint_signal_time_ms_ = 0;
        checkpoint_by_daemon_ = false;
        if (std::exchange(suspended_before_checkpoint_, false)) {  // the queue's hold still stands
          suspended_ = true;
          SignalJob(SIGSTOP);
        }
        break;
    }
    if (!control.reason.empty()) TellStub(control.reason);
  }

  // The job starts before its stub is reached: what the daemon says meanwhile
  // (a cancel, a hold for load) waits until the stub's TLS handshake is done
  // (nothing may be written to the stream before that).
  void TellStub(const std::string& notice) {
    constexpr size_t kMaxPendingNotices = 16;
    if (stub_ready_) {
      if (!stub_->closed()) stub_->Send(wire::Notice{notice});
      return;
    }
    if (start_.spec.batch) return;
    // The latest say (a cancel after holds and resumes) matters most.
    if (pending_notices_.size() == kMaxPendingNotices) pending_notices_.erase(pending_notices_.begin());
    pending_notices_.push_back(notice);
  }

  // Sends the checkpoint signal, once for the job's life: many programs take a
  // second one as "stop now, without saving". A job the queue holds stopped is
  // continued so that it can act on it. Whatever way the job then ends, it
  // ends checkpointed (MaybeFinish). Returns false when there is nothing to do.
  bool RequestCheckpoint(const wire::ShepherdControl& control) {
    if (checkpoint_signal_time_ms_ != 0 || job_.pid <= 0 || reaped_ || finished_) return false;
    checkpoint_signal_time_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count();
    // 0 is no signal at all; SIGUSR2 is the checkpointsignal of SPEC §7 by default.
    SignalJob(control.signo > 0 ? control.signo : SIGUSR2);
    if (suspended_) {
      suspended_ = false;
      SignalJob(SIGCONT);
    }
    if (control.grace_seconds > 0) {
      auto self = shared_from_this();
      checkpoint_kill_timer_ =
          std::make_unique<asio::steady_timer>(io_, std::chrono::seconds(control.grace_seconds));
      checkpoint_kill_timer_->async_wait([self](const asio::error_code& e) {
        if (!e) self->SignalJob(SIGKILL);
      });
    }
    return true;
  }

  bool checkpointed() const { return checkpoint_signal_time_ms_ != 0; }

  static int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  // A checkpoint the daemon takes ends with CRIU's SIGKILL; any other end
  // (the job exited before CRIU froze it) is the job's own. A SIGKILL from
  // elsewhere in that moment counts as the checkpoint too, as a death after the
  // checkpoint signal does in checkpointmode 2: with no image to go on from, the
  // job starts again from the beginning, and its stub, told kMoved, waits for it.
  bool EndedCheckpointed() const {
    if (!checkpointed()) return false;
    if (!checkpoint_by_daemon_) return true;
    // The SIGKILL that follows a cancel or `exec off` is no checkpoint.
    return !terminating_ && WIFSIGNALED(wait_status_) && WTERMSIG(wait_status_) == SIGKILL;
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
      if (!self->finished_) self->WatchChild();
    });
    ReapChild();  // the job may have ended before the handler was installed
  }

  // The shepherd is a subreaper (RunShepherd): the job's orphans are its
  // children too, and are reaped as they die. A zombie left to init would keep
  // the job's process group id, and with it the job's pid, taken for a while:
  // CRIU restores a job under its old pid, on the same machine too.
  void ReapChild() {
    for (;;) {
      int status = 0;
      rusage usage{};
      pid_t pid = wait4(-1, &status, WNOHANG | WUNTRACED | WCONTINUED, &usage);
      if (pid <= 0) return;
      if (pid == job_.pid && !reaped_) OnJobStatus(status, usage);
    }
  }

  void OnJobStatus(int status, const rusage& usage) {
    if (WIFSTOPPED(status)) {
      if (!suspended_ && stub_ready_) stub_->Send(wire::JobStatus{wire::JobStatusKind::kStopped, WSTOPSIG(status), ""});
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
    if (checkpoint_kill_timer_) checkpoint_kill_timer_->cancel();
    // The daemon hears first, so the slot is free before the user's next command.
    wire::ShepherdEvent event{wire::ShepherdEventKind::kFinished, job_.pid, wait_status_, cpu_seconds_, ""};
    // `checkpointexit CODE`: the job checkpointed by itself, since it began.
    bool self_checkpoint = start_.checkpoint_exit >= 0 && WIFEXITED(wait_status_) &&
                           WEXITSTATUS(wait_status_) == start_.checkpoint_exit;
    event.checkpointed = EndedCheckpointed() || self_checkpoint;
    event.signal_time_ms = EndedCheckpointed() ? checkpoint_signal_time_ms_ : launched_at_ms_;
    ReportEnd(event);
    // A checkpointed job goes on elsewhere, with the same stub: its status here
    // is not the end the user waits for.
    if (event.checkpointed)
      status = wire::JobStatus{wire::JobStatusKind::kMoved, 0,
                               "checkpointed on " + start_.exec_host + "; it carries on elsewhere"};
    if (stub_ready_) stub_->Send(status);
    Finish();
  }

  // Exits once the stub has everything and the daemon has the end, or has
  // gone, or has not read it within daemon_drain_limit: the status file
  // carries the end to whichever daemon comes next.
  void Finish() {
    if (finished_) return;
    finished_ = true;
    signals_.cancel();
    if (stub_ && !stub_->closed()) {
      stub_settled_ = false;
      auto self = shared_from_this();
      stub_->OnDrained([self] {
        self->stub_->stream().async_shutdown([self](const asio::error_code&) {
          self->stub_->Close("job finished");
          self->StubSettled();
        });
      });
    }
    WaitForDaemon();
  }

  void WaitForDaemon() {
    daemon_settled_ = false;
    if (daemon_->closed()) return DaemonSettled();
    auto self = shared_from_this();
    const DaemonChannel* channel = daemon_.get();
    drain_timer_.expires_after(options_.daemon_drain_limit);
    drain_timer_.async_wait([self](const asio::error_code& e) {
      if (!e) self->DaemonSettled();
    });
    daemon_->OnDrained([self, channel] {
      if (channel == self->daemon_.get()) self->DaemonSettled();
    });
  }

  void StubSettled() {
    stub_settled_ = true;
    ExitWhenSettled();
  }

  void DaemonSettled() {
    if (daemon_settled_) return;
    daemon_settled_ = true;
    drain_timer_.cancel();
    ExitWhenSettled();
  }

  void ExitWhenSettled() {
    if (stub_settled_ && daemon_settled_) io_.stop();
  }

  void OnStubLost(const std::string& reason) {
    if (finished_) return StubSettled();  // whatever was still queued for it is lost
    std::cerr << "queue-shepherd: job " << wire::FormatJobId(start_.job) << ": stub connection lost (" << reason
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
    std::cerr << "queue-shepherd: job " << wire::FormatJobId(start_.job) << ": " << reason << "\n";
    if (job_.pid > 0 && !reaped_) {
      kill(-job_.pid, SIGKILL);
      int status = 0;
      waitpid(job_.pid, &status, 0);
      reaped_ = true;
    }
    ReportEnd(wire::ShepherdEvent{wire::ShepherdEventKind::kFailed, 0, 0, 0, reason});
    exit_status_ = 2;
    Finish();
  }

  asio::io_context& io_;
  ShepherdOptions options_;
  wire::ShepherdStart start_;
  uid_t starting_uid_;
  std::optional<auth::PskTlsContext> tls_;      // interactive jobs only
  std::optional<ShepherdStatusFile> status_file_;
  int batch_output_fd_ = -1;                    // until the job has its copy
  std::shared_ptr<DaemonChannel> daemon_;       // never null after Begin
  std::optional<asio::local::stream_protocol::acceptor> acceptor_;
  std::shared_ptr<StubChannel> stub_;
  bool stub_ready_ = false;  // its handshake is done, and Hello and Attach are sent
  asio::signal_set signals_;
  asio::steady_timer timer_;
  asio::steady_timer drain_timer_;
  asio::steady_timer accept_retry_timer_;
  std::unique_ptr<asio::steady_timer> hangup_timer_;
  std::unique_ptr<asio::steady_timer> checkpoint_kill_timer_;  // checkpointgrace
  std::optional<asio::posix::stream_descriptor> stdin_;
  LaunchedJob job_;
  std::string launch_error_;
  std::vector<std::string> pending_notices_;  // for the stub, once it is connected
  std::optional<wire::ShepherdEvent> end_event_;  // kFinished or kFailed, once known
  int open_outputs_ = 0;
  std::vector<OutputReader> outputs_;
  std::array<bool, 3> unread_{};  // by StreamId: the stub's reader of it has gone
  bool reaped_ = false;
  bool finished_ = false;
  bool stub_settled_ = true;
  bool daemon_settled_ = true;
  bool suspended_ = false;
  bool terminating_ = false;
  int64_t checkpoint_signal_time_ms_ = 0;  // Unix ms when the checkpoint signal went; 0: never
  bool checkpoint_by_daemon_ = false;      // ShepherdAction::kCheckpointByDaemon
  bool suspended_before_checkpoint_ = false;
  int64_t launched_at_ms_ = 0;
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
  uid_t starting_uid = getuid();
  prctl(PR_SET_CHILD_SUBREAPER, 1);  // see ShepherdSession::ReapChild
  auto start = ReadStart(options.daemon_fd);
  if (!start.ok()) {
    std::cerr << "queue-shepherd: " << start.message() << "\n";
    return 2;
  }
  asio::io_context io;
  auto session = std::make_shared<ShepherdSession>(io, options, std::move(start.value()), starting_uid);
  session->Begin();
  io.run();
  int status = session->exit_status();
  session->Release();
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  return status;
}

}  // namespace queue::exec
