// Tests of TLS 1.3 PSK contexts over loopback: a shared key and identity give an
// encrypted TLS 1.3 channel both ways; another key or identity fails on both ends.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <initializer_list>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "auth/cluster_key.h"
#include "auth/psk_tls.h"

namespace queue::auth {
namespace {

using Side = PskTlsContext::Side;
constexpr auto kTimeout = std::chrono::seconds(10);

PskTlsContext MakeContext(Side side, const std::string& key, const std::string& identity = kClusterIdentity) {
  Result<PskTlsContext> created = PskTlsContext::Create(side, key, identity);
  EXPECT_TRUE(created.ok()) << created.message();
  return std::move(created).value();
}

struct HandshakeOutcome {
  std::optional<asio::error_code> client;  // empty: the handshake never completed
  std::optional<asio::error_code> server;
};

// Whether an operation finished without error, with the reason if not.
::testing::AssertionResult Succeeded(const std::optional<asio::error_code>& ec) {
  if (!ec.has_value()) return ::testing::AssertionFailure() << "did not finish";
  if (*ec) return ::testing::AssertionFailure() << DescribeHandshakeFailure(*ec);
  return ::testing::AssertionSuccess();
}

// A connected client and server TLS stream on one io_context.
class Loopback {
 public:
  Loopback(asio::ssl::context& client_context, asio::ssl::context& server_context)
      : acceptor_(io_, {asio::ip::address_v4::loopback(), 0}),
        client_(io_, client_context),
        server_(io_, server_context) {
    client_.next_layer().connect(acceptor_.local_endpoint());
    acceptor_.accept(server_.next_layer());
  }

  HandshakeOutcome Handshake() {
    HandshakeOutcome outcome;
    client_.async_handshake(asio::ssl::stream_base::client, [&](const asio::error_code& ec) { outcome.client = ec; });
    server_.async_handshake(asio::ssl::stream_base::server, [&](const asio::error_code& ec) { outcome.server = ec; });
    Run();
    return outcome;
  }

  // Sends `message` from one stream and returns what the other one received.
  std::string Transfer(TlsStream& from, TlsStream& to, const std::string& message) {
    std::string received(message.size(), '\0');
    std::optional<asio::error_code> wrote, read;
    asio::async_write(from, asio::buffer(message), [&](const asio::error_code& ec, std::size_t) { wrote = ec; });
    asio::async_read(to, asio::buffer(received), [&](const asio::error_code& ec, std::size_t) { read = ec; });
    Run();
    EXPECT_TRUE(Succeeded(wrote)) << "write";
    EXPECT_TRUE(Succeeded(read)) << "read";
    return received;
  }

  TlsStream& client() { return client_; }
  TlsStream& server() { return server_; }

 private:
  void Run() {
    io_.run_for(kTimeout);
    io_.restart();
  }

  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  TlsStream client_;
  TlsStream server_;
};

void ExpectFailedOnBothEnds(const HandshakeOutcome& outcome) {
  ASSERT_TRUE(outcome.client.has_value()) << "client handshake did not finish";
  ASSERT_TRUE(outcome.server.has_value()) << "server handshake did not finish";
  EXPECT_TRUE(*outcome.client) << "client handshake succeeded";
  EXPECT_TRUE(*outcome.server) << "server handshake succeeded";
}

class AuthTls : public ::testing::Test {
 protected:
  std::string key_ = RandomBytes(kKeyBytes);
  PskTlsContext client_ = MakeContext(Side::kClient, key_);
  PskTlsContext server_ = MakeContext(Side::kServer, key_);
};

TEST_F(AuthTls, SameKeyNegotiatesTls13PskAndCarriesDataBothWays) {
  Loopback link(client_.context(), server_.context());
  HandshakeOutcome outcome = link.Handshake();
  ASSERT_TRUE(Succeeded(outcome.client)) << "client";
  ASSERT_TRUE(Succeeded(outcome.server)) << "server";

  for (TlsStream* end : {&link.client(), &link.server()}) {
    SSL* ssl = end->native_handle();
    EXPECT_STREQ(SSL_get_version(ssl), "TLSv1.3");
    EXPECT_EQ(SSL_version(ssl), TLS1_3_VERSION);
    std::string suite = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl));
    EXPECT_TRUE(suite == "TLS_AES_128_GCM_SHA256" || suite == "TLS_CHACHA20_POLY1305_SHA256") << suite;
    EXPECT_EQ(SSL_get0_peer_certificate(ssl), nullptr) << "a certificate was used";
    EXPECT_EQ(SSL_session_reused(ssl), 1) << "the pre-shared key was not used";
    EXPECT_NE(SSL_get_negotiated_group(ssl), 0) << "no (EC)DHE share: psk_dhe_ke was not used";
  }

