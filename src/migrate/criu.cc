// CRIU's command lines, its availability, and the streams file of an image set.
#include "migrate/criu.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <linux/capability.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace queue::migrate {

namespace {

constexpr size_t kMaxStreamTargetBytes = 4096;

bool IsExecutable(const std::string& path) { return !path.empty() && ::access(path.c_str(), X_OK) == 0; }

std::vector<std::string> CriuCandidates(const std::string& requested) {
  if (!requested.empty()) return {requested};
  std::vector<std::string> found;
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::stringstream dirs(path);
    for (std::string dir; std::getline(dirs, dir, ':');)
      if (!dir.empty()) found.push_back(dir + "/criu");
  }
  found.push_back("/usr/local/sbin/criu");
  found.push_back("/usr/sbin/criu");
  return found;
}

// Runs argv with stdout and stderr captured (at most 64 KiB kept).
Result<std::pair<int, std::string>> RunCapturing(const std::vector<std::string>& argv) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return Fail("pipe: " + ErrnoText(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (rc != 0) {
    close(pipe_fds[0]);
    return Fail("cannot run " + argv[0] + ": " + ErrnoText(rc));
  }
  std::string output;
  char buffer[4096];
  for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (output.size() < 65536) output.append(buffer, static_cast<size_t>(n));
  }
  close(pipe_fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return std::make_pair(status, output);
}

// The message of CRIU's first "Error (file:line): message" line in `text`: the
// cause, where the last ones are "Restoring FAILED." and its like. The harmless
// complaint about its own RLIMIT_NOFILE is skipped.
std::string CriuErrorIn(const std::string& text) {
  std::stringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    auto at = line.find("Error (");
    if (at == std::string::npos) continue;
    auto colon = line.find("): ", at);
    std::string message = colon == std::string::npos ? line.substr(at) : line.substr(colon + 3);
    if (message.find("RLIMIT_NOFILE") != std::string::npos || message.ends_with("FAILED.")) continue;
    return message;
  }
  return "";
}

}  // namespace

CriuAvailability ProbeCriu(const std::string& requested) {
  CriuAvailability criu;
  std::string first_failure;
  for (const auto& found : CriuCandidates(requested)) {
    if (!IsExecutable(found)) continue;
    std::error_code error;
    const std::string candidate = std::filesystem::canonical(found, error).string();  // absolute, for ShepherdStart
    if (error) continue;
    CriuAvailability tried;
    tried.path = candidate;
    if (auto version = RunCapturing({candidate, "--version"}); version.ok()) {
      const std::string& text = version->second;
      if (auto at = text.find("Version: "); at != std::string::npos)
        tried.version = text.substr(at + 9, text.find('\n', at) - at - 9);
    }
    auto check = RunCapturing({candidate, "check"});
    if (check.ok() && WIFEXITED(check->first) && WEXITSTATUS(check->first) == 0) {
      // criu runs as the job's owner, who may trace only their own children under Yama.
      std::ifstream yama("/proc/sys/kernel/yama/ptrace_scope");
      int scope = 0;
      if (yama >> scope && scope > 0) {
        tried.reason = "kernel.yama.ptrace_scope is " + std::to_string(scope) +
                       ": criu, running as a job's owner, may not checkpoint the job (it needs 0)";
        if (first_failure.empty()) criu = tried, first_failure = tried.reason;
        continue;
      }
      tried.usable = true;
      return tried;
    }
    std::string why = !check.ok() ? check.message() : CriuErrorIn(check->second);
    if (why.empty()) why = "`criu check` failed";
    tried.reason = "criu " + (tried.version.empty() ? std::string() : tried.version + " ") + "(" + candidate +
                   ") cannot checkpoint on this host: " + why;
    if (geteuid() != 0) tried.reason += " (criu needs root, and queued does not run as root)";
    if (first_failure.empty()) criu = tried, first_failure = tried.reason;
  }
  if (first_failure.empty())
    criu.reason = requested.empty() ? "criu is not installed (not in PATH, /usr/local/sbin or /usr/sbin)"
                                    : "criu " + requested + " is not an executable file";
  return criu;
}

