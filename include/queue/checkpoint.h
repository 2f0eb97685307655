/* queue/checkpoint.h: the one public header for jobs that Queue can migrate.
 *
 * A job in a queue with `checkpointmode 2` is asked to checkpoint by a signal
 * (SIGUSR2, or the queue's `checkpointsignal`). It must then save its state to
 * its restart file and exit; Queue ships that file to another host and starts
 * the job there again with the queue's `restartflag` in its argv, and with
 * QUEUE_RESTART_FILE, QUEUE_RESTART_COUNT and RESTARTED=1 in its environment.
 * This header wraps those conventions in a few functions. It needs only libc
 * and POSIX, compiles as C99 (with _POSIX_C_SOURCE >= 200809L, or gnu99) and
 * as C++, and links nothing: every function is `static inline`.
 *
 *   #include "queue/checkpoint.h"
 *   int main(int argc, char** argv) {
 *     struct state s = {0};
 *     queue_checkpoint_init();                      // first thing: install the handler
 *     if (queue_restarted() || has_flag(argc, argv, "--resume"))
 *       load_or_die(queue_restart_file(), &s);      // never start over silently
 *     for (; s.step < s.total; ++s.step) {
 *       if (queue_checkpoint_requested())
 *         return queue_save_atomically(queue_restart_file(), &s, sizeof s) == 0 ? 0 : 1;
 *       work(&s);
 *     }
 *   }
 *
 * The pending-checkpoint flag is one per process (a weak symbol with GCC and
 * Clang), so the handler installed in one source file is seen from any other.
 * With other compilers it is one per translation unit: call
 * queue_checkpoint_init() and queue_checkpoint_requested() from the same file.
 */
#ifndef QUEUE_CHECKPOINT_H_
#define QUEUE_CHECKPOINT_H_

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where a job that runs outside Queue (QUEUE_RESTART_FILE unset or empty)
 * keeps its restart file: relative, so it is resolved against the current
 * directory when it is opened (Queue's own default is <cwd>/<jobname>.restart,
 * and Queue always sets QUEUE_RESTART_FILE for jobs of checkpointing queues). */
#define QUEUE_RESTART_FILE_FALLBACK "checkpoint.restart"

/* Set by the signal handler, read by queue_checkpoint_requested(). */
#if defined(__GNUC__) || defined(__clang__)
extern volatile sig_atomic_t queue_checkpoint_pending_;
extern int queue_checkpoint_signo_;
__attribute__((weak)) volatile sig_atomic_t queue_checkpoint_pending_ = 0;
__attribute__((weak)) int queue_checkpoint_signo_ = 0;
#else
static volatile sig_atomic_t queue_checkpoint_pending_ = 0;
static int queue_checkpoint_signo_ = 0;
#endif

/* The handler does the one async-signal-safe thing: it sets the flag. */
static inline void queue_checkpoint_on_signal_(int signo) {
  (void)signo;
  queue_checkpoint_pending_ = 1;
}

/* A signal given as a number ("12") or a name ("USR2", "SIGUSR2"); 0 if
 * neither. Names because a queue's `checkpointsignal` is written as one. */
static inline int queue_checkpoint_parse_signal_(const char* text) {
  static const struct {
    const char* name;
    int signo;
  } names[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
               {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"ALRM", SIGALRM}, {"XCPU", SIGXCPU}};
  char* end = NULL;
  long number;
  size_t i;
  if (text[0] >= '0' && text[0] <= '9') {
    errno = 0;
    number = strtol(text, &end, 10);
    return (errno == 0 && *end == '\0' && number > 0 && number < 256) ? (int)number : 0;
  }
  if (strncmp(text, "SIG", 3) == 0) text += 3;
  for (i = 0; i < sizeof names / sizeof names[0]; ++i)
    if (strcmp(text, names[i].name) == 0) return names[i].signo;
  return 0;
}

/* Installs the checkpoint handler for QUEUE_CHECKPOINT_SIGNAL (a number or a
 * name) if that is set and not empty, else for SIGUSR2. Call it first thing in
 * main: until then the signal's default action (termination) applies. The
 * handler uses SA_RESTART, so blocking reads and writes are not cut short;
 * sleeps still end early. Returns 0, or -1 with errno (EINVAL for a bad
 * QUEUE_CHECKPOINT_SIGNAL, in which case no handler is installed). */
static inline int queue_checkpoint_init(void) {
  const char* configured = getenv("QUEUE_CHECKPOINT_SIGNAL");
  int signo = SIGUSR2;
  struct sigaction action;
  if (configured != NULL && configured[0] != '\0') {
    signo = queue_checkpoint_parse_signal_(configured);
    if (signo == 0) {
      errno = EINVAL;
      return -1;
    }
  }
  memset(&action, 0, sizeof action);
  action.sa_handler = queue_checkpoint_on_signal_;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  if (sigaction(signo, &action, NULL) != 0) return -1;
  queue_checkpoint_signo_ = signo;
  return 0;
}

