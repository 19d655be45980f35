// What the files of the process heap share (heap.cc, thread_registry.cc,
// sampling.cc, strict.cc, background.cc, fork.cc, heap_report.cc). Not a
// public interface: abi/ and telemetry/ use core/heap.h.
#ifndef NITROHEAP_CORE_HEAP_INTERNAL_H_
#define NITROHEAP_CORE_HEAP_INTERNAL_H_

#include <atomic>

#include "core/background.h"
#include "core/guarded_pool.h"
#include "core/heap.h"
#include "core/lock.h"

namespace nitro {

enum HeapState : int { kUninit = 0, kReadyNitro = 1, kReadyLegacy = 2 };

extern std::atomic<int> g_state;
extern Options g_options;
extern Partition* g_default;
extern bool g_strict;
extern uint8_t g_canary;         // the guarded pool's slack bytes in strict mode
extern uint64_t g_canary_pattern;  // strict small objects' slack (strict.cc)
extern GuardedPool g_pool;
extern ZeroSizeRegion g_zero;
extern BackgroundThread g_background;
extern std::atomic<const TelemetryHooks*> g_hooks;
extern SpinLock g_init_lock;

uint64_t NowMs();
// Starts the heap if needed; true when NitroHeap (not legacy) serves calls.
bool Started();

// ---- thread registry (thread_registry.cc) ----
// A thread's cache is made on its first slow-path call; nullptr when the
// thread is exiting or the heap does not run.
ThreadCache* CreateThreadCache();
ThreadCache* CacheForThisThread();
// This thread's cache of `partition`, made on first use; nullptr when the
// partition has no thread caches, the thread is exiting, or memory runs out.
// The default partition's is CacheForThisThread's.
ThreadCache* CacheFor(Partition* partition);
// This thread's cache of the default partition (the sentinel if none): the
// one that counts the thread's bytes (ThisThreadBytes).
inline ThreadCache* DefaultCache() { return tls_caches.by_slot[g_default->id()]; }
// The partition malloc serves this thread from (SetThreadPartition).
extern __thread Partition* tls_partition __attribute__((tls_model("initial-exec")));
inline Partition* CurrentPartition() { return tls_partition != nullptr ? tls_partition : g_default; }
// Returns this thread's cached objects of every partition but the default
// one to their partitions.
void FlushPartitionCaches();
// Drops every thread's cache of `partition` without touching its objects
// (it is being destroyed).
void DropPartitionCaches(Partition* partition, bool flush = false);
// Before a partition is destroyed: its caches dropped, their counts forgotten.
void ForgetPartitionCaches(Partition* partition);
// At start-up, on the thread that starts the heap: the exit of the main
// thread is noticed even if it never gets a cache.
void RegisterThreadExitKey();
// True once the main thread has exited (pthread_exit) and no thread with a
// cache is left: the background thread then ends so the process can exit.
bool ProgramThreadsGone();
void DestroyOtherThreadCachesInChild();
SpinLock& ThreadRegistryLock();
SpinLock& ThreadCachePoolLock();

// ---- sampling (sampling.cc) ----
int64_t NextSample();
int64_t NextRecord();
// The first countdowns of a cache of `partition` (its policy's rates).
int64_t NextSample(Partition* partition);
int64_t NextRecord(Partition* partition);
// The one sampling decision, for an allocation whose countdowns ran out
// (ThreadCache::AccountAlloc or RecordBytes returned true). `p` is the block
// already chosen (class `cls`, 0 for large): it is returned, or replaced by a
// guarded block (p then goes back to the cache). The result is recorded in
// the flight recorder when due.
void* Sampled(Partition* partition, ThreadCache* tc, void* p, size_t size, size_t align, int cls);
// The free of a possibly recorded object: tells telemetry, and lets the
// span's frees take the fast path again once no sample is left in it.
void RecordedFree(Span* s, void* p);

// ---- strict mode (strict.cc) ----
// False when the request is not for a small class (the caller takes the
// large path); otherwise *out is the object, or nullptr with errno ENOMEM.
// The small class strict mode serves a request from (room for the canary
// byte included), or 0 when the request takes the large path.
int StrictClassFor(size_t size, size_t align);
bool StrictAllocate(Partition* partition, size_t size, size_t align, void** out);
void StrictFree(Span* s, void* p, int cls);
// strict's fast paths, the first step of AllocateSlow and FreeSlow when the
// thread's cache is strict (the inlined malloc and free miss every strict
// call: see ThreadCache::PopRandom). The same checks as StrictAllocate and
// StrictFree, with no cache lookup, no lock and no call but memset:
// StrictAllocateFast returns nullptr when the slow path must serve (size
// 0, no small class, an empty stack); StrictFreeFast takes an object that
// FastFreeCache found live (object start, free flag clear, no recorder
// sample in its span) in a span of tc's partition.
void* StrictAllocateFast(ThreadCache* tc, size_t size);
void StrictFreeFast(ThreadCache* tc, Span* s, void* p, int cls, uint8_t* free_flag);
// Keeps a small object in place for a new size when its slot still has room
// for a canary; false when it must move.
bool StrictResizeInPlace(const PointerInfo& info, void* p, size_t size);

// ---- fork (fork.cc) ----
// Registers every lock of the process heap and installs the fork handlers.
void InstallForkHandlers();

}  // namespace nitro

#endif  // NITROHEAP_CORE_HEAP_INTERNAL_H_
