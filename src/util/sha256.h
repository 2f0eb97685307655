// Sha256: SHA-256 digests (OpenSSL's) of data that arrives in pieces, and of whole
// files, so that a job's output can be checked after it crosses the network.
//
// Thread-safety: none; one Sha256 per digest being computed.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "util/result.h"

struct evp_md_ctx_st;

namespace queue {

class Sha256 {
 public:
  static constexpr size_t kDigestBytes = 32;

  Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  ~Sha256();

  // Adds `data` to the digest.
  void Update(std::string_view data);
  // The digest of everything added so far, as 32 raw bytes; the object then starts
  // a new, empty digest. Empty only if OpenSSL cannot compute SHA-256 at all (a
  // broken OpenSSL configuration), which never equals a real digest.
  std::string Final();

 private:
  void Start();

  struct ContextDeleter {
    void operator()(evp_md_ctx_st* context) const;
  };
  std::unique_ptr<evp_md_ctx_st, ContextDeleter> context_;
  bool failed_ = false;  // an OpenSSL call failed since Start()
};

// The SHA-256 of the whole file open at `fd` (32 raw bytes), read from offset 0
// with pread, so the descriptor's own offset is left where it was.
Result<std::string> Sha256OfFile(int fd);

// `bytes` in lowercase hexadecimal, two digits a byte (as sha256sum prints).
std::string ToHex(std::string_view bytes);

}  // namespace queue
