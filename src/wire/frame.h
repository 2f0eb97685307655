// Frames: the length-prefixed envelope of every message.
//
//   u32 length (of what follows) | u16 message type | payload
//
// A frame larger than kMaxFrameBytes, or shorter than its header, is a protocol
// violation: the connection that sent it is closed, nothing else is affected.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "util/result.h"
#include "wire/messages.h"

namespace queue::wire {

inline constexpr size_t kFrameHeaderBytes = 6;
inline constexpr uint32_t kMaxFrameBytes = 16 * 1024 * 1024;

struct FrameHeader {
  uint32_t payload_bytes = 0;
  MessageType type = MessageType::kHello;
};

// Parses and checks a 6-byte header.
Result<FrameHeader> ParseFrameHeader(std::string_view header);

std::string EncodeFrame(MessageType type, std::string_view payload);

template <class M>
std::string MakeFrame(const M& message) {
  return EncodeFrame(M::kType, EncodePayload(message));
}

// Incremental splitter for a byte stream into frames, for blocking readers
// and fuzzing. Feed bytes; Next() yields complete frames in order.
class FrameSplitter {
 public:
  struct Frame {
    MessageType type;
    std::string payload;
  };
  void Feed(std::string_view bytes) { buffer_.append(bytes); }
  // A frame, nullopt when more bytes are needed, or an error for a bad header.
  Result<std::optional<Frame>> Next();

 private:
  std::string buffer_;
};

}  // namespace queue::wire
