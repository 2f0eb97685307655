// Restoring a dumped job with CRIU, with new streams in place of the old.
#include "exec/job_restorer.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include "migrate/criu.h"
#include "spool/spool_layout.h"

namespace queue::exec {

namespace {

// A pid still taken on this host (the job's old one, when it moves between
// two daemons of one machine and a zombie of its tree lingers) clears soon.
constexpr int kRestoreAttempts = 10;
constexpr auto kPidBusyPause = std::chrono::milliseconds(500);

struct NewStreams {
  std::vector<int> child_ends;                   // passed to criu as fd 4, 5, ... (3 is the image directory)
  std::vector<migrate::InheritedStream> inherit;  // what each takes the place of
  std::array<int, 3> parent_ends{-1, -1, -1};    // the shepherd's side of fds 0-2
  // A job that had a terminal gets a new pty: CRIU (--shell-job) hands the
  // job its own stdin, the slave, in place of the old one.
  int pty_master = -1;
  int pty_slave = -1;
};

void CloseAll(NewStreams& streams) {
  for (int fd : {streams.pty_master, streams.pty_slave})
    if (fd >= 0) close(fd);
  streams.pty_master = streams.pty_slave = -1;
  for (int fd : streams.child_ends) close(fd);
  for (int fd : streams.parent_ends)
    if (fd >= 0) close(fd);
  streams.child_ends.clear();
  streams.parent_ends = {-1, -1, -1};
}

// CRIU names a regular file without its leading '/'.
std::string InheritKey(const std::string& target) { return target.front() == '/' ? target.substr(1) : target; }

bool IsTerminal(const std::string& target) { return target.starts_with("/dev/pts/"); }

// A new pty whose slave becomes this session's controlling terminal, as the
// launcher's does (LaunchOptions::share_session): the shepherd leads its session.
Status OpenTerminal(NewStreams& streams, const migrate::CriuIdentity& as) {
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return Fail("cannot allocate a pty: " + ErrnoText(errno));
  streams.pty_master = master;
  char name[128];
  if (grantpt(master) != 0 || unlockpt(master) != 0 || ptsname_r(master, name, sizeof name) != 0)
    return Fail("cannot unlock the pty: " + ErrnoText(errno));
  streams.pty_slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (streams.pty_slave < 0) return Fail(std::string("cannot open ") + name + ": " + ErrnoText(errno));
  if (fchown(streams.pty_slave, as.uid, static_cast<gid_t>(-1)) != 0 || ioctl(streams.pty_slave, TIOCSCTTY, 0) != 0)
    return Fail(std::string("cannot make ") + name + " the job's terminal: " + ErrnoText(errno));
  fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
  return Status::Ok();
}

// What stands in for each old stream: a new pipe for a pipe (the shepherd keeps
// the other end), the new output file for a batch job's old one, a new pty for
// the old one. /dev/null and other files the job opened itself are reopened by
// CRIU at their paths.
Result<NewStreams> PrepareStreams(const migrate::CriuStreams& old, int batch_output_fd,
                                  const migrate::CriuIdentity& as) {
  NewStreams streams;
  for (int fd = 0; fd < 3; ++fd) {
    if (!IsTerminal(old.targets[static_cast<size_t>(fd)])) continue;
    if (streams.pty_master < 0)
      if (auto opened = OpenTerminal(streams, as); !opened.ok()) return CloseAll(streams), Fail(opened.message());
    // stderr through the pty is read with stdout, as a launched job's is.
    if (fd < 2) streams.parent_ends[static_cast<size_t>(fd)] = fcntl(streams.pty_master, F_DUPFD_CLOEXEC, 3);
  }
  std::map<std::string, int> given;  // an old target shared by two fds gets one new stream
  for (int fd = 0; fd < 3; ++fd) {
    const std::string& target = old.targets[static_cast<size_t>(fd)];
    if (target.empty() || target == "/dev/null" || IsTerminal(target)) continue;
    if (auto seen = given.find(target); seen != given.end()) continue;
    int child_end = -1;
    // The old host's batch output file the job wrote to: the new host's takes its place.
    if (batch_output_fd >= 0 && spool::SpoolLayout::IsBatchOutput(target)) {
      child_end = fcntl(batch_output_fd, F_DUPFD_CLOEXEC, 3);
      if (child_end < 0) return CloseAll(streams), Fail("cannot pass on the output file: " + ErrnoText(errno));
    } else if (batch_output_fd < 0 && target.starts_with("pipe:[")) {
      int ends[2];
      if (pipe2(ends, O_CLOEXEC) != 0) return CloseAll(streams), Fail("pipe: " + ErrnoText(errno));
      int parent = fd == 0 ? ends[1] : ends[0];
      child_end = fd == 0 ? ends[0] : ends[1];
      // CRIU reopens the pipe through /proc, as the owner.
      if (fchown(child_end, as.uid, as.gid) != 0) {
        close(parent);
        close(child_end);
        return CloseAll(streams), Fail("cannot give a pipe to the job's owner: " + ErrnoText(errno));
      }
      fcntl(parent, F_SETFL, fcntl(parent, F_GETFL) | O_NONBLOCK);
      streams.parent_ends[static_cast<size_t>(fd)] = parent;
    } else if (target.front() != '/') {
      CloseAll(streams);
      return Fail("its fd " + std::to_string(fd) + " was " + target + ", which cannot be handed over");
    } else {
      continue;  // a file of the job's own
    }
    given[target] = child_end;
    streams.inherit.push_back({static_cast<int>(4 + streams.child_ends.size()), InheritKey(target)});
    streams.child_ends.push_back(child_end);
  }
  return streams;
}

Result<pid_t> ReadRestoredPid(const std::string& image_dir) {
  std::ifstream in(image_dir + "/restored.pid");
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return Fail("criu restore said nothing of the restored job's pid");
  return static_cast<pid_t>(pid);
}

Result<int> RunCriu(const std::vector<std::string>& command, const std::vector<int>& fds,
                    const migrate::CriuIdentity& as, int stdin_fd) {
  auto pid = migrate::SpawnCriu(command, fds, as, migrate::CriuStep::kRestore, stdin_fd);
  if (!pid.ok()) return pid.error();
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0)
    if (errno != EINTR) return Fail("cannot wait for criu: " + ErrnoText(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 125)
    return Fail("criu could not take the identity of uid " + std::to_string(as.uid));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return Fail("cannot run " + command[0]);
  return status;
}

Result<pid_t> RunRestore(const std::vector<std::string>& command, const NewStreams& streams,
                         const std::string& image_dir, const migrate::CriuIdentity& as) {
  int dir = open(image_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (dir < 0) return Fail("cannot open " + image_dir + ": " + ErrnoText(errno));
  std::vector<int> fds{dir};
  fds.insert(fds.end(), streams.child_ends.begin(), streams.child_ends.end());
  std::string why;
  for (int attempt = 1; attempt <= kRestoreAttempts; ++attempt) {
    ::unlink((image_dir + "/restored.pid").c_str());
    auto status = RunCriu(command, fds, as, streams.pty_slave);
    if (!status.ok()) {
      close(dir);
      return status.error();
    }
    if (WIFEXITED(*status) && WEXITSTATUS(*status) == 0) {
      close(dir);
      return ReadRestoredPid(image_dir);
    }
    why = migrate::CriuLogError(image_dir + "/restore.log");
    if (why.find("File exists") == std::string::npos) break;
    std::this_thread::sleep_for(kPidBusyPause);
  }
  close(dir);
  return Fail("criu restore failed: " + (why.empty() ? std::string("see ") + image_dir + "/restore.log" : why));
}

}  // namespace

Result<LaunchedJob> RestoreJob(const RestoreOptions& options) {
  auto old = migrate::ReadCriuStreams(options.image_dir);
  if (!old.ok()) return old.error();
  auto streams = PrepareStreams(*old, options.batch_output_fd, options.as);
  if (!streams.ok()) return streams.error();
  auto command = migrate::CriuRestoreCommand(options.criu_path, migrate::kCriuImageDirFd, streams->inherit,
                                             options.as.unprivileged());
  auto pid = RunRestore(command, *streams, options.image_dir, options.as);
  for (int fd : streams->child_ends) close(fd);
  if (!pid.ok()) {
    // Leave the session without a terminal for the launch that comes instead.
    if (streams->pty_slave >= 0) (void)ioctl(streams->pty_slave, TIOCNOTTY);
    streams->child_ends.clear();
    CloseAll(*streams);
    return pid.error();
  }
  if (streams->pty_slave >= 0) {
    (void)tcsetpgrp(streams->pty_slave, *pid);  // in the foreground, as a launched job is
    close(std::exchange(streams->pty_slave, -1));
  }
  LaunchedJob job;
  job.pid = *pid;
  job.pty_master = streams->pty_master;
  job.stdin_fd = streams->parent_ends[0];
  job.stdout_fd = streams->parent_ends[1];
  job.stderr_fd = streams->parent_ends[2];
  return job;
}

}  // namespace queue::exec
