// PackRestartFiles and UnpackRestartFiles: the parent checks what it can without
// touching the owner's files (paths, the bundle's validity), then a child acting as
// the owner does the file work (RunAsOwner). Paths below the job's cwd are always
// opened one directory at a time with O_NOFOLLOW, so no symbolic link below it is
// ever followed. Contents are copied by the kernel where it can
// (copy_file_range), otherwise through a small buffer: never whole in memory.
#include "migrate/restart_bundle.h"

#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <set>
#include <utility>

#include "migrate/owner_process.h"
#include "wire/codec.h"

namespace queue::migrate {

namespace {

// Long names are shortened in a temporary file's name, which must stay within
// NAME_MAX (255) with its prefix and suffix.
constexpr size_t kMaxTempBaseBytes = 200;
constexpr size_t kKernelCopyChunk = 8 << 20;
constexpr size_t kCopyBufferBytes = 1 << 20;

// A descriptor closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string DirName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string() : std::string(path.substr(0, slash));
}

std::string BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string RestartFile(std::string_view path) { return "restart file " + PrintablePath(path); }

// Opens the directory `name` inside `dir` without following a symbolic link
// (ELOOP); with `create`, makes it (mode 0700) if missing. -1 with errno on failure.
int OpenSubdirectory(int dir, const std::string& name, bool create) {
  constexpr int kFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  int sub = openat(dir, name.c_str(), kFlags);
  if (sub < 0 && errno == ENOENT && create) {
    if (mkdirat(dir, name.c_str(), 0700) == 0 || errno == EEXIST) sub = openat(dir, name.c_str(), kFlags);
  }
  if (sub >= 0 || errno != ENOTDIR) return sub;
  // O_DIRECTORY may win over O_NOFOLLOW (ENOTDIR): name a symbolic link as one.
  struct stat info {};
  bool link = fstatat(dir, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(info.st_mode);
  errno = link ? ELOOP : ENOTDIR;
  return -1;
}

// Opens directory `rel` (a checked bundle path, or "" for `root` itself) beneath
// `root`, one component at a time, never through a symbolic link (ELOOP); with
// `create`, makes the missing ones. -1 with errno on failure.
int OpenDirBeneath(int root, std::string_view rel, bool create) {
  int dir = fcntl(root, F_DUPFD_CLOEXEC, 0);
  for (size_t start = 0; dir >= 0 && !rel.empty() && start <= rel.size();) {
    size_t slash = std::min(rel.find('/', start), rel.size());
    int sub = OpenSubdirectory(dir, std::string(rel.substr(start, slash - start)), create);
    int err = errno;
    close(dir);
    errno = err;
    dir = sub;
    start = slash + 1;
  }
  return dir;
}

// Why a directory on a file's path could not be opened, for messages.
std::string DirectoryTrouble(int err) {
  if (err == ELOOP) return "a symbolic link is in the way";
  if (err == ENOTDIR) return "a file that is not a directory is in the way";
  return ErrnoText(err);
}

// ---- Copying ----

enum class CopySide { kNone, kSource, kDestination, kSourceEnded };

struct CopyOutcome {
  CopySide failed = CopySide::kNone;
  int error = 0;
};

CopyOutcome CopyThroughBuffer(int from, uint64_t from_offset, int to, uint64_t to_offset,
                              uint64_t length) {
  std::vector<char> buffer(std::min<uint64_t>(length, kCopyBufferBytes));
  while (length > 0) {
    size_t want = std::min<uint64_t>(length, buffer.size());
    ssize_t got = pread(from, buffer.data(), want, static_cast<off_t>(from_offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return {CopySide::kSource, errno};
    if (got == 0) return {CopySide::kSourceEnded, 0};
    for (ssize_t done = 0; done < got;) {
      ssize_t put = pwrite(to, buffer.data() + done, static_cast<size_t>(got - done),
                           static_cast<off_t>(to_offset));
      if (put < 0 && errno == EINTR) continue;
      if (put < 0) return {CopySide::kDestination, errno};
      done += put;
      to_offset += static_cast<uint64_t>(put);
    }
    from_offset += static_cast<uint64_t>(got);
    length -= static_cast<uint64_t>(got);
  }
  return {};
}

// Copies `length` bytes at explicit offsets (neither descriptor's own offset
// moves). The kernel copies while it can; whatever stops it (another file system,
// the source's end, an error) is retried through a buffer, which tells which side
// failed.
CopyOutcome CopyRange(int from, uint64_t from_offset, int to, uint64_t to_offset, uint64_t length) {
  while (length > 0) {
    loff_t in = static_cast<loff_t>(from_offset), out = static_cast<loff_t>(to_offset);
    ssize_t copied = copy_file_range(from, &in, to, &out, std::min<uint64_t>(length, kKernelCopyChunk), 0);
    if (copied < 0 && errno == EINTR) continue;
    if (copied <= 0) break;
    from_offset += static_cast<uint64_t>(copied);
    to_offset += static_cast<uint64_t>(copied);
    length -= static_cast<uint64_t>(copied);
  }
  return CopyThroughBuffer(from, from_offset, to, to_offset, length);
}

// ---- Checks the parent makes ----

Status CheckJobDirectory(const std::string& cwd) {
  if (cwd.empty() || cwd.front() != '/' || cwd.find('\0') != std::string::npos) {
    return Fail("restart files: the job's directory '" + PrintablePath(cwd) +
                "' is not an absolute path");
  }
  return Status::Ok();
}

// The patterns with trailing slashes dropped ("ckpt/" names the directory ckpt),
// each checked like a bundle path, so that none reaches outside the cwd.
Result<std::vector<std::string>> CheckPatterns(const std::vector<std::string>& patterns) {
  std::vector<std::string> checked;
  for (const std::string& pattern : patterns) {
    std::string trimmed = pattern;
    if (trimmed.starts_with('/')) {
      return Fail("restart file pattern " + PrintablePath(pattern) + ": the path is absolute");
    }
    while (trimmed.ends_with('/')) trimmed.pop_back();
    if (Status ok = CheckBundlePath(trimmed); !ok.ok()) {
      return Fail("restart file pattern " + PrintablePath(pattern) + ": " + ok.message());
    }
    checked.push_back(std::move(trimmed));
  }
  return checked;
}

Error OpenJobDirectoryFailed(const std::string& cwd, int err) {
  return Fail("restart files: cannot open the job's directory " + PrintablePath(cwd) + ": " +
              ErrnoText(err));
}

// ---- Packing, in the owner's child ----

// The regular files that the patterns name, each once, in the order found.
class FileCollector {
 public:
  explicit FileCollector(int root) : root_(root) {}

  Status AddPattern(const std::string& pattern) {
    if (pattern.find_first_of("*?[") == std::string::npos) return AddMatch(pattern);
    // Relative to the process's cwd, which the child has made the job's.
    glob_t matches{};
    int found = glob(pattern.c_str(), GLOB_ERR, nullptr, &matches);
    Status status = Status::Ok();
    if (found == GLOB_ABORTED) {
      status = Fail("restart file pattern " + PrintablePath(pattern) +
                    ": a directory it searches cannot be read");
    } else if (found == GLOB_NOSPACE) {
      status = Fail("restart file pattern " + PrintablePath(pattern) + ": out of memory");
    } else if (found == 0) {
      for (size_t i = 0; i < matches.gl_pathc && status.ok(); ++i) {
        std::string match = matches.gl_pathv[i];
        std::string base = BaseName(match);
        if (base == "." || base == "..") continue;  // ".*" matches them
        status = AddMatch(match);
      }
    }
    globfree(&matches);
    return status;
  }

  std::vector<std::string> files;
  std::vector<std::string> skipped;

 private:
  struct Listed {
    std::string name;
    mode_t type;
  };

  Status AddMatch(const std::string& path) {
    if (Status ok = CheckBundlePath(path); !ok.ok()) return Fail(RestartFile(path) + ": " + ok.message());
    Fd dir(OpenDirBeneath(root_, DirName(path), false));
    if (dir.get() < 0) {
      if (errno == ENOENT || errno == ENOTDIR) return Status::Ok();  // nothing there
      if (errno == ELOOP) return Skip(path);
      return Fail(RestartFile(path) + ": " + ErrnoText(errno));
    }
    struct stat info {};
    if (fstatat(dir.get(), BaseName(path).c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return Status::Ok();
      return Fail(RestartFile(path) + ": " + ErrnoText(errno));
    }
    if (S_ISDIR(info.st_mode)) return AddTree(path);
    if (S_ISREG(info.st_mode)) return AddFile(path);
    return Skip(path);
  }

  // Every file below `top`, depth first, each directory's entries by name.
  Status AddTree(const std::string& top) {
    std::vector<std::string> pending{top};
    while (!pending.empty()) {
      std::string dir = std::move(pending.back());
      pending.pop_back();
      Result<std::vector<Listed>> listed = List(dir);
      if (!listed) return listed.error();
      std::vector<std::string> subdirs;
      for (const Listed& entry : *listed) {
        std::string path = dir + "/" + entry.name;
        if (path.size() > kMaxBundlePathBytes) {
          return Fail(RestartFile(path) + ": the path is longer than " +
                      std::to_string(kMaxBundlePathBytes) + " bytes");
        }
        if (S_ISDIR(entry.type)) {
          subdirs.push_back(std::move(path));
          continue;
        }
        Status added = S_ISREG(entry.type) ? AddFile(path) : Skip(path);
        if (!added.ok()) return added;
      }
      pending.insert(pending.end(), subdirs.rbegin(), subdirs.rend());
    }
    return Status::Ok();
  }

  // The entries of directory `dir` with their types (symbolic links as links),
  // sorted by name. The directory is closed before its subdirectories are read, so
  // a deep tree holds no more than one descriptor open.
  Result<std::vector<Listed>> List(const std::string& dir) {
    int fd = OpenDirBeneath(root_, dir, false);
    if (fd < 0) return Fail(RestartFile(dir) + ": " + DirectoryTrouble(errno));
    DIR* stream = fdopendir(fd);
    if (stream == nullptr) {
      int err = errno;
      close(fd);
      return Fail(RestartFile(dir) + ": " + ErrnoText(err));
    }
    std::vector<Listed> listed;
    Status status = Status::Ok();
    for (;;) {
      errno = 0;
      const dirent* entry = readdir(stream);
      if (entry == nullptr) {
        if (errno != 0) status = Fail(RestartFile(dir) + ": " + ErrnoText(errno));
        break;
      }
      std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      struct stat info {};
      if (fstatat(dirfd(stream), name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // removed meanwhile
        status = Fail(RestartFile(dir + "/" + name) + ": " + ErrnoText(errno));
        break;
      }
      listed.push_back({std::move(name), info.st_mode & S_IFMT});
    }
    closedir(stream);
    if (!status.ok()) return Error{status.message()};
    std::sort(listed.begin(), listed.end(),
              [](const Listed& a, const Listed& b) { return a.name < b.name; });
    return listed;
  }

  Status AddFile(const std::string& path) {
    if (!seen_.insert(path).second) return Status::Ok();
    if (files.size() == kMaxBundleEntries) {
      return Fail("restart files: more than " + std::to_string(kMaxBundleEntries) +
                  " match, the most one bundle holds (at " + PrintablePath(path) + ")");
    }
    files.push_back(path);
    return Status::Ok();
  }

  Status Skip(const std::string& path) {
    if (seen_.insert(path).second && skipped.size() < kMaxSkippedNames) skipped.push_back(path);
    return Status::Ok();
  }

  int root_;
  std::set<std::string> seen_;
};

// Writes the bundle at explicit offsets from 0.
class BundleWriter {
 public:
  explicit BundleWriter(int fd) : fd_(fd) {}

  Status Put(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t put = pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(offset_));
      if (put < 0 && errno == EINTR) continue;
      if (put < 0) return CannotWrite(errno);
      bytes.remove_prefix(static_cast<size_t>(put));
      offset_ += static_cast<uint64_t>(put);
    }
    return Status::Ok();
  }

  // The entry of `path`, whose `size` bytes are read from `file`.
  Status PutFile(const std::string& path, uint32_t mode, int file, uint64_t size) {
    if (Status header = Put(EncodeEntryHeader(path, mode, size)); !header.ok()) return header;
    CopyOutcome copied = CopyRange(file, 0, fd_, offset_, size);
    switch (copied.failed) {
      case CopySide::kNone: break;
      case CopySide::kSource: return Fail(RestartFile(path) + ": " + ErrnoText(copied.error));
      case CopySide::kSourceEnded: return Fail(RestartFile(path) + ": it shrank while it was packed");
      case CopySide::kDestination: return CannotWrite(copied.error);
    }
    offset_ += size;
    return Status::Ok();
  }

 private:
  static Error CannotWrite(int err) { return Fail("cannot write the restart bundle: " + ErrnoText(err)); }

  int fd_;
  uint64_t offset_ = 0;
};

struct PackPlan {
  int bundle_fd = -1;
  std::string cwd;
  std::vector<std::string> patterns;
  int64_t since_ms = 0;
  BundleKind kind = BundleKind::kRestartFiles;
};

int64_t MtimeMs(const struct stat& info) {
  return static_cast<int64_t>(info.st_mtim.tv_sec) * 1000 + info.st_mtim.tv_nsec / 1'000'000;
}

Status PackFile(int root, const std::string& path, BundleWriter& writer, int64_t since_ms,
                PackResult& result) {
  Fd dir(OpenDirBeneath(root, DirName(path), false));
  if (dir.get() < 0) return Fail(RestartFile(path) + ": " + DirectoryTrouble(errno));
  // O_NONBLOCK: a FIFO swapped in meanwhile must not hang the open.
  Fd file(openat(dir.get(), BaseName(path).c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (file.get() < 0) return Fail(RestartFile(path) + ": " + ErrnoText(errno));
  struct stat info {};
  if (fstat(file.get(), &info) != 0) return Fail(RestartFile(path) + ": " + ErrnoText(errno));
  if (!S_ISREG(info.st_mode)) {
    return Fail(RestartFile(path) + ": it stopped being a regular file while it was packed");
  }
  auto size = static_cast<uint64_t>(info.st_size);
  if (Status put = writer.PutFile(path, info.st_mode & kBundleModeBits, file.get(), size); !put.ok()) {
    return put;
  }
  result.bytes += size;
  if (MtimeMs(info) >= since_ms) result.any_modified_since = true;
  result.names.push_back(path);
  return Status::Ok();
}

std::string EncodePackReport(const PackResult& result) {
  wire::Writer out;
  out.boolean(result.any_modified_since);
  out.u64(result.bytes);
  out.strings(result.names);
  out.strings(result.skipped);
  return out.take();
}

Result<PackResult> DecodePackReport(std::string_view report) {
  wire::Reader in(report);
  PackResult result;
  result.any_modified_since = in.boolean();
  result.bytes = in.u64();
  result.names = in.strings(kMaxBundleEntries, kMaxBundlePathBytes);
  result.skipped = in.strings(kMaxSkippedNames, kMaxBundlePathBytes);
  if (!in.ok() || !in.at_end()) {
    return Fail("packing the restart files: the process doing it sent a garbled report");
  }
  result.files = result.names.size();
  return result;
}

Result<std::string> PackAsOwner(const PackPlan& plan) {
  Fd root(open(plan.cwd.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0 || fchdir(root.get()) != 0) return OpenJobDirectoryFailed(plan.cwd, errno);
  FileCollector collector(root.get());
  for (const std::string& pattern : plan.patterns) {
    if (Status added = collector.AddPattern(pattern); !added.ok()) return Error{added.message()};
  }
  BundleWriter writer(plan.bundle_fd);
  PackResult result;
  result.skipped = std::move(collector.skipped);
  if (Status put = writer.Put(BundleMagic(plan.kind)); !put.ok()) return Error{put.message()};
  for (const std::string& path : collector.files) {
    if (Status packed = PackFile(root.get(), path, writer, plan.since_ms, result); !packed.ok()) {
      return Error{packed.message()};
    }
  }
  if (Status put = writer.Put(EncodeBundleEnd()); !put.ok()) return Error{put.message()};
  return EncodePackReport(result);
}

// ---- Unpacking, in the owner's child ----

struct UnpackPlan {
  int bundle_fd = -1;
  std::string cwd;
  std::vector<BundleEntry> entries;
};

std::string JoinPath(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

void RemoveAll(int root, const std::vector<std::string>& paths, size_t from = 0) {
  for (size_t i = from; i < paths.size(); ++i) unlinkat(root, paths[i].c_str(), 0);
}

// Writes `entry` to a fresh hidden file in its directory (made if missing), synced
// and with its mode; returns that file's path relative to `root`.
Result<std::string> WriteTemporary(int root, int bundle_fd, const BundleEntry& entry,
                                   const std::string& suffix) {
  const std::string& path = entry.path;
  std::string dir_path = DirName(path), base = BaseName(path);
  Fd dir(OpenDirBeneath(root, dir_path, true));
  if (dir.get() < 0) {
    return Fail(RestartFile(path) + ": cannot make its directory " + PrintablePath(dir_path) + ": " +
                DirectoryTrouble(errno));
  }
  struct stat existing {};
  if (fstatat(dir.get(), base.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(existing.st_mode)) {
    return Fail(RestartFile(path) + ": a directory is in its place");
  }
  std::string temp_name = "." + base.substr(0, kMaxTempBaseBytes) + suffix;
  Fd out(openat(dir.get(), temp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (out.get() < 0) return Fail(RestartFile(path) + ": " + ErrnoText(errno));
  std::string failure;
  CopyOutcome copied = CopyRange(bundle_fd, entry.data_offset, out.get(), 0, entry.size);
  if (copied.failed == CopySide::kSource) {
    failure = "cannot read the restart bundle: " + ErrnoText(copied.error);
  } else if (copied.failed == CopySide::kSourceEnded) {
    failure = "the restart bundle shrank while " + RestartFile(path) + " was written";
  } else if (copied.failed == CopySide::kDestination) {
    failure = RestartFile(path) + ": " + ErrnoText(copied.error) + " (while writing it)";
  } else if (fchmod(out.get(), entry.mode) != 0 || fsync(out.get()) != 0 || close(out.release()) != 0) {
    failure = RestartFile(path) + ": " + ErrnoText(errno) + " (while writing it to disk)";
  }
  if (!failure.empty()) {
    unlinkat(dir.get(), temp_name.c_str(), 0);
    return Fail(failure);
  }
  return JoinPath(dir_path, temp_name);
}

// So that the renames, and the directories made, survive a crash. Best effort:
// the files are in place.
void SyncDirectories(int root, const std::vector<BundleEntry>& entries) {
  std::set<std::string> dirs{""};
  for (const BundleEntry& entry : entries) {
    for (std::string dir = DirName(entry.path); !dir.empty(); dir = DirName(dir)) {
      if (!dirs.insert(dir).second) break;
    }
  }
  for (const std::string& dir : dirs) {
    Fd fd(OpenDirBeneath(root, dir, false));
    if (fd.get() >= 0) fsync(fd.get());
  }
}

Result<std::string> UnpackAsOwner(const UnpackPlan& plan) {
  umask(077);
  // No shared file system: the job's directory may not exist on this host yet.
  // The owner makes it (and what leads to it), with the owner's rights.
  std::error_code ignored;
  std::filesystem::create_directories(plan.cwd, ignored);
  Fd root(open(plan.cwd.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) return OpenJobDirectoryFailed(plan.cwd, errno);
  uint64_t nonce = 0;
  if (getrandom(&nonce, sizeof nonce, 0) != static_cast<ssize_t>(sizeof nonce)) {
    return Fail("restart files: could not draw temporary file names: " + ErrnoText(errno));
  }
  char nonce_text[24];
  std::snprintf(nonce_text, sizeof nonce_text, "%016llx", static_cast<unsigned long long>(nonce));
  std::vector<std::string> temporaries;
  for (size_t i = 0; i < plan.entries.size(); ++i) {
    std::string suffix = ".qrb-" + std::string(nonce_text) + "-" + std::to_string(i);
    Result<std::string> temp = WriteTemporary(root.get(), plan.bundle_fd, plan.entries[i], suffix);
    if (!temp) {
      RemoveAll(root.get(), temporaries);
      return temp.error();
    }
    temporaries.push_back(std::move(*temp));
  }
  for (size_t i = 0; i < plan.entries.size(); ++i) {
    const std::string& path = plan.entries[i].path;
    if (renameat(root.get(), temporaries[i].c_str(), root.get(), path.c_str()) != 0) {
      int err = errno;
      RemoveAll(root.get(), temporaries, i);
      return Fail(RestartFile(path) + ": " + ErrnoText(err) + " (while moving it into place)");
    }
  }
  SyncDirectories(root.get(), plan.entries);
  return std::string();
}

}  // namespace

Result<PackResult> PackRestartFiles(int bundle_fd, const std::string& cwd,
                                    const std::vector<std::string>& patterns,
                                    const spool::FileOwner& owner, int64_t since_ms, BundleKind kind) {
  if (Status ok = CheckJobDirectory(cwd); !ok.ok()) return Error{ok.message()};
  Result<std::vector<std::string>> checked = CheckPatterns(patterns);
  if (!checked) return checked.error();
  if (ftruncate(bundle_fd, 0) != 0) return Fail("cannot write the restart bundle: " + ErrnoText(errno));
  PackPlan plan{bundle_fd, cwd, std::move(*checked), since_ms, kind};
  Result<std::string> report = RunAsOwner(owner, {bundle_fd}, "packing the restart files in " + cwd,
                                          [&plan] { return PackAsOwner(plan); });
  if (!report) return report.error();
  return DecodePackReport(*report);
}

Status UnpackRestartFiles(int bundle_fd, const std::string& cwd, const spool::FileOwner& owner) {
  if (Status ok = CheckJobDirectory(cwd); !ok.ok()) return ok;
  Result<std::vector<BundleEntry>> entries = ScanBundle(bundle_fd);
  if (!entries) return entries.error();
  UnpackPlan plan{bundle_fd, cwd, std::move(*entries)};
  Result<std::string> done = RunAsOwner(owner, {bundle_fd}, "unpacking the restart files into " + cwd,
                                        [&plan] { return UnpackAsOwner(plan); });
  if (!done) return done.error();
  return Status::Ok();
}

}  // namespace queue::migrate
