// JobSpec: everything that travels with a job from the submitting user's shell to
// the execution host (SPEC §3), encoded field by field so no raw struct ever
// crosses the network. Bounds below are the limits every decoder enforces.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "wire/codec.h"

namespace queue::wire {

inline constexpr size_t kMaxArgs = 65536;
inline constexpr size_t kMaxArgBytes = 128 * 1024;
inline constexpr size_t kMaxEnvVars = 8192;
inline constexpr size_t kMaxEnvBytes = 128 * 1024;
inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr size_t kMaxNameBytes = 255;
inline constexpr size_t kMaxGroups = 65536;
inline constexpr size_t kMaxRlimits = 16;
inline constexpr size_t kSessionKeyBytes = 32;

enum class PtyMode : uint8_t {
  kNone = 0,  // pipes for stdin, stdout, stderr (-n)
  kFull = 1,  // a pty for stdin and stdout, stderr too when it is a tty (-p)
  kHalf = 2,  // pty input, socket output (-o)
};

// One resource limit; kUnlimited stands for RLIM_INFINITY.
struct ResourceLimit {
  static constexpr uint64_t kUnlimited = UINT64_MAX;
  uint32_t resource = 0;  // Linux RLIMIT_* number
  uint64_t soft = kUnlimited;
  uint64_t hard = kUnlimited;
  bool operator==(const ResourceLimit&) const = default;
};

// termios and winsize, as portable integers.
struct TerminalSettings {
  bool present = false;
  uint32_t iflag = 0, oflag = 0, cflag = 0, lflag = 0;
  std::vector<uint8_t> control_chars;
  uint32_t ispeed = 0, ospeed = 0;
  uint16_t rows = 0, cols = 0, xpixel = 0, ypixel = 0;
  bool operator==(const TerminalSettings&) const = default;
};

struct JobSpec {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "NAME=value"
  std::string cwd;
  uint32_t umask = 022;
  int32_t nice = 0;
  // Credentials: the daemon overwrites these from SO_PEERCRED/SO_PEERGROUPS; a
  // client never chooses them.
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;
  std::vector<ResourceLimit> rlimits;
  PtyMode pty = PtyMode::kNone;
  bool stderr_is_tty = false;
  TerminalSettings terminal;
  bool batch = false;
  std::string queue = "now";
  std::string job_name;
  std::string only_host;       // -h: run there or nowhere
  std::string preferred_host;  // -H: try there first
  // Where the stub waits for the shepherd, and the key they share.
  std::string stub_address;
  uint16_t stub_port = 0;
  std::string session_key;  // kSessionKeyBytes random bytes

  bool operator==(const JobSpec&) const = default;

  void Encode(Writer& w) const;
  // Decodes and validates; failures mark the reader failed.
  static JobSpec Decode(Reader& r);
};

// A batch job whose environment says QMAIL=FALSE: its output goes nowhere and
// nothing is mailed (the original's convention).
bool DiscardsOutput(const JobSpec& spec);

// True when name is usable as a queue directory name: one path component of
// at most 31 bytes (the original's limit) from [A-Za-z0-9_.-], not starting with a
// dot (hidden directories, such as the daemon's own `.queued`, are never queues).
// Check every name from a user, the network or the spool with this before
// joining it to a path.
bool IsValidQueueName(std::string_view name);

}  // namespace queue::wire
