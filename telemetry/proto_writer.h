// A minimal protobuf wire-format encoder into caller-provided memory, so the
// allocator can write its recordings without libprotobuf and without the
// heap it describes. Nested messages are encoded into their own writer and
// appended with Message().
#ifndef NITROHEAP_TELEMETRY_PROTO_WRITER_H_
#define NITROHEAP_TELEMETRY_PROTO_WRITER_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace nitro::telemetry {

class ProtoWriter {
 public:
  ProtoWriter(char* buf, size_t cap) : buf_(buf), cap_(cap) {}

  void Varint(uint64_t v) {
    while (v >= 0x80) {
      Byte(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    Byte(static_cast<char>(v));
  }
  void Tag(int field, int wire_type) { Varint(static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire_type)); }
  // proto3 scalars: a zero value is simply not written.
  void U64(int field, uint64_t v) {
    if (v == 0) return;
    Tag(field, 0);
    Varint(v);
  }
  void I64(int field, int64_t v) { U64(field, static_cast<uint64_t>(v)); }
  void Bool(int field, bool v) { U64(field, v ? 1 : 0); }
  void Bytes(int field, const void* data, size_t len) {
    Tag(field, 2);
    Varint(len);
    Raw(data, len);
  }
  void String(int field, const char* s) {
    if (s != nullptr && *s) Bytes(field, s, strlen(s));
  }
  // A string that must be present even when empty (pprof's string_table[0]).
  void StringAlways(int field, const char* s) { Bytes(field, s, strlen(s)); }
  void Message(int field, const ProtoWriter& m) { Bytes(field, m.buf_, m.pos_); }
  // Packed repeated varints.
  void Packed(int field, const uint64_t* v, size_t n) {
    if (n == 0) return;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += VarintSize(v[i]);
    Tag(field, 2);
    Varint(len);
    for (size_t i = 0; i < n; i++) Varint(v[i]);
  }

  size_t size() const { return pos_; }
  bool overflowed() const { return overflow_; }
  const char* data() const { return buf_; }
  void Reset() { pos_ = 0; overflow_ = false; }

 private:
  static size_t VarintSize(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
      v >>= 7;
      n++;
    }
    return n;
  }
  void Byte(char c) {
    if (pos_ < cap_) buf_[pos_++] = c; else overflow_ = true;
  }
  void Raw(const void* data, size_t len) {
    if (pos_ + len > cap_) {
      overflow_ = true;
      return;
    }
    memcpy(buf_ + pos_, data, len);
    pos_ += len;
  }

  char* buf_;
  size_t cap_;
  size_t pos_ = 0;
  bool overflow_ = false;
};

}  // namespace nitro::telemetry

#endif  // NITROHEAP_TELEMETRY_PROTO_WRITER_H_
