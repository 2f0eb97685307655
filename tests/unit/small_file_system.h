// A small file system of a test's own, to fill for real (tmpfs; root only):
// what counts in such tests is which blocks the kernel has given to which
// file, which no simulated write error shows.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <string>
#include <thread>

#include "util/result.h"

namespace queue::testing {

// Runs `body` on a thread of its own, in a mount namespace of its own, with
// a new tmpfs of `size` (its directory given to `body`): nothing outside the
// thread sees it, and it goes with the thread. REQUIRES: root.
inline void OnSmallFileSystem(const std::string& size, const std::function<void(const std::string& dir)>& body) {
  std::thread([&] {
    char pattern[] = "/tmp/small_file_system.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr) << ErrnoText(errno);
    const std::string dir = pattern;
    ASSERT_EQ(unshare(CLONE_NEWNS), 0) << ErrnoText(errno);
    ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << ErrnoText(errno);
    ASSERT_EQ(mount("tmpfs", dir.c_str(), "tmpfs", 0, ("size=" + size + ",mode=0700").c_str()), 0)
        << ErrnoText(errno);
    body(dir);
    umount2(dir.c_str(), MNT_DETACH);
    rmdir(dir.c_str());
  }).join();
}

inline uint64_t FreeBytesOn(const std::string& dir) {
  struct statvfs fs {};
  EXPECT_EQ(statvfs(dir.c_str(), &fs), 0) << ErrnoText(errno);
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

// Appends to `path` until the file system is full; the bytes written.
inline uint64_t FillWith(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  EXPECT_GE(fd, 0) << ErrnoText(errno);
  uint64_t took = 0;
  std::string block(4096, 'o');
  while (write(fd, block.data(), block.size()) > 0) took += block.size();
  EXPECT_EQ(errno, ENOSPC);
  close(fd);
  return took;
}

}  // namespace queue::testing
