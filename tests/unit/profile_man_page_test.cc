// queue-profile(5) documents every keyword the profile parser knows: the list
// comes from the parser's own table (profile::KeywordNames), so a keyword
// added there without its manual entry fails here.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "profile/profile_keywords.h"
#include "profile/profile_parser.h"
#include "profile/queue_policy.h"

namespace queue::profile {
namespace {

std::string ReadManPage(const std::string& name) {
  std::ifstream in(std::string(QUEUE_MAN_DIR) + "/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A keyword is documented when a tagged paragraph (.TP) opens with it, in
// bold: `.TP` then `.B name`, `.BI name ...` or `.BR name ...`.
bool HasEntry(const std::string& page, std::string_view keyword) {
  const std::regex entry("\\.TP\\n\\.B[IR]? " + std::string(keyword) + "( |\\n)");
  return std::regex_search(page, entry);
}

TEST(ProfileManPage, DocumentsEveryKeywordOfTheParser) {
  const std::string page = ReadManPage("queue-profile.5");
  ASSERT_FALSE(page.empty()) << "cannot read " << QUEUE_MAN_DIR << "/queue-profile.5";
  const auto keywords = KeywordNames();
  ASSERT_GT(keywords.size(), 30u);
  for (std::string_view keyword : keywords) {
    EXPECT_TRUE(HasEntry(page, keyword)) << "man/queue-profile.5 has no .TP entry for the keyword " << keyword;
  }
  EXPECT_TRUE(HasEntry(page, "host")) << "man/queue-profile.5 has no .TP entry for host";
}

// The table is the parser's: each name it lists parses (with a value where
// one is needed), so the check above cannot pass on a list of its own.
TEST(ProfileManPage, TheKeywordTableIsTheParsers) {
  for (std::string_view keyword : KeywordNames()) {
    auto parsed = ParseProfile(std::string(keyword) + " \"x\"\n", {});
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.message().find("unknown keyword"), std::string::npos) << parsed.message();
    }
  }
  auto unknown = ParseProfile("nosuchkeyword 1\n", {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.message().find("unknown keyword"), std::string::npos);
}

}  // namespace
}  // namespace queue::profile
