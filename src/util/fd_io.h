// Reads and writes on descriptors this process did not open: the stdin,
// stdout and stderr its caller left it. Those may be pipes, sockets, terminals
// or files, shared with other processes, and non-blocking (rsync gives its
// remote shell a non-blocking stdout; GNU Parallel's --return does too).
// EINTR is retried and EAGAIN is waited out with poll(), so that a slow reader
// or writer is never taken for an end and no byte is dropped. The descriptor's
// flags are never changed: O_NONBLOCK belongs to the open file description,
// which everyone sharing it sees (asio would set it, and leave it set).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace queue {

// Writes all of `bytes` to fd. Returns 0 once they are written, or the errno
// of the write that failed (EPIPE: nobody reads any more).
int WriteFully(int fd, std::string_view bytes);

// One read of at most `size` bytes: the count read, 0 at the end of input, or
// -errno when the read failed.
ssize_t ReadSome(int fd, char* buffer, size_t size);

// How error messages name a descriptor: "file descriptor 3".
std::string FdName(int fd);

}  // namespace queue
