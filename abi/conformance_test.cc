// Conformance of the C and C++ ABI, with NitroHeap linked in as the
// program's malloc (cc_test malloc = "//abi:malloc").
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cstddef>
#include <new>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "nitroheap/nitroheap.h"
#include "nitroheap/rust.h"

extern "C" {
void free_sized(void*, size_t);
void free_aligned_sized(void*, size_t, size_t);
void cfree(void*);
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
int __posix_memalign(void**, size_t, size_t);
}

namespace {

// Keeps the compiler from folding away calls whose results are unused.
template <typename T>
T Opaque(T v) {
  asm volatile("" : "+r"(v));
  return v;
}

bool Aligned(const void* p, size_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

std::vector<size_t> InterestingSizes() {
  std::vector<size_t> sizes;
  for (size_t s = 0; s <= 4096; s++) sizes.push_back(s);
  for (size_t s = 4096; s < (size_t{8} << 20); s = s * 9 / 8) {
    sizes.push_back(s - 1);
    sizes.push_back(s);
    sizes.push_back(s + 1);
  }
  for (size_t s : {128 * 1024 - 1, 128 * 1024, 128 * 1024 + 1}) sizes.push_back(s);
  return sizes;
}

TEST(Conformance, NitroHeapServesThisProgram) {
  EXPECT_EQ(nitro_is_active(), 1);
  EXPECT_STREQ(nitro_heap_mode(), "nitro");
  void* p = malloc(10);
  EXPECT_EQ(nitro_owns(p), 1);
  free(p);
  int local;
  EXPECT_EQ(nitro_owns(&local), 0);
}

TEST(Conformance, EveryPointerIsAlignedAndLargeEnough) {
  for (size_t size : InterestingSizes()) {
    auto* p = static_cast<unsigned char*>(malloc(size));
    ASSERT_NE(p, nullptr) << size;
    ASSERT_TRUE(Aligned(p, alignof(max_align_t))) << size;
    ASSERT_GE(malloc_usable_size(p), size) << size;
    ASSERT_EQ(nitro_owns(p), 1);
    if (size > 0) {
      p[0] = 1;
      p[size - 1] = 2;
    }
    // The usable tail is really usable.
    memset(p, 0x3C, malloc_usable_size(p));
    free(p);
  }
}

TEST(Conformance, ReallocKeepsContentsThroughEveryTransition) {
  size_t size = 1;
  auto* p = static_cast<unsigned char*>(malloc(size));
  p[0] = 0;
  std::vector<size_t> steps;
  for (size_t s = 2; s < (size_t{16} << 20); s = s * 3 / 2 + 1) steps.push_back(s);
  for (size_t i = steps.size(); i-- > 0;) steps.push_back(steps[i] / 3 + 1);  // then shrink
  for (size_t next : steps) {
    p = static_cast<unsigned char*>(realloc(p, next));
    ASSERT_NE(p, nullptr);
    size_t keep = size < next ? size : next;
    for (size_t i = 0; i < keep; i += (keep / 64) + 1) ASSERT_EQ(p[i], static_cast<unsigned char>(i * 7)) << next;
    for (size_t i = 0; i < next; i++) p[i] = static_cast<unsigned char>(i * 7);
    size = next;
  }
  free(p);
}

TEST(Conformance, ReallocEdgeCases) {
  void* p = realloc(nullptr, 100);  // acts as malloc
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(realloc(p, 0), nullptr);  // glibc: frees and returns NULL
  p = malloc(100);
  memset(p, 9, 100);
  errno = 0;
  EXPECT_EQ(realloc(p, SIZE_MAX), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_EQ(static_cast<unsigned char*>(p)[99], 9);  // the old block is intact
  errno = 0;
  EXPECT_EQ(reallocarray(p, SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  void* q = reallocarray(p, 50, 4);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(static_cast<unsigned char*>(q)[99], 9);
  free(q);
}

TEST(Conformance, CallocZeroesAlsoReusedMemory) {
  for (size_t size : {1ul, 24ul, 1000ul, 70000ul, 200000ul, 3000000ul}) {
    for (int round = 0; round < 3; round++) {
      auto* dirty = static_cast<unsigned char*>(malloc(size));
      memset(dirty, 0xFF, size);
      free(dirty);
      auto* p = static_cast<unsigned char*>(calloc(1, size));
      ASSERT_NE(p, nullptr);
      for (size_t i = 0; i < size; i++) ASSERT_EQ(p[i], 0) << size << " at " << i;
      memset(p, 0xEE, size);
      free(p);
    }
  }
  auto* arr = static_cast<int*>(calloc(1000, sizeof(int)));
  for (int i = 0; i < 1000; i++) ASSERT_EQ(arr[i], 0);
  free(arr);
}

TEST(Conformance, FailuresReturnNullWithEnomem) {
  errno = 0;
  EXPECT_EQ(malloc(Opaque(SIZE_MAX)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(malloc(Opaque(size_t{1} << 50)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(calloc(Opaque(SIZE_MAX / 8), 16), nullptr);  // overflowing product
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(calloc(Opaque(size_t{1} << 25), size_t{1} << 25), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(aligned_alloc(64, Opaque(SIZE_MAX - 10)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  void* p = reinterpret_cast<void*>(0x1);
  EXPECT_EQ(posix_memalign(&p, 64, Opaque(SIZE_MAX - 100)), ENOMEM);
  EXPECT_EQ(p, reinterpret_cast<void*>(0x1));  // untouched on failure
  EXPECT_EQ(valloc(Opaque(SIZE_MAX)), nullptr);
  EXPECT_EQ(pvalloc(Opaque(SIZE_MAX)), nullptr);
}

TEST(Conformance, InvalidAlignmentsAreRejected) {
  void* p = nullptr;
  EXPECT_EQ(posix_memalign(&p, 3, 10), EINVAL);
  EXPECT_EQ(posix_memalign(&p, 4, 10), EINVAL);  // not a multiple of sizeof(void*)
  EXPECT_EQ(posix_memalign(&p, 24, 10), EINVAL);
  errno = 0;
  EXPECT_EQ(aligned_alloc(Opaque(size_t{48}), 96), nullptr);
  EXPECT_EQ(errno, EINVAL);
  // memalign rounds a non-power-of-two alignment up, as glibc does.
  void* m = memalign(Opaque(size_t{48}), 100);
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(Aligned(m, 64));
  free(m);
}

TEST(Conformance, EveryPowerOfTwoAlignmentUpTo4MiB) {
  for (size_t align = 1; align <= (size_t{4} << 20); align *= 2) {
    for (size_t size : {size_t{1}, size_t{17}, align, align + 1, size_t{100000}, size_t{300000}}) {
      void* a = nullptr;
      ASSERT_EQ(posix_memalign(&a, align < sizeof(void*) ? sizeof(void*) : align, size), 0);
      void* b = aligned_alloc(align, size);
      void* c = memalign(align, size);
      for (void* p : {a, b, c}) {
        ASSERT_NE(p, nullptr) << align << " " << size;
        ASSERT_TRUE(Aligned(p, align)) << align << " " << size;
        ASSERT_TRUE(Aligned(p, alignof(max_align_t)));
        ASSERT_GE(malloc_usable_size(p), size);
        memset(p, 1, size);
        EXPECT_EQ(nitro_owns(p), 1);
      }
      free(a);
      free_aligned_sized(b, align, size);
      free(c);
    }
  }
  long page = sysconf(_SC_PAGESIZE);
  void* v = valloc(10);
  EXPECT_TRUE(Aligned(v, page));
  free(v);
  void* pv = pvalloc(10);
  EXPECT_TRUE(Aligned(pv, page));
  EXPECT_GE(malloc_usable_size(pv), static_cast<size_t>(page));
  free(pv);
}

TEST(Conformance, GlibcInternalNamesAndSizedFrees) {
  void* a = __libc_malloc(40);
  void* b = __libc_calloc(4, 10);
  for (int i = 0; i < 40; i++) ASSERT_EQ(static_cast<char*>(b)[i], 0);
  a = __libc_realloc(a, 4000);
  void* c = __libc_memalign(256, 10);
  EXPECT_TRUE(Aligned(c, 256));
  void* d = nullptr;
  EXPECT_EQ(__posix_memalign(&d, 128, 10), 0);
  EXPECT_TRUE(Aligned(d, 128));
  for (void* p : {a, b, c, d}) EXPECT_EQ(nitro_owns(p), 1);
  __libc_free(a);
  free_sized(b, 40);
  cfree(c);
  free(d);
  free(nullptr);
  free_sized(nullptr, 0);
  EXPECT_EQ(malloc_usable_size(nullptr), 0u);
}

TEST(Conformance, IntrospectionFunctions) {
  std::vector<void*> keep;
  for (int i = 0; i < 1000; i++) keep.push_back(malloc(100));
  void* big = Opaque(malloc(5 << 20));
  memset(big, 1, 5 << 20);
  struct mallinfo2 mi = mallinfo2();
  EXPECT_GE(mi.uordblks, 1000u * 100 + (5u << 20));
  EXPECT_GE(mi.arena, mi.uordblks);
  EXPECT_GE(mi.hblkhd, 5u << 20);
  char* text = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&text, &len);
  ASSERT_EQ(malloc_info(0, f), 0);
  fclose(f);
  EXPECT_NE(strstr(text, "<malloc version=\"nitroheap-1\">"), nullptr) << text;
  free(text);
  EXPECT_EQ(malloc_info(1, stderr), -1);
  EXPECT_EQ(mallopt(M_ARENA_MAX, 2), 0);  // not applicable, and said so
  for (void* p : keep) free(p);
  free(big);
  EXPECT_EQ(malloc_trim(0), 1);  // the freed 5 MiB goes back to the kernel
}

int g_handler_calls = 0;
void Handler() {
  g_handler_calls++;
  std::set_new_handler(nullptr);  // second attempt throws
}

TEST(Conformance, OperatorNewFamily) {
  auto* i = new int(5);
  EXPECT_EQ(nitro_owns(i), 1);
  delete i;
  auto* arr = new int[1000]();
  EXPECT_EQ(arr[999], 0);
  delete[] arr;
  struct alignas(256) Over {
    char c[300];
  };
  auto* o = new Over;
  EXPECT_TRUE(Aligned(o, 256));
  delete o;
  auto* oa = new Over[3];
  EXPECT_TRUE(Aligned(oa, 256));
  delete[] oa;
  void* raw = ::operator new(100, std::align_val_t(4096));
  EXPECT_TRUE(Aligned(raw, 4096));
  ::operator delete(raw, 100, std::align_val_t(4096));
  void* n = ::operator new(10, std::nothrow);
  ::operator delete(n, std::nothrow);
  void* sized = ::operator new[](64);
  ::operator delete[](sized, 64);
  EXPECT_EQ(::operator new(Opaque(SIZE_MAX), std::nothrow), nullptr);
  EXPECT_EQ(::operator new[](Opaque(SIZE_MAX), std::align_val_t(64), std::nothrow), nullptr);
  EXPECT_THROW(::operator new(Opaque(SIZE_MAX)), std::bad_alloc);
  EXPECT_THROW(::operator new[](Opaque(SIZE_MAX), std::align_val_t(128)), std::bad_alloc);
  std::set_new_handler(Handler);
  EXPECT_THROW(::operator new(Opaque(SIZE_MAX - 4096)), std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 1);
  std::set_new_handler(nullptr);
}

// An alignment that is not a power of two is refused, as libstdc++'s own
// aligned new refuses it: bad_alloc or nullptr, and the new-handler is not
// called (no retry could satisfy it). Powers of two up to and past the page
// size still work.
TEST(Conformance, AlignedNewRefusesAnAlignmentThatIsNotAPowerOfTwo) {
  g_handler_calls = 0;
  std::set_new_handler(Handler);
  for (size_t align : {size_t{3}, size_t{24}, size_t{48}, size_t{96}, size_t{4097}}) {
    std::align_val_t al{Opaque(align)};
    EXPECT_THROW(::operator new(10, al), std::bad_alloc) << align;
    EXPECT_THROW(::operator new[](10, al), std::bad_alloc) << align;
    EXPECT_EQ(::operator new(10, al, std::nothrow), nullptr) << align;
    EXPECT_EQ(::operator new[](10, al, std::nothrow), nullptr) << align;
  }
  EXPECT_EQ(g_handler_calls, 0);
  std::set_new_handler(nullptr);
  for (size_t align : {size_t{32}, size_t{4096}, size_t{8192}}) {
    void* p = ::operator new(10, std::align_val_t(align));
    EXPECT_TRUE(Aligned(p, align)) << align;
    ::operator delete(p, 10, std::align_val_t(align));
  }
}

// libstdc++'s nothrow new returns nullptr when the new-handler throws
// bad_alloc; so must NitroHeap's (it used to terminate the program).
TEST(Conformance, NothrowNewWithAThrowingHandlerReturnsNull) {
  std::set_new_handler([] { throw std::bad_alloc(); });
  EXPECT_EQ(::operator new(Opaque(SIZE_MAX / 2), std::nothrow), nullptr);
  EXPECT_EQ(::operator new[](Opaque(SIZE_MAX / 2), std::nothrow), nullptr);
  EXPECT_EQ(::operator new(Opaque(SIZE_MAX / 2), std::align_val_t(64), std::nothrow), nullptr);
  EXPECT_EQ(::operator new[](Opaque(SIZE_MAX / 2), std::align_val_t(4096), std::nothrow), nullptr);
  EXPECT_THROW(::operator new(Opaque(SIZE_MAX / 2)), std::bad_alloc);
  // A handler that makes room lets the nothrow form succeed.
  std::set_new_handler(nullptr);
  void* p = ::operator new(100, std::nothrow);
  EXPECT_NE(p, nullptr);
  ::operator delete(p);
}

// Rust's GlobalAlloc: a block shrunk in place must be deallocatable with its
// new size and alignment (it used to abort with "sized free with the wrong
// size" for over-aligned large blocks).
TEST(Conformance, RustReallocShrinkThenDeallocWithTheNewLayout) {
  struct Layout {
    size_t align, from, to;
  };
  const Layout cases[] = {
      {4096, size_t{1} << 20, (size_t{1} << 20) - 8192},
      {4096, size_t{1} << 20, 300000},
      {32, 100, 80},
      {64, 5000, 4000},
      {16, 100, 60},
      {8, 1000, 999},
      {4096, 40000, 40000 + 4096},
      {256, 300, 70000},
  };
  for (const Layout& l : cases) {
    auto* p = static_cast<unsigned char*>(nitro_rust_alloc(l.from, l.align));
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(Aligned(p, l.align));
    for (size_t i = 0; i < l.from; i++) p[i] = static_cast<unsigned char>(i * 7);
    auto* q = static_cast<unsigned char*>(nitro_rust_realloc(p, l.from, l.align, l.to));
    ASSERT_NE(q, nullptr);
    EXPECT_TRUE(Aligned(q, l.align)) << l.align << " " << l.from << "->" << l.to;
    size_t keep = l.from < l.to ? l.from : l.to;
    for (size_t i = 0; i < keep; i++) ASSERT_EQ(q[i], static_cast<unsigned char>(i * 7));
    nitro_rust_dealloc(q, l.to, l.align);  // aborts the test if the size is refused
  }
}

// The variants of this test (abi/BUILD.bazel) run under their options.
TEST(Conformance, OptionsFromTheEnvironmentAreInForce) {
  const char* env = getenv("NITROHEAP_OPTIONS");
  std::string opts = env != nullptr ? env : "";
  char mode[16] = {};
  size_t len = sizeof(mode);
  ASSERT_EQ(nitro_ctl("opt.mode", mode, &len, nullptr, 0), 0);
  std::string want = opts.find("mode=strict") != std::string::npos ? "strict"
                     : opts.find("mode=fast") != std::string::npos ? "fast"
                                                                    : "balanced";
  EXPECT_EQ(std::string(mode), want) << opts;
  uint64_t rate = 0;
  len = sizeof(rate);
  ASSERT_EQ(nitro_ctl("opt.sample_rate", &rate, &len, nullptr, 0), 0);
  // The default rate is the mode's: fast guards nothing, strict 10 times
  // as often as balanced.
  EXPECT_EQ(rate, opts.find("sample_rate=1") != std::string::npos ? 1u
                  : want == "fast"                                ? 0u
                  : want == "strict"                              ? 10000u
                                                                  : 100000u)
      << opts;
}

}  // namespace


