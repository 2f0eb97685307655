// SpoolReserve: the room the spool keeps for the records of jobs already
// running. A batch job's output grows in the spool as it runs and can fill
// the file system; the record of its end (and of every other job's) must
// still be written, or the job never ends: its end is owed to its submit
// host until committed, and its output stays in the spool until then.
//
// The room is inside the job store's own files (JobStore::KeepRoom): free
// pages in the database, which SQLite gives to records before it grows the
// file, and a WAL file that is written over rather than grown. No other
// process can write into them, so the room is there when a record needs it.
// (It used to be a file of its own, deleted when a commit found the file
// system full: the running jobs' outputs took the blocks it gave back before
// the commit tried again, and ends could not be recorded at all.)
//
// It is used up only by records, as they need new pages, and made again
// once the file system has room for it twice over: the daemon checks on every
// heartbeat. It says in the log when it runs short with no room to make it
// again, and when it is made again.
//
// Thread-safety: none; the daemon's event loop, like the store.
#pragma once

#include <cstdint>
#include <string>

#include "spool/job_store.h"

namespace queue::spool {

class SpoolReserve {
 public:
  // `dir` is the spool, on the store's file system; `bytes` the room kept,
  // at least twice kCheckpointBytes (so the WAL is written over). Removes
  // the file an older queued kept its room in.
  SpoolReserve(JobStore& store, std::string dir, uint64_t bytes);

  // Whether the store holds the room: all of it as WAL, and at least half of
  // it still in free pages (made again from there, not after every page
  // that a record takes). Cheap: two pragmas and a stat.
  bool Held();
  // Makes the room when it is not held and the file system has room for it
  // twice over; true when it is held. Makes nothing while a transaction is
  // open in the store (the daemon commits its open batch first).
  bool Keep();

 private:
  // Says `text` in the log, unless a shortage for the same `reason` was
  // said last and the room has not been held since.
  void SayShort(const std::string& reason, const std::string& text);
  // The room is held: says so if a shortage was said. True.
  bool Kept();

  JobStore& store_;
  std::string dir_;
  uint64_t bytes_;
  StoreRoom room_;     // as Held() last found it
  std::string said_;  // the reason of the shortage last said; "" while held
};

}  // namespace queue::spool
