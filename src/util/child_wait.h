// Waiting for one child process by pidfd. The daemon's reaper (waitpid of any
// child, on its event loop) may take a child first that a worker thread is
// waiting for; by then a bare pid could name another child, a pidfd cannot.
#pragma once

#include <sys/types.h>

#include <optional>

namespace queue {

// A pidfd for `pid`, or -1. Take it right after fork(), before the child can
// have finished what it was made for.
int OpenPidfd(pid_t pid);

// Waits for the child of `pidfd` to end and closes the pidfd: its wait status,
// or nullopt when someone else reaped it first (or pidfd is -1).
std::optional<int> WaitAndClosePidfd(int pidfd);

}  // namespace queue
