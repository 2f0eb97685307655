// libFuzzer target: arbitrary bytes as a stream of frames and as the payload of
// every message type. Nothing may crash, hang or read out of bounds; what
// decodes must re-encode to bytes that decode again to the same encoding
// (decoders accept exactly what encoders can produce, up to normalisation).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "wire/frame.h"
#include "wire/messages.h"

namespace {

using namespace queue::wire;

template <class M>
void CheckDecode(std::string_view payload) {
  auto message = DecodePayload<M>(payload);
  if (!message.ok()) return;
  const std::string once = EncodePayload(*message);
  auto again = DecodePayload<M>(once);
  if (!again.ok() || EncodePayload(*again) != once) std::abort();
}

template <class... M>
void DecodeAs(MessageType type, std::string_view payload) {
  ((type == M::kType ? CheckDecode<M>(payload) : void()), ...);
}

template <class... M>
void DecodeAsEvery(std::string_view payload) {
  (CheckDecode<M>(payload), ...);
}

// Every message of messages.h; keep in step with MessageType.
#define QUEUE_ALL_MESSAGES                                                                       \
  Hello, ErrorReply, SubmitRequest, SubmitReply, BulkSubmitRequest, BulkSubmitReply, StatusRequest, StatusReply, LoadReport, PlaceJob, \
      PlaceReply, JobEnded, JobEndedAck, JobOutput, OutputRequest, OutputReply, BundleChunk, MigrateRequest, MigrateJob, ForwardRequest, ForwardReply, CancelJob, JobsRequest, CancelRequest, ShepherdStart, ShepherdEvent, ShepherdControl, Attach, StreamData, StreamEof, StreamClosed, \
      Signal, WindowSize, JobStatus, Notice, TransferProgress, LoadQuery, LoadAnswer

void SplitFrames(std::string_view input) {
  // The first byte picks where the stream is cut in two, so that frames
  // straddling a read boundary are exercised too.
  const size_t cut = input.empty() ? 0 : static_cast<uint8_t>(input[0]) % (input.size() + 1);
  FrameSplitter splitter;
  size_t frames = 0;
  auto drain = [&] {
    for (;;) {
      auto next = splitter.Next();
      if (!next.ok() || !next->has_value()) return next.ok();
      ++frames;
      DecodeAs<QUEUE_ALL_MESSAGES>((*next)->type, (*next)->payload);
    }
  };
  if (!drain()) return;
  splitter.Feed(input.substr(0, cut));
  if (!drain()) return;
  splitter.Feed(input.substr(cut));
  drain();
  // Each frame consumes at least its 6-byte header.
  if (frames > input.size() / kFrameHeaderBytes) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  SplitFrames(input);
  DecodeAsEvery<QUEUE_ALL_MESSAGES>(input);
  if (size >= kFrameHeaderBytes) (void)ParseFrameHeader(input.substr(0, kFrameHeaderBytes));
  return 0;
}
