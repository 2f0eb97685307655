// Creating, checking and listing the spool directory tree.
#include "spool/spool_dir.h"

#include <sys/statvfs.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>

namespace queue::spool {

namespace {

std::string OctalMode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

std::string DefaultProfile(std::string_view queue) {
  return "# Profile of the '" + std::string(queue) + "' queue on this host, created by queued.\n"
         "# queued re-reads it when it changes. One statement per line; a line starting\n"
         "# with '#' is a comment. Some keywords (the manual lists them all):\n"
         "#   maxexec 4              at most 4 jobs of this queue at once\n"
         "#   loadsched 2.5          start no job while the 1-minute load is 2.5 or more\n"
         "#   nice 10                run jobs at nice 10 at least\n"
         "#   timesched Wk0900-1700  start jobs only on weekdays from 9:00 to 17:00\n"
         "exec on\n";
}

// mkdir's mode is filtered by the umask, which could leave the owner without
// write access; the mode is set again explicitly on a directory made here.
Status MakePrivateDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) {
    if (::chmod(dir.c_str(), 0700) != 0) {
      return Fail("Could not set mode 0700 on the spool directory " + dir + ": " +
                  ErrnoText(errno) + ".");
    }
  } else if (errno != EEXIST) {
    return Fail("Could not create the spool directory " + dir + ": " + ErrnoText(errno) + ".");
  }
  return CheckPrivateDir(dir);
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t written = ::write(fd, data.data(), data.size());
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) return Fail(ErrnoText(errno));
    data.remove_prefix(static_cast<size_t>(written));
  }
  return Status::Ok();
}

// Writes the file beside its final name and links it into place, so that a crash
// never leaves a half-written profile and an existing one is never replaced.
Status WriteNewFile(const std::string& path, std::string_view content) {
  std::string temp = path + ".new";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Fail(ErrnoText(errno));
  Status written = WriteAll(fd, content);
  if (written && ::fsync(fd) != 0) written = Fail(ErrnoText(errno));
  ::close(fd);
  if (written && ::link(temp.c_str(), path.c_str()) != 0 && errno != EEXIST) {
    written = Fail(ErrnoText(errno));
  }
  ::unlink(temp.c_str());
  return written;
}

Status WriteDefaultProfile(const std::string& queue_dir, std::string_view queue) {
  std::string path = queue_dir + "/profile";
  struct stat info;
  if (::lstat(path.c_str(), &info) == 0) return Status::Ok();
  if (errno != ENOENT) {
    return Fail("Could not examine the profile " + path + ": " + ErrnoText(errno) + ".");
  }
  if (Status s = WriteNewFile(path, DefaultProfile(queue)); !s) {
    return Fail("Could not create the default profile " + path + ": " + s.message() + ".");
  }
  return Status::Ok();
}

// Only the first byte of a symlink's target is needed to tell an absolute link
// (followed, as the original did) from a relative one (ignored).
bool IsQueueDirEntry(const std::string& path) {
  struct stat info;
  if (::lstat(path.c_str(), &info) != 0) return false;
  if (S_ISDIR(info.st_mode)) return true;
  if (!S_ISLNK(info.st_mode)) return false;
  char first = 0;
  if (::readlink(path.c_str(), &first, 1) != 1 || first != '/') return false;
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

}  // namespace

Status CheckPrivateDir(const std::string& dir) {
  struct stat info;
  if (::stat(dir.c_str(), &info) != 0) {
    return Fail("Could not examine the spool directory " + dir + ": " + ErrnoText(errno) + ".");
  }
  if (!S_ISDIR(info.st_mode)) {
    return Fail("The spool directory " + dir + " is not a directory.");
  }
  uid_t self = ::geteuid();
  if (info.st_uid != self) {
    return Fail("The spool directory " + dir + " is owned by uid " +
                std::to_string(info.st_uid) + ", not by uid " + std::to_string(self) +
                " that runs queued; chown it or choose another spool directory.");
  }
  if ((info.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Fail("The spool directory " + dir + " is group- or world-writable (mode " +
                OctalMode(info.st_mode) + "), so other users could tamper with jobs; run " +
                "chmod 700 " + dir + ".");
  }
  return Status::Ok();
}

Status PrepareSpoolDir(const std::string& dir) {
  if (Status root = MakePrivateDir(dir); !root) return root;
  for (std::string_view queue : {kNowQueue, kWaitQueue}) {
    std::string queue_dir = dir + "/" + std::string(queue);
    if (Status made = MakePrivateDir(queue_dir); !made) return made;
    if (Status profile = WriteDefaultProfile(queue_dir, queue); !profile) return profile;
  }
  return Status::Ok();
}

Result<std::vector<std::string>> ListQueueDirs(const std::string& dir) {
  std::unique_ptr<DIR, int (*)(DIR*)> listing(::opendir(dir.c_str()), ::closedir);
  if (!listing) {
    return Fail("Could not list the queues in the spool directory " + dir + ": " +
                ErrnoText(errno) + ".");
  }
  std::vector<std::string> queues;
  errno = 0;
  while (const dirent* entry = ::readdir(listing.get())) {
    std::string name = entry->d_name;
    if (IsValidQueueName(name) && IsQueueDirEntry(dir + "/" + name)) {
      queues.push_back(std::move(name));
    }
    errno = 0;
  }
  if (errno != 0) {
    return Fail("Could not list the queues in the spool directory " + dir + ": " +
                ErrnoText(errno) + ".");
  }
  std::sort(queues.begin(), queues.end());
  return queues;
}

Result<uint64_t> FreeBytes(const std::string& path) {
  struct statvfs fs {};
  if (statvfs(path.c_str(), &fs) != 0) return Fail("cannot tell the free space of " + path + ": " + ErrnoText(errno));
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

std::optional<std::string> SpoolShortOfRoom(const std::string& dir, uint64_t reserve) {
  auto free = FreeBytes(dir);
  if (!free.ok() || *free >= reserve) return std::nullopt;
  return "the spool " + dir + " is full (" + std::to_string(*free) + " bytes free)";
}

}  // namespace queue::spool
