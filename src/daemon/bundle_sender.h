// Files that travel between daemons in chunks: restart-file bundles (to the
// host that is to run a restarted job) and batch output (home to the submit
// host). The sending side reads a file in chunks paced on the link's backlog (a
// 1 GiB bundle must neither fill memory nor starve the link's load reports),
// hashing as it reads; the receiving side writes the chunks in order, hashing
// as they come, so that checking the whole file against the sender's SHA-256
// costs no second read. Event-loop only.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <asio.hpp>

#include "daemon/peer_link.h"
#include "util/result.h"
#include "util/sha256.h"

namespace queue::daemon {

// A file being read out to a peer, from `offset` on.
struct OutgoingFile {
  int fd = -1;
  uint64_t offset = 0;
  Sha256 digest;  // of everything read so far
};

enum class ChunkPace { kEnd, kLinkFull, kReadError };

// Hands `send` chunks of `file` (at most wire::kMaxFileChunk each, with their
// offsets) until the end of the file (kEnd), or until the link's backlog is
// full (kLinkFull: call again later), or a read fails (kReadError, errno set).
ChunkPace SendChunks(OutgoingFile& file, const PeerLink& link,
                     const std::function<void(uint64_t offset, std::string bytes)>& send);

// How long a transfer may move no byte before whoever waits on it is told:
// a link cut (not a crash) leaves the connection open and silent until TCP
// gives up, minutes later.
constexpr std::chrono::seconds kTransferStallAfter{10};

// Watches one transfer for a stall. It is given the bytes moved so far and the
// time; it says kStalled once, when no byte has moved for `stall_after`, and
// kResumed once bytes move again. Pure: no clock or I/O of its own.
class StallWatch {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Change { kNone, kStalled, kResumed };

  StallWatch(Clock::duration stall_after, Clock::time_point now) : stall_after_(stall_after), moved_at_(now) {}

  Change Observe(uint64_t bytes_moved, Clock::time_point now);
  bool stalled() const { return stalled_; }
  uint64_t bytes() const { return bytes_; }
  // How long since a byte last moved.
  Clock::duration idle(Clock::time_point now) const { return now - moved_at_; }

 private:
  Clock::duration stall_after_;
  Clock::time_point moved_at_;
  uint64_t bytes_ = 0;
  bool stalled_ = false;
};

struct SentBundle {
  uint64_t size = 0;
  std::string sha256;  // 32 raw bytes
};

// What a bundle's sender hears of a stall: kStalled or kResumed, with the bytes
// sent so far and the bundle's size.
struct BundleProgress {
  StallWatch::Change change = StallWatch::Change::kNone;
  uint64_t bytes = 0;
  uint64_t size = 0;
};

// Calls `done` once: with the bundle's size and digest when every chunk is
// queued on the link, or an error (the file cannot be read, the link dropped).
// `on_stall`, if given, hears when no byte has left for kTransferStallAfter,
// and when bytes leave again. `on_progress`, if given, hears the bytes that
// left the link's queue (change kNone) whenever they grew: for queue --jobs.
void SendBundle(asio::io_context& io, std::shared_ptr<PeerLink> link, std::string origin_host, uint64_t origin_id,
                uint32_t attempt, const std::string& path, std::function<void(Result<SentBundle>)> done,
                std::function<void(const BundleProgress&)> on_stall = nullptr,
                std::function<void(const BundleProgress&)> on_progress = nullptr);

// The receiving side: files arriving in chunks, each kept open and hashed
// while it grows. A daemon restarted in the middle of a transfer knows nothing
// of it; it still writes what follows on, and checks such a file by reading it.
class IncomingFiles {
 public:
  IncomingFiles() = default;
  IncomingFiles(const IncomingFiles&) = delete;
  IncomingFiles& operator=(const IncomingFiles&) = delete;
  ~IncomingFiles();

  // Writes one chunk at `offset` of the file at `path` (offset 0 starts it
  // afresh). A chunk that does not follow on from the file's end is stale (from
  // a transfer that was cut off) and is dropped.
  Status Store(const std::string& path, uint64_t offset, std::string_view bytes);

  // Whether the file at `path` is exactly `size` bytes with this SHA-256 (32
  // raw bytes). Done with it either way: a later chunk starts from the disk.
  // An empty file comes as no chunk at all, so for one (size 0, the SHA-256 of
  // no bytes) the file is made here, empty, over whatever was there.
  bool Matches(const std::string& path, uint64_t size, const std::string& sha256);

 private:
  struct Arriving {
    int fd = -1;
    uint64_t size = 0;
    Sha256 digest;
    bool hashed = false;  // digest covers bytes [0, size)
    std::chrono::steady_clock::time_point touched;
  };
  void Close(std::map<std::string, Arriving>::iterator it);
  bool MakeEmpty(const std::string& path);
  // Bounds the open files: transfers that stopped for good leave theirs behind.
  void CloseIdlest();

  std::map<std::string, Arriving> arriving_;
};

}  // namespace queue::daemon
