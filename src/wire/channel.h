// Channel<Stream>: asynchronous frame I/O over any Asio stream (a Unix socket,
// a TCP socket, or a TLS stream over one). One read loop delivers each frame to
// a handler; writes are queued and sent in order. Not thread-safe: it lives on
// the single event loop of its process.
//
// Memory: a frame's payload is allocated as its bytes arrive (kReadChunk at a
// time), never from the length its header announces, so a header alone costs
// nothing. ChannelLimits bound what one connection may make its process hold:
// the largest frame it may send, the replies queued for it, and a ByteBudget
// shared with other connections (every connection of one local user). Past a
// bound the connection is closed, with the reason given to on_close.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <asio.hpp>

#include "wire/byte_budget.h"
#include "wire/frame.h"

namespace queue::wire {

// Bytes read at a time into a frame's payload: what a header announces is
// allocated only as the bytes come.
inline constexpr size_t kReadChunk = 64 * 1024;

struct ChannelLimits {
  size_t max_frame = kMaxFrameBytes;  // payload bytes of one incoming frame
  size_t max_outbox = SIZE_MAX;       // bytes queued to send and not yet written
  // Charged for payload bytes read and not yet handled, and for bytes queued
  // to send; shared by the connections it is given to. Null: none.
  std::shared_ptr<ByteBudget> budget;
};

template <class Stream>
class Channel : public std::enable_shared_from_this<Channel<Stream>> {
 public:
  using FrameHandler = std::function<void(MessageType, std::string_view payload)>;
  using CloseHandler = std::function<void(const std::string& reason)>;

  explicit Channel(Stream stream) : stream_(std::move(stream)) {}
  ~Channel() {
    if (limits_.budget) limits_.budget->Release(held_);
  }

  Stream& stream() { return stream_; }

  // REQUIRES: before Start().
  void SetLimits(ChannelLimits limits) { limits_ = std::move(limits); }

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

  // A frame that would take the queue past max_outbox, or the budget past its
  // limit, is dropped and the connection closed (from the loop, not from
  // inside the caller's stack): its other end does not read what it asks for.
  void SendFrame(std::string frame) {
    if (closed_ || closing_) return;
    if (pending_bytes_ + frame.size() > limits_.max_outbox)
      return CloseSoon("more than " + std::to_string(limits_.max_outbox) +
                       " bytes of messages wait to be sent: the other end does not read them");
    if (!Charge(frame.size())) return;
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
    if (header->payload_bytes > limits_.max_frame)
      return Close("a frame of " + std::to_string(header->payload_bytes) + " bytes exceeds this connection's limit of " +
                   std::to_string(limits_.max_frame));
    type_ = header->type;
    expected_ = header->payload_bytes;
    payload_.clear();
    ReadChunk();
  }

  // The next piece of the payload, allocated (and charged) only now.
  void ReadChunk() {
    if (payload_.size() == expected_) return Deliver();
    size_t offset = payload_.size();
    size_t n = std::min(kReadChunk, expected_ - offset);
    if (!Charge(n)) return;
    payload_.resize(offset + n);
    auto self = this->shared_from_this();
    asio::async_read(stream_, asio::buffer(payload_.data() + offset, n), [self](const asio::error_code& ec, size_t) {
      if (ec) return self->Close(ec == asio::error::eof ? "peer closed mid-frame" : ec.message());
      self->ReadChunk();
    });
  }

  void Deliver() {
    auto self = this->shared_from_this();  // the handler may drop the last owner
    if (on_frame_) on_frame_(type_, payload_);
    Uncharge(payload_.size());
    // A large frame's buffer is not kept for the connection's life.
    if (payload_.capacity() > kReadChunk) std::string().swap(payload_);
    payload_.clear();
    ReadHeader();
  }

  // Takes bytes from the budget; when it is spent, closes the connection.
  bool Charge(size_t bytes) {
    if (limits_.budget && !limits_.budget->Charge(bytes)) {
      CloseSoon("the " + std::to_string(limits_.budget->limit()) + " bytes of memory allowed for " +
                limits_.budget->owner() + " are in use");
      return false;
    }
    held_ += bytes;
    return true;
  }
  void Uncharge(size_t bytes) {
    bytes = std::min(bytes, held_);
    held_ -= bytes;
    if (limits_.budget) limits_.budget->Release(bytes);
  }

  void CloseSoon(std::string reason) {
    if (closing_ || closed_) return;
    closing_ = true;
    auto self = this->shared_from_this();
    asio::post(stream_.get_executor(), [self, reason = std::move(reason)] { self->Close(reason); });
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
                        self->Uncharge(self->outbox_.front().size());
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
  size_t expected_ = 0;  // the payload's size, as its header says
  ChannelLimits limits_;
  size_t held_ = 0;  // bytes charged to limits_.budget and not yet released
  std::deque<std::string> outbox_;
  std::vector<std::function<void()>> drained_;
  size_t pending_bytes_ = 0;
  bool writing_ = false;
  bool closed_ = false;
  bool closing_ = false;  // a close is posted
  bool paused_ = false;
  bool parked_ = false;
};

}  // namespace queue::wire
