// Sha256 over OpenSSL's EVP interface, and hashing a file by descriptor.
#include "util/sha256.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace queue {

static_assert(EVP_MAX_MD_SIZE >= Sha256::kDigestBytes);

void Sha256::ContextDeleter::operator()(evp_md_ctx_st* context) const {
  EVP_MD_CTX_free(context);
}

Sha256::Sha256() : context_(EVP_MD_CTX_new()) { Start(); }
// A moved-from digest is marked failed, so using it again is harmless.
Sha256::Sha256(Sha256&& other) noexcept
    : context_(std::move(other.context_)), failed_(other.failed_) {
  other.failed_ = true;
}

Sha256& Sha256::operator=(Sha256&& other) noexcept {
  context_ = std::move(other.context_);
  failed_ = other.failed_;
  other.failed_ = true;
  return *this;
}
Sha256::~Sha256() = default;

void Sha256::Start() {
  failed_ = context_ == nullptr ||
            EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) != 1;
}

void Sha256::Update(std::string_view data) {
  if (failed_ || data.empty()) return;
  failed_ = EVP_DigestUpdate(context_.get(), data.data(), data.size()) != 1;
}

std::string Sha256::Final() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  bool ok = !failed_ && EVP_DigestFinal_ex(context_.get(), digest, &size) == 1 &&
            size == kDigestBytes;
  Start();
  if (!ok) return {};
  return std::string(reinterpret_cast<const char*>(digest), size);
}

Result<std::string> Sha256OfFile(int fd) {
  Sha256 digest;
  std::string buffer(1 << 16, '\0');
  off_t offset = 0;
  for (;;) {
    ssize_t got = ::pread(fd, buffer.data(), buffer.size(), offset);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      return Fail("Could not read a file to compute its SHA-256: " + ErrnoText(errno) + ".");
    }
    if (got == 0) break;
    digest.Update(std::string_view(buffer.data(), static_cast<size_t>(got)));
    offset += got;
  }
  std::string result = digest.Final();
  if (result.empty()) {
    return Fail("OpenSSL could not compute a SHA-256 digest; check its configuration.");
  }
  return result;
}

std::string ToHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * bytes.size());
  for (unsigned char byte : bytes) {
    hex.push_back(kDigits[byte >> 4]);
    hex.push_back(kDigits[byte & 0x0f]);
  }
  return hex;
}

}  // namespace queue
