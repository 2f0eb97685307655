// The shepherd's status file: how a job ended, on disk, for a daemon that was
// not listening when it did (it had stopped, or was restarting).
//
// The shepherd creates the file while still root (the spool is root-only) and
// keeps the descriptor after dropping root, so it can write the end later. The
// file stays empty while the job runs. At the end one write() puts there
//
//   u32 magic "QSS1" | u32 length (of what follows) | ShepherdEvent payload
//
// followed by fsync, before the daemon is told. A file that is empty means the
// job has not ended; anything that does not decode whole (a torn write, a
// stranger's bytes) is an error, never a guess.
//
// Thread-safety: a ShepherdStatusFile is used by one thread; ReadShepherdStatus
// shares no state.
#pragma once

#include <optional>
#include <string>

#include "util/result.h"
#include "wire/messages.h"

namespace queue::exec {

// The longest ShepherdEvent message that still decodes (messages.cc's bound).
inline constexpr size_t kMaxStatusMessageBytes = 4096;

class ShepherdStatusFile {
 public:
  // Creates (or empties) the file at path, mode 0600, refusing a symlink there,
  // with room for the end already given to it by the file system.
  static Result<ShepherdStatusFile> Create(const std::string& path);

  ShepherdStatusFile(ShepherdStatusFile&& other) noexcept;
  ShepherdStatusFile& operator=(ShepherdStatusFile&& other) noexcept;
  ShepherdStatusFile(const ShepherdStatusFile&) = delete;
  ShepherdStatusFile& operator=(const ShepherdStatusFile&) = delete;
  ~ShepherdStatusFile();

  // Records the job's end (kFinished or kFailed) durably. A message longer than
  // kMaxStatusMessageBytes is refused, since no reader could decode it.
  Status Write(const wire::ShepherdEvent& event);

  // The open descriptor (close-on-exec), for tests and for checking leaks.
  int fd() const { return fd_; }

 private:
  explicit ShepherdStatusFile(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// What the status file at path says: nullopt while the job runs (the file is
// empty), the event once it has ended, or an error when the file is missing,
// unreadable, too large or does not decode whole.
Result<std::optional<wire::ShepherdEvent>> ReadShepherdStatus(const std::string& path);

}  // namespace queue::exec
