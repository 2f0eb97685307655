// Bounded binary codec: every byte Queue reads from a socket or a spool blob goes
// through Reader, which cannot read past its input and caps every length it is
// handed (OpenSSH's sshbuf, in our own words). Integers are big-endian.
//
// A Reader becomes failed at the first violation and stays failed; callers decode
// a whole message and check ok() once at the end, so decoders stay linear.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace queue::wire {

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  void u16(uint16_t v);
  void u32(uint32_t v);
  void u64(uint64_t v);
  void i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void f64(double v);
  void str(std::string_view s);  // u32 length + bytes
  void strings(const std::vector<std::string>& list);

  const std::string& data() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  uint8_t u8();
  bool boolean();
  uint16_t u16();
  uint32_t u32();
  uint64_t u64();
  int32_t i32() { return static_cast<int32_t>(u32()); }
  int64_t i64() { return static_cast<int64_t>(u64()); }
  double f64();
  // A string of at most max_len bytes; longer fails the reader.
  std::string str(size_t max_len);
  // At most max_count strings of at most max_len bytes each.
  std::vector<std::string> strings(size_t max_count, size_t max_len);
  // A count that the caller will loop over, capped at max_count.
  uint32_t count(uint32_t max_count);

  // Marks the reader failed with a reason (for semantic checks in decoders).
  void fail(std::string_view why);

  bool ok() const { return error_.empty(); }
  bool at_end() const { return pos_ == in_.size(); }
  const std::string& error() const { return error_; }

 private:
  bool need(size_t n);

  std::string_view in_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace queue::wire
