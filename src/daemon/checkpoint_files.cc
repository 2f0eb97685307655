// Packing and unpacking checkpoint bundles, off the event loop.
#include "daemon/checkpoint_files.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "migrate/restart_bundle.h"
#include "migrate/restart_bundle_format.h"

namespace queue::daemon {

namespace {

// checkpointmode 1: CRIU's image, packed as root (it is the owner's, but sits
// in the daemon's spool, where only root reaches it).
std::string PackImage(const PackInput& input) {
  const std::string where = "checkpointed on " + input.self_host;
  std::error_code ignored;
  if (::access((input.image_dir + "/inventory.img").c_str(), F_OK) != 0) {
    std::string why = migrate::CriuLogError(input.image_dir + "/dump.log");
    std::filesystem::remove_all(input.image_dir, ignored);
    return where + " without a CRIU image (" + (why.empty() ? "CRIU wrote none" : why) + ")";
  }
  int fd = open(input.bundle_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    std::filesystem::remove_all(input.image_dir, ignored);
    return where + ", but its CRIU image could not be kept: " + ErrnoText(errno);
  }
  auto packed = migrate::PackRestartFiles(fd, input.image_dir, {"*"}, spool::FileOwner{0, 0, {}}, 0,
                                          migrate::BundleKind::kCriuImage);
  close(fd);
  std::filesystem::remove_all(input.image_dir, ignored);
  if (!packed.ok()) {
    ::unlink(input.bundle_path.c_str());
    return where + ", but its CRIU image could not be packed (" + packed.message() + ")";
  }
  return where + " by CRIU, an image of " + std::to_string(packed->files) + " file(s), " +
         std::to_string(packed->bytes) + " bytes";
}

// Unpacks a CRIU image bundle into a new directory under image_parent.
Result<std::string> StageImage(int fd, const UnpackInput& input) {
  if (!input.restores_images)
    return Fail("its queue does not restore CRIU images here (no checkpointmode 1)");
  if (!input.criu.usable) return Fail("cannot restore its CRIU image here: " + input.criu.reason);
  std::string dir = input.image_parent + "/incoming-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) return Fail("cannot make room for its CRIU image: " + ErrnoText(errno));
  auto unpacked = migrate::UnpackRestartFiles(fd, dir, spool::FileOwner{0, 0, {}});
  const wire::JobSpec& spec = input.spec;
  Status given = unpacked.ok() ? migrate::GiveImageTo(dir, migrate::CriuIdentity{spec.uid, spec.gid, spec.groups})
                               : Status::Ok();
  if (!unpacked.ok() || !given.ok()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
    return Fail("cannot unpack its CRIU image: " + (unpacked.ok() ? given.message() : unpacked.message()));
  }
  return dir;
}

}  // namespace

std::string PackCheckpoint(const PackInput& input) {
  if (input.transparent) return PackImage(input);
  const std::string where = "checkpointed on " + input.self_host;
  int fd = open(input.bundle_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return where + ", but its restart files could not be kept: " + ErrnoText(errno);
  const wire::JobSpec& spec = input.spec;
  spool::FileOwner owner{spec.uid, spec.gid, spec.groups};
  auto packed = migrate::PackRestartFiles(fd, spec.cwd, input.restart_patterns, owner, input.since_ms);
  close(fd);
  if (!packed.ok() || packed->files == 0 || !packed->any_modified_since) {
    ::unlink(input.bundle_path.c_str());
    std::string why = !packed.ok() ? packed.message() : "it wrote no restart file after the checkpoint signal";
    return where + " without restart files (" + why + ")";
  }
  return where + " with " + std::to_string(packed->files) + " restart file(s), " + std::to_string(packed->bytes) +
         " bytes";
}

Result<std::string> UnpackCheckpoint(const UnpackInput& input) {
  int fd = open(input.bundle_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Fail("its restart files are missing here: " + ErrnoText(errno));
  migrate::BundleKind kind = migrate::BundleKind::kRestartFiles;
  auto scanned = migrate::ScanBundle(fd, &kind);
  if (scanned.ok() && kind == migrate::BundleKind::kCriuImage) {
    auto staged = StageImage(fd, input);
    close(fd);
    return staged;
  }
  // The job's own restart files (unpacking says what is wrong with a bad bundle).
  const wire::JobSpec& spec = input.spec;
  Status restored = migrate::UnpackRestartFiles(fd, spec.cwd, spool::FileOwner{spec.uid, spec.gid, spec.groups});
  close(fd);
  if (!restored.ok()) return Fail("cannot restore its restart files: " + restored.message());
  return std::string();
}

}  // namespace queue::daemon
