// Frame header encoding and checking.
#include "wire/frame.h"

namespace queue::wire {

Result<FrameHeader> ParseFrameHeader(std::string_view header) {
  Reader r(header);
  uint32_t length = r.u32();
  uint16_t type = r.u16();
  if (!r.ok()) return Fail("truncated frame header");
  if (length < 2) return Fail("frame shorter than its header");
  if (length - 2 > kMaxFrameBytes)
    return Fail("frame of " + std::to_string(length) + " bytes exceeds the limit");
  return FrameHeader{length - 2, static_cast<MessageType>(type)};
}

std::string EncodeFrame(MessageType type, std::string_view payload) {
  Writer w;
  w.u32(static_cast<uint32_t>(payload.size() + 2));
  w.u16(static_cast<uint16_t>(type));
  std::string frame = w.take();
  frame.append(payload);
  return frame;
}

Result<std::optional<FrameSplitter::Frame>> FrameSplitter::Next() {
  if (buffer_.size() < kFrameHeaderBytes) return std::optional<Frame>{};
  auto header = ParseFrameHeader(std::string_view(buffer_).substr(0, kFrameHeaderBytes));
  if (!header.ok()) return header.error();
  size_t total = kFrameHeaderBytes + header->payload_bytes;
  if (buffer_.size() < total) return std::optional<Frame>{};
  Frame frame{header->type, buffer_.substr(kFrameHeaderBytes, header->payload_bytes)};
  buffer_.erase(0, total);
  return std::optional<Frame>(std::move(frame));
}

}  // namespace queue::wire
