// The run-time control API as a program uses it (nitroheap.h): options
// built into the binary, writable options through nitro_ctl, the output and
// error callbacks, and the per-thread byte counters. Linked with
// malloc = "//abi:malloc"; the BUILD file runs it with sampling on (the
// default), with NITROHEAP_OPTIONS=sample_rate=0, and in strict mode.
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <malloc.h>

#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "nitroheap/nitroheap.h"

// Built-in defaults, as a user would write them. bogus_key is there on
// purpose: its start-up error must reach the output callback registered
// later. NITROHEAP_OPTIONS (BUILD file) sets decay_ms=321, overriding 123.
const char* nitroheap_options = "sample_rate=777, decay_ms=123,bogus_key=1";

namespace {

// The compiler may drop a malloc whose block is only freed: these are not.
void* Malloc(size_t n) {
  void* volatile p = malloc(n);
  return p;
}
void Free(void* p) {
  void* volatile q = p;
  free(q);
}

uint64_t ReadU64(const char* name) {
  uint64_t v = 0;
  size_t len = sizeof(v);
  EXPECT_EQ(nitro_ctl(name, &v, &len, nullptr, 0), 0) << name;
  return v;
}

int WriteU64(const char* name, uint64_t v) { return nitro_ctl(name, nullptr, nullptr, &v, sizeof(v)); }

bool SamplingOffAtStart() {
  const char* env = getenv("NITROHEAP_OPTIONS");
  return env != nullptr && strstr(env, "sample_rate=0") != nullptr;
}

TEST(BuiltInOptions, AreReadAndTheEnvironmentOverridesThem) {
  ASSERT_TRUE(nitro_is_active());
  EXPECT_EQ(ReadU64("opt.decay_ms"), 321u);  // NITROHEAP_OPTIONS wins
  EXPECT_EQ(ReadU64("opt.sample_rate"), SamplingOffAtStart() ? 0u : 777u);
}

TEST(Ctl, WritesTheRunTimeOptionsAndReturnsTheOldValue) {
  uint64_t old = 0, v = 40;
  size_t len = sizeof(old);
  ASSERT_EQ(nitro_ctl("opt.decay_ms", &old, &len, &v, sizeof(v)), 0);
  EXPECT_EQ(old, 321u);
  EXPECT_EQ(ReadU64("opt.decay_ms"), 40u);
  EXPECT_EQ(WriteU64("opt.decay_ms", 321), 0);

  EXPECT_EQ(WriteU64("opt.stats_print", 1), 0);
  EXPECT_EQ(ReadU64("opt.stats_print"), 1u);
  EXPECT_EQ(WriteU64("opt.stats_print", 0), 0);

  if (SamplingOffAtStart()) {
    // The guarded pool was not reserved: sampling cannot be turned on.
    EXPECT_EQ(WriteU64("opt.sample_rate", 5), EPERM);
    EXPECT_EQ(WriteU64("opt.sample_rate", 0), 0);
    EXPECT_EQ(ReadU64("opt.sample_rate"), 0u);
  } else {
    EXPECT_EQ(WriteU64("opt.sample_rate", 1), 0);
    // Every thread uses the new rate from its next sample: a new thread's
    // first allocations are all guarded (counted in stats.sampled_allocations).
    uint64_t before = ReadU64("stats.sampled_allocations");
    std::thread([] {
      for (int i = 0; i < 100; i++) Free(Malloc(48));
    }).join();
    EXPECT_GE(ReadU64("stats.sampled_allocations") - before, 50u);
    EXPECT_EQ(WriteU64("opt.sample_rate", 777), 0);
  }
}

TEST(Ctl, RefusesBadWritesClearly) {
  uint64_t v = 5;
  // Options fixed at start-up.
  for (const char* fixed : {"opt.profile_rate", "opt.telemetry", "opt.background_thread", "opt.mode",
                            "opt.quarantine", "opt.flight_recorder", "opt.flight_recorder_signal"}) {
    EXPECT_EQ(nitro_ctl(fixed, nullptr, nullptr, &v, sizeof(v)), EPERM) << fixed;
  }
  EXPECT_EQ(nitro_ctl("opt.no_such_option", nullptr, nullptr, &v, sizeof(v)), ENOENT);
  // A value must be a uint64_t, in the option's range.
  EXPECT_EQ(nitro_ctl("opt.decay_ms", nullptr, nullptr, &v, 4), EINVAL);
  EXPECT_EQ(nitro_ctl("opt.decay_ms", nullptr, nullptr, nullptr, 8), EINVAL);
  EXPECT_EQ(WriteU64("opt.decay_ms", 3600u * 1000 + 1), EINVAL);
  EXPECT_EQ(WriteU64("opt.sample_rate", uint64_t{1} << 41), EINVAL);
  EXPECT_EQ(WriteU64("opt.stats_print", 2), EINVAL);
  EXPECT_EQ(ReadU64("opt.decay_ms"), 321u);  // refused writes change nothing
  // The thread counters are read-only, and read as uint64_t.
  EXPECT_EQ(WriteU64("thread.allocated", 0), EPERM);
  uint32_t small = 0;
  size_t len = sizeof(small);
  EXPECT_EQ(nitro_ctl("thread.allocated", &small, &len, nullptr, 0), EINVAL);
}

// realloc's vetted path (Reallocate's inline checks, then ReallocateVetted)
// frees what it should: the old block of a move, the block of a realloc to
// 0, and nothing when the block stays. Counted by the thread's counters.
TEST(ThreadCounters, ReallocFreesTheOldBlockOfAMoveAndOfSizeZero) {
  std::thread([] {
    void* p = malloc(100);
    ASSERT_NE(p, nullptr);
    size_t old_usable = malloc_usable_size(p);
    uint64_t a0 = nitro_thread_allocated(), d0 = nitro_thread_deallocated();
    void* same = realloc(p, old_usable);  // the upper half of its class: in place
    EXPECT_EQ(same, p);
    EXPECT_EQ(nitro_thread_deallocated(), d0) << "a block kept in place was counted as freed";
    void* moved = realloc(same, 3000);
    ASSERT_NE(moved, nullptr);
    EXPECT_NE(moved, same);
    uint64_t d1 = nitro_thread_deallocated();
    EXPECT_GE(d1 - d0, 100u) << "the old block of a move was not freed";
    // strict reports the requested size as usable; the class holds at most 128.
    EXPECT_LE(d1 - d0, old_usable > 128 ? old_usable : 128);
    EXPECT_GE(nitro_thread_allocated() - a0, 3000u);
    void* back = realloc(moved, 100);  // below half of its class: moves back down
    ASSERT_NE(back, nullptr);
    EXPECT_NE(back, moved);
    uint64_t d2 = nitro_thread_deallocated();
    EXPECT_GE(d2 - d1, 3000u);
    EXPECT_EQ(realloc(back, 0), nullptr);  // glibc's rule: frees, returns NULL
    EXPECT_GE(nitro_thread_deallocated() - d2, 100u) << "realloc(p, 0) did not free p";
  }).join();
}

TEST(ThreadCounters, CountThisThreadsBytesOnly) {
  uint64_t main_before = nitro_thread_allocated();
  std::thread([] {
    EXPECT_EQ(nitro_thread_allocated(), 0u);  // nothing yet
    uint64_t a0 = nitro_thread_allocated(), d0 = nitro_thread_deallocated();
    void* blocks[1000];
    for (void*& b : blocks) b = malloc(100);
    // The size class of 100 bytes holds at most 128 (strict reports the
    // requested size as usable, so take the larger).
    size_t usable = malloc_usable_size(blocks[1]) > 128 ? malloc_usable_size(blocks[1]) : 128;
    uint64_t a1 = nitro_thread_allocated();
    // Size-class bytes (a sampled block counts its 100 requested bytes).
    EXPECT_GE(a1 - a0, 1000u * 100);
    EXPECT_LE(a1 - a0, 1000u * usable);
    for (void* b : blocks) free(b);
    uint64_t d1 = nitro_thread_deallocated();
    EXPECT_GE(d1 - d0, 1000u * 100);
    EXPECT_LE(d1 - d0, 1000u * usable);
    // Large blocks count their requested bytes, exactly.
    void* big = Malloc(3 << 20);
    EXPECT_EQ(nitro_thread_allocated() - a1, uint64_t{3} << 20);
    Free(big);
    EXPECT_EQ(nitro_thread_deallocated() - d1, uint64_t{3} << 20);
    // nitro_ctl reads the same counters.
    uint64_t via_ctl = 0;
    size_t len = sizeof(via_ctl);
    ASSERT_EQ(nitro_ctl("thread.allocated", &via_ctl, &len, nullptr, 0), 0);
    EXPECT_EQ(via_ctl, nitro_thread_allocated());
    ASSERT_EQ(nitro_ctl("thread.deallocated", &via_ctl, &len, nullptr, 0), 0);
    EXPECT_EQ(via_ctl, nitro_thread_deallocated());
  }).join();
  // The other thread's work is not this thread's (std::thread's own
  // bookkeeping is a few hundred bytes at most).
  EXPECT_LT(nitro_thread_allocated() - main_before, 1024u);
}

// Collects lines without allocating.
char g_lines[1 << 16];
size_t g_lines_len = 0;
int g_calls = 0;
void Collect(const char* line, void* arg) {
  EXPECT_EQ(arg, &g_calls);
  g_calls++;
  size_t n = strlen(line);
  EXPECT_GT(n, 0u);
  EXPECT_EQ(line[n - 1], '\n');
  if (g_lines_len + n < sizeof(g_lines)) {
    memcpy(g_lines + g_lines_len, line, n);
    g_lines_len += n;
  }
}

TEST(OutputCallback, ReceivesStartUpErrorsAndReports) {
  nitro_register_output(Collect, &g_calls);
  std::string got(g_lines, g_lines_len);
  // Written to stderr at start-up, before main, and handed over now.
  EXPECT_NE(got.find("nitroheap: nitroheap_options: unknown option 'bogus_key'"), std::string::npos) << got;
  nitro_stats_print();
  got.assign(g_lines, g_lines_len);
  EXPECT_NE(got.find("NitroHeap heap report"), std::string::npos) << got;
  int calls = g_calls;
  EXPECT_GT(calls, 5);  // one call per line
  nitro_register_output(nullptr, nullptr);  // back to stderr
  nitro_stats_print();
  EXPECT_EQ(g_calls, calls);
}

void OnError(const char* kind, const void* addr, void* arg) {
  char line[160];
  int n = snprintf(line, sizeof(line), "error callback: %s at %p (%s)\n", kind, addr, static_cast<const char*>(arg));
  if (write(2, line, static_cast<size_t>(n)) < 0) _exit(3);
}

void ToStderrMarked(const char* line, void*) {
  if (write(2, "out| ", 5) < 0 || write(2, line, strlen(line)) < 0) _exit(3);
}

TEST(ErrorCallbackDeathTest, RunsBeforeTheAbortWhichStaysUnconditional) {
  EXPECT_EXIT(
      {
        nitro_register_output(ToStderrMarked, nullptr);
        nitro_register_error(OnError, const_cast<char*>("my arg"));
        void* p = Malloc(64);
        Free(p);
        Free(p);
      },
      testing::KilledBySignal(SIGABRT),
      "out\\| nitroheap: double free at 0x[0-9a-f]+ in partition default.*"
      "error callback: double free at 0x[0-9a-f]+ \\(my arg\\)");
}

void MisuseInsideTheCallback(const char* kind, const void* addr, void*) {
  OnError(kind, addr, const_cast<char*>("first"));
  void* q = Malloc(32);
  Free(q);
  Free(q);  // reported, but the callback is not called again
}

TEST(ErrorCallbackDeathTest, AMisuseInsideTheCallbackDoesNotLoop) {
  EXPECT_EXIT(
      {
        nitro_register_error(MisuseInsideTheCallback, nullptr);
        char on_stack[16];
        void* volatile not_heap = on_stack;  // hidden from the compiler's warning
        free(not_heap);
      },
      testing::KilledBySignal(SIGABRT),
      "error callback: free of memory not from the heap at 0x[0-9a-f]+ \\(first\\)\n"
      "(.|\n)*nitroheap: double free at");
}

TEST(ErrorCallback, NullIsAcceptedAndMeansNone) {
  nitro_register_error(nullptr, nullptr);
  nitro_register_output(nullptr, nullptr);
  Free(Malloc(10));
}

}  // namespace
