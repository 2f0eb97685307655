// Escaping control characters in user-supplied text and in the daemon's log.
#include "util/printable.h"

namespace queue::util {

namespace {

void AppendEscape(std::string& out, unsigned char c) {
  static const char* kHex = "0123456789abcdef";
  switch (c) {
    case '\n': out += "\\n"; return;
    case '\r': out += "\\r"; return;
    case '\t': out += "\\t"; return;
    default:
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
  }
}

// The length of the valid UTF-8 sequence at `text` (2 to 4), or 0.
size_t Utf8Length(std::string_view text) {
  auto b = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  auto cont = [&](size_t i) { return i < text.size() && (b(i) & 0xc0) == 0x80; };
  unsigned char c = b(0);
  if (c >= 0xc2 && c <= 0xdf && cont(1)) return 2;
  if (c == 0xe0 && cont(1) && b(1) >= 0xa0 && cont(2)) return 3;
  if (c >= 0xe1 && c <= 0xef && c != 0xed && cont(1) && cont(2)) return 3;
  if (c == 0xed && cont(1) && b(1) < 0xa0 && cont(2)) return 3;
  if (c == 0xf0 && cont(1) && b(1) >= 0x90 && cont(2) && cont(3)) return 4;
  if (c >= 0xf1 && c <= 0xf3 && cont(1) && cont(2) && cont(3)) return 4;
  if (c == 0xf4 && cont(1) && b(1) < 0x90 && cont(2) && cont(3)) return 4;
  return 0;
}

}  // namespace

std::string Printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      AppendEscape(out, c);
      ++i;
      continue;
    }
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    size_t n = Utf8Length(text.substr(i));
    // U+0080..U+009F (C2 80..C2 9F) are the C1 controls: CSI is U+009B.
    if (n == 0 || (n == 2 && c == 0xc2 && static_cast<unsigned char>(text[i + 1]) < 0xa0)) {
      for (size_t k = 0; k < (n == 0 ? 1 : n); ++k) AppendEscape(out, static_cast<unsigned char>(text[i + k]));
      i += n == 0 ? 1 : n;
      continue;
    }
    out.append(text.substr(i, n));
    i += n;
  }
  return out;
}

EscapingLogBuffer::int_type EscapingLogBuffer::overflow(int_type c) {
  if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
  char ch = traits_type::to_char_type(c);
  return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
}

std::streamsize EscapingLogBuffer::xsputn(const char* s, std::streamsize n) {
  std::string_view text(s, static_cast<size_t>(n));
  // The newline that ends this write ends a log line; any other is quoted text.
  const bool ends_line = !text.empty() && text.back() == '\n';
  if (ends_line) text.remove_suffix(1);
  std::string out = Printable(text);
  if (ends_line) out += '\n';
  if (out_->sputn(out.data(), static_cast<std::streamsize>(out.size())) != static_cast<std::streamsize>(out.size()))
    return 0;
  return n;
}

}  // namespace queue::util