std::string DescribeCriu(const CriuAvailability& criu) {
  if (!criu.usable) return criu.reason;
  return "criu " + criu.version + " (" + criu.path + ") works here";
}

Result<CriuStreams> ReadJobStreams(pid_t pid) {
  std::string proc = "/proc/" + std::to_string(pid);
  if (::access(proc.c_str(), F_OK) != 0) return Fail("process " + std::to_string(pid) + " is gone");
  CriuStreams streams;
  for (int fd = 0; fd < 3; ++fd) {
    std::string link = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
    std::string target(kMaxStreamTargetBytes, '\0');
    ssize_t n = readlink(link.c_str(), target.data(), target.size());
    if (n < 0) {
      if (errno == ENOENT) continue;  // a closed stream stays closed
      return Fail("cannot read " + link + ": " + ErrnoText(errno));
    }
    target.resize(static_cast<size_t>(n));
    streams.targets[static_cast<size_t>(fd)] = target;
  }
  return streams;
}

Status WriteCriuStreams(const std::string& image_dir, const CriuStreams& streams) {
  std::string path = image_dir + "/" + kCriuStreamsFile;
  std::ofstream out(path, std::ios::trunc);
  for (const auto& target : streams.targets) {
    if (target.find('\n') != std::string::npos) return Fail("a stream's name holds a newline: " + path);
    out << target << "\n";
  }
  out.flush();
  if (!out) return Fail("cannot write " + path);
  return Status::Ok();
}

Result<CriuStreams> ReadCriuStreams(const std::string& image_dir) {
  std::string path = image_dir + "/" + kCriuStreamsFile;
  std::ifstream in(path);
  if (!in) return Fail("the image has no " + std::string(kCriuStreamsFile) + " file");
  CriuStreams streams;
  for (auto& target : streams.targets) {
    if (!std::getline(in, target)) return Fail(path + " is truncated");
    if (target.size() > kMaxStreamTargetBytes) return Fail(path + " names a stream too long");
  }
  return streams;
}

std::vector<std::string> CriuDumpCommand(const std::string& criu, pid_t pid, const std::string& image_dir,
                                         bool unprivileged) {
  std::vector<std::string> command{criu,         "dump",       "--no-default-config", "--tree", std::to_string(pid),
                                   "--images-dir", image_dir,  "--shell-job",         "--log-file", "dump.log",
                                   "-v2"};
  if (unprivileged) command.push_back("--unprivileged");
  return command;
}

std::vector<std::string> CriuRestoreCommand(const std::string& criu, const std::string& image_dir,
                                            const std::vector<InheritedStream>& inherit, bool unprivileged) {
  std::vector<std::string> command{criu,           "restore",        "--no-default-config", "--images-dir",
                                   image_dir,      "--shell-job",    "--restore-detached",  "--restore-sibling",
                                   "--pidfile",    image_dir + "/restored.pid",
                                   "--log-file",   "restore.log",    "-v2"};
  if (unprivileged) command.push_back("--unprivileged");
  for (const auto& stream : inherit) {
    command.push_back("--inherit-fd");
    command.push_back("fd[" + std::to_string(stream.fd) + "]:" + stream.target);
  }
  return command;
}

std::string CriuLogError(const std::string& log_path) {
  std::ifstream in(log_path);
  if (!in) return "";
  std::stringstream text;
  text << in.rdbuf();
  return CriuErrorIn(text.str());
}

