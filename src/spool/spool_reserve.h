// Room kept in the spool for the records of jobs already running. A job's
// output grows in the spool as it runs and can fill the file system; the
// record of its end (and of every other job's) must still be written. The
// reserve is a file of its own that is removed when a commit finds the file
// system full, and made again once there is room.
#pragma once

#include <cstdint>
#include <string>

namespace queue::spool {

class SpoolReserve {
 public:
  SpoolReserve(std::string path, uint64_t bytes) : path_(std::move(path)), bytes_(bytes) {}

  // Makes the file when it is missing and the file system has room for it
  // and as much again; true when it is in place. Cheap when it is.
  bool Keep();
  // Gives its room back (logged once per release).
  void Release();
  bool held() const { return held_; }

 private:
  std::string path_;
  uint64_t bytes_;
  bool held_ = false;
  bool checked_ = false;  // whether a file left by an earlier run was looked for
};

}  // namespace queue::spool
