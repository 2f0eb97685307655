// Bounded big-endian encoding of integers, strings and lists.
#include "wire/codec.h"

#include <bit>
#include <cstring>

namespace queue::wire {

void Writer::u16(uint16_t v) {
  u8(static_cast<uint8_t>(v >> 8));
  u8(static_cast<uint8_t>(v));
}

void Writer::u32(uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) u8(static_cast<uint8_t>(v >> shift));
}

void Writer::u64(uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) u8(static_cast<uint8_t>(v >> shift));
}

void Writer::f64(double v) { u64(std::bit_cast<uint64_t>(v)); }

void Writer::str(std::string_view s) {
  u32(static_cast<uint32_t>(s.size()));
  out_.append(s);
}

void Writer::strings(const std::vector<std::string>& list) {
  u32(static_cast<uint32_t>(list.size()));
  for (const auto& s : list) str(s);
}

bool Reader::need(size_t n) {
  if (!ok()) return false;
  if (in_.size() - pos_ < n) {
    fail("truncated field");
    return false;
  }
  return true;
}

void Reader::fail(std::string_view why) {
  if (error_.empty()) error_ = std::string(why);
}

uint8_t Reader::u8() {
  if (!need(1)) return 0;
  return static_cast<uint8_t>(in_[pos_++]);
}

bool Reader::boolean() {
  uint8_t v = u8();
  if (v > 1) fail("boolean out of range");
  return v == 1;
}

uint16_t Reader::u16() {
  if (!need(2)) return 0;
  uint16_t v = static_cast<uint16_t>((static_cast<uint8_t>(in_[pos_]) << 8) |
                                     static_cast<uint8_t>(in_[pos_ + 1]));
  pos_ += 2;
  return v;
}

uint32_t Reader::u32() {
  if (!need(4)) return 0;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in_[pos_ + i]);
  pos_ += 4;
  return v;
}

uint64_t Reader::u64() {
  if (!need(8)) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in_[pos_ + i]);
  pos_ += 8;
  return v;
}

double Reader::f64() { return std::bit_cast<double>(u64()); }

std::string Reader::str(size_t max_len) {
  uint32_t len = u32();
  if (!ok()) return {};
  if (len > max_len) {
    fail("string longer than its bound");
    return {};
  }
  if (!need(len)) return {};
  std::string s(in_.substr(pos_, len));
  pos_ += len;
  return s;
}

uint32_t Reader::count(uint32_t max_count) {
  uint32_t n = u32();
  if (ok() && n > max_count) {
    fail("list longer than its bound");
    return 0;
  }
  return n;
}

std::vector<std::string> Reader::strings(size_t max_count, size_t max_len) {
  uint32_t n = count(static_cast<uint32_t>(max_count));
  std::vector<std::string> list;
  for (uint32_t i = 0; i < n && ok(); ++i) list.push_back(str(max_len));
  return list;
}

}  // namespace queue::wire