namespace {

// In the child between fork and exec: system calls only.
[[noreturn]] void BecomeCriu(char* const* argv, char* const* env, const std::vector<int>& moved, int null_fd,
                             int stdin_fd, const CriuIdentity& as, const std::vector<gid_t>& groups,
                             uint64_t capabilities, pid_t parent) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int signo = 1; signo < NSIG; ++signo) signal(signo, SIG_DFL);  // the shepherd ignores SIGHUP
  for (int fd = 0; fd < 3; ++fd) dup2(fd == 0 && stdin_fd >= 0 ? stdin_fd : null_fd, fd);
  for (size_t i = 0; i < moved.size(); ++i) dup2(moved[i], static_cast<int>(3 + i));
  if (close_range(static_cast<unsigned>(3 + moved.size()), ~0U, 0) != 0) _exit(125);
  if (as.unprivileged()) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    for (int word = 0; word < 2; ++word) {
      auto bits = static_cast<uint32_t>(capabilities >> (32 * word));
      data[word].effective = data[word].permitted = data[word].inheritable = bits;
    }
    if (setgroups(groups.size(), groups.data()) != 0 || setresgid(as.gid, as.gid, as.gid) != 0 ||
        prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 || setresuid(as.uid, as.uid, as.uid) != 0 ||
        syscall(SYS_capset, &header, data) != 0)
      _exit(125);
    for (int cap = 0; cap < 64; ++cap)
      if ((capabilities >> cap) & 1)
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) _exit(125);
  }
  // A dump outlives no daemon: a daemon restarted meanwhile tells the job's
  // shepherd that no checkpoint is coming. (Set last: a change of identity clears it.)
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent) _exit(125);
  execve(argv[0], argv, env);
  _exit(127);
}

}  // namespace

Result<pid_t> SpawnCriu(const std::vector<std::string>& argv, const std::vector<int>& pass_fds,
                        const CriuIdentity& as, CriuStep step, int stdin_fd) {
  uint64_t capabilities = uint64_t{1} << CAP_CHECKPOINT_RESTORE;
  if (step == CriuStep::kRestore) capabilities |= uint64_t{1} << CAP_SETPCAP;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::string path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  char* env[] = {path.data(), nullptr};
  std::vector<gid_t> groups(as.groups.begin(), as.groups.end());
  int opened = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (opened < 0) return Fail("cannot open /dev/null: " + ErrnoText(errno));
  int null_fd = fcntl(opened, F_DUPFD_CLOEXEC, 64);  // never one of 0-2, which dup2 would leave close-on-exec
  close(opened);
  if (null_fd < 0) return Fail("cannot open /dev/null: " + ErrnoText(errno));
  const pid_t parent = getpid();
  std::vector<int> moved;  // out of the way of 3, 4, ...
  for (int fd : pass_fds) {
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 64);
    if (high >= 0) moved.push_back(high);
  }
  int moved_stdin = stdin_fd >= 0 ? fcntl(stdin_fd, F_DUPFD_CLOEXEC, 64) : -1;
  pid_t pid = moved.size() == pass_fds.size() && (stdin_fd < 0 || moved_stdin >= 0) ? fork() : -1;
  if (pid == 0) BecomeCriu(args.data(), env, moved, null_fd, moved_stdin, as, groups, capabilities, parent);
  if (moved_stdin >= 0) close(moved_stdin);
  int err = errno;
  for (int fd : moved) close(fd);
  close(null_fd);
  if (pid < 0) return Fail("cannot start " + argv[0] + ": " + ErrnoText(err));
  return pid;
}

Status GiveImageTo(const std::string& image_dir, const CriuIdentity& as) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(image_dir, error)) {
    if (::lchown(entry.path().c_str(), as.uid, as.gid) != 0)
      return Fail("cannot give " + entry.path().string() + " to uid " + std::to_string(as.uid) + ": " +
                  ErrnoText(errno));
  }
  if (error) return Fail("cannot read " + image_dir + ": " + error.message());
  if (::chown(image_dir.c_str(), as.uid, as.gid) != 0)
    return Fail("cannot give " + image_dir + " to uid " + std::to_string(as.uid) + ": " + ErrnoText(errno));
  return Status::Ok();
}

}  // namespace queue::migrate
