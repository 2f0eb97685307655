// Tests of the real `queue` stub through a job's move (SPEC §7): the test plays
// the stub's daemon (a Unix socket speaking Hello and SubmitRequest) and, one
// after the other, the job's two shepherds (TLS keyed by the session key the
// stub put in its SubmitRequest). The stub must stay through kMoved, accept the
// second shepherd on the same port, and end as the job on the second host did.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "auth/psk_tls.h"
#include "cluster_fixture.h"
#include "wire/frame.h"
#include "wire/messages.h"

extern char** environ;

namespace queue::testing {
namespace {

using namespace std::chrono_literals;
using UnixSocket = asio::local::stream_protocol::socket;

// Runs io until its work is done or timeout passes; what is still pending on
// `object` (a stream or an acceptor) is then cancelled and run out, so that no
// handler outlives its caller's locals.
template <class Object>
void RunFor(asio::io_context& io, Object& object, std::chrono::steady_clock::duration timeout) {
  io.restart();
  io.run_for(timeout);
  if (io.stopped()) return;
  asio::error_code ignored;
  if constexpr (requires { object.lowest_layer(); })
    object.lowest_layer().cancel(ignored);
  else
    object.cancel(ignored);
  io.restart();
  io.run();
}

// The test's end of one frame connection (Unix or TLS), used as if blocking.
template <class Stream>
class FramePeer {
 public:
  template <class... Args>
  explicit FramePeer(asio::io_context& io, Args&&... args) : io_(io), stream_(std::forward<Args>(args)...) {}

  Stream& stream() { return stream_; }

  template <class M>
  bool Send(const M& message) {
    std::string frame = wire::MakeFrame(message);
    bool sent = false;
    asio::async_write(stream_, asio::buffer(frame), [&](const asio::error_code& e, size_t) { sent = !e; });
    RunFor(io_, stream_, 5s);
    return sent;
  }

  // The next frame; nullopt on timeout, end of stream or a bad frame.
  std::optional<wire::FrameSplitter::Frame> Next(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto next = splitter_.Next();
      if (!next.ok()) return std::nullopt;
      if (next->has_value()) return std::move(**next);
      auto left = deadline - std::chrono::steady_clock::now();
      if (closed_ || left <= 0s) return std::nullopt;
      char buffer[4096];
      size_t got = 0;
      stream_.async_read_some(asio::buffer(buffer), [&](const asio::error_code& e, size_t n) {
        if (e && e != asio::error::operation_aborted) closed_ = true;
        got = n;
      });
      RunFor(io_, stream_, left);
      splitter_.Feed(std::string_view(buffer, got));
    }
  }

  // The next frame, which must be an M.
  template <class M>
  std::optional<M> Expect(std::chrono::milliseconds timeout = 10s) {
    auto frame = Next(timeout);
    if (!frame || frame->type != M::kType) return std::nullopt;
    auto message = wire::DecodePayload<M>(frame->payload);
    if (!message.ok()) return std::nullopt;
    return message.value();
  }

  // Whether the peer closed within timeout (frames before the end are skipped).
  bool ClosedWithin(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!closed_ && std::chrono::steady_clock::now() < deadline) Next(100ms);
    return closed_;
  }

 private:
  asio::io_context& io_;
  Stream stream_;
  wire::FrameSplitter splitter_;
  bool closed_ = false;
};

using DaemonPeer = FramePeer<UnixSocket>;
using ShepherdPeer = FramePeer<auth::TlsStream>;

constexpr uint64_t kJobId = 77;
constexpr char kFirstHost[] = "127.0.0.1:1";
constexpr char kSecondHost[] = "127.0.0.1:2";

class StubMoveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/queue-stub-move-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }

  void TearDown() override {
    if (stdin_fd_ >= 0) close(stdin_fd_);
    if (stub_pid_ > 0 && !WaitChild(stub_pid_, 0ms)) {
      kill(stub_pid_, SIGKILL);
      WaitChild(stub_pid_, 5s);
    }
    std::filesystem::remove_all(dir_);
  }

  // Starts `queue -n -- cat` against a daemon socket the test serves, with a
  // pipe the test writes as its stdin; answers its Hello and SubmitRequest,
  // placing the job on kFirstHost. Returns the daemon's end of the connection.
  std::unique_ptr<DaemonPeer> SubmitThroughFakeDaemon() {
    std::string socket_path = dir_ + "/queued.sock";
    asio::local::stream_protocol::acceptor acceptor(io_, asio::local::stream_protocol::endpoint(socket_path));
    StartStub(socket_path);
    auto daemon = std::make_unique<DaemonPeer>(io_, io_);
    bool accepted = false;
    acceptor.async_accept(daemon->stream(), [&](const asio::error_code& e) { accepted = !e; });
    RunFor(io_, acceptor, 10s);
    EXPECT_TRUE(accepted) << Stderr();
    if (!accepted) return nullptr;
    EXPECT_TRUE(daemon->Expect<wire::Hello>());
    EXPECT_TRUE(daemon->Send(wire::Hello{wire::kProtocolVersion, wire::Role::kDaemon, kFirstHost}));
    auto submit = daemon->Expect<wire::SubmitRequest>();
    EXPECT_TRUE(submit) << Stderr();
    if (!submit) return nullptr;
    spec_ = submit->spec;
    EXPECT_TRUE(daemon->Send(wire::SubmitReply{{kJobId, 1}, kFirstHost, ""}));
    return daemon;
  }

  void StartStub(const std::string& socket_path) {
    int input[2];
    ASSERT_EQ(pipe2(input, O_CLOEXEC), 0);
    std::string binary = BinDir() + "/queue";
    std::string out = dir_ + "/stub.out", err = dir_ + "/stub.err";
    pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      int out_fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err_fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(input[0], 0);
      dup2(out_fd, 1);
      dup2(err_fd, 2);
      execle(binary.c_str(), binary.c_str(), "--socket", socket_path.c_str(), "-n", "--", "cat",
             static_cast<char*>(nullptr), environ);
      _exit(127);
    }
    close(input[0]);
    stdin_fd_ = input[1];
    stub_pid_ = pid;
  }

  // A shepherd connected to the stub's listener and through the TLS handshake.
  std::unique_ptr<ShepherdPeer> ConnectShepherd() {
    auto tls = auth::PskTlsContext::Create(auth::PskTlsContext::Side::kClient, spec_.session_key,
                                           auth::kJobIdentity);
    EXPECT_TRUE(tls.ok()) << tls.message();
    if (!tls.ok()) return nullptr;
    auto shepherd = std::make_unique<ShepherdPeer>(io_, io_, tls->context());
    asio::ip::tcp::endpoint stub(asio::ip::make_address(spec_.stub_address), spec_.stub_port);
    bool ready = false;
    auth::TlsStream& stream = shepherd->stream();
    stream.lowest_layer().async_connect(stub, [&](const asio::error_code& e) {
      if (!e) stream.async_handshake(asio::ssl::stream_base::client, [&](const asio::error_code& he) { ready = !he; });
    });
    RunFor(io_, stream, 10s);
    EXPECT_TRUE(ready) << "the stub did not take the shepherd's connection\n" << Stderr();
    if (!ready) return nullptr;
    return shepherd;
  }

  // Hello and Attach, as the real shepherd opens.
  static bool Greet(ShepherdPeer& shepherd, const std::string& host) {
    return shepherd.Send(wire::Hello{wire::kProtocolVersion, wire::Role::kShepherd, host}) &&
           shepherd.Send(wire::Attach{kJobId, host});
  }

  static wire::JobStatus Moved() {
    return wire::JobStatus{wire::JobStatusKind::kMoved, 0,
                           std::string("checkpointed on ") + kFirstHost + "; it carries on elsewhere"};
  }

  bool StubAlive() { return !WaitChild(stub_pid_, 0ms).has_value(); }

  std::optional<int> StubExit(std::chrono::milliseconds timeout) {
    auto status = WaitChild(stub_pid_, timeout);
    if (status) stub_pid_ = -1;
    return status;
  }

  std::string Stdout() { return ReadFile(dir_ + "/stub.out"); }
  std::string Stderr() { return ReadFile(dir_ + "/stub.err"); }

  asio::io_context io_;
  std::string dir_;
  wire::JobSpec spec_;
  pid_t stub_pid_ = -1;
  int stdin_fd_ = -1;
};

