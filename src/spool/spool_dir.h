// The spool directory tree (inventory §1.6, SPEC §5): a private root holding one
// directory per queue, `now` and `wait` by default, each with its `profile`.
// These functions own the tree's layout and its safety checks; the jobs
// themselves live in the JobStore file the daemon opens inside the root.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"
#include "wire/job_spec.h"

namespace queue::spool {

// The queues every spool has: `now` for -i (the default), `wait` for -q.
inline constexpr std::string_view kNowQueue = "now";
inline constexpr std::string_view kWaitQueue = "wait";

// One rule for queue names everywhere (see wire/job_spec.h): a directory whose
// name a job could never carry is not listed as a queue.
using wire::IsValidQueueName;

// Refuses a directory that another user could tamper with: it must be a
// directory, owned by the effective uid, and not group- or world-writable.
Status CheckPrivateDir(const std::string& dir);

// Creates the spool root (mode 0700) and the `now` and `wait` queues, each with a
// default `profile` when it has none; existing profiles are never touched.
// Refuses a root (or default queue directory) that fails CheckPrivateDir.
Status PrepareSpoolDir(const std::string& dir);

// The queue names under the spool root, sorted: sub-directories with valid
// names. Files and relative symlinks are ignored; absolute symlinks to
// directories count, as in the original.
Result<std::vector<std::string>> ListQueueDirs(const std::string& dir);

// Room a spool keeps for its records, inside its job store (spool_reserve.h),
// and the room a job's start needs: a host with less free takes no new job
// for now (its submit host tries elsewhere).
inline constexpr uint64_t kSpoolReserveBytes = 1 << 20;
// Below this much free space the spool counts as full: a batch job's output,
// written into the spool as it runs, may have been cut short then.
inline constexpr uint64_t kOutputFullBytes = 64 << 10;

// Bytes an ordinary user may still write on the file system holding `path`
// (jobs run as their owners, so root's reserved blocks do not count).
Result<uint64_t> FreeBytes(const std::string& path);

// "the spool DIR is full (N bytes free)" when fewer than `reserve` bytes are
// free there; nothing when there is room, or when it cannot be told (the
// write that follows then reports its own error).
std::optional<std::string> SpoolShortOfRoom(const std::string& dir, uint64_t reserve);

}  // namespace queue::spool
