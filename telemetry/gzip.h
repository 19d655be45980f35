// A small gzip writer (RFC 1951 deflate with the fixed Huffman code and
// LZ77 over a 32 KiB window, in RFC 1952 framing), so that heap profiles
// are written gzip-compressed, as pprof files are, without linking zlib
// into the allocator: the preload library stays free of dependencies, and
// no compression library calls malloc while the heap dumps itself. It is
// not zlib's ratio (no dynamic Huffman tables), but a pprof profile, made
// of repeated varints and strings, shrinks several times over.
#ifndef NITROHEAP_TELEMETRY_GZIP_H_
#define NITROHEAP_TELEMETRY_GZIP_H_

#include <stddef.h>
#include <stdint.h>

namespace nitro::telemetry {

// Bytes of working memory GzipCompress needs (hash chains), from the caller.
inline constexpr size_t kGzipScratchBytes = (size_t{1} << 15) * 4 + (size_t{1} << 15) * 4;

// The most bytes the gzip form of `n` bytes can take (every byte a 9-bit
// literal, plus the framing).
inline constexpr size_t GzipBound(size_t n) { return n + n / 8 + 64; }

uint32_t Crc32(const uint8_t* data, size_t n);

// Compresses in[0, n) into out (capacity cap) as one gzip member; returns
// the bytes written, or 0 when out is too small. scratch: kGzipScratchBytes,
// 4-byte aligned.
size_t GzipCompress(const uint8_t* in, size_t n, uint8_t* out, size_t cap, void* scratch);

}  // namespace nitro::telemetry

#endif  // NITROHEAP_TELEMETRY_GZIP_H_