  EXPECT_EQ(link.Transfer(link.client(), link.server(), "ping from client"), "ping from client");
  EXPECT_EQ(link.Transfer(link.server(), link.client(), "pong from server"), "pong from server");
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 251);
  EXPECT_EQ(link.Transfer(link.client(), link.server(), big), big);
  EXPECT_EQ(link.Transfer(link.server(), link.client(), big), big);
}

TEST_F(AuthTls, DifferentKeyFailsOnBothEnds) {
  PskTlsContext stranger = MakeContext(Side::kClient, RandomBytes(kKeyBytes));
  Loopback link(stranger.context(), server_.context());
  HandshakeOutcome outcome = link.Handshake();
  ExpectFailedOnBothEnds(outcome);
  std::string server_reason = DescribeHandshakeFailure(*outcome.server);
  std::string client_reason = DescribeHandshakeFailure(*outcome.client);
  EXPECT_NE(server_reason.find("same key"), std::string::npos) << server_reason;
  EXPECT_NE(client_reason.find("same key"), std::string::npos) << client_reason;
}

TEST_F(AuthTls, DifferentServerKeyFailsOnBothEnds) {
  PskTlsContext stranger = MakeContext(Side::kServer, RandomBytes(kKeyBytes));
  Loopback link(client_.context(), stranger.context());
  ExpectFailedOnBothEnds(link.Handshake());
}

TEST_F(AuthTls, DifferentIdentityFailsOnBothEnds) {
  PskTlsContext job_client = MakeContext(Side::kClient, key_, kJobIdentity);
  Loopback link(job_client.context(), server_.context());
  HandshakeOutcome outcome = link.Handshake();
  ExpectFailedOnBothEnds(outcome);
  std::string server_reason = DescribeHandshakeFailure(*outcome.server);
  std::string client_reason = DescribeHandshakeFailure(*outcome.client);
  EXPECT_NE(server_reason.find("identity"), std::string::npos) << server_reason;
  EXPECT_NE(client_reason.find("identity"), std::string::npos) << client_reason;
}

TEST_F(AuthTls, ServerRefusesAnOrdinaryCertificateClient) {
  asio::ssl::context plain(asio::ssl::context::tls_client);
  Loopback link(plain, server_.context());
  HandshakeOutcome outcome = link.Handshake();
  ExpectFailedOnBothEnds(outcome);
  std::string server_reason = DescribeHandshakeFailure(*outcome.server);
  EXPECT_NE(server_reason.find("no pre-shared key"), std::string::npos) << server_reason;
}

TEST_F(AuthTls, StreamsOutliveTheContextTheyWereMadeFrom) {
  std::optional<PskTlsContext> client = MakeContext(Side::kClient, key_);
  std::optional<PskTlsContext> server = MakeContext(Side::kServer, key_);
  Loopback link(client->context(), server->context());
  client.reset();
  server.reset();
  HandshakeOutcome outcome = link.Handshake();
  EXPECT_TRUE(Succeeded(outcome.client)) << "client";
  EXPECT_TRUE(Succeeded(outcome.server)) << "server";
  EXPECT_EQ(link.Transfer(link.client(), link.server(), "still here"), "still here");
}

TEST_F(AuthTls, MovedContextStillWorks) {
  PskTlsContext moved = std::move(server_);
  Loopback link(client_.context(), moved.context());
  HandshakeOutcome outcome = link.Handshake();
  EXPECT_TRUE(Succeeded(outcome.client)) << "client";
  EXPECT_TRUE(Succeeded(outcome.server)) << "server";
}

// Rolling key changes: a server holding several keys picks one by the identity
// the client offers; a client offers its first key.
std::vector<PskKey> Keys(std::initializer_list<std::string> raw) {
  std::vector<PskKey> keys;
  for (const std::string& key : raw) keys.push_back(PskKey{key, KeyIdentity(key)});
  return keys;
}

PskTlsContext MakeMultiContext(Side side, std::vector<PskKey> keys) {
  Result<PskTlsContext> created = PskTlsContext::Create(side, std::move(keys));
  EXPECT_TRUE(created.ok()) << created.message();
  return std::move(created).value();
}

::testing::AssertionResult Connects(PskTlsContext& client, PskTlsContext& server) {
  Loopback link(client.context(), server.context());
  HandshakeOutcome outcome = link.Handshake();
  if (!Succeeded(outcome.client)) return ::testing::AssertionFailure() << "client: " << Succeeded(outcome.client).message();
  if (!Succeeded(outcome.server)) return ::testing::AssertionFailure() << "server: " << Succeeded(outcome.server).message();
  if (link.Transfer(link.client(), link.server(), "hello") != "hello") return ::testing::AssertionFailure() << "data";
  return ::testing::AssertionSuccess();
}

