// Keys derived from the cluster key for other engines that must share a
// secret across the cluster without sharing the cluster key itself (Serf's
// gossip encryption): HKDF-SHA-256 of the raw key, with a label saying what
// the result is for, so that no two uses share a key and none reveals the
// cluster key. Stateless functions, safe from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "util/result.h"

namespace queue::auth {

// `bytes` bytes (at most 255 * 32) derived from `key` (raw) for `purpose`.
Result<std::string> DeriveKey(std::string_view key, std::string_view purpose, std::size_t bytes);

// Standard base64 (with padding), as Serf takes its keys.
std::string Base64(std::string_view raw);

}  // namespace queue::auth
