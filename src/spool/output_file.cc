// DeliverOutputFile: a forked child takes the owner's identity, writes a hidden
// temporary file beside the destination, moves it into place unless a file is
// there already, and reports the first failure (which step, which errno) to the
// parent through a pipe.
#include "spool/output_file.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <type_traits>
#include <utility>

#include "util/child_wait.h"

namespace queue::spool {

namespace {

static_assert(std::is_same_v<uid_t, uint32_t> && std::is_same_v<gid_t, uint32_t>,
              "FileOwner's ids are passed to the kernel as they are");

// Long names are shortened in the temporary file's name, which must stay within
// NAME_MAX (255) with its prefix and suffix.
constexpr size_t kMaxTempBaseBytes = 200;

// The step of the child's work that failed, sent to the parent with its errno.
enum class Step : int32_t { kNone, kSwitchUser, kCreate, kCopy, kSync, kRename, kExists };

struct Report {
  Step step = Step::kNone;
  int32_t error = 0;
};

// Everything the child needs, prepared before fork(): the child only makes system
// calls and never allocates, which is what is safe between fork() and _exit() in
// a process that may have other threads.
struct Plan {
  int source_fd = -1;
  int report_fd = -1;
  std::string dest_path;
  std::string temp_path;
  std::string dir_path;  // the directory of both, ending in '/'
  bool switch_user = false;
  FileOwner owner;
};

// ---- The child ----

// A signal sent to the child gets its default action, not the daemon's handler
// (which would wake the daemon's event loop as if the daemon had received it).
// sigaction fails harmlessly for SIGKILL, SIGSTOP and the C library's own signals.
void ResetSignalHandlers() {
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int signo = 1; signo < NSIG; ++signo) sigaction(signo, &default_action, nullptr);
}

// The child inherits every descriptor of the daemon (its sockets, the spool) but
// needs only two; it drops the rest before it acts for the owner.
void CloseAllExcept(int a, int b) {
  if (a > b) std::swap(a, b);
  unsigned next = 3;
  for (int keep : {a, b}) {
    if (keep < 0 || static_cast<unsigned>(keep) < next) continue;
    if (static_cast<unsigned>(keep) > next) close_range(next, keep - 1, 0);
    next = static_cast<unsigned>(keep) + 1;
  }
  close_range(next, ~0U, 0);
}

// Returns 0 or an errno.
int SwitchToOwner(const FileOwner& owner) {
  if (setgroups(owner.groups.size(), owner.groups.data()) != 0) return errno;
  if (setresgid(owner.gid, owner.gid, owner.gid) != 0) return errno;
  // Only the effective uid changes. Files are created and checked by it (root's
  // capabilities leave with it), while the real and saved uid stay root, so the
  // owner cannot stop or trace this process, which the daemon is waiting for.
  if (setresuid(static_cast<uid_t>(-1), owner.uid, static_cast<uid_t>(-1)) != 0) return errno;
  return 0;
}

int WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t put = write(fd, data, size);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) return errno;
    data += put;
    size -= static_cast<size_t>(put);
  }
  return 0;
}

int CopyThroughBuffer(int from, off64_t offset, int to) {
  char buffer[64 * 1024];
  for (;;) {
    ssize_t got = pread(from, buffer, sizeof buffer, offset);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return errno;
    if (got == 0) return 0;
    offset += got;
    if (int err = WriteAll(to, buffer, static_cast<size_t>(got)); err != 0) return err;
  }
}

// Copies `from` (from offset 0, leaving its own offset alone) to `to`; returns 0
// or an errno. The kernel copies when it can; across file system types or on an
// old kernel the bytes go through a buffer, from where the kernel stopped.
int CopyAll(int from, int to) {
  constexpr size_t kChunk = 8 << 20;
  off64_t offset = 0;
  for (;;) {
    ssize_t copied = copy_file_range(from, &offset, to, nullptr, kChunk, 0);
    if (copied == 0) return 0;
    if (copied > 0) continue;
    if (errno == EINTR) continue;
    if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
      return CopyThroughBuffer(from, offset, to);
    }
    return errno;
  }
}