class AuthTlsKeyChange : public ::testing::Test {
 protected:
  std::string old_ = RandomBytes(kKeyBytes);
  std::string new_ = RandomBytes(kKeyBytes);
};

TEST_F(AuthTlsKeyChange, ServerWithOldAndNewAcceptsClientsOfEither) {
  PskTlsContext old_client = MakeMultiContext(Side::kClient, Keys({old_}));
  PskTlsContext new_client = MakeMultiContext(Side::kClient, Keys({new_}));
  PskTlsContext step1_server = MakeMultiContext(Side::kServer, Keys({old_, new_}));
  PskTlsContext step2_server = MakeMultiContext(Side::kServer, Keys({new_, old_}));
  EXPECT_TRUE(Connects(old_client, step1_server));
  EXPECT_TRUE(Connects(new_client, step1_server));
  EXPECT_TRUE(Connects(old_client, step2_server));
  EXPECT_TRUE(Connects(new_client, step2_server));
}

TEST_F(AuthTlsKeyChange, ClientOffersItsFirstKey) {
  PskTlsContext step1_client = MakeMultiContext(Side::kClient, Keys({old_, new_}));
  PskTlsContext step2_client = MakeMultiContext(Side::kClient, Keys({new_, old_}));
  PskTlsContext old_server = MakeMultiContext(Side::kServer, Keys({old_}));
  PskTlsContext new_server = MakeMultiContext(Side::kServer, Keys({new_}));
  EXPECT_TRUE(Connects(step1_client, old_server));
  EXPECT_FALSE(Connects(step1_client, new_server));
  EXPECT_TRUE(Connects(step2_client, new_server));
  EXPECT_FALSE(Connects(step2_client, old_server));
}

TEST_F(AuthTlsKeyChange, ServerWithOnlyTheNewKeyRefusesTheOld) {
  PskTlsContext old_client = MakeMultiContext(Side::kClient, Keys({old_}));
  PskTlsContext new_server = MakeMultiContext(Side::kServer, Keys({new_}));
  Loopback link(old_client.context(), new_server.context());
  HandshakeOutcome outcome = link.Handshake();
  ExpectFailedOnBothEnds(outcome);
  std::string server_reason = DescribeHandshakeFailure(*outcome.server);
  EXPECT_NE(server_reason.find("identity"), std::string::npos) << server_reason;
}

TEST_F(AuthTlsKeyChange, AnOldKeyUnderTheNewIdentityIsRefused) {
  // A client must hold the key, not only know its identity.
  std::vector<PskKey> forged{PskKey{old_, KeyIdentity(new_)}};
  PskTlsContext forger = MakeMultiContext(Side::kClient, std::move(forged));
  PskTlsContext new_server = MakeMultiContext(Side::kServer, Keys({new_}));
  EXPECT_FALSE(Connects(forger, new_server));
}

TEST_F(AuthTlsKeyChange, SetKeysAppliesToNewHandshakesAndLeavesOpenStreams) {
  PskTlsContext client = MakeMultiContext(Side::kClient, Keys({old_}));
  PskTlsContext server = MakeMultiContext(Side::kServer, Keys({old_}));
  Loopback open_link(client.context(), server.context());
  HandshakeOutcome opened = open_link.Handshake();
  ASSERT_TRUE(Succeeded(opened.client));
  ASSERT_TRUE(Succeeded(opened.server));

  ASSERT_TRUE(server.SetKeys(Keys({new_})).ok());
  EXPECT_FALSE(Connects(client, server)) << "the server still accepts the dropped key";
  ASSERT_TRUE(client.SetKeys(Keys({new_})).ok());
  EXPECT_TRUE(Connects(client, server));
  EXPECT_EQ(open_link.Transfer(open_link.client(), open_link.server(), "still open"), "still open");

  // Bad keys leave the current ones in place.
  EXPECT_FALSE(server.SetKeys({}).ok());
  EXPECT_FALSE(server.SetKeys(Keys({std::string(8, 'k')})).ok());
  EXPECT_FALSE(server.SetKeys(std::vector<PskKey>{PskKey{old_, "queue-same"}, PskKey{new_, "queue-same"}}).ok());
  EXPECT_TRUE(Connects(client, server));
}

TEST(AuthTlsContext, ReportsItsHandshakeType) {
  std::string key = RandomBytes(kKeyBytes);
  EXPECT_EQ(MakeContext(Side::kClient, key).handshake_type(), asio::ssl::stream_base::client);
  EXPECT_EQ(MakeContext(Side::kServer, key).handshake_type(), asio::ssl::stream_base::server);
}

