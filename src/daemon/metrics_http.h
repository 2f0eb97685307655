// MetricsHttp: `queued --metrics ADDR:PORT`, the HTTP endpoint a Prometheus
// scrapes. It owns the listening socket and a libmicrohttpd daemon.
//
// Why libmicrohttpd and not an HTTP responder of our own on the event loop:
// request parsing is the part of HTTP that goes wrong (and would need its own
// fuzz target); libmicrohttpd is a Debian library whose parser is fuzzed and
// maintained, and it already bounds what we need bounded (below).
//
// Threads: libmicrohttpd runs one thread of its own (internal polling, epoll
// or poll, so descriptors past 1,024 work). That thread touches nothing of the
// daemon but the `Render` function it was given, which (RenderOnLoop) posts
// the rendering onto the daemon's event loop and waits for the text, at most
// a timeout; everything the metrics read stays on the loop.
//
// Bounds (SECURITY.md): only GET or HEAD of /metrics (and / with a link), 404
// otherwise; at most 16 connections, 4 per client address; 10 s idle
// timeout; 16 KiB per connection for the request (longer headers get 431);
// answers are rendered one at a time, each waits at most 2 s for the loop.
// The socket listens on loopback unless an address is given.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <asio.hpp>

#include "daemon/metrics.h"
#include "util/result.h"

struct MHD_Daemon;

namespace queue::daemon {

struct MetricsAddress {
  std::string host;  // an IPv4 or IPv6 address
  uint16_t port = 0;
};

// "PORT" (loopback, 127.0.0.1), "ADDR:PORT" or "[IPV6]:PORT".
Result<MetricsAddress> ParseMetricsAddress(const std::string& text);

class MetricsHttp {
 public:
  // The text for one scrape in `format`, or nullopt when it could not be had in time.
  using Render = std::function<std::optional<std::string>(MetricsFormat format)>;

  // Binds and listens (so that a taken port fails at start, before queued
  // leaves the terminal); serves nothing until Start.
  static Result<std::unique_ptr<MetricsHttp>> Listen(const std::string& address);
  ~MetricsHttp();  // stops the thread (after the scrape it is serving), closes the socket

  // Starts serving on libmicrohttpd's thread. Call after any fork().
  Status Start(Render render);

  // Where it listens, "ADDR:PORT" (the port the kernel chose for port 0).
  const std::string& address() const { return address_; }

 private:
  MetricsHttp(int fd, std::string address) : fd_(fd), address_(std::move(address)) {}

  int fd_;
  std::string address_;
  Render render_;
  MHD_Daemon* daemon_ = nullptr;
};

// Runs `render` on `io`'s loop and returns its text, or nullopt when the loop
// has stopped or did not get to it within `timeout`. For other threads only:
// called on the loop itself it would wait out the timeout.
std::optional<std::string> RenderOnLoop(asio::io_context& io, std::function<std::string()> render,
                                        std::chrono::milliseconds timeout);

}  // namespace queue::daemon
