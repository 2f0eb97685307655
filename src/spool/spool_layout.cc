// Paths under a spool root.
#include "spool/spool_layout.h"

#include <sys/stat.h>

#include <cerrno>

namespace queue::spool {

std::string SpoolLayout::RunFile(uint64_t id, std::string_view suffix) const {
  return RunDir() + "/" + std::to_string(id) + std::string(suffix);
}

std::string SpoolLayout::Arriving(const std::string& origin, uint64_t origin_id) const {
  return ArrivingDir() + "/" + origin + "-" + std::to_string(origin_id) + ".qrb";
}

std::vector<std::string> SpoolLayout::PrivateDirs() const {
  return {Private(), RunDir(), OutputDir(), BundleDir(), CriuDir(), ArrivingDir(), IncomingDir(), RestartDir(),
          HeldDir()};
}

Status SpoolLayout::MakePrivateDirs() const {
  for (const std::string& dir : PrivateDirs())
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Fail("cannot create " + dir + ": " + ErrnoText(errno));
  return Status::Ok();
}

bool SpoolLayout::IsBatchOutput(std::string_view path) {
  return path.find("/.queued/output/") != std::string_view::npos && path.ends_with(".out");
}

}  // namespace queue::spool
