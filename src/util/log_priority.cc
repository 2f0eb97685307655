// LogPriorityBuffer: keeps, adds or removes the "<N>" that starts a log line.
#include "util/log_priority.h"

namespace queue::util {

namespace {

// "<0>" to "<7>": a syslog level, as sd-daemon(3) spells it.
bool StartsWithPriority(std::string_view text) {
  return text.size() >= 3 && text[0] == '<' && text[1] >= '0' && text[1] <= '7' && text[2] == '>';
}

}  // namespace

std::string LogPriorityBuffer::Rewrite(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 3);
  while (!text.empty()) {
    if (line_start_) {
      const bool has_prefix = StartsWithPriority(text);
      if (prefixes_ == Prefixes::kKeep && !has_prefix) out += kLogInfo;
      if (prefixes_ == Prefixes::kRemove && has_prefix) text.remove_prefix(3);
      line_start_ = false;
      if (text.empty()) break;  // a prefix written on its own: the line goes on in the next write
    }
    size_t end = text.find('\n');
    size_t take = end == std::string_view::npos ? text.size() : end + 1;
    out.append(text.substr(0, take));
    line_start_ = end != std::string_view::npos;
    text.remove_prefix(take);
  }
  return out;
}

LogPriorityBuffer::int_type LogPriorityBuffer::overflow(int_type c) {
  if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
  char ch = traits_type::to_char_type(c);
  return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
}

std::streamsize LogPriorityBuffer::xsputn(const char* s, std::streamsize n) {
  std::string out = Rewrite(std::string_view(s, static_cast<size_t>(n)));
  if (out_->sputn(out.data(), static_cast<std::streamsize>(out.size())) != static_cast<std::streamsize>(out.size()))
    return 0;
  return n;
}

}  // namespace queue::util
