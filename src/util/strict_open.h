// OpenForAppendStrictly: how root opens a file it appends to on an
// administrator's word (the `supervisor` notice file), without letting any
// other user choose which file that is. As OpenSSH's StrictModes: every
// directory on the way (symbolic links resolved) must belong to root or to
// this process's user and be writable by no one else, since whoever can write
// a directory can put a link there in the file's place (above the file's own
// directory, a root-owned sticky one such as /tmp is allowed: there only an
// entry's owner may replace it); the file itself is
// opened without following a symbolic link, must be a regular file with one
// link, and belong to root or this process's user.
#pragma once

#include <string>

#include "util/result.h"

namespace queue::util {

// An fd open for appending (created 0600 when missing), or why not.
Result<int> OpenForAppendStrictly(const std::string& path);

}  // namespace queue::util
