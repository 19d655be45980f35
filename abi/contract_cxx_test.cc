// Heap contracts seen from C++: operator new throws std::bad_alloc past a
// hard limit (the default partition's, or the process's), the nothrow form
// returns null, and the heap works again once the limit is lifted or
// memory is freed. Linked with malloc = "//abi:malloc".
#include <errno.h>
#include <stdlib.h>

#include <new>
#include <vector>

#include <gtest/gtest.h>

#include "nitroheap/nitroheap.h"

namespace {

// The compiler may drop a new whose block is only deleted: these are not.
char* NewArray(size_t n) {
  char* volatile p = new char[n];
  return p;
}

nitro_partition_t* DefaultPartition() {
  void* volatile p = malloc(64);
  nitro_partition_t* d = nitro_partition_of(p);
  free(p);
  return d;
}

uint64_t Use(const char* partition) {
  char name[64];
  snprintf(name, sizeof(name), "contract.%s.use", partition);
  uint64_t v = 0;
  size_t len = sizeof(v);
  EXPECT_EQ(nitro_ctl(name, &v, &len, nullptr, 0), 0);
  return v;
}

TEST(ContractCxx, DefaultPartitionHardLimitThrowsBadAllocAndRecovers) {
  nitro_partition_t* def = DefaultPartition();
  ASSERT_NE(def, nullptr);
  ASSERT_STREQ(nitro_partition_name(def), "default");
  uint64_t use = Use("default");
  ASSERT_EQ(nitro_partition_set_limit(def, use + (size_t{32} << 20), 0), 0);
  std::vector<char*> kept;
  kept.push_back(NewArray(size_t{16} << 20));
  EXPECT_THROW(NewArray(size_t{32} << 20), std::bad_alloc);
  char* volatile q = new (std::nothrow) char[size_t{32} << 20];
  EXPECT_EQ(q, nullptr);
  errno = 0;
  void* volatile m = malloc(size_t{32} << 20);
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(errno, ENOMEM);
  // Another partition is not affected.
  nitro_partition_t* other = nitro_partition_create("cxx-other");
  void* o = nitro_partition_malloc(other, size_t{32} << 20);
  EXPECT_NE(o, nullptr);
  nitro_partition_free(other, o);
  nitro_partition_destroy(other);
  // After the free the same request fits.
  delete[] kept.back();
  kept.pop_back();
  char* fits = nullptr;
  EXPECT_NO_THROW(fits = NewArray(size_t{24} << 20));
  delete[] fits;
  ASSERT_EQ(nitro_partition_set_limit(def, 0, 0), 0);
}

TEST(ContractCxx, ProcessLimitThrowsBadAlloc) {
  ASSERT_EQ(nitro_set_memory_limit(1), 0);
  bool threw = false;
  try {
    NewArray(size_t{64} << 20);
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  ASSERT_EQ(nitro_set_memory_limit(0), 0);
  EXPECT_TRUE(threw);
  char* p = nullptr;
  EXPECT_NO_THROW(p = NewArray(size_t{64} << 20));
  delete[] p;
}

}  // namespace
