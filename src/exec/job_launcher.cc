// Starting a job: everything between fork and exec (SPEC §3, inventory §1.7).
//
// The parent builds a ChildPlan (argv, envp, program candidates, capped rlimits,
// stream fds) and only then forks, because the shepherd may run threads and a
// forked child of a threaded process may call only async-signal-safe functions.
// The child reports a failure as a fixed-size ChildFailure on a close-on-exec
// pipe; the parent turns it into the message the user reads.
#include "exec/job_launcher.h"

#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "term/terminal_settings.h"

namespace queue::exec {
namespace {

// A file descriptor that is closed when it goes out of scope.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(OwnedFd&& other) noexcept : fd_(other.release()) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  ~OwnedFd() { reset(); }

  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Renumbers fd to 3 or above (keeping close-on-exec), so that the child's dup2
// onto 0, 1 and 2 never overwrites another fd the child still needs.
bool MoveAboveStdio(OwnedFd& fd) {
  if (fd.get() > STDERR_FILENO) return true;
  int moved = fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  if (moved < 0) return false;
  fd.reset(moved);
  return true;
}

bool SetNonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

Error SystemFailure(const std::string& what, int err) {
  return Fail("queued: " + what + ": " + ErrnoText(err) + ".");
}

// The job's standard streams: the child's ends (numbered above 2) and the
// parent's ends, indexed by the stream they serve (0 stdin, 1 stdout, 2 stderr).
struct JobStreams {
  OwnedFd child_pipe[3];
  OwnedFd pty_slave;
  int child_fd[3] = {-1, -1, -1};  // what the child dup2s onto 0, 1 and 2
  OwnedFd parent[3];               // stdin writer, stdout reader, stderr reader
  OwnedFd pty_master;
};

Status ConnectPipe(JobStreams& streams, int stream) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return SystemFailure("could not create a pipe for the job", errno);
  OwnedFd read_end(fds[0]);
  OwnedFd write_end(fds[1]);
  if (!MoveAboveStdio(read_end) || !MoveAboveStdio(write_end))
    return SystemFailure("could not renumber a pipe for the job", errno);
  bool job_reads = stream == STDIN_FILENO;
  OwnedFd& child_end = job_reads ? read_end : write_end;
  OwnedFd& parent_end = job_reads ? write_end : read_end;
  if (!SetNonblocking(parent_end.get()))
    return SystemFailure("could not make a job pipe nonblocking", errno);
  streams.child_fd[stream] = child_end.get();
  streams.child_pipe[stream] = std::move(child_end);
  streams.parent[stream] = std::move(parent_end);
  return Status::Ok();
}

// The group that owns terminals (login's "tty"), or the owner's own group.
gid_t TerminalGroup(gid_t fallback) {
  group entry{};
  group* found = nullptr;
  std::vector<char> buffer(16384);
  if (getgrnam_r("tty", &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) return found->gr_gid;
  return fallback;
}

// As login does: the job's terminal is its owner's, readable and writable by
// them, writable by the tty group (write(1), mesg(1)). Root's shepherd made it.
Status GiveTerminalTo(int slave, const wire::JobSpec& spec) {
  if (geteuid() != 0) return Status::Ok();
  if (fchown(slave, spec.uid, TerminalGroup(spec.gid)) != 0 || fchmod(slave, 0620) != 0)
    return SystemFailure("could not give the job's pty to its owner", errno);
  return Status::Ok();
}

Status OpenPty(JobStreams& streams, const wire::JobSpec& spec) {
  const wire::TerminalSettings& terminal = spec.terminal;
  OwnedFd master(posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (master.get() < 0) return SystemFailure("could not allocate a pty for the job", errno);
  char name[128];
  if (grantpt(master.get()) != 0 || unlockpt(master.get()) != 0 ||
      ptsname_r(master.get(), name, sizeof name) != 0)
    return SystemFailure("could not unlock the job's pty", errno);
  OwnedFd slave(open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (slave.get() < 0 || !MoveAboveStdio(slave))
    return SystemFailure(std::string("could not open the job's pty ") + name, errno);
  if (Status given = GiveTerminalTo(slave.get(), spec); !given.ok()) return given;
  Status applied = term::ApplyTerminal(slave.get(), terminal);  // nothing when !present
  if (!applied.ok()) return Fail("queued: could not give the job's pty the stub's terminal: " +
                                 applied.message());
  if (!SetNonblocking(master.get())) return SystemFailure("could not make the pty nonblocking", errno);
  streams.pty_master = std::move(master);
  streams.pty_slave = std::move(slave);
  return Status::Ok();
}

// Gives stream of the job the pty slave, and the parent its own copy of the master.
Status ConnectPty(JobStreams& streams, int stream) {
  int copy = fcntl(streams.pty_master.get(), F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return SystemFailure("could not duplicate the pty master", errno);
  streams.parent[stream].reset(copy);
  streams.child_fd[stream] = streams.pty_slave.get();
  return Status::Ok();
}

// A batch job reads nothing and writes both outputs to one file; the parent
// keeps no end of either.
Status ConnectBatchStreams(JobStreams& streams, int output_fd) {
  OwnedFd input(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (input.get() < 0 || !MoveAboveStdio(input))
    return SystemFailure("could not open /dev/null for the job", errno);
  OwnedFd output(fcntl(output_fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1));
  if (output.get() < 0) return SystemFailure("could not duplicate the job's output file", errno);
  streams.child_fd[0] = input.get();
  streams.child_fd[1] = streams.child_fd[2] = output.get();
  streams.child_pipe[0] = std::move(input);
  streams.child_pipe[1] = std::move(output);
  return Status::Ok();
}

Result<JobStreams> OpenStreams(const wire::JobSpec& spec, const LaunchOptions& options) {
  JobStreams streams;
  if (options.batch_output_fd >= 0) {
    Status status = ConnectBatchStreams(streams, options.batch_output_fd);
    if (!status.ok()) return Fail(status.message());
    return streams;
  }
  bool pty = spec.pty != wire::PtyMode::kNone;
  bool full = spec.pty == wire::PtyMode::kFull;
  Status status;
  if (pty) status = OpenPty(streams, spec);
  if (status.ok()) status = pty ? ConnectPty(streams, 0) : ConnectPipe(streams, 0);
  if (status.ok()) status = full ? ConnectPty(streams, 1) : ConnectPipe(streams, 1);
  if (status.ok()) {
    if (full && spec.stderr_is_tty)
      streams.child_fd[2] = streams.pty_slave.get();  // the parent reads it on stdout
    else
      status = ConnectPipe(streams, 2);
  }
  if (!status.ok()) return Fail(status.message());
  return streams;
}

// What the child reports when it cannot exec the job.
enum class ChildStep : int32_t {
  kUnreadable = 0,  // the report itself could not be read
  kSession,
  kControllingTty,
  kStreams,
  kNice,
  kCredentials,
  kLimit,
  kChdir,
  kExec,
};

struct ChildFailure {
  ChildStep step;
  int32_t err;
  int32_t detail;  // the resource of kLimit
};

// Everything the child needs after fork. The child only reads it (except for
// one slot of shell_argv) and makes system calls.
struct ChildPlan {
  std::vector<char*> argv;              // points into the spec's strings
  std::vector<std::string> env;
  std::vector<char*> envp;              // points into env
  std::vector<std::string> candidates;  // paths to try for argv[0], in order
  std::vector<char*> shell_argv;        // /bin/sh <candidate> argv[1..], for scripts without #!
  bool change_credentials = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  int nice = 0;
  std::vector<std::pair<int, rlimit>> limits;
  mode_t umask = 022;
  const char* cwd = "/";
  int child_fd[3] = {-1, -1, -1};
  int tty = -1;  // the pty slave that becomes the controlling terminal
  bool share_session = false;  // see LaunchOptions::share_session
  int report_fd = -1;
  int max_fd = 1024;  // highest fd to close when close_range is unavailable
};

bool IsQueueVariable(const std::string& entry) {
  return entry.starts_with("QUEUE=") || entry.starts_with("QUEUE_JOBID=") ||
         entry.starts_with("QUEUE_HOST=");
}

// The job owner's passwd entry on this host, as the strings a job needs from it.
struct LoginEntry {
  std::string name, home, shell;
};

std::optional<LoginEntry> LookUpUid(uid_t uid) {
  long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buffer(hint > 0 ? static_cast<size_t>(hint) : 16384);
  passwd entry{};
  passwd* found = nullptr;
  int rc;
  while ((rc = getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found)) == ERANGE &&
         buffer.size() < (1u << 20))
    buffer.resize(buffer.size() * 2);
  if (rc != 0 || found == nullptr) return std::nullopt;
  auto text = [](const char* s) { return std::string(s == nullptr ? "" : s); };
  return LoginEntry{text(entry.pw_name), text(entry.pw_dir), text(entry.pw_shell)};
}

bool HasVariable(const std::vector<std::string>& env, std::string_view name) {
  return std::any_of(env.begin(), env.end(), [&](const std::string& entry) {
    return entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=';
  });
}

// The submitter's environment travels whole. What it lacks of the login variables
// is filled from the owner's passwd entry here, as sshd and rshd set them: programs
// that drive a remote shell rely on them (GNU Parallel's remote wrapper runs
// $SHELL, which a caller with a cleaned environment does not have).
void AddMissingLoginVariables(std::vector<std::string>& env, uid_t uid) {
  auto login = LookUpUid(uid);
  if (!login) return;
  std::string shell = login->shell.empty() ? "/bin/sh" : login->shell;
  for (auto [name, value] : {std::pair<std::string_view, const std::string&>{"HOME", login->home},
                             {"SHELL", shell}, {"USER", login->name}, {"LOGNAME", login->name}})
    if (!value.empty() && !HasVariable(env, name)) env.push_back(std::string(name) + "=" + value);
}

std::vector<std::string> JobEnvironment(const wire::JobSpec& spec, const LaunchOptions& options) {
  std::vector<std::string> env;
  for (const auto& entry : spec.env)
    if (!IsQueueVariable(entry)) env.push_back(entry);
  AddMissingLoginVariables(env, spec.uid);
  env.push_back("QUEUE=i");
  env.push_back("QUEUE_JOBID=" + options.job_id);
  env.push_back("QUEUE_HOST=" + options.exec_host);
  return env;
}

std::string JobSearchPath(const std::vector<std::string>& env) {
  for (const auto& entry : env)
    if (entry.starts_with("PATH=")) return entry.substr(5);
  return "/bin:/usr/bin";  // what execvp searches when PATH is unset
}

// The paths to try for command: itself when it names a path, else one per PATH
// entry (an empty entry is the cwd; relative entries are relative to the job's cwd).
std::vector<std::string> ProgramCandidates(const std::string& command, const std::string& path) {
  if (command.empty()) return {};
  if (command.find('/') != std::string::npos) return {command};
  std::vector<std::string> candidates;
  size_t start = 0;
  while (true) {
    size_t end = path.find(':', start);
    std::string dir = path.substr(start, end == std::string::npos ? end : end - start);
    candidates.push_back((dir.empty() ? std::string(".") : dir) + "/" + command);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return candidates;
}

std::vector<char*> PointersTo(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (const auto& s : strings) pointers.push_back(const_cast<char*>(s.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

rlim_t ToRlim(uint64_t value) {
  return value >= RLIM_INFINITY ? RLIM_INFINITY : static_cast<rlim_t>(value);
}

// The spec's limits, each capped by the hard limit this process already has.
Result<std::vector<std::pair<int, rlimit>>> CappedLimits(const wire::JobSpec& spec,
                                                         const LaunchOptions& options) {
  std::vector<std::pair<int, rlimit>> limits;
  for (const auto& limit : spec.rlimits) {
    int resource = static_cast<int>(limit.resource);
    rlimit current{};
    if (getrlimit(resource, &current) != 0)
      return Fail("queued: resource limit " + std::to_string(limit.resource) +
                  " is not known on host " + options.exec_host + ".");
    rlim_t hard = std::min(ToRlim(limit.hard), current.rlim_max);
    limits.emplace_back(resource, rlimit{std::min(ToRlim(limit.soft), hard), hard});
  }
  return limits;
}

bool UidKnown(uid_t uid) { return LookUpUid(uid).has_value(); }

// Whether the child must switch credentials, or why the job may not run here.
Result<bool> CredentialsToUse(const wire::JobSpec& spec, const LaunchOptions& options) {
  const std::string& id = options.job_id;
  uid_t self = geteuid();
  if (self != 0) {
    if (spec.uid == self) return false;
    return Fail("queued: cannot run job " + id + " as uid " + std::to_string(spec.uid) +
                " on host " + options.exec_host + ": queued runs there as uid " +
                std::to_string(self) + ", not as root.");
  }
  if (spec.uid == 0 && !options.allow_root)
    return Fail("queued: refusing to run job " + id + " as root on host " + options.exec_host +
                "; the queue's profile does not say allowroot.");
  if (!UidKnown(spec.uid))
    return Fail("queued: uid " + std::to_string(spec.uid) + " is unknown on host " +
                options.exec_host + ".");
  return true;
}

ChildPlan PlanChild(const wire::JobSpec& spec, const LaunchOptions& options) {
  ChildPlan plan;
  for (const auto& arg : spec.argv) plan.argv.push_back(const_cast<char*>(arg.c_str()));
  plan.argv.push_back(nullptr);
  plan.env = JobEnvironment(spec, options);
  plan.envp = PointersTo(plan.env);
  plan.candidates = ProgramCandidates(spec.argv[0], JobSearchPath(plan.env));
  plan.shell_argv = {const_cast<char*>("/bin/sh"), nullptr};
  plan.shell_argv.insert(plan.shell_argv.end(), plan.argv.begin() + 1, plan.argv.end());
  plan.uid = spec.uid;
  plan.gid = spec.gid;
  plan.groups.assign(spec.groups.begin(), spec.groups.end());
  plan.nice = std::clamp(std::max(spec.nice, options.profile_nice), -20, 19);
  plan.umask = static_cast<mode_t>(spec.umask & 0777);
  plan.cwd = spec.cwd.empty() ? "/" : spec.cwd.c_str();
  long open_max = sysconf(_SC_OPEN_MAX);
  plan.max_fd = static_cast<int>(std::clamp(open_max, 1024L, 65536L));
  return plan;
}

// ---- The child, between fork and exec: system calls only. ----

[[noreturn]] void FailInChild(const ChildPlan& plan, ChildStep step, int err, int detail = 0) {
  ChildFailure failure{step, err, detail};
  ssize_t written = write(plan.report_fd, &failure, sizeof failure);
  (void)written;
  _exit(2);
}

void ResetSignalDispositions() {
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  // Fails harmlessly for SIGKILL, SIGSTOP and the C library's private signals.
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &default_action, nullptr);
}

void EnterSession(const ChildPlan& plan) {
  if (plan.share_session) {
    // Signals are still blocked here, so tcsetpgrp from a background group
    // does not stop us with SIGTTOU.
    if (setpgid(0, 0) < 0) FailInChild(plan, ChildStep::kSession, errno);
    if (plan.tty >= 0 && tcsetpgrp(plan.tty, getpid()) < 0)
      FailInChild(plan, ChildStep::kControllingTty, errno);
    return;
  }
  if (setsid() < 0) FailInChild(plan, ChildStep::kSession, errno);
  if (plan.tty >= 0 && ioctl(plan.tty, TIOCSCTTY, 0) < 0)
    FailInChild(plan, ChildStep::kControllingTty, errno);
}

void ConnectStandardStreams(const ChildPlan& plan) {
  for (int stream = 0; stream < 3; ++stream)
    if (dup2(plan.child_fd[stream], stream) < 0) FailInChild(plan, ChildStep::kStreams, errno);
}

void SetNice(const ChildPlan& plan) {
  if (setpriority(PRIO_PROCESS, 0, plan.nice) == 0) return;
  // Without privilege a process cannot lower its nice value: the job then keeps
  // the launcher's, which is nicer than asked and harms no one.
  if (errno == EACCES || errno == EPERM) return;
  FailInChild(plan, ChildStep::kNice, errno);
}

void SwitchCredentials(const ChildPlan& plan) {
  if (!plan.change_credentials) return;
  if (setgroups(plan.groups.size(), plan.groups.data()) != 0 ||
      setresgid(plan.gid, plan.gid, plan.gid) != 0 || setresuid(plan.uid, plan.uid, plan.uid) != 0)
    FailInChild(plan, ChildStep::kCredentials, errno);
  uid_t ruid, euid, suid;
  gid_t rgid, egid, sgid;
  bool stuck = getresuid(&ruid, &euid, &suid) == 0 && getresgid(&rgid, &egid, &sgid) == 0 &&
               ruid == plan.uid && euid == plan.uid && suid == plan.uid && rgid == plan.gid &&
               egid == plan.gid && sgid == plan.gid;
  if (stuck && plan.uid != 0) stuck = setuid(0) != 0;  // root must not be regainable
  if (!stuck) FailInChild(plan, ChildStep::kCredentials, EPERM);
}

void ApplyLimits(const ChildPlan& plan) {
  for (const auto& [resource, limit] : plan.limits)
    if (setrlimit(resource, &limit) != 0) FailInChild(plan, ChildStep::kLimit, errno, resource);
}

// Every fd above 2 goes away at exec; the report pipe must live until then.
void CloseInheritedFdsAtExec(const ChildPlan& plan) {
  if (close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  for (int fd = STDERR_FILENO + 1; fd <= plan.max_fd; ++fd)
    if (fd != plan.report_fd) close(fd);
}

// ENOENT says least (the program is not in that directory), EACCES more, and
// anything else (ETXTBSY, E2BIG, ...) the most.
int MoreInformative(int known, int seen) {
  auto rank = [](int err) { return err == ENOENT || err == ENOTDIR ? 0 : err == EACCES ? 1 : 2; };
  return rank(seen) > rank(known) ? seen : known;
}

[[noreturn]] void ExecProgram(ChildPlan& plan) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  int best = ENOENT;
  for (const auto& candidate : plan.candidates) {
    execve(candidate.c_str(), plan.argv.data(), plan.envp.data());
    int err = errno;
    if (err == ENOEXEC) {  // a script without #!: run it with sh, as execvp does
      plan.shell_argv[1] = const_cast<char*>(candidate.c_str());
      execve("/bin/sh", plan.shell_argv.data(), plan.envp.data());
      err = errno;
    }
    best = MoreInformative(best, err);
  }
  FailInChild(plan, ChildStep::kExec, best);
}

[[noreturn]] void RunChild(ChildPlan& plan) {
  ResetSignalDispositions();
  EnterSession(plan);
  ConnectStandardStreams(plan);
  SetNice(plan);  // before dropping root, so that root can set any value
  SwitchCredentials(plan);
  ApplyLimits(plan);
  umask(plan.umask);
  if (chdir(plan.cwd) != 0) FailInChild(plan, ChildStep::kChdir, errno);
  CloseInheritedFdsAtExec(plan);
  ExecProgram(plan);
}

// ---- The parent. ----

// Forks with every signal blocked, so that no handler of this process runs in
// the child before the child has reset the dispositions.
Result<pid_t> ForkChild(ChildPlan& plan, const LaunchOptions& options) {
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  pid_t pid = fork();
  if (pid == 0) RunChild(plan);
  int err = errno;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (pid < 0) return SystemFailure("could not fork job " + options.job_id, err);
  return pid;
}

// The child's failure, or nothing when exec closed the pipe without one.
std::optional<ChildFailure> ReadChildReport(int fd) {
  ChildFailure failure{};
  ssize_t n;
  do {
    n = read(fd, &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return std::nullopt;
  if (n != static_cast<ssize_t>(sizeof failure))
    return ChildFailure{ChildStep::kUnreadable, n < 0 ? errno : EIO, 0};
  return failure;
}

void ReapChild(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

std::string DescribeFailure(const ChildFailure& failure, const wire::JobSpec& spec,
                            const LaunchOptions& options) {
  std::string job = "job " + options.job_id;
  std::string on_host = " on host " + options.exec_host;
  std::string reason = ": " + ErrnoText(failure.err) + ".";
  switch (failure.step) {
    case ChildStep::kSession:
      return "queued: could not start a new session for " + job + on_host + reason;
    case ChildStep::kControllingTty:
      return "queued: could not give " + job + " its terminal" + on_host + reason;
    case ChildStep::kStreams:
      return "queued: could not connect the standard streams of " + job + on_host + reason;
    case ChildStep::kNice:
      return "queued: could not set the nice value of " + job + on_host + reason;
    case ChildStep::kCredentials:
      return "queued: could not switch " + job + " to uid " + std::to_string(spec.uid) + " gid " +
             std::to_string(spec.gid) + on_host + reason;
    case ChildStep::kLimit:
      return "queued: could not set resource limit " + std::to_string(failure.detail) + " of " +
             job + on_host + reason;
    case ChildStep::kChdir:
      return "queued: chdir to " + spec.cwd + on_host + " failed" + reason;
    case ChildStep::kExec:
      if (failure.err == ENOENT || failure.err == ENOTDIR)
        return spec.argv[0] + ": Command not found.";
      return spec.argv[0] + reason;
    case ChildStep::kUnreadable:
      break;
  }
  return "queued: " + job + " failed to start" + on_host + reason;
}

}  // namespace

Result<LaunchedJob> LaunchJob(const wire::JobSpec& spec, const LaunchOptions& options) {
  if (spec.argv.empty())
    return Fail("queued: job " + options.job_id + " has no command to run.");
  auto change_credentials = CredentialsToUse(spec, options);
  if (!change_credentials.ok()) return change_credentials.error();
  auto limits = CappedLimits(spec, options);
  if (!limits.ok()) return limits.error();
  auto streams = OpenStreams(spec, options);
  if (!streams.ok()) return streams.error();

  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return SystemFailure("could not create a report pipe", errno);
  OwnedFd report_read(report[0]);
  OwnedFd report_write(report[1]);
  if (!MoveAboveStdio(report_write)) return SystemFailure("could not renumber a pipe", errno);

  ChildPlan plan = PlanChild(spec, options);
  plan.change_credentials = *change_credentials;
  plan.limits = std::move(*limits);
  std::copy_n(streams->child_fd, 3, plan.child_fd);
  plan.tty = streams->pty_slave.get();
  plan.report_fd = report_write.get();
  plan.share_session = options.share_session;
  if (options.share_session && plan.tty >= 0 && ioctl(plan.tty, TIOCSCTTY, 0) != 0)
    return SystemFailure("could not make the job's pty the shepherd's terminal", errno);

  auto pid = ForkChild(plan, options);
  if (!pid.ok()) return pid.error();
  report_write.reset();
  for (auto& fd : streams->child_pipe) fd.reset();
  streams->pty_slave.reset();

  if (auto failure = ReadChildReport(report_read.get())) {
    if (failure->step == ChildStep::kUnreadable) kill(*pid, SIGKILL);
    ReapChild(*pid);
    return Fail(DescribeFailure(*failure, spec, options));
  }
  LaunchedJob job;
  job.pid = *pid;
  job.stdin_fd = streams->parent[0].release();
  job.stdout_fd = streams->parent[1].release();
  job.stderr_fd = streams->parent[2].release();
  job.pty_master = streams->pty_master.release();
  return job;
}

Status ResizePty(int pty_master, uint16_t rows, uint16_t cols, uint16_t xpixel, uint16_t ypixel) {
  winsize size{rows, cols, xpixel, ypixel};
  if (ioctl(pty_master, TIOCSWINSZ, &size) != 0)
    return SystemFailure("could not resize the job's terminal", errno);
  return Status::Ok();
}

}  // namespace queue::exec
