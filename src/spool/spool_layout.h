// SpoolLayout: where each of a daemon's files lives under its spool root. The
// one place a spool path is spelled; every module asks it. Besides the queue
// directories (spool_dir.h) and the job store, the daemon's own files are in
// the private directory `.queued` (mode 0700):
//
//   jobs.db                        the job store (SQLite, WAL)
//   queued.log                     the log of a daemon that detached
//   exec side, jobs running here:
//   .queued/run/<id>.sock|.status  a shepherd's socket and its job's end
//   .queued/output/<id>.out        a batch job's output as it runs
//   .queued/bundle/<id>.qrb        its restart files, packed to leave
//   .queued/criu/<id>              its CRIU images (checkpointmode 1)
//   .queued/arriving/<origin>-<origin id>.qrb  restart files sent ahead of an offer
//   submit side, jobs submitted here:
//   .queued/incoming/<id>.out|.qrb an output or restart files on their way home
//   .queued/restart/<id>.qrb|.out  kept restart files and the output so far
//   .queued/held/<id>.out          an output its directory could not take yet
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace queue::spool {

class SpoolLayout {
 public:
  explicit SpoolLayout(std::string root) : root_(std::move(root)) {}

  const std::string& root() const { return root_; }
  std::string Database() const { return root_ + "/jobs.db"; }
  std::string Log() const { return root_ + "/queued.log"; }
  std::string Private() const { return root_ + "/.queued"; }
  // A large cluster's Serf agent (daemon/gossip_members): its keyring (0600),
  // what it knew (to rejoin after a restart) and its own log.
  std::string GossipKeyring() const { return Private() + "/serf.keyring"; }
  std::string GossipAgentConfig() const { return Private() + "/serf.json"; }  // its RPC key (0600)
  std::string GossipSnapshot() const { return Private() + "/serf.snapshot"; }
  std::string GossipLog() const { return root_ + "/serf.log"; }

  std::string RunDir() const { return Private() + "/run"; }
  std::string RunFile(uint64_t id, std::string_view suffix) const;  // ".sock", ".status"
  std::string OutputDir() const { return Private() + "/output"; }
  std::string Output(uint64_t id) const { return File(OutputDir(), id, ".out"); }
  std::string BundleDir() const { return Private() + "/bundle"; }
  std::string Bundle(uint64_t id) const { return File(BundleDir(), id, ".qrb"); }
  std::string CriuDir() const { return Private() + "/criu"; }
  std::string CriuImages(uint64_t id) const { return CriuDir() + "/" + std::to_string(id); }
  std::string ArrivingDir() const { return Private() + "/arriving"; }
  std::string Arriving(const std::string& origin, uint64_t origin_id) const;

  std::string IncomingDir() const { return Private() + "/incoming"; }
  std::string IncomingOutput(uint64_t id) const { return File(IncomingDir(), id, ".out"); }
  std::string IncomingBundle(uint64_t id) const { return File(IncomingDir(), id, ".qrb"); }
  std::string RestartDir() const { return Private() + "/restart"; }
  std::string RestartBundle(uint64_t id) const { return File(RestartDir(), id, ".qrb"); }
  std::string PartialOutput(uint64_t id) const { return File(RestartDir(), id, ".out"); }
  std::string HeldDir() const { return Private() + "/held"; }
  std::string HeldOutput(uint64_t id) const { return File(HeldDir(), id, ".out"); }

  // Every private directory, parents first: made (mode 0700) at start.
  std::vector<std::string> PrivateDirs() const;
  // Makes them; an error names the directory.
  Status MakePrivateDirs() const;

  // Whether `path` is a batch job's output file in some daemon's spool (a
  // CRIU image names the file the job wrote to on its old host).
  static bool IsBatchOutput(std::string_view path);

 private:
  static std::string File(const std::string& dir, uint64_t id, const char* suffix) {
    return dir + "/" + std::to_string(id) + suffix;
  }
  std::string root_;
};

}  // namespace queue::spool
