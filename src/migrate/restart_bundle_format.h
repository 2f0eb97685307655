// The restart bundle's byte format: one file that holds a job's restart files on
// their way to another host (SPEC §7.3). This file owns the layout, its bounds and
// its validation; packing and unpacking as the job's owner live in
// restart_bundle.h. It needs nothing but the wire codec, so the fuzzer builds it.
//
// Layout (integers big-endian, as everywhere in Queue):
//   "QRB1" (a job's own restart files) or "QRI1" (a CRIU image, checkpointmode 1;
//          only a daemon writes one, and only a daemon's directory takes one)
//   per file: u32 path length, path bytes, u32 mode, u64 size, `size` bytes
//   u32 0 (the end entry)
// and nothing after. A path is relative to the job's cwd and normalised: no
// leading '/', no empty, "." or ".." components, no NUL, at most 4096 bytes. The
// mode holds permission bits only (0777). At most 10,000 files; no path twice, and
// no path that is both a file and a directory of another ("a" and "a/b").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace queue::migrate {

inline constexpr std::string_view kBundleMagic = "QRB1";
inline constexpr std::string_view kImageBundleMagic = "QRI1";

enum class BundleKind : uint8_t { kRestartFiles, kCriuImage };
inline std::string_view BundleMagic(BundleKind kind) {
  return kind == BundleKind::kCriuImage ? kImageBundleMagic : kBundleMagic;
}
inline constexpr size_t kMaxBundlePathBytes = 4096;
inline constexpr size_t kMaxBundleEntries = 10000;
inline constexpr uint32_t kBundleModeBits = 0777;

// One file in a bundle, as validated by ParseBundle or ScanBundle.
struct BundleEntry {
  std::string path;          // relative to the job's cwd
  uint32_t mode = 0;         // permission bits only
  uint64_t size = 0;         // bytes of content
  uint64_t data_offset = 0;  // where the content starts in the bundle
};

// Whether `path` may name a file in a bundle. The error is the reason alone
// ("the path leaves the job's directory"); callers add which path and where.
Status CheckBundlePath(std::string_view path);

// `path` fit for a one-line message: control bytes as \xNN, cut after 300 bytes.
std::string PrintablePath(std::string_view path);

// The bytes that open a file's entry (its content follows), and the end entry.
// REQUIRES: CheckBundlePath(path).ok(), mode within kBundleModeBits.
std::string EncodeEntryHeader(std::string_view path, uint32_t mode, uint64_t size);
std::string EncodeBundleEnd();

// Parses and validates a whole bundle held in memory: its entries in order, or a
// one-line reason ("restart bundle truncated at entry 3 (ckpt/state.bin)").
// `kind`, when given, is set to what the bundle's magic says.
Result<std::vector<BundleEntry>> ParseBundle(std::string_view bytes, BundleKind* kind = nullptr);

// The same for the bundle in file `fd` (read with pread; its offset is left
// alone): only the entry headers are read, the contents are skipped, so a bundle
// of any size is checked in little memory.
Result<std::vector<BundleEntry>> ScanBundle(int fd, BundleKind* kind = nullptr);

}  // namespace queue::migrate