Report FillTempFile(const Plan& plan, int out) {
  if (int err = CopyAll(plan.source_fd, out); err != 0) return {Step::kCopy, err};
  if (fsync(out) != 0) return {Step::kSync, errno};
  return {};
}

// So that the rename, too, survives a crash. Best effort: the file is in place.
void SyncDirectory(const std::string& dir_path) {
  int dir = open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return;
  fsync(dir);
  close(dir);
}

// Whether `path` (not followed if a symlink) holds exactly the bytes of
// `source`: the same output delivered before, by a run of this delivery that
// stopped before it could say so. Buffers on the stack: the child does not allocate.
bool SameContents(int source, const std::string& path) {
  int other = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (other < 0) return false;
  struct stat a {}, b {};
  bool same = fstat(source, &a) == 0 && fstat(other, &b) == 0 && S_ISREG(b.st_mode) && a.st_size == b.st_size;
  char mine[16 * 1024], theirs[16 * 1024];
  for (off_t offset = 0; same && offset < a.st_size;) {
    ssize_t got = pread(source, mine, sizeof mine, offset);
    if (got <= 0 || pread(other, theirs, static_cast<size_t>(got), offset) != got ||
        memcmp(mine, theirs, static_cast<size_t>(got)) != 0)
      same = false;
    offset += got > 0 ? got : 0;
  }
  close(other);
  return same;
}

// Moves the finished temporary file to its name, never over another file: the
// name holds a job id unique in the cluster, so a file there is someone
// else's (another job's, or the user's own), and must not be lost. Returns 0 or
// an errno; EEXIST when the name is taken by other bytes.
int PlaceWithoutReplacing(const Plan& plan) {
  if (renameat2(AT_FDCWD, plan.temp_path.c_str(), AT_FDCWD, plan.dest_path.c_str(), RENAME_NOREPLACE) == 0) return 0;
  int err = errno;
  // File systems without RENAME_NOREPLACE (NFS among them): link(2) also fails
  // rather than replace.
  if (err == EINVAL || err == ENOSYS) {
    if (link(plan.temp_path.c_str(), plan.dest_path.c_str()) != 0) {
      err = errno;
    } else {
      unlink(plan.temp_path.c_str());
      return 0;
    }
  }
  if (err == EEXIST && SameContents(plan.source_fd, plan.dest_path)) {
    unlink(plan.temp_path.c_str());
    return 0;
  }
  return err;
}

Report WriteAsOwner(const Plan& plan) {
  if (plan.switch_user) {
    if (int err = SwitchToOwner(plan.owner); err != 0) return {Step::kSwitchUser, err};
  }
  // Changing the effective uid already made the process undumpable, unless the
  // administrator set fs.suid_dumpable; it holds the daemon's memory.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  int out = open(plan.temp_path.c_str(),
                 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out < 0) return {Step::kCreate, errno};
  Report report = FillTempFile(plan, out);
  if (close(out) != 0 && report.step == Step::kNone) report = {Step::kSync, errno};
  if (report.step == Step::kNone) {
    if (int err = PlaceWithoutReplacing(plan); err != 0) report = {err == EEXIST ? Step::kExists : Step::kRename, err};
  }
  if (report.step != Step::kNone) {
    unlink(plan.temp_path.c_str());
    return report;
  }
  SyncDirectory(plan.dir_path);
  return report;
}

[[noreturn]] void RunChild(const Plan& plan) {
  ResetSignalHandlers();
  CloseAllExcept(plan.source_fd, plan.report_fd);
  Report report = WriteAsOwner(plan);
  // A write this small to a pipe is all or nothing; if it fails the parent sees
  // no report and says so.
  (void)!write(plan.report_fd, &report, sizeof report);
  _exit(0);
}

// ---- The parent ----

Error CannotWrite(const std::string& dest_path, const std::string& reason) {
  return Fail("cannot write the output to " + dest_path + ": " + reason);
}

