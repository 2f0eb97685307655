// Splitting one profile line into words: whitespace separates words, a word
// may be double-quoted (with \" and \\ as the only escapes inside), and `#`
// outside quotes starts a comment that runs to the end of the line.
// Internal to the profile module. Stateless; safe from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace queue::profile {

struct ProfileToken {
  std::string text;     // unquoted and unescaped
  bool quoted = false;
  size_t begin = 0;     // offsets of the word as written in the line, quotes included
  size_t end = 0;
};

// The words of `line` (no newline in it). Errors (an unterminated quote, a
// control character, a quote glued to a word) come back as a reason without
// file or keyword.
Result<std::vector<ProfileToken>> SplitProfileLine(std::string_view line);

// A word as error messages show it: in double quotes.
std::string Quoted(std::string_view text);

// A word with its ASCII letters in lower case: keywords and day names are
// matched regardless of case.
std::string Lower(std::string_view text);

}  // namespace queue::profile