TEST_F(StubMoveTest, MovedJobKeepsItsStubThroughTheNextShepherd) {
  auto daemon = SubmitThroughFakeDaemon();
  ASSERT_TRUE(daemon);
  ASSERT_GT(spec_.stub_port, 0);
  ASSERT_EQ(spec_.session_key.size(), wire::kSessionKeyBytes);

  auto first = ConnectShepherd();
  ASSERT_TRUE(first);
  ASSERT_TRUE(Greet(*first, kFirstHost));
  ASSERT_TRUE(first->Send(wire::StreamData{wire::StreamId::kStdout, "one\n"}));
  ASSERT_TRUE(first->Send(Moved()));
  EXPECT_TRUE(first->ClosedWithin(5s)) << "the stub should let the moved job's shepherd go";
  EXPECT_TRUE(StubAlive()) << Stderr();

  // Meanwhile the user types, and signals the job, and a stranger connects
  // and says nothing: none of it may be lost or hold the next shepherd out.
  ASSERT_EQ(write(stdin_fd_, "typed\n", 6), 6);
  close(std::exchange(stdin_fd_, -1));
  kill(stub_pid_, SIGUSR1);
  asio::ip::tcp::socket stranger(io_);
  stranger.connect({asio::ip::make_address(spec_.stub_address), spec_.stub_port});
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(daemon->Send(wire::SubmitReply{{kJobId, 1}, kSecondHost, ""}));
  EXPECT_TRUE(StubAlive()) << Stderr();

  auto second = ConnectShepherd();
  ASSERT_TRUE(second);
  ASSERT_TRUE(Greet(*second, kSecondHost));
  bool signalled = false, input_ended = false;
  std::string input;
  while (!input_ended) {
    auto frame = second->Next(10s);
    ASSERT_TRUE(frame) << "got so far: signal " << signalled << ", stdin \"" << input << "\"\n" << Stderr();
    if (frame->type == wire::MessageType::kSignal) {
      auto sig = wire::DecodePayload<wire::Signal>(frame->payload);
      ASSERT_TRUE(sig.ok());
      EXPECT_EQ(sig->signo, SIGUSR1);
      signalled = true;
    } else if (frame->type == wire::MessageType::kStreamData) {
      auto data = wire::DecodePayload<wire::StreamData>(frame->payload);
      ASSERT_TRUE(data.ok());
      input += data->bytes;
    } else if (frame->type == wire::MessageType::kStreamEof) {
      input_ended = true;
    }
  }
  EXPECT_TRUE(signalled) << "the signal held while moving did not reach the restarted job";
  EXPECT_EQ(input, "typed\n");
  ASSERT_TRUE(second->Send(wire::StreamData{wire::StreamId::kStdout, "two\n"}));
  ASSERT_TRUE(second->Send(wire::JobStatus{wire::JobStatusKind::kExited, 7, ""}));

  auto exit = StubExit(10s);
  ASSERT_TRUE(exit) << Stderr();
  ASSERT_TRUE(WIFEXITED(*exit)) << *exit;
  EXPECT_EQ(WEXITSTATUS(*exit), 7) << Stderr();
  EXPECT_EQ(Stdout(), "one\ntwo\n");
  EXPECT_NE(Stderr().find("[queue: job 77.1 checkpointed on 127.0.0.1:1; it carries on elsewhere]"), std::string::npos)
      << Stderr();
}

TEST_F(StubMoveTest, JobThatCannotRestartEndsTheStub) {
  auto daemon = SubmitThroughFakeDaemon();
  ASSERT_TRUE(daemon);
  auto first = ConnectShepherd();
  ASSERT_TRUE(first);
  ASSERT_TRUE(Greet(*first, kFirstHost));
  ASSERT_TRUE(first->Send(Moved()));
  EXPECT_TRUE(first->ClosedWithin(5s));
  EXPECT_TRUE(StubAlive()) << Stderr();
  ASSERT_TRUE(daemon->Send(wire::ErrorReply{"job 77 could not be restarted: no host takes restarts"}));
  auto exit = StubExit(10s);
  ASSERT_TRUE(exit) << Stderr();
  ASSERT_TRUE(WIFEXITED(*exit));
  EXPECT_EQ(WEXITSTATUS(*exit), 2);
  EXPECT_NE(Stderr().find("queue: job 77 could not be restarted: no host takes restarts"), std::string::npos)
      << Stderr();
}

// The daemon hears of the end before the stub does: its answer about the
// restart can come while the old shepherd is still attached.
TEST_F(StubMoveTest, DaemonErrorBeforeTheMovedStatusStillEndsTheStub) {
  auto daemon = SubmitThroughFakeDaemon();
  ASSERT_TRUE(daemon);
  auto first = ConnectShepherd();
  ASSERT_TRUE(first);
  ASSERT_TRUE(Greet(*first, kFirstHost));
  ASSERT_TRUE(daemon->Send(wire::ErrorReply{"job 77 could not be restarted: its restart file is missing"}));
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(StubAlive()) << "the job is still running here: " << Stderr();
  ASSERT_TRUE(first->Send(Moved()));
  auto exit = StubExit(10s);
  ASSERT_TRUE(exit) << Stderr();
  ASSERT_TRUE(WIFEXITED(*exit));
  EXPECT_EQ(WEXITSTATUS(*exit), 2);
  EXPECT_NE(Stderr().find("its restart file is missing"), std::string::npos) << Stderr();
}

}  // namespace
}  // namespace queue::testing
