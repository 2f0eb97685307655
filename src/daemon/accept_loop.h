// AcceptLoop: a listening socket's accept loop, one per listener. Each
// connection goes to the callback it was started with; a failed accept (out
// of descriptors, say: the connection waits in the backlog and the socket
// stays readable) pauses the loop as AcceptThrottle says and logs at most once
// an interval, instead of spinning a core.
//
// Lifetime: the loop refers to its acceptor, which must outlive it; Stop()
// (or closing the acceptor) ends it, and a pause pending then never resumes.
#pragma once

#include <functional>
#include <iostream>
#include <string>
#include <utility>

#include <asio.hpp>

#include "daemon/accept_throttle.h"

namespace queue::daemon {

template <class Acceptor>
class AcceptLoop {
 public:
  using Socket = typename Acceptor::protocol_type::socket;

  // `what` names the listener in the log ("the Unix socket /run/queue/queued.sock").
  AcceptLoop(Acceptor& acceptor, std::string what)
      : acceptor_(acceptor), retry_(acceptor.get_executor()), throttle_(std::move(what)) {}

  void Start(std::string what, std::function<void(Socket)> accepted) {
    throttle_ = AcceptThrottle(std::move(what));
    accepted_ = std::move(accepted);
    Next();
  }
  void Stop() {
    stopped_ = true;
    retry_.cancel();
  }

 private:
  void Next() {
    if (stopped_) return;
    acceptor_.async_accept([this](const asio::error_code& ec, Socket socket) {
      if (ec == asio::error::operation_aborted || stopped_) return;
      if (ec) {
        auto verdict = throttle_.Failed(ec.message(), AcceptThrottle::Clock::now());
        if (verdict.log) std::cerr << "queued: " << *verdict.log << "\n";
        retry_.expires_after(verdict.pause);
        return retry_.async_wait([this](const asio::error_code& e) {
          if (!e) Next();
        });
      }
      throttle_.Succeeded();
      accepted_(std::move(socket));
      Next();
    });
  }

  Acceptor& acceptor_;
  asio::steady_timer retry_;  // the pause after a failed accept
  AcceptThrottle throttle_;
  std::function<void(Socket)> accepted_;
  bool stopped_ = false;
};

}  // namespace queue::daemon
