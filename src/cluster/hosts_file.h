// The cluster's host list: the original's `qhostsfile` format (one host per line,
// `#` comments, leading blanks allowed), each entry optionally `name:port` so that
// several daemons can share one machine. It is both the candidate list for
// placement and the list of hosts a daemon accepts peers from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace queue::cluster {

inline constexpr uint16_t kDefaultPort = 1421;

struct HostEntry {
  std::string entry;  // as written in the file, e.g. "127.0.0.1:15002"; QUEUE_HOST
  std::string host;   // name or address part
  uint16_t port = kDefaultPort;
  bool operator==(const HostEntry&) const = default;
};

// Splits "host", "host:port" or "[v6addr]:port".
Result<HostEntry> ParseHostEntry(std::string_view text);

Result<std::vector<HostEntry>> ParseHostsFile(std::string_view text, std::string_view file_name);

// Reads and parses the file, refusing one that is group- or world-writable or
// owned by someone other than this user or root (the original's checks).
Result<std::vector<HostEntry>> LoadHostsFile(const std::string& path);

// The index of the entry that names this daemon, given its --listen address:
// the same text, or the same port and a host name that resolves to the listen address.
std::optional<size_t> FindSelf(const std::vector<HostEntry>& hosts, const HostEntry& listen);

// "a, b, c": for messages that list the authorised hosts.
std::string JoinEntries(const std::vector<HostEntry>& hosts);

}  // namespace queue::cluster
