// libFuzzer target: arbitrary bytes as a restart bundle. The parser may not
// crash or read out of bounds; what it accepts must keep the format's rules
// (checked paths, permission bits only, contents inside the input, in order),
// and encoding the entries again must give back exactly the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "migrate/restart_bundle_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  using namespace queue::migrate;

  BundleKind kind = BundleKind::kRestartFiles;
  auto entries = ParseBundle(bytes, &kind);
  if (!entries.ok()) {
    if (entries.message().empty() || entries.message().find('\n') != std::string::npos) std::abort();
    return 0;
  }
  if (entries->size() > kMaxBundleEntries) std::abort();
  std::string again(BundleMagic(kind));
  for (const BundleEntry& entry : *entries) {
    if (!CheckBundlePath(entry.path).ok() || (entry.mode & ~kBundleModeBits) != 0) std::abort();
    if (entry.data_offset > size || entry.size > size - entry.data_offset) std::abort();
    again += EncodeEntryHeader(entry.path, entry.mode, entry.size);
    if (again.size() != entry.data_offset) std::abort();
    again += bytes.substr(entry.data_offset, entry.size);
  }
  again += EncodeBundleEnd();
  if (again != bytes) std::abort();
  return 0;
}
