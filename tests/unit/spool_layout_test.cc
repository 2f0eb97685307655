// Tests of the spool's layout: every path under the root, made private at start.
#include "spool/spool_layout.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

namespace queue::spool {
namespace {

TEST(SpoolLayout, EveryFileIsUnderTheRootAndEveryDirectoryIsMadePrivate) {
  char tmpl[] = "/tmp/queue-layout-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string root = tmpl;
  SpoolLayout layout(root);
  ASSERT_TRUE(layout.MakePrivateDirs().ok());
  for (const std::string& dir : layout.PrivateDirs()) {
    struct stat st{};
    ASSERT_EQ(stat(dir.c_str(), &st), 0) << dir;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << dir;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << dir;
  }
  for (const std::string& file :
       {layout.Database(), layout.RunFile(7, ".sock"), layout.Output(7), layout.Bundle(7),
        layout.CriuImages(7), layout.Arriving("b:1", 7), layout.IncomingOutput(7), layout.IncomingBundle(7),
        layout.RestartBundle(7), layout.PartialOutput(7), layout.HeldOutput(7)}) {
    EXPECT_TRUE(file.starts_with(root + "/")) << file;
    // Its directory is one of those made at start (or the root itself).
    std::string dir = std::filesystem::path(file).parent_path();
    EXPECT_TRUE(std::filesystem::is_directory(dir)) << file;
  }
  // No two kinds of file share a name.
  EXPECT_NE(layout.IncomingOutput(7), layout.PartialOutput(7));
  EXPECT_NE(layout.Output(7), layout.HeldOutput(7));
  std::filesystem::remove_all(root);
}

TEST(SpoolLayout, ABatchOutputIsKnownByItsPlaceInAnySpool) {
  EXPECT_TRUE(SpoolLayout::IsBatchOutput(SpoolLayout("/var/spool/queue").Output(12)));
  EXPECT_TRUE(SpoolLayout::IsBatchOutput(SpoolLayout("/other/host/spool").Output(3)));
  EXPECT_FALSE(SpoolLayout::IsBatchOutput(SpoolLayout("/var/spool/queue").HeldOutput(12)));
  EXPECT_FALSE(SpoolLayout::IsBatchOutput("/home/u/job.o12.2"));
}

}  // namespace
}  // namespace queue::spool
