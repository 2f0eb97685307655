// RawModeGuard: owns the stub's local tty while a pty job runs. The job's own
// pty on the execution host does all line editing, echo and signal keys (^C, ^Z
// reach the job as bytes), so the local tty must pass every byte through as is.
//
// The guard remembers the modes it found and puts them back on Restore() and in
// its destructor. Exit paths the destructor does not see are the stub's job:
// before it stops itself or re-raises a job's fatal signal on itself it must call
// Restore() (tcsetattr is async-signal-safe, so a signal handler may call it, or
// use original() with tcsetattr directly), and after SIGCONT it calls Reapply().
//
// Not thread-safe: one thread (the stub's event loop) owns the guard.
#pragma once

#include <termios.h>

#include "util/result.h"

namespace queue::term {

class RawModeGuard {
 public:
  // Puts the tty `fd` into raw mode: no canonical input, echo, signal keys,
  // extended input processing, flow control or CR/NL translation; reads return
  // each byte as it arrives (VMIN=1, VTIME=0). Output post-processing (OPOST,
  // NL -> CRNL) is turned off only when `output_is_tty`, because the job's pty
  // then already did it; when stdout is a file, the stub's own messages on the
  // tty still need it. The guard does not own fd; fd must outlive it.
  static Result<RawModeGuard> Enter(int fd, bool output_is_tty);

  RawModeGuard(RawModeGuard&& other) noexcept;
  RawModeGuard& operator=(RawModeGuard&& other) noexcept;
  RawModeGuard(const RawModeGuard&) = delete;
  RawModeGuard& operator=(const RawModeGuard&) = delete;
  ~RawModeGuard();

  // Puts back the modes found by Enter(). Does nothing when already restored.
  Status Restore();
  // Raw mode again, e.g. after SIGCONT (the shell may have changed the modes
  // while the stub was stopped). Does nothing harmful when already raw.
  // Call only in the foreground (see IsForegroundOf), or SIGTTOU stops the stub.
  Status Reapply();

  bool is_raw() const { return raw_; }
  // The modes found by Enter(), for an exit path that has no access to the guard.
  const termios& original() const { return original_; }
  // The raw modes this guard sets.
  const termios& raw() const { return raw_mode_; }

 private:
  RawModeGuard(int fd, const termios& original, const termios& raw);

  int fd_ = -1;  // -1 once moved from
  termios original_{};
  termios raw_mode_{};
  bool raw_ = false;
};

// The raw form of `mode`, as Enter() computes it.
termios MakeRaw(const termios& mode, bool output_is_tty);

}  // namespace queue::term