Result<Plan> MakePlan(int source_fd, const std::string& dest_path, const FileOwner& owner) {
  if (size_t nul = dest_path.find('\0'); nul != std::string::npos) {
    return CannotWrite(dest_path.substr(0, nul) + "...", "the path contains a NUL byte");
  }
  if (dest_path.empty() || dest_path[0] != '/') {
    return CannotWrite("'" + dest_path + "'", "the path is not absolute");
  }
  size_t slash = dest_path.rfind('/');
  std::string base = dest_path.substr(slash + 1);
  if (base.empty() || base == "." || base == "..") {
    return CannotWrite(dest_path, "the path names a directory, not a file");
  }
  uid_t self = geteuid();
  if (self != 0 && owner.uid != self) {
    return CannotWrite(dest_path, "this daemon runs as uid " + std::to_string(self) +
                                      " and cannot create files for uid " +
                                      std::to_string(owner.uid));
  }
  uint64_t nonce = 0;
  if (getrandom(&nonce, sizeof nonce, 0) != static_cast<ssize_t>(sizeof nonce)) {
    return CannotWrite(dest_path, "could not draw a temporary file name: " + ErrnoText(errno));
  }
  Plan plan;
  plan.source_fd = source_fd;
  plan.dest_path = dest_path;
  plan.dir_path = dest_path.substr(0, slash + 1);
  plan.temp_path = plan.dir_path + "." + base.substr(0, kMaxTempBaseBytes) + ".tmp-" +
                   std::to_string(nonce);
  plan.switch_user = self == 0;
  plan.owner = owner;
  return plan;
}

// The child's report, or nothing if it ended without one.
std::optional<Report> ReadReport(int fd) {
  Report report;
  auto* bytes = reinterpret_cast<char*>(&report);
  size_t have = 0;
  while (have < sizeof report) {
    ssize_t got = read(fd, bytes + have, sizeof report - have);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return std::nullopt;
    have += static_cast<size_t>(got);
  }
  return report;
}

std::string Describe(const Report& report, const FileOwner& owner) {
  std::string reason = ErrnoText(report.error);
  switch (report.step) {
    case Step::kSwitchUser:
      return "could not act as uid " + std::to_string(owner.uid) + " (gid " +
             std::to_string(owner.gid) + "): " + reason;
    case Step::kCreate: return reason;
    case Step::kCopy: return reason + " (while copying it)";
    case Step::kSync: return reason + " (while writing it to disk)";
    case Step::kRename: return reason + " (while moving it into place)";
    case Step::kExists: return "a different file of that name is there already, and is not replaced";
    case Step::kNone: break;
  }
  return reason;
}

std::string DescribeSilentDeath(std::optional<int> status) {
  if (status && WIFSIGNALED(*status)) {
    return "the process writing it was killed by signal " + std::to_string(WTERMSIG(*status));
  }
  return "the process writing it ended without saying how it went";
}

}  // namespace

Status DeliverOutputFile(int source_fd, const std::string& dest_path, const FileOwner& owner) {
  Result<Plan> plan = MakePlan(source_fd, dest_path, owner);
  if (!plan) return plan.error();
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return CannotWrite(dest_path, "could not create a pipe: " + ErrnoText(errno));
  }
  plan->report_fd = pipe_fds[1];
  pid_t pid = fork();
  if (pid == 0) RunChild(*plan);
  int fork_error = errno;
  int pidfd = OpenPidfd(pid);  // its report, read first, is what counts if another reaps it
  close(pipe_fds[1]);
  std::optional<Report> report;
  if (pid > 0) report = ReadReport(pipe_fds[0]);
  close(pipe_fds[0]);
  if (pid < 0) {
    return CannotWrite(dest_path, "could not start a process to write it: " +
                                      ErrnoText(fork_error));
  }
  std::optional<int> status = WaitAndClosePidfd(pidfd);
  if (!report) return CannotWrite(dest_path, DescribeSilentDeath(status));
  if (report->step != Step::kNone) return CannotWrite(dest_path, Describe(*report, owner));
  return Status::Ok();
}

}  // namespace queue::spool
