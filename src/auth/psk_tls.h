// PskTlsContext: the TLS settings for every authenticated connection of Queue:
// TLS 1.3 only, authenticated by a pre-shared key, with no certificates.
// Daemons use the cluster key (identity "queue-cluster"); a job's stub and its
// shepherd use the job's random session key (identity "queue-job").
//
// Why TLS-PSK and not certificates: the question each connection must answer is
// "does the peer hold our key?", and every host already holds the one cluster
// key file (SPEC §8), as the stub and shepherd already share the session key.
// PSK answers exactly that, with no CA to run, no per-host certificate to issue,
// renew or revoke, and no host-name check that DNS could subvert, while keeping
// TLS 1.3's encryption, integrity and, through psk_dhe_ke (OpenSSL's default),
// forward secrecy. A peer with another key or another identity fails the
// handshake on both ends; there is no fallback to certificates.
//
// Thread-safety: a PskTlsContext is not changed after Create and may serve any
// number of streams. Its key lives with the underlying SSL_CTX, which OpenSSL
// reference-counts, so a stream may outlive the PskTlsContext it was made from.
#pragma once

#include <string>

#include <asio.hpp>
#include <asio/ssl.hpp>

#include "util/result.h"

namespace queue::auth {

// The identities both ends must agree on; they keep a job's key from being
// accepted by a daemon and the cluster key from opening a job's channel.
inline constexpr char kClusterIdentity[] = "queue-cluster";
inline constexpr char kJobIdentity[] = "queue-job";

class PskTlsContext {
 public:
  enum class Side { kClient, kServer };

  // `key`: the raw shared secret, 16 to 512 bytes (cluster and session keys are
  // kKeyBytes). `identity`: a short printable label both ends use, at most 128
  // bytes. Fails with a message on a bad key or identity or if OpenSSL refuses
  // the settings.
  static Result<PskTlsContext> Create(Side side, std::string key, std::string identity);

  PskTlsContext(PskTlsContext&&) = default;
  PskTlsContext& operator=(PskTlsContext&&) = default;
  PskTlsContext(const PskTlsContext&) = delete;
  PskTlsContext& operator=(const PskTlsContext&) = delete;

  // For constructing streams: TlsStream(std::move(socket), ctx.context()).
  asio::ssl::context& context() { return context_; }
  Side side() const { return side_; }
  // What to pass to TlsStream::async_handshake for this side.
  asio::ssl::stream_base::handshake_type handshake_type() const;

 private:
  PskTlsContext(Side side, asio::ssl::context context);

  Side side_;
  asio::ssl::context context_;
};

using TlsStream = asio::ssl::stream<asio::ip::tcp::socket>;

// Initialises OpenSSL without reading the system's openssl.cnf: Queue's TLS is
// fully configured in code, and skipping the file saves every short-lived
// process (stub, shepherd) its parse. Call first thing in main().
void InitOpenSsl();

// A sentence for logs and users explaining why a TLS handshake failed, e.g.
// "TLS handshake failed (the peer does not hold the same key): binder does not
// verify (SSL routines)."
std::string DescribeHandshakeFailure(const asio::error_code& ec);

}  // namespace queue::auth
