#include "telemetry/gzip.h"

#include <string.h>

namespace nitro::telemetry {
namespace {

constexpr int kWindow = 1 << 15;
constexpr int kHashBits = 15;
constexpr int kMaxChain = 64;  // candidates tried per position: speed over the last few percent
constexpr int kMinMatch = 3;
constexpr int kMaxMatch = 258;

struct CrcTable {
  uint32_t v[256];
  constexpr CrcTable() : v() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      v[i] = c;
    }
  }
};
constexpr CrcTable kCrc;

constexpr uint16_t kLengthBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLengthExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistBase[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                    6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

// Deflate packs bits from the least significant end; Huffman codes go in
// most significant bit first, hence Reverse().
class BitWriter {
 public:
  explicit BitWriter(uint8_t* out) : out_(out) {}
  void Put(uint32_t value, int bits) {
    buf_ |= static_cast<uint64_t>(value) << count_;
    count_ += bits;
    while (count_ >= 8) {
      out_[pos_++] = static_cast<uint8_t>(buf_);
      buf_ >>= 8;
      count_ -= 8;
    }
  }
  void Code(uint32_t code, int bits) { Put(Reverse(code, bits), bits); }
  size_t Finish() {
    if (count_ > 0) Put(0, 8 - count_);
    return pos_;
  }

 private:
  static uint32_t Reverse(uint32_t v, int bits) {
    uint32_t r = 0;
    for (int i = 0; i < bits; i++, v >>= 1) r = (r << 1) | (v & 1);
    return r;
  }
  uint8_t* out_;
  size_t pos_ = 0;
  uint64_t buf_ = 0;
  int count_ = 0;
};

// The fixed literal/length code of RFC 1951 section 3.2.6.
void PutSymbol(BitWriter& w, int sym) {
  if (sym < 144) w.Code(0x30 + static_cast<uint32_t>(sym), 8);
  else if (sym < 256) w.Code(0x190 + static_cast<uint32_t>(sym - 144), 9);
  else if (sym < 280) w.Code(static_cast<uint32_t>(sym - 256), 7);
  else w.Code(0xC0 + static_cast<uint32_t>(sym - 280), 8);
}

void PutMatch(BitWriter& w, int length, int distance) {
  int l = 28;
  while (kLengthBase[l] > length) l--;
  PutSymbol(w, 257 + l);
  if (kLengthExtra[l]) w.Put(static_cast<uint32_t>(length - kLengthBase[l]), kLengthExtra[l]);
  int d = 29;
  while (kDistBase[d] > distance) d--;
  w.Code(static_cast<uint32_t>(d), 5);
  if (kDistExtra[d]) w.Put(static_cast<uint32_t>(distance - kDistBase[d]), kDistExtra[d]);
}

uint32_t Hash3(const uint8_t* p) {
  uint32_t v = static_cast<uint32_t>(p[0]) << 16 | static_cast<uint32_t>(p[1]) << 8 | p[2];
  return (v * 2654435761u) >> (32 - kHashBits);
}

void PutLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

uint32_t Crc32(const uint8_t* data, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) c = kCrc.v[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

size_t GzipCompress(const uint8_t* in, size_t n, uint8_t* out, size_t cap, void* scratch) {
  if (cap < GzipBound(n)) return 0;
  static const uint8_t kHeader[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};  // deflate, no name, Unix
  memcpy(out, kHeader, sizeof(kHeader));
  auto* head = static_cast<int32_t*>(scratch);
  int32_t* prev = head + (1 << kHashBits);
  memset(head, 0xFF, sizeof(int32_t) << kHashBits);  // -1: no earlier position
  BitWriter w(out + sizeof(kHeader));
  w.Put(1, 1);  // BFINAL: the only block
  w.Put(1, 2);  // BTYPE 01: fixed Huffman codes
  auto insert = [&](size_t pos) {
    if (pos + kMinMatch > n) return;
    uint32_t h = Hash3(in + pos);
    prev[pos & (kWindow - 1)] = head[h];
    head[h] = static_cast<int32_t>(pos);
  };
  size_t i = 0;
  while (i < n) {
    int best = 0, best_dist = 0;
    if (i + kMinMatch <= n) {
      size_t limit = n - i < kMaxMatch ? n - i : kMaxMatch;
      int32_t cand = head[Hash3(in + i)];
      for (int chain = 0; chain < kMaxChain && cand >= 0; chain++) {
        auto c = static_cast<size_t>(cand);
        if (c >= i || i - c > kWindow) break;  // a stale link, or out of the window
        size_t len = 0;
        while (len < limit && in[c + len] == in[i + len]) len++;
        if (static_cast<int>(len) > best) {
          best = static_cast<int>(len);
          best_dist = static_cast<int>(i - c);
          if (len == limit) break;
        }
        int32_t next = prev[c & (kWindow - 1)];
        if (next >= cand) break;  // chains only go back in the input
        cand = next;
      }
    }
    if (best >= kMinMatch) {
      PutMatch(w, best, best_dist);
      for (int k = 0; k < best; k++) insert(i + static_cast<size_t>(k));
      i += static_cast<size_t>(best);
    } else {
      PutSymbol(w, in[i]);
      insert(i);
      i++;
    }
  }
  PutSymbol(w, 256);  // end of block
  size_t pos = sizeof(kHeader) + w.Finish();
  PutLe32(out + pos, Crc32(in, n));
  PutLe32(out + pos + 4, static_cast<uint32_t>(n));
  return pos + 8;
}

}  // namespace nitro::telemetry
