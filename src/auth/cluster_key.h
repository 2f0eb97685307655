// The cluster key file: 32 random bytes, stored as 64 hex digits, shared by the
// hosts of one cluster so their daemons can authenticate each other (SPEC §8).
// `queued --keygen FILE` writes it; every daemon loads it at start (and again on
// SIGHUP) and refuses a file that someone other than its owner could read or
// change. For a rolling change of the key a file may hold a second key on a
// second line: the first is the key a daemon offers, both are accepted (see
// SECURITY.md, "The cluster key"). Stateless functions, safe from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "util/result.h"

namespace queue::auth {

// The size of a cluster key and of a job's session key, in raw bytes.
inline constexpr std::size_t kKeyBytes = 32;

// Creates `path` (mode 0600, never over an existing file) holding a fresh key
// as 64 lowercase hex digits and a newline, and flushes it to disk.
Status WriteNewKeyFile(const std::string& path);

// The most keys a key file may hold: the current one and one more (the next
// key, before every host offers it, or the previous one, until no host does).
inline constexpr std::size_t kMaxKeysPerFile = 2;

// Returns the keys in `path` (kKeyBytes raw bytes each, the current key first),
// after checking that the file is a regular file owned by the effective user or
// root, that neither group nor others have any access to it, and that it holds
// one or kMaxKeysPerFile lines of exactly 64 hex digits each (trailing
// whitespace allowed on each line; no blank line between keys).
Result<std::vector<std::string>> LoadKeyFileKeys(const std::string& path);

// The current (first) key of LoadKeyFileKeys.
Result<std::string> LoadKeyFile(const std::string& path);

// The TLS PSK identity a daemon uses with `key` (raw bytes): "queue-" and the
// first 8 hex digits of the SHA-256 of the raw key. Public, so that servers can
// pick the key a client offers, and logs can name keys without showing them:
// `head -n1 FILE | xxd -r -p | sha256sum | cut -c1-8` gives the same digits.
std::string KeyIdentity(const std::string& key);

// `n` bytes from the kernel's CSPRNG (getrandom(2), which waits until the
// kernel's pool is seeded: at boot, never after). Aborts the process if that
// fails: no key may ever be made from weak randomness.
// Not OpenSSL's generator: a stub draws its session key before it submits the
// job, and setting up OpenSSL's generator then costs every interactive job
// about 4 million instructions before the daemon hears of it; the stub sets
// up its TLS while the daemon starts the shepherd instead (stub_session.cc).
// OpenSSL's generator seeds itself from the same source.
std::string RandomBytes(std::size_t n);

}  // namespace queue::auth
