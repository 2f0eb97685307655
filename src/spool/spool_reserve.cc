// The spool's room for records: when to make it again, and what to say.
#include "spool/spool_reserve.h"

#include <unistd.h>

#include <cerrno>
#include <iostream>

#include "spool/spool_dir.h"

namespace queue::spool {

SpoolReserve::SpoolReserve(JobStore& store, std::string dir, uint64_t bytes)
    : store_(store), dir_(std::move(dir)), bytes_(bytes) {
  const std::string old_file = dir_ + "/.queued/reserve";
  if (::unlink(old_file.c_str()) != 0 && errno != ENOENT)
    std::cerr << "queued: spool: cannot remove " << old_file << ", where an older queued kept room for records: "
              << ErrnoText(errno) << "\n";
}

bool SpoolReserve::Held() {
  Result<StoreRoom> room = store_.Room();
  if (!room.ok()) {
    SayShort(room.message(), room.message());
    return false;
  }
  room_ = *room;
  return room->wal_bytes >= bytes_ && room->free_page_bytes >= bytes_ / 2;
}

bool SpoolReserve::Keep() {
  if (Held()) return Kept();
  if (store_.in_transaction()) return false;
  // Twice over: making it takes its size in the database and, the first
  // time, as much again in the WAL; the jobs writing into the spool should
  // not find it full because of it.
  auto free = FreeBytes(dir_);
  if (!free.ok()) {
    SayShort(free.message(), free.message());
    return false;
  }
  if (*free < 2 * bytes_) {
    // The free bytes change all the time: said once, when the shortage starts.
    SayShort("no room", "the room kept for job records is short (" + std::to_string(room_.free_page_bytes) +
                            " bytes of free pages and " + std::to_string(room_.wal_bytes) + " of WAL, for " +
                            std::to_string(bytes_) + " of each), and the file system has only " +
                            std::to_string(*free) + " bytes free, too few to make it again");
    return false;
  }
  if (Status kept = store_.KeepRoom(bytes_); !kept.ok()) {
    SayShort(kept.message(), kept.message());
    return false;
  }
  return Kept();
}

bool SpoolReserve::Kept() {
  if (!said_.empty()) std::cerr << "queued: spool: room for job records kept again\n";
  said_.clear();
  return true;
}

void SpoolReserve::SayShort(const std::string& reason, const std::string& text) {
  if (reason == said_) return;
  said_ = reason;
  std::cerr << "queued: spool: " << text << "\n";
}

}  // namespace queue::spool
