// Parsing and checking of the hosts file.
#include "cluster/hosts_file.h"

#include <netdb.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <charconv>
#include <fstream>
#include <sstream>

namespace queue::cluster {

namespace {

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_' || c == ':';
}

std::vector<std::string> ResolveAddresses(const std::string& host) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::vector<std::string> addresses;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return addresses;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* raw = ai->ai_family == AF_INET
                          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr)
                          : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr);
    if (inet_ntop(ai->ai_family, raw, text, sizeof text) != nullptr) addresses.emplace_back(text);
  }
  freeaddrinfo(found);
  return addresses;
}

}  // namespace

Result<HostEntry> ParseHostEntry(std::string_view text) {
  HostEntry e;
  e.entry = std::string(text);
  if (text.empty() || text.size() > 255) return Fail("host entry \"" + e.entry + "\" has a bad length");
  std::string_view host = text;
  std::string_view port;
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return Fail("host entry \"" + e.entry + "\": unclosed '['");
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return Fail("host entry \"" + e.entry + "\": junk after ']'");
      port = rest.substr(1);
    }
  } else if (size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    if (text.find(':') != colon) return Fail("host entry \"" + e.entry + "\": write IPv6 as [addr]:port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) return Fail("host entry \"" + e.entry + "\" has no host name");
  for (char c : host)
    if (!IsHostChar(c)) return Fail("host entry \"" + e.entry + "\" has a bad character");
  e.host = std::string(host);
  if (!port.empty() || text.back() == ':') {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535)
      return Fail("host entry \"" + e.entry + "\" has a bad port");
    e.port = static_cast<uint16_t>(value);
  }
  return e;
}

Result<std::vector<HostEntry>> ParseHostsFile(std::string_view text, std::string_view file_name) {
  std::vector<HostEntry> hosts;
  std::istringstream lines{std::string(text)};
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    size_t start = line.find_first_not_of(" \t\r");
    if (start == std::string::npos || line[start] == '#') continue;
    size_t end = line.find_first_of(" \t\r#", start);
    auto entry = ParseHostEntry(std::string_view(line).substr(start, end - start));
    if (!entry.ok())
      return Fail(std::string(file_name) + ":" + std::to_string(number) + ": " + entry.message());
    bool duplicate = false;
    for (const auto& h : hosts) duplicate |= (h.host == entry->host && h.port == entry->port);
    if (!duplicate) hosts.push_back(std::move(entry.value()));
  }
  if (hosts.empty()) return Fail(std::string(file_name) + ": names no hosts");
  return hosts;
}

Result<std::vector<HostEntry>> LoadHostsFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    return Fail("cannot read hosts file " + path + ": " + ErrnoText(errno));
  if (!S_ISREG(st.st_mode)) return Fail("hosts file " + path + " is not a regular file");
  if ((st.st_mode & 022) != 0)
    return Fail("hosts file " + path + " is writable by group or others; refusing it");
  if (st.st_uid != 0 && st.st_uid != geteuid())
    return Fail("hosts file " + path + " is owned by another user; refusing it");
  if (st.st_size > 4 * 1024 * 1024) return Fail("hosts file " + path + " is too large");
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (!in.good() && !in.eof()) return Fail("cannot read hosts file " + path);
  return ParseHostsFile(buffer.str(), path);
}

std::optional<size_t> FindSelf(const std::vector<HostEntry>& hosts, const HostEntry& listen) {
  for (size_t i = 0; i < hosts.size(); ++i)
    if (hosts[i].host == listen.host && hosts[i].port == listen.port) return i;
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (hosts[i].port != listen.port) continue;
    for (const auto& address : ResolveAddresses(hosts[i].host))
      if (address == listen.host) return i;
  }
  return std::nullopt;
}

std::string JoinEntries(const std::vector<HostEntry>& hosts) {
  std::string out;
  for (const auto& h : hosts) out += (out.empty() ? "" : ", ") + h.entry;
  return out;
}

}  // namespace queue::cluster
