// ConnectionTable: the local clients connected to queued's Unix socket, by
// uid, and the caps that keep one user from taking what others need: how many
// connections one uid may hold, how many all uids together may hold (below
// the descriptor limit, so that shepherds, peers and the spool keep theirs),
// the last few of those kept for a uid that holds none yet (another user can
// still ask while one floods), and the memory one uid's connections may make
// the daemon hold (a ByteBudget its channels share). Pure bookkeeping: no
// sockets, so it is unit-tested alone. Not thread-safe (the event loop's).
//
// Lifetime: a Slot is held by its connection (its close handler) and gives
// its place back when destroyed; it keeps the table alive, so a connection
// may outlive the service that admitted it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "wire/byte_budget.h"

namespace queue::daemon {

struct ConnectionCaps {
  size_t total = 512;        // every local connection
  size_t per_uid = 128;      // one uid's
  size_t reserve = 32;       // the last of `total`, for a uid that holds none
  size_t uid_memory = 32 << 20;  // bytes buffered for one uid's connections

  // Caps for a process allowed `nofile` descriptors: a quarter of them for
  // local clients, a quarter of that for one user.
  static ConnectionCaps ForDescriptorLimit(uint64_t nofile);
};

class ConnectionTable : public std::enable_shared_from_this<ConnectionTable> {
 public:
  // One admitted connection's place; released when destroyed.
  class Slot {
   public:
    Slot(std::shared_ptr<ConnectionTable> table, uint32_t uid) : table_(std::move(table)), uid_(uid) {}
    ~Slot() { table_->Release(uid_); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    std::shared_ptr<ConnectionTable> table_;
    uint32_t uid_;
  };

  struct Admission {
    std::shared_ptr<Slot> slot;                  // null when refused
    std::shared_ptr<wire::ByteBudget> budget;    // the uid's, shared by its connections
    std::string refusal;                         // why, when refused
  };

  static std::shared_ptr<ConnectionTable> Create(ConnectionCaps caps) {
    return std::shared_ptr<ConnectionTable>(new ConnectionTable(caps));
  }

  Admission Admit(uint32_t uid);

  size_t total() const { return total_; }
  size_t of(uint32_t uid) const;
  const ConnectionCaps& caps() const { return caps_; }

 private:
  explicit ConnectionTable(ConnectionCaps caps) : caps_(caps) {}
  void Release(uint32_t uid);

  struct Usage {
    size_t connections = 0;
    std::shared_ptr<wire::ByteBudget> budget;
  };
  ConnectionCaps caps_;
  size_t total_ = 0;
  std::map<uint32_t, Usage> users_;
};

}  // namespace queue::daemon
