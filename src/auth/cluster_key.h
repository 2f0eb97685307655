// The cluster key file: 32 random bytes, stored as 64 hex digits, shared by the
// hosts of one cluster so their daemons can authenticate each other (SPEC §8).
// `queued --keygen FILE` writes it; every daemon loads it at start and refuses a
// file that someone other than its owner could read or change. Also the source
// of the per-job session keys. Stateless functions, safe from any thread.
#pragma once

#include <cstddef>
#include <string>

#include "util/result.h"

namespace queue::auth {

// The size of a cluster key and of a job's session key, in raw bytes.
inline constexpr std::size_t kKeyBytes = 32;

// Creates `path` (mode 0600, never over an existing file) holding a fresh key
// as 64 lowercase hex digits and a newline, and flushes it to disk.
Status WriteNewKeyFile(const std::string& path);

// Returns the kKeyBytes raw bytes of the key in `path`, after checking that the
// file is a regular file owned by the effective user or root, that neither group
// nor others have any access to it, and that it holds exactly 64 hex digits
// (trailing whitespace allowed).
Result<std::string> LoadKeyFile(const std::string& path);

// `n` bytes from OpenSSL's CSPRNG. Aborts the process if the generator fails:
// no key may ever be made from weak randomness.
std::string RandomBytes(std::size_t n);

}  // namespace queue::auth
