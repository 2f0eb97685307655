// Channel<Stream>: asynchronous frame I/O over any Asio stream (a Unix socket,
// a TCP socket, or a TLS stream over one). One read loop delivers each frame to
// a handler; writes are queued and sent in order. Not thread-safe: it lives on
// the single event loop of its process.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include <asio.hpp>

#include "wire/frame.h"

namespace queue::wire {

template <class Stream>
class Channel : public std::enable_shared_from_this<Channel<Stream>> {
 public:
  using FrameHandler = std::function<void(MessageType, std::string_view payload)>;
  using CloseHandler = std::function<void(const std::string& reason)>;

  explicit Channel(Stream stream) : stream_(std::move(stream)) {}

  Stream& stream() { return stream_; }

  // Starts the read loop. on_frame runs for each frame; on_close runs once,
  // when the peer closes, an I/O error occurs, a frame is malformed, or Close()
  // is called.
  void Start(FrameHandler on_frame, CloseHandler on_close) {
    on_frame_ = std::move(on_frame);
    on_close_ = std::move(on_close);
    ReadHeader();
  }

  // Pauses delivery of frames (backpressure); Resume() continues.
  void Pause() { paused_ = true; }
  void Resume() {
    if (!paused_) return;
    paused_ = false;
    if (parked_) {
      parked_ = false;
      ReadHeader();
    }
  }

  template <class M>
  void Send(const M& message) {
    SendFrame(MakeFrame(message));
  }

  void SendFrame(std::string frame) {
    if (closed_) return;
    pending_bytes_ += frame.size();
    outbox_.push_back(std::move(frame));
    if (!writing_) WriteNext();
  }

  // Bytes queued but not yet written, for senders that must bound memory.
  size_t pending_bytes() const { return pending_bytes_; }
  // Runs once the outbox drains (immediately if it is empty).
  void OnDrained(std::function<void()> callback) {
    if (outbox_.empty()) {
      callback();
      return;
    }
    drained_.push_back(std::move(callback));
  }

  void Close(const std::string& reason) {
    if (closed_) return;
    closed_ = true;
    asio::error_code ignored;
    lowest_layer().shutdown(asio::socket_base::shutdown_both, ignored);
    lowest_layer().close(ignored);
    if (on_close_) {
      auto handler = std::move(on_close_);
      on_close_ = nullptr;
      handler(reason);
    }
    on_frame_ = nullptr;
  }

  // Sends what is queued, then closes.
  void CloseAfterFlush(const std::string& reason) {
    auto self = this->shared_from_this();
    OnDrained([self, reason] { self->Close(reason); });
  }

  bool closed() const { return closed_; }

 private:
  auto& lowest_layer() {
    if constexpr (requires { stream_.lowest_layer(); })
      return stream_.lowest_layer();
    else
      return stream_;
  }

  void ReadHeader() {
    if (closed_) return;
    if (paused_) {
      parked_ = true;
      return;
    }
    auto self = this->shared_from_this();
    asio::async_read(stream_, asio::buffer(header_),
                     [self](const asio::error_code& ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(const asio::error_code& ec) {
    if (ec) return Close(ec == asio::error::eof ? "peer closed" : ec.message());
    auto header = ParseFrameHeader(std::string_view(header_.data(), header_.size()));
    if (!header.ok()) return Close(header.message());
    type_ = header->type;
    payload_.resize(header->payload_bytes);
    auto self = this->shared_from_this();
    asio::async_read(stream_, asio::buffer(payload_),
                     [self](const asio::error_code& ec2, size_t) { self->OnPayload(ec2); });
  }

  void OnPayload(const asio::error_code& ec) {
    if (ec) return Close(ec == asio::error::eof ? "peer closed mid-frame" : ec.message());
    auto self = this->shared_from_this();  // the handler may drop the last owner
    if (on_frame_) on_frame_(type_, payload_);
    ReadHeader();
  }

  void WriteNext() {
    if (outbox_.empty() || closed_) {
      writing_ = false;
      auto callbacks = std::move(drained_);
      drained_.clear();
      for (auto& cb : callbacks) cb();
      return;
    }
    writing_ = true;
    auto self = this->shared_from_this();
    asio::async_write(stream_, asio::buffer(outbox_.front()),
                      [self](const asio::error_code& ec, size_t) {
                        self->pending_bytes_ -= self->outbox_.front().size();
                        self->outbox_.pop_front();
                        if (ec) {
                          self->writing_ = false;
                          return self->Close(ec.message());
                        }
                        self->WriteNext();
                      });
  }

  Stream stream_;
  FrameHandler on_frame_;
  CloseHandler on_close_;
  std::array<char, kFrameHeaderBytes> header_{};
  MessageType type_ = MessageType::kHello;
  std::string payload_;
  std::deque<std::string> outbox_;
  std::vector<std::function<void()>> drained_;
  size_t pending_bytes_ = 0;
  bool writing_ = false;
  bool closed_ = false;
  bool paused_ = false;
  bool parked_ = false;
};

}  // namespace queue::wire