/* The signal queue_checkpoint_init() listens to; 0 before it succeeded. */
static inline int queue_checkpoint_signal(void) { return queue_checkpoint_signo_; }

/* True once the checkpoint signal has arrived (and stays true). */
static inline int queue_checkpoint_requested(void) { return queue_checkpoint_pending_ != 0; }

/* QUEUE_RESTART_FILE if set and not empty, else QUEUE_RESTART_FILE_FALLBACK.
 * The pointer stays valid until the environment changes. */
static inline const char* queue_restart_file(void) {
  const char* path = getenv("QUEUE_RESTART_FILE");
  return (path != NULL && path[0] != '\0') ? path : QUEUE_RESTART_FILE_FALLBACK;
}

/* How many times Queue restarted this job: QUEUE_RESTART_COUNT, 0 when it is
 * absent or not a plain decimal number, UINT_MAX when it is too large. */
static inline unsigned queue_restart_count(void) {
  const char* text = getenv("QUEUE_RESTART_COUNT");
  char* end = NULL;
  unsigned long count;
  if (text == NULL || text[0] < '0' || text[0] > '9') return 0;
  errno = 0;
  count = strtoul(text, &end, 10);
  if (*end != '\0') return 0;
  if (errno == ERANGE || count > UINT_MAX) return UINT_MAX;
  return (unsigned)count;
}

/* True when this run is a restart: RESTARTED=1 or QUEUE_RESTART_COUNT > 0.
 * (The queue's `restartflag` is in argv; only the program can look for it.) */
static inline int queue_restarted(void) {
  const char* restarted = getenv("RESTARTED");
  if (restarted != NULL && strcmp(restarted, "1") == 0) return 1;
  return queue_restart_count() > 0;
}

/* Writes all of data to fd, through short writes and EINTR. */
static inline int queue_write_fully_(int fd, const void* data, size_t size) {
  const char* next = (const char*)data;
  while (size > 0) {
    ssize_t written = write(fd, next, size);
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) return -1;
    next += written;
    size -= (size_t)written;
  }
  return 0;
}

/* Makes a rename in path's directory durable, as far as it can: a directory
 * the job may write but not read cannot be opened, and some filesystems cannot
 * fsync one (EINVAL). The file itself is on disk by then, so neither is an
 * error; only a failed fsync (EIO) is. */
static inline int queue_sync_parent_directory_(const char* path) {
  const char* slash = strrchr(path, '/');
  char* directory;
  int fd, result;
  if (slash == NULL) {
    directory = (char*)malloc(2);
    if (directory == NULL) return -1;
    memcpy(directory, ".", 2);
  } else {
    size_t length = slash == path ? 1 : (size_t)(slash - path);
    directory = (char*)malloc(length + 1);
    if (directory == NULL) return -1;
    memcpy(directory, path, length);
    directory[length] = '\0';
  }
  fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(directory);
  if (fd < 0) return 0;
  result = fsync(fd);
  if (result != 0 && errno == EINVAL) result = 0;
  close(fd);
  return result;
}

/* Replaces path with size bytes of data so that a reader (or a crash) sees
 * either the old file or the whole new one, never a mix: writes a temporary
 * file beside path (mode 0600), fsyncs it, renames it over path and fsyncs the
 * directory. Returns 0, or -1 with errno set (no temporary file is left). */
static inline int queue_save_atomically(const char* path, const void* data, size_t size) {
  static const char suffix[] = ".XXXXXX";
  size_t length = strlen(path);
  char* temporary = (char*)malloc(length + sizeof suffix);
  int fd, saved_errno;
  if (temporary == NULL) return -1;
  memcpy(temporary, path, length);
  memcpy(temporary + length, suffix, sizeof suffix);
  fd = mkstemp(temporary);
  if (fd < 0) {
    saved_errno = errno;
    free(temporary);
    errno = saved_errno;
    return -1;
  }
  if (queue_write_fully_(fd, data, size) != 0 || fsync(fd) != 0) {
    saved_errno = errno;
    close(fd);
    goto fail;
  }
  if (close(fd) != 0 || rename(temporary, path) != 0) {
    saved_errno = errno;
    goto fail;
  }
  free(temporary);
  return queue_sync_parent_directory_(path);
fail:
  unlink(temporary);
  free(temporary);
  errno = saved_errno;
  return -1;
}

#ifdef __cplusplus
}
#endif

#endif /* QUEUE_CHECKPOINT_H_ */
