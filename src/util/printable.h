// Printable: text a user chose (a job's name, its command, its directory)
// made safe to put in a log line, a notice, a mail or a terminal table.
// Control characters (C0, DEL, and the C1 range as UTF-8 or as lone bytes)
// become visible escapes (\n, \t, \x1b), so that nobody can end a log line
// early to forge the next one, or send escape sequences to the terminal of
// whoever reads it. Valid UTF-8 text otherwise passes unchanged.
//
// EscapingLogBuffer applies the same to a whole log stream: installed on
// std::cerr, it lets a newline through only where a write ends with it (the
// end of a log line, as every `<< "\n"` writes it) and escapes every other
// control character, so that text quoted inside a line stays inside it.
#pragma once

#include <streambuf>
#include <string>
#include <string_view>

namespace queue::util {

std::string Printable(std::string_view text);

class EscapingLogBuffer : public std::streambuf {
 public:
  // Writes to `out`, which the caller keeps alive.
  explicit EscapingLogBuffer(std::streambuf* out) : out_(out) {}

 protected:
  int_type overflow(int_type c) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;
  int sync() override { return out_->pubsync(); }

 private:
  std::streambuf* out_;
};

}  // namespace queue::util
