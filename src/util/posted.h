// Posted(io, f): a callable that, when called, runs `f` with its arguments
// from `io`'s event loop, never inside the caller's stack. For completions
// that would otherwise sometimes run inline (an answer known at once) and
// sometimes later (an answer that waits for a disk or a peer): a caller must
// never find its own state changed under it by its callback before the call
// that started the work has returned. Arguments are copied into the posted
// handler; a handler still queued when the loop is destroyed never runs.
#pragma once

#include <functional>
#include <utility>

#include <asio.hpp>

namespace queue::util {

template <class... Args>
std::function<void(Args...)> Posted(asio::io_context& io, std::function<void(Args...)> f) {
  return [&io, f = std::move(f)](Args... args) {
    asio::post(io, [f, ... args = std::move(args)]() mutable { f(std::move(args)...); });
  };
}

}  // namespace queue::util
