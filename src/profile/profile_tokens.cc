// The profile line splitter (see profile_tokens.h).
#include "profile/profile_tokens.h"

#include <cctype>

namespace queue::profile {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

bool IsControl(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return (byte < 0x20 && c != '\t') || byte == 0x7f;
}

// Reads the quoted word that starts at line[pos] == '"'; advances `pos` past it.
Result<ProfileToken> ReadQuoted(std::string_view line, size_t& pos) {
  ProfileToken token{.quoted = true, .begin = pos};
  for (++pos; pos < line.size(); ++pos) {
    const char c = line[pos];
    if (c == '"') {
      token.end = ++pos;
      if (pos < line.size() && !IsSpace(line[pos]) && line[pos] != '#') {
        return Fail("a closing double quote must be followed by a space or the end of the line");
      }
      return token;
    }
    const bool escape = c == '\\' && pos + 1 < line.size() &&
                        (line[pos + 1] == '"' || line[pos + 1] == '\\');
    if (escape) ++pos;
    token.text += line[pos];
  }
  return Fail("a double quote is not closed on this line");
}

// Reads the bare word that starts at line[pos]; advances `pos` past it.
Result<ProfileToken> ReadBare(std::string_view line, size_t& pos) {
  ProfileToken token{.begin = pos};
  while (pos < line.size() && !IsSpace(line[pos]) && line[pos] != '#') {
    if (line[pos] == '"') {
      return Fail("a double quote may only start a word (quote the whole value)");
    }
    ++pos;
  }
  token.end = pos;
  token.text = std::string(line.substr(token.begin, pos - token.begin));
  return token;
}

}  // namespace

Result<std::vector<ProfileToken>> SplitProfileLine(std::string_view line) {
  for (char c : line) {
    if (IsControl(c)) return Fail("the line contains a control character");
  }
  std::vector<ProfileToken> tokens;
  size_t pos = 0;
  while (true) {
    while (pos < line.size() && IsSpace(line[pos])) ++pos;
    if (pos == line.size() || line[pos] == '#') return tokens;
    auto token = line[pos] == '"' ? ReadQuoted(line, pos) : ReadBare(line, pos);
    if (!token) return token.error();
    tokens.push_back(std::move(token.value()));
  }
}

std::string Quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace queue::profile
