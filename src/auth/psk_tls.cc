// TLS 1.3 PSK contexts and handshake diagnostics; see psk_tls.h.
#include "auth/psk_tls.h"

#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace queue::auth {
namespace {

constexpr std::size_t kMinKeyBytes = 16;
constexpr std::size_t kMaxKeyBytes = PSK_MAX_PSK_LEN;
constexpr std::size_t kMaxIdentityBytes = 128;
// Both use SHA-256, the hash OpenSSL assigns to a PSK from the callbacks below.
constexpr char kCipherSuites[] = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";

void WipeKeys(std::vector<PskKey>& keys) {
  for (PskKey& k : keys) OPENSSL_cleanse(k.key.data(), k.key.size());
}

// What the OpenSSL callbacks need; owned by the SSL_CTX through ex_data. The
// keys change on SetKeys while handshakes may run on other threads.
struct PskCredentials {
  mutable std::mutex mutex;
  std::vector<PskKey> keys;  // guarded by mutex; never empty once attached
  ~PskCredentials() { WipeKeys(keys); }
};

void FreeCredentials(void* /*parent*/, void* credentials, CRYPTO_EX_DATA* /*ad*/, int /*index*/, long /*argl*/,
                     void* /*argp*/) {
  delete static_cast<PskCredentials*>(credentials);
}

// The SSL_CTX ex_data slot holding the credentials. Asio already uses the
// "app data" slot for its verify callback (and deletes what it finds there),
// so we take a slot of our own, allocated once per process and constant after.
int CredentialsIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeCredentials);
  return index;
}

const PskCredentials* CredentialsOf(SSL* ssl) {
  return static_cast<const PskCredentials*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), CredentialsIndex()));
}

unsigned int OfferPsk(SSL* ssl, const char* /*hint*/, char* identity, unsigned int max_identity_len,
                      unsigned char* psk, unsigned int max_psk_len) {
  const PskCredentials* credentials = CredentialsOf(ssl);
  if (credentials == nullptr) return 0;
  std::lock_guard lock(credentials->mutex);
  if (credentials->keys.empty()) return 0;
  const PskKey& offered = credentials->keys.front();
  if (offered.identity.size() >= max_identity_len || offered.key.size() > max_psk_len) return 0;
  std::memcpy(identity, offered.identity.c_str(), offered.identity.size() + 1);
  std::memcpy(psk, offered.key.data(), offered.key.size());
  return static_cast<unsigned int>(offered.key.size());
}

// Picks the key by the identity the client offers. Returning 0 rejects the
// identity; OpenSSL then wants a certificate we do not have, so the handshake
// fails instead of falling back.
unsigned int FindPsk(SSL* ssl, const char* identity, unsigned char* psk, unsigned int max_psk_len) {
  const PskCredentials* credentials = CredentialsOf(ssl);
  if (credentials == nullptr || identity == nullptr) return 0;
  std::lock_guard lock(credentials->mutex);
  for (const PskKey& accepted : credentials->keys) {
    if (accepted.identity != identity) continue;
    if (accepted.key.size() > max_psk_len) return 0;
    std::memcpy(psk, accepted.key.data(), accepted.key.size());
    return static_cast<unsigned int>(accepted.key.size());
  }
  return 0;
}

Status CheckKeyAndIdentity(const std::string& key, const std::string& identity);

Status CheckKeys(const std::vector<PskKey>& keys) {
  if (keys.empty()) return Fail("A TLS context needs at least one pre-shared key.");
  std::set<std::string> identities;
  for (const PskKey& k : keys) {
    if (Status checked = CheckKeyAndIdentity(k.key, k.identity); !checked.ok()) return checked;
    if (!identities.insert(k.identity).second) {
      return Fail("Two TLS pre-shared keys have the same identity " + k.identity +
                  "; a key file must not list one key twice.");
    }
  }
  return Status::Ok();
}

Status CheckKeyAndIdentity(const std::string& key, const std::string& identity) {
  if (key.size() < kMinKeyBytes || key.size() > kMaxKeyBytes) {
    return Fail("A TLS pre-shared key must be " + std::to_string(kMinKeyBytes) + " to " +
                std::to_string(kMaxKeyBytes) + " bytes long, not " + std::to_string(key.size()) + ".");
  }
  if (identity.empty() || identity.size() > kMaxIdentityBytes || identity.find('\0') != std::string::npos) {
    return Fail("A TLS PSK identity must be 1 to " + std::to_string(kMaxIdentityBytes) +
                " bytes long without NUL bytes.");
  }
  return Status::Ok();
}

std::string OpenSslFailure(const std::string& what) {
  unsigned long code = ERR_get_error();
  const char* reason = code != 0 ? ERR_reason_error_string(code) : nullptr;
  ERR_clear_error();
  return "OpenSSL refused to " + what + " (" + (reason != nullptr ? reason : "no reason given") + ").";
}

