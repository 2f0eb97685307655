// Terminal settings as portable integers: reads a tty's termios and window size
// into wire::TerminalSettings and writes them back, so the stub can send its
// terminal to the execution host and the shepherd can give the job's pty the same
// modes. Flags and control-character indices are Linux's values (both ends of a
// cluster run Linux); line speeds travel as baud rates (38400), not as B* codes.
//
// Stateless; every function is safe to call from any thread.
#pragma once

#include "util/result.h"
#include "wire/job_spec.h"
#include "wire/messages.h"

namespace queue::term {

// termios and window size of the tty `fd`; the result has present == true.
// Fails when fd is not a terminal.
Result<wire::TerminalSettings> CaptureTerminal(int fd);

// Gives the tty `fd` these settings at once (TCSANOW) and this window size.
// Settings with present == false leave the terminal alone and succeed, so a
// shepherd may pass on whatever the stub sent. Control characters beyond the
// local NCCS are ignored; missing ones keep the terminal's current values,
// and so does a speed of 0 (unknown) or one this host cannot set.
Status ApplyTerminal(int fd, const wire::TerminalSettings& settings);

Result<wire::WindowSize> ReadWindowSize(int fd);
Status SetWindowSize(int fd, const wire::WindowSize& size);

// True when the calling process is in the foreground process group of the tty
// `fd`. Changing the modes of a tty from the background stops the process with
// SIGTTOU, so the stub checks this before putting its tty back into raw mode.
bool IsForegroundOf(int fd);

}  // namespace queue::term
