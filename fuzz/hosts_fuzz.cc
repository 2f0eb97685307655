// libFuzzer target: arbitrary bytes as a hosts file and as one host entry.
// Neither parser may crash or read out of bounds; every entry a file yields
// must parse again on its own to the same host and port, and be unique.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cluster/hosts_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  using queue::cluster::HostEntry;

  auto entry = queue::cluster::ParseHostEntry(text);
  if (entry.ok() && (entry->host.empty() || entry->port == 0 || entry->entry != text)) std::abort();

  auto hosts = queue::cluster::ParseHostsFile(text, "fuzz/hosts");
  if (!hosts.ok()) return 0;
  if (hosts->empty()) std::abort();
  for (size_t i = 0; i < hosts->size(); ++i) {
    const HostEntry& h = (*hosts)[i];
    auto again = queue::cluster::ParseHostEntry(h.entry);
    if (!again.ok() || !(*again == h)) std::abort();
    for (size_t j = 0; j < i; ++j)
      if ((*hosts)[j].host == h.host && (*hosts)[j].port == h.port) std::abort();
  }
  (void)queue::cluster::JoinEntries(*hosts);
  return 0;
}
