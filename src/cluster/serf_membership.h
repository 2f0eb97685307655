// The members of a large cluster as this host's Serf agent sees them: a
// connection to the agent's RPC (handshake, the member list, then a
// subscription to member events), the list kept up to date from the events,
// and a callback for each member whose state changed. When the agent goes
// away (SerfAgent starts it again) the connection is made again every
// second, and the list, while it is down, is the last one known.
//
// Lifetime: every completion runs on the event loop and holds a weak
// reference only; after Stop, or once destroyed, no callback is called.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <asio.hpp>

#include "cluster/serf_rpc.h"
#include "util/result.h"

namespace queue::cluster {

class SerfMembership : public std::enable_shared_from_this<SerfMembership> {
 public:
  using OnChange = std::function<void(const serf::Member& now)>;

  // `rpc`: the agent's RPC address, "IP:PORT"; `rpc_key`: the key its config
  // asks of RPC clients ("" for an agent that asks none).
  static std::shared_ptr<SerfMembership> Create(asio::io_context& io, std::string rpc, std::string rpc_key = "");

  void Start(OnChange on_change);
  void Stop();

  const std::map<std::string, serf::Member>& members() const { return members_; }
  size_t CountIn(serf::MemberStatus status) const;
  bool connected() const { return connected_; }

  // Asks the agent to join the gossip of the hosts at `addresses`; `done`
  // runs on the loop, with the agent's error if any.
  void Join(std::vector<std::string> addresses, std::function<void(Status)> done);

 private:
  SerfMembership(asio::io_context& io, std::string rpc, std::string rpc_key);
  void Connect();
  void OnConnected();
  void Read();
  void Send(std::string bytes);
  void WriteNext();
  void OnReply(serf::Reply reply);
  void Update(const serf::Member& member);
  void Drop(const std::string& why);

  asio::io_context& io_;
  std::string rpc_;
  std::string rpc_key_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer retry_;
  std::unique_ptr<serf::ReplyReader> reader_;  // new for each connection
  std::array<char, 64 * 1024> buffer_{};
  std::deque<std::string> outbox_;
  bool writing_ = false, connected_ = false, stopped_ = true;
  uint64_t next_seq_ = 0, members_seq_ = 0, stream_seq_ = 0, handshake_seq_ = 0, auth_seq_ = 0;
  std::map<uint64_t, std::function<void(Status)>> pending_;
  std::map<std::string, serf::Member> members_;
  OnChange on_change_;
  std::string last_error_;
};

}  // namespace queue::cluster
