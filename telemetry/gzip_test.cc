// The gzip writer against zlib's reader (test-only dependency): every
// input comes back byte for byte, and repetitive input really shrinks.
#include "telemetry/gzip.h"

#include <zlib.h>

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace nitro::telemetry {
namespace {

std::string Gunzip(const std::vector<uint8_t>& gz) {
  z_stream s{};
  EXPECT_EQ(inflateInit2(&s, 16 + MAX_WBITS), Z_OK);  // 16: gzip framing, checked
  s.next_in = const_cast<Bytef*>(gz.data());
  s.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  char buf[65536];
  int rc;
  do {
    s.next_out = reinterpret_cast<Bytef*>(buf);
    s.avail_out = sizeof(buf);
    rc = inflate(&s, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - s.avail_out);
  } while (rc == Z_OK);
  EXPECT_EQ(rc, Z_STREAM_END) << (s.msg ? s.msg : "");
  EXPECT_EQ(s.avail_in, 0u) << "bytes after the gzip member";
  inflateEnd(&s);
  return out;
}

std::vector<uint8_t> Gzip(const std::string& in) {
  std::vector<uint8_t> out(GzipBound(in.size()));
  std::vector<uint32_t> scratch(kGzipScratchBytes / 4);
  size_t n = GzipCompress(reinterpret_cast<const uint8_t*>(in.data()), in.size(), out.data(), out.size(),
                          scratch.data());
  EXPECT_GT(n, 0u);
  out.resize(n);
  return out;
}

TEST(GzipTest, RoundTrips) {
  std::mt19937 rng(42);
  std::vector<std::string> inputs = {"", "a", "abc", "abcabcabcabcabcabc", std::string(100000, 'x')};
  std::string random(300000, '\0');
  for (char& c : random) c = static_cast<char>(rng());
  inputs.push_back(random);
  // Text with repeats at every distance up to and past the 32 KiB window.
  std::string text;
  for (int i = 0; i < 20000; i++) text += "frame_" + std::to_string(rng() % 5000) + (i % 7 ? ";" : "\n");
  inputs.push_back(text);
  for (const std::string& in : inputs) {
    EXPECT_EQ(Gunzip(Gzip(in)), in) << "input of " << in.size() << " bytes";
  }
}

TEST(GzipTest, Compresses) {
  std::string text;
  for (int i = 0; i < 5000; i++) text += "/usr/lib/x86_64-linux-gnu/libc.so.6 build_string make_small_node ";
  EXPECT_LT(Gzip(text).size(), text.size() / 10);
  std::mt19937 rng(7);
  std::string random(100000, '\0');
  for (char& c : random) c = static_cast<char>(rng());
  EXPECT_LE(Gzip(random).size(), GzipBound(random.size()));
}

TEST(GzipTest, RefusesTooSmallOutput) {
  std::string in(1000, 'q');
  std::vector<uint8_t> out(GzipBound(in.size()) - 1);
  std::vector<uint32_t> scratch(kGzipScratchBytes / 4);
  EXPECT_EQ(GzipCompress(reinterpret_cast<const uint8_t*>(in.data()), in.size(), out.data(), out.size(),
                         scratch.data()),
            0u);
}

TEST(GzipTest, Crc32KnownValue) {
  EXPECT_EQ(Crc32(reinterpret_cast<const uint8_t*>("123456789"), 9), 0xCBF43926u);
}

}  // namespace
}  // namespace nitro::telemetry
