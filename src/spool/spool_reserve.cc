#include "spool/spool_reserve.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>

#include "spool/spool_dir.h"

namespace queue::spool {

bool SpoolReserve::Keep() {
  if (held_) return true;
  if (!checked_) {
    checked_ = true;
    struct stat info {};
    if (lstat(path_.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
        static_cast<uint64_t>(info.st_blocks) * 512 >= bytes_)
      return held_ = true;
  }
  std::string dir = path_.substr(0, path_.rfind('/') + 1);
  auto free = FreeBytes(dir);
  if (!free.ok() || *free < 2 * bytes_) return false;
  int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return false;
  // Real blocks, not a sparse file: the room must be there to give back.
  bool made = posix_fallocate(fd, 0, static_cast<off_t>(bytes_)) == 0 && fsync(fd) == 0;
  close(fd);
  if (!made) {
    unlink(path_.c_str());
    return false;
  }
  return held_ = true;
}

void SpoolReserve::Release() {
  if (!held_) return;
  held_ = false;
  if (unlink(path_.c_str()) == 0)
    std::cerr << "queued: spool: the file system is full; gave back the " << bytes_
              << " bytes kept for job records (" << path_ << ") so that ends can be recorded\n";
}

}  // namespace queue::spool
