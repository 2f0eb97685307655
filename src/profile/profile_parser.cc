// The profile file reader: lines, comments, `host` prefixes, error context
// (see profile_parser.h; the keywords themselves are in profile_keywords.cc).
#include "profile/profile_parser.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <vector>

#include "profile/profile_keywords.h"
#include "profile/profile_tokens.h"

namespace queue::profile {
namespace {

// "node1:1430" -> "node1", "[::1]:1430" -> "::1"; a name without a port is kept.
std::string WithoutPort(std::string_view host) {
  const size_t colon = host.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == host.size()) return std::string(host);
  for (char c : host.substr(colon + 1)) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::string(host);
  }
  std::string_view name = host.substr(0, colon);
  if (name.size() >= 2 && name.front() == '[' && name.back() == ']') {
    return std::string(name.substr(1, name.size() - 2));
  }
  if (name.find(':') != std::string_view::npos) return std::string(host);  // bare IPv6
  return std::string(name);
}

bool IsLocalHost(std::string_view name, const std::string& local_host) {
  const std::string wanted = Lower(name);
  return wanted == Lower(local_host) || wanted == Lower(WithoutPort(local_host));
}

// The first word of a line, to name the keyword when the line cannot be split.
std::string_view FirstWord(std::string_view line) {
  const size_t begin = line.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return {};
  const size_t end = line.find_first_of(" \t\"#", begin);
  return line.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin);
}

Error LineError(const ProfileContext& ctx, size_t line_number, std::string_view keyword,
                const std::string& reason) {
  std::string message = (ctx.file_name.empty() ? std::string("profile") : ctx.file_name) + ":" +
                        std::to_string(line_number) + ": ";
  if (!keyword.empty()) message += std::string(keyword) + ": ";
  return Fail(message + reason);
}

Statement StatementAt(std::string_view line, const std::vector<ProfileToken>& tokens, size_t first) {
  Statement statement{.keyword = tokens[first].text};
  statement.args = std::span<const ProfileToken>(tokens).subspan(first + 1);
  if (!statement.args.empty()) {
    const size_t begin = statement.args.front().begin;
    statement.raw_args = line.substr(begin, statement.args.back().end - begin);
  }
  return statement;
}

// Parses one line into `policy`. A statement for another host is checked
// against a throwaway policy, so its errors still show but it changes nothing.
Status ParseLine(std::string_view line, size_t line_number, const ProfileContext& ctx,
                 QueuePolicy& policy) {
  auto tokens = SplitProfileLine(line);
  if (!tokens) return LineError(ctx, line_number, FirstWord(line), tokens.message());
  if (tokens->empty()) return Status::Ok();
  size_t first = 0;
  QueuePolicy elsewhere = DefaultPolicy(ctx.cpu_count);
  QueuePolicy* target = &policy;
  if (Lower((*tokens)[0].text) == "host") {
    const std::string_view host = "host";
    if (tokens->size() < 2) return LineError(ctx, line_number, host, "missing host name");
    if (tokens->size() < 3) {
      return LineError(ctx, line_number, host, "missing statement after the host name");
    }
    if (Lower((*tokens)[2].text) == "host") {
      return LineError(ctx, line_number, host, "a host statement cannot contain another one");
    }
    if (!IsLocalHost((*tokens)[1].text, ctx.local_host)) target = &elsewhere;
    first = 2;
  }
  const Statement statement = StatementAt(line, *tokens, first);
  Status applied = ApplyStatement(statement, *target);
  if (!applied) return LineError(ctx, line_number, statement.keyword, applied.message());
  return Status::Ok();
}

}  // namespace

Result<QueuePolicy> ParseProfile(std::string_view text, const ProfileContext& ctx) {
  QueuePolicy policy = DefaultPolicy(ctx.cpu_count);
  size_t line_number = 0;
  while (!text.empty()) {
    const size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    Status parsed = ParseLine(line, line_number, ctx, policy);
    if (!parsed) return Fail(parsed.message());
  }
  return policy;
}

Result<QueuePolicy> LoadProfileFile(const std::string& path, ProfileContext ctx) {
  if (ctx.file_name.empty()) ctx.file_name = path;
  // O_NONBLOCK: a FIFO planted at the path must not hang the daemon.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return Fail("cannot open profile " + path + ": " + ErrnoText(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return Fail("profile " + path + " is not a regular file");
  }
  std::string text;
  char buffer[65536];
  ssize_t got = 0;
  while (text.size() <= kMaxProfileBytes && (got = ::read(fd, buffer, sizeof buffer)) != 0) {
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int err = errno;
      ::close(fd);
      return Fail("cannot read profile " + path + ": " + ErrnoText(err));
    }
    text.append(buffer, static_cast<size_t>(got));
  }
  ::close(fd);
  if (text.size() > kMaxProfileBytes) {
    return Fail("profile " + path + " is larger than " + std::to_string(kMaxProfileBytes) +
                " bytes; a profile holds a few dozen lines");
  }
  return ParseProfile(text, ctx);
}

}  // namespace queue::profile
