// BundleSender: streams a restarted job's restart-file bundle to the host that
// is to run it, in BundleChunks paced on the link's backlog (a 1 GiB bundle must
// neither fill memory nor starve the link's load reports), and says when the
// whole file is on its way, with its size and SHA-256 for the PlaceJob that
// follows. Event-loop only.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <asio.hpp>

#include "daemon/peer_link.h"
#include "util/result.h"

namespace queue::daemon {

struct SentBundle {
  uint64_t size = 0;
  std::string sha256;  // 32 raw bytes
};

// Calls `done` once: with the bundle's size and digest when every chunk is
// queued on the link, or an error (the file cannot be read, the link dropped).
void SendBundle(asio::io_context& io, std::shared_ptr<PeerLink> link, std::string origin_host, uint64_t origin_id,
                uint32_t attempt, const std::string& path, std::function<void(Result<SentBundle>)> done);

// Receiving side: writes one chunk at `offset` of the file at `path` (offset 0
// starts it afresh). A chunk that does not follow on from the file's end is
// stale (from a transfer that was cut off) and is dropped.
Status StoreChunk(const std::string& path, uint64_t offset, std::string_view bytes);

// Whether the file at `path` is exactly `size` bytes with this SHA-256 (32 raw bytes).
bool FileMatches(const std::string& path, uint64_t size, const std::string& sha256);

}  // namespace queue::daemon
