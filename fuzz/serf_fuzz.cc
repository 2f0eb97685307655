// libFuzzer target: arbitrary bytes as what a Serf agent sends on its RPC
// connection (cluster/serf_rpc's ReplyReader). The first byte says which of
// seqs 0-3 answer what (none, members, a stream); the rest is fed in two
// pieces cut where the second byte says. Nothing may crash, hang, read out
// of bounds or allocate beyond the reader's bounds (libFuzzer's -rss_limit_mb).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cluster/serf_rpc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace queue::cluster::serf;
  if (size < 2) return 0;
  ReplyReader reader;
  for (uint64_t seq = 0; seq < 4; ++seq) reader.Expect(seq, static_cast<Body>((data[0] >> (2 * seq)) % 3));
  const std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);
  const size_t cut = data[1] % (input.size() + 1);
  for (std::string_view piece : {input.substr(0, cut), input.substr(cut)}) {
    if (!reader.Feed(piece).ok()) return 0;
    for (;;) {
      auto next = reader.Next();
      if (!next.ok() || !next->has_value()) break;
      for (const Member& m : (*next)->members)
        if (m.name.empty() || m.name.size() > ReplyReader::kMaxText) __builtin_trap();
    }
  }
  return 0;
}