TEST(AuthTlsContext, RefusesWeakKeysAndBadIdentities) {
  EXPECT_FALSE(PskTlsContext::Create(Side::kClient, "", kClusterIdentity).ok());
  EXPECT_FALSE(PskTlsContext::Create(Side::kServer, std::string(15, 'k'), kClusterIdentity).ok());
  EXPECT_FALSE(PskTlsContext::Create(Side::kServer, std::string(513, 'k'), kClusterIdentity).ok());
  EXPECT_FALSE(PskTlsContext::Create(Side::kClient, RandomBytes(kKeyBytes), "").ok());
  EXPECT_FALSE(PskTlsContext::Create(Side::kClient, RandomBytes(kKeyBytes), std::string(129, 'i')).ok());
  EXPECT_FALSE(PskTlsContext::Create(Side::kClient, RandomBytes(kKeyBytes), std::string("a\0b", 3)).ok());
  EXPECT_TRUE(PskTlsContext::Create(Side::kClient, std::string(16, 'k'), kJobIdentity).ok());
}

TEST(AuthTlsDescribe, NamesTheCauseOfNonTlsFailures) {
  std::string closed = DescribeHandshakeFailure(asio::error::eof);
  EXPECT_EQ(closed.rfind("TLS handshake failed (the peer closed the connection", 0), 0u) << closed;
  EXPECT_EQ(closed.back(), '.');
  std::string refused = DescribeHandshakeFailure(asio::error::connection_refused);
  EXPECT_EQ(refused.rfind("TLS handshake failed: ", 0), 0u) << refused;
}

// What the server reports when the client sends `junk` instead of a TLS hello.
std::string ServerFailureOnJunk(const std::string& junk) {
  PskTlsContext server = MakeContext(Side::kServer, RandomBytes(kKeyBytes));
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
  asio::ip::tcp::socket plain(io);
  plain.connect(acceptor.local_endpoint());
  TlsStream tls(io, server.context());
  acceptor.accept(tls.next_layer());
  asio::write(plain, asio::buffer(junk));
  std::optional<asio::error_code> outcome;
  tls.async_handshake(server.handshake_type(), [&](const asio::error_code& ec) { outcome = ec; });
  io.run_for(kTimeout);
  if (!outcome.has_value()) return "handshake did not finish";
  if (!*outcome) return "handshake succeeded";
  return DescribeHandshakeFailure(*outcome);
}

TEST(AuthTlsDescribe, SaysWhenThePeerDoesNotSpeakTls) {
  std::string http = ServerFailureOnJunk("GET / HTTP/1.0\r\n\r\n");
  EXPECT_NE(http.find("does not speak TLS 1.3"), std::string::npos) << http;
  std::string frame = ServerFailureOnJunk(std::string("\x00\x00\x00\x0c\x01\x02plaintext!", 16));
  EXPECT_NE(frame.find("does not speak TLS 1.3"), std::string::npos) << frame;
}

// InitOpenSsl belongs to a process's start, so each case runs in a fresh child
// (gtest's "threadsafe" death tests start the test binary again): the child
// initialises OpenSSL as the stub or the daemon does, checks what it skipped,
// and then that PSK handshakes, and their failures' descriptions, are as before.
// Exit codes: 0 all well, others say which check failed.
int InitThenHandshake(OpenSslUse use) {
  InitOpenSsl(use);
  // The legacy name tables were not built (the first fetch would copy them).
  if (EVP_get_cipherbyname("AES-128-GCM") != nullptr || EVP_get_digestbyname("SHA256") != nullptr) return 10;
  std::string key = RandomBytes(kKeyBytes);
  PskTlsContext client = MakeContext(Side::kClient, key);
  PskTlsContext server = MakeContext(Side::kServer, key);
  Loopback good(client.context(), server.context());
  HandshakeOutcome outcome = good.Handshake();
  if (!Succeeded(outcome.client) || !Succeeded(outcome.server)) return 11;
  if (good.Transfer(good.client(), good.server(), "ping") != "ping") return 12;
  PskTlsContext stranger = MakeContext(Side::kClient, RandomBytes(kKeyBytes));
  Loopback bad(stranger.context(), server.context());
  HandshakeOutcome refused = bad.Handshake();
  if (!refused.server || !*refused.server) return 13;
  // The TLS library's own words still reach the log.
  std::string reason = DescribeHandshakeFailure(*refused.server);
  if (reason.find("same key") == std::string::npos || reason.find("binder does not verify") == std::string::npos)
    return 14;
  return 0;
}

TEST(AuthTlsInit, PerJobProcessSkipsLegacyNamesAndStillHandshakes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(std::exit(InitThenHandshake(OpenSslUse::kPerJob)), ::testing::ExitedWithCode(0), "");
}

TEST(AuthTlsInit, DaemonSkipsLegacyNamesAndStillHandshakes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(std::exit(InitThenHandshake(OpenSslUse::kLongLived)), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace queue::auth
