// PskTlsContext: the TLS settings for every authenticated connection of Queue:
// TLS 1.3 only, authenticated by a pre-shared key, with no certificates.
// Daemons use the cluster key, under an identity derived from it (KeyIdentity in
// cluster_key.h), and during a key change several keys: a server accepts any of
// them, picking the key by the identity the client offers, and a client offers
// the first. A job's stub and its shepherd use the job's random session key
// (identity "queue-job").
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
// Thread-safety: a PskTlsContext may serve any number of streams, and SetKeys
// may be called from any thread while it does: handshakes that start afterwards
// use the new keys, streams already connected keep their session. Its keys live
// with the underlying SSL_CTX, which OpenSSL reference-counts, so a stream may
// outlive the PskTlsContext it was made from.
#pragma once

#include <string>
#include <vector>

#include <asio.hpp>
#include <asio/ssl.hpp>

#include "util/result.h"

namespace queue::auth {

// The identity of a job's channel; it keeps a job's key from being accepted by
// a daemon (whose identities are "queue-" and hex digits) and the cluster key
// from opening a job's channel. kClusterIdentity is only for tests and tools
// that need some fixed identity; daemons use KeyIdentity(key).
inline constexpr char kClusterIdentity[] = "queue-cluster";
inline constexpr char kJobIdentity[] = "queue-job";

// A key and the identity it is offered and accepted under.
struct PskKey {
  std::string key;
  std::string identity;
};

class PskTlsContext {
 public:
  enum class Side { kClient, kServer };

  // `key`: the raw shared secret, 16 to 512 bytes (cluster and session keys are
  // kKeyBytes). `identity`: a short printable label both ends use, at most 128
  // bytes. Fails with a message on a bad key or identity or if OpenSSL refuses
  // the settings.
  static Result<PskTlsContext> Create(Side side, std::string key, std::string identity);
  // Several keys, as above each, with distinct identities: a client offers the
  // first, a server accepts any of them. At least one.
  static Result<PskTlsContext> Create(Side side, std::vector<PskKey> keys);

  // Replaces the keys (checked as by Create; on failure the old keys stay) for
  // handshakes that start from now on.
  Status SetKeys(std::vector<PskKey> keys);

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

// Which OpenSSL start-up work a process pays for (InitOpenSsl).
enum class OpenSslUse {
  // queued: runs for months and logs its peers' TLS failures, so it loads
  // every library's error text and frees OpenSSL's state at exit.
  kLongLived,
  // queue (the stub) and queue-shepherd: one per job, so start-up and exit
  // are on every job's path. They load only the TLS library's error text (a
  // handshake's failure reads the same) and leave OpenSSL's memory to the
  // kernel at exit.
  kPerJob,
};

// Initialises OpenSSL for Queue's TLS 1.3 PSK, which is fully configured in
// code and fetches its algorithms from the default provider. It skips:
//   - the system's openssl.cnf (its parse);
//   - the legacy tables of every cipher and digest name (EVP_get_cipherbyname):
//     with them, the first fetch copies each of those names into the provider's
//     name map, about a fifth of a stub's instructions (callgrind);
//   - for kPerJob, the error text of the libraries under TLS (a million
//     instructions) and the clean-up at exit (as many again in the shepherd).
// Call first thing in main(), before anything else touches OpenSSL.
void InitOpenSsl(OpenSslUse use);

// A sentence for logs and users explaining why a TLS handshake failed, e.g.
// "TLS handshake failed (the peer does not hold the same key): binder does not
// verify (SSL routines)."
std::string DescribeHandshakeFailure(const asio::error_code& ec);

}  // namespace queue::auth