Status RestrictToTls13Psk(SSL_CTX* ctx, PskTlsContext::Side side) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return Fail(OpenSslFailure("limit TLS to version 1.3"));
  }
  if (SSL_CTX_set_ciphersuites(ctx, kCipherSuites) != 1) return Fail(OpenSslFailure("set the TLS 1.3 cipher suites"));
  // Every connection proves the key afresh: no resumption tickets or caches.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (side == PskTlsContext::Side::kServer) {
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_psk_server_callback(ctx, FindPsk);
  } else {
    // No trust anchors are loaded, so a server answering with a certificate
    // instead of the PSK is refused.
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_psk_client_callback(ctx, OfferPsk);
  }
  return Status::Ok();
}

Status AttachCredentials(SSL_CTX* ctx, std::vector<PskKey> keys) {
  int index = CredentialsIndex();
  if (index < 0) {
    WipeKeys(keys);
    return Fail(OpenSslFailure("reserve a slot for the TLS key"));
  }
  auto credentials = std::make_unique<PskCredentials>();
  credentials->keys = std::move(keys);
  if (SSL_CTX_set_ex_data(ctx, index, credentials.get()) != 1) return Fail(OpenSslFailure("attach the TLS key"));
  credentials.release();  // Now owned by ctx; FreeCredentials deletes it.
  return Status::Ok();
}

// What an OpenSSL handshake error most likely means between two Queue peers.
// The reasons were observed with OpenSSL 3 (see auth_tls_test.cc): a wrong key
// under the right identity fails the PSK binder check, an unknown identity (for
// daemons: another cluster key) leaves the server without a PSK.
std::string TlsFailureCause(unsigned long code) {
  if (ERR_GET_LIB(code) != ERR_LIB_SSL) return "the peer does not hold the same key, or is not a Queue peer";
  switch (ERR_GET_REASON(code)) {
    case SSL_R_BINDER_DOES_NOT_VERIFY:
    case SSL_R_SSLV3_ALERT_ILLEGAL_PARAMETER:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
      return "the peer does not hold the same key";
    // Daemons name each key by an identity derived from it, so another cluster
    // key shows up as an identity the other end does not know.
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_NO_SHARED_CIPHER:
      return "the peer offered no pre-shared key under an identity we accept, so it does not hold the same key";
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
      return "the peer refused our identity, so it does not hold the same key, or does not use a pre-shared key";
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
      return "the peer presented a certificate instead of using the pre-shared key";
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
      return "the peer does not speak TLS 1.3";
    default:
      return "the peer does not hold the same key, or is not a Queue peer";
  }
}

}  // namespace

PskTlsContext::PskTlsContext(Side side, asio::ssl::context context) : side_(side), context_(std::move(context)) {}

Result<PskTlsContext> PskTlsContext::Create(Side side, std::string key, std::string identity) {
  std::vector<PskKey> keys;
  keys.push_back(PskKey{std::move(key), std::move(identity)});
  return Create(side, std::move(keys));
}

Result<PskTlsContext> PskTlsContext::Create(Side side, std::vector<PskKey> keys) {
  if (Status checked = CheckKeys(keys); !checked.ok()) {
    WipeKeys(keys);
    return Fail(checked.message());
  }
  try {
    PskTlsContext created(side, asio::ssl::context(side == Side::kServer ? asio::ssl::context::tls_server
                                                                          : asio::ssl::context::tls_client));
    SSL_CTX* ctx = created.context_.native_handle();
    Status configured = RestrictToTls13Psk(ctx, side);
    if (configured.ok()) configured = AttachCredentials(ctx, std::move(keys));
    if (!configured.ok()) return Fail(configured.message());
    return created;
  } catch (const asio::system_error& e) {
    WipeKeys(keys);
    return Fail("Cannot create a TLS context: " + std::string(e.what()) + ".");
  }
}

Status PskTlsContext::SetKeys(std::vector<PskKey> keys) {
  if (Status checked = CheckKeys(keys); !checked.ok()) {
    WipeKeys(keys);
    return checked;
  }
  auto* credentials = static_cast<PskCredentials*>(SSL_CTX_get_ex_data(context_.native_handle(), CredentialsIndex()));
  if (credentials == nullptr) {
    WipeKeys(keys);
    return Fail("This TLS context has no keys to replace.");
  }
  std::lock_guard lock(credentials->mutex);
  std::swap(credentials->keys, keys);
  WipeKeys(keys);  // the old ones
  return Status::Ok();
}

asio::ssl::stream_base::handshake_type PskTlsContext::handshake_type() const {
  return side_ == Side::kServer ? asio::ssl::stream_base::server : asio::ssl::stream_base::client;
}

void InitOpenSsl(OpenSslUse use) {
  uint64_t options = OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS;
  if (use == OpenSslUse::kPerJob) options |= OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS | OPENSSL_INIT_NO_ATEXIT;
  // The NO_ options take effect only before anything asks for the opposite,
  // and OPENSSL_init_ssl asks for all ciphers and digests: crypto goes first.
  OPENSSL_init_crypto(options, nullptr);
  OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
}

std::string DescribeHandshakeFailure(const asio::error_code& ec) {
  std::string cause;
  if (ec.category() == asio::error::get_ssl_category()) {
    cause = " (" + TlsFailureCause(static_cast<unsigned long>(ec.value())) + ")";
  } else if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
             ec == asio::error::connection_reset) {
    cause = " (the peer closed the connection, perhaps because it refused our key)";
  }
  return "TLS handshake failed" + cause + ": " + ec.message() + ".";
}

}  // namespace queue::auth
