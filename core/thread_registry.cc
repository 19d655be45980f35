// Thread caches: made on a thread's first slow-path call, registered for
// statistics and fork, destroyed when the thread exits.
#include <pthread.h>
#include <sys/syscall.h>
#include <string.h>
#include <unistd.h>

#include "core/heap_internal.h"
#include "core/meta_pool.h"

namespace nitro {
namespace {

MetaPool<ThreadCache> g_cache_pool;
SpinLock g_registry_lock{LockRank::kThreadRegistry};
ThreadCache* g_registry = nullptr;  // under g_registry_lock
size_t g_threads = 0;               // under g_registry_lock
ThreadCache::Counters g_exited_counters;  // under g_registry_lock
// The counts of partition caches no longer held (their thread exited, or
// they were flushed or dropped), by partition slot; zeroed when the
// partition is destroyed. Under g_registry_lock.
ThreadCache::Counters g_partition_gone[kCachedPartitions];
// The partition slots that have had a thread cache since their partition
// was made, one bit each: the only ones whose counts can be non-zero, so
// SumPartitionCaches reads (and writes the sums of) these alone, not 256
// slots of every thread on every statistics tick. Under g_registry_lock.
uint64_t g_slots_used[kCachedPartitions / 64];
pthread_key_t g_thread_key;
bool g_thread_key_ok = false;
std::atomic<bool> g_main_exited{false};
// The value the main thread's key holds before it has a cache, so that its
// exit is seen (pthread_exit from main runs the destructor).
char g_main_marker;

__thread bool tls_dead __attribute__((tls_model("initial-exec"))) = false;

// Threads holding caches of partitions other than the default one, under
// g_registry_lock (each ThreadCaches lives in its thread's TLS until the
// thread exits and unlinks it).
ThreadCaches* g_partition_threads = nullptr;
// The thread-exit key's value for a thread with partition caches but no
// default-partition cache, so that its exit is seen.
char g_partition_caches_marker;

bool IsDefaultSlot(int slot) { return g_default != nullptr && slot == g_default->id(); }

// Takes one cache out of a thread's table (and out of its malloc slot when
// the thread's current partition is that one). Under g_registry_lock.
ThreadCache* TakeSlot(ThreadCaches* t, int slot) {
  ThreadCache* tc = t->by_slot[slot];
  if (tc == &g_sentinel_cache) return nullptr;
  __atomic_store_n(&t->by_slot[slot], &g_sentinel_cache, __ATOMIC_RELAXED);
  if (t->current != nullptr && __atomic_load_n(t->current, __ATOMIC_RELAXED) == tc) {
    __atomic_store_n(t->current, &g_sentinel_cache, __ATOMIC_RELAXED);
  }
  return tc;
}

// The end of a partition cache taken out of its slot: its objects go back
// first when `flush`, its counts are kept. Under g_registry_lock.
void RetirePartitionCache(int slot, ThreadCache* tc, bool flush) {
  if (flush) {
    tc->Flush();
    tc->GiveUpSlabs();
  }
  ThreadCache::Counters c = tc->ReadCounters();
  for (int i = 0; i < kNumClasses; i++) {
    ThreadCache::Bump(g_partition_gone[slot].allocs[i], c.allocs[i]);
    ThreadCache::Bump(g_partition_gone[slot].frees[i], c.frees[i]);
  }
  g_cache_pool.Delete(tc);
}

// Unlinks this thread's partition caches (not the default partition's),
// returning their objects first when `flush`. Under g_registry_lock, so a
// DestroyPartition running at the same time either dropped a cache before
// or waits until it is flushed.
void ReleasePartitionCachesLocked(ThreadCaches* t, bool flush) {
  if (!t->registered) return;
  for (int i = 1; i < kCachedPartitions; i++) {
    if (IsDefaultSlot(i)) continue;
    if (ThreadCache* tc = TakeSlot(t, i)) RetirePartitionCache(i, tc, flush);
  }
  if (t->prev) t->prev->next = t->next; else g_partition_threads = t->next;
  if (t->next) t->next->prev = t->prev;
  t->next = t->prev = nullptr;
  t->registered = false;
}

bool IsMainThread() { return syscall(SYS_gettid) == getpid(); }

// Unlinks a cache and keeps its counts; `flush` first returns its objects.
void DestroyThreadCache(ThreadCache* tc, bool flush) {
  if (flush) {
    tc->Flush();
    tc->GiveUpSlabs();
  }
  LockGuard g(g_registry_lock);
  // Keep the counts of threads that are gone.
  ThreadCache::Counters c = tc->ReadCounters();
  for (int i = 0; i < kNumClasses; i++) {
    ThreadCache::Bump(g_exited_counters.allocs[i], c.allocs[i]);
    ThreadCache::Bump(g_exited_counters.frees[i], c.frees[i]);
  }
  if (tc->prev) tc->prev->next = tc->next; else g_registry = tc->next;
  if (tc->next) tc->next->prev = tc->prev;
  g_threads--;
  g_cache_pool.Delete(tc);
}

void ThreadExit(void* arg) {
  bool main = IsMainThread();
  // Later destructors of this thread may still allocate: they go to the
  // middle layer directly instead of making (and registering) new caches.
  tls_dead = true;
  {
    LockGuard g(g_registry_lock);
    ReleasePartitionCachesLocked(&tls_caches, /*flush=*/true);
  }
  if (arg != &g_main_marker && arg != &g_partition_caches_marker) {
    tls_cache = &g_sentinel_cache;
    tls_caches.by_slot[g_default->id()] = &g_sentinel_cache;
    DestroyThreadCache(static_cast<ThreadCache*>(arg), /*flush=*/true);
  }
  if (main) g_main_exited.store(true, std::memory_order_release);
  if (ProgramThreadsGone()) g_background.Wake();
}

}  // namespace

__thread Partition* tls_partition __attribute__((tls_model("initial-exec"))) = nullptr;

SpinLock& ThreadRegistryLock() { return g_registry_lock; }
SpinLock& ThreadCachePoolLock() { return g_cache_pool.lock(); }

void RegisterThreadExitKey() {
  // pthread_key_create never allocates.
  g_thread_key_ok = pthread_key_create(&g_thread_key, ThreadExit) == 0;
  if (g_thread_key_ok && IsMainThread()) pthread_setspecific(g_thread_key, &g_main_marker);
}

bool ProgramThreadsGone() {
  if (!g_main_exited.load(std::memory_order_acquire)) return false;
  return __atomic_load_n(&g_threads, __ATOMIC_RELAXED) == 0;
}

ThreadCache* CreateThreadCache() {
  if (tls_dead || g_state.load(std::memory_order_relaxed) != kReadyNitro) return nullptr;
  ThreadCache* tc = g_cache_pool.New();
  if (tc == nullptr) return nullptr;
  if (!tc->Init(g_default, g_options.tcache_max_bytes, QuarantineBytes(g_options), g_strict,
                NextSample(), NextRecord())) {
    g_cache_pool.Delete(tc);
    return nullptr;
  }
  tc->owner_thread = static_cast<unsigned long>(pthread_self());
  {
    LockGuard g(g_registry_lock);
    tc->next = g_registry;
    if (g_registry) g_registry->prev = tc;
    g_registry = tc;
    __atomic_store_n(&g_threads, g_threads + 1, __ATOMIC_RELAXED);
  }
  tls_caches.by_slot[g_default->id()] = tc;
  if (CurrentPartition() == g_default) tls_cache = tc;
  if (g_thread_key_ok) pthread_setspecific(g_thread_key, tc);
  return tc;
}

ThreadCache* CacheForThisThread() {
  ThreadCache* tc = DefaultCache();
  return tc->is_sentinel() ? CreateThreadCache() : tc;
}

ThreadCache* CacheFor(Partition* partition) {
  if (partition == g_default) return CacheForThisThread();
  if (!partition->thread_cached()) return nullptr;
  int slot = partition->id();
  ThreadCache* tc = tls_caches.by_slot[slot];
  if (!tc->is_sentinel()) return tc;
  if (tls_dead || g_state.load(std::memory_order_relaxed) != kReadyNitro) return nullptr;
  tc = g_cache_pool.New();
  if (tc == nullptr) return nullptr;
  const PartitionPolicy& policy = partition->policy();
  tc->Init(partition, policy.cache_max_bytes, policy.quarantine_bytes, policy.strict,
           NextSample(partition), NextRecord(partition));
  tc->owner_thread = static_cast<unsigned long>(pthread_self());
  {
    LockGuard g(g_registry_lock);
    ThreadCaches* t = &tls_caches;
    if (!t->registered) {
      t->current = &tls_cache;
      t->next = g_partition_threads;
      t->prev = nullptr;
      if (g_partition_threads) g_partition_threads->prev = t;
      g_partition_threads = t;
      t->registered = true;
    }
    t->by_slot[slot] = tc;
    g_slots_used[slot / 64] |= uint64_t{1} << (slot % 64);
  }
  if (tls_partition == partition && partition->alloc_slot() != 0) tls_cache = tc;
  // The exit of a thread that never made a default-partition cache must
  // still release this one.
  if (g_thread_key_ok && pthread_getspecific(g_thread_key) == nullptr) {
    pthread_setspecific(g_thread_key, &g_partition_caches_marker);
  }
  return tc;
}

void FlushPartitionCaches() {
  LockGuard g(g_registry_lock);
  for (int i = 1; i < kCachedPartitions; i++) {
    ThreadCache* tc = tls_caches.by_slot[i];
    if (!IsDefaultSlot(i) && !tc->is_sentinel()) tc->Flush();
  }
}

void DropPartitionCaches(Partition* partition, bool flush) {
  int slot = partition->id();
  if (slot >= kCachedPartitions || IsDefaultSlot(slot)) return;
  LockGuard g(g_registry_lock);
  for (ThreadCaches* t = g_partition_threads; t != nullptr; t = t->next) {
    if (ThreadCache* tc = TakeSlot(t, slot)) RetirePartitionCache(slot, tc, flush);
  }
}

void ForgetPartitionCaches(Partition* partition) {
  int slot = partition->id();
  if (slot >= kCachedPartitions || IsDefaultSlot(slot)) return;
  DropPartitionCaches(partition, /*flush=*/false);
  LockGuard g(g_registry_lock);
  memset(&g_partition_gone[slot], 0, sizeof(g_partition_gone[slot]));
  g_slots_used[slot / 64] &= ~(uint64_t{1} << (slot % 64));
}

// The slots of partitions whose threads have caches, in out[] (room for
// kCachedPartitions); returns how many. The default partition's slot is
// never marked: its caches are g_registry's. Under g_registry_lock.
static int UsedPartitionSlotsLocked(int* out) {
  int n = 0;
  for (int w = 0; w < kCachedPartitions / 64; w++) {
    for (uint64_t bits = g_slots_used[w]; bits != 0; bits &= bits - 1) out[n++] = w * 64 + __builtin_ctzll(bits);
  }
  return n;
}

// Calls f(slot, cache) for every live cache of every partition but the
// default one. Racy reads of other threads' caches follow: statistics, not
// invariants. Under g_registry_lock, which keeps the caches from being
// retired meanwhile.
template <typename F>
static void ForEachPartitionCacheLocked(const int* used, int n, F f) {
  for (ThreadCaches* t = g_partition_threads; t != nullptr; t = t->next) {
    for (int k = 0; k < n; k++) {
      const ThreadCache* tc = __atomic_load_n(&t->by_slot[used[k]], __ATOMIC_RELAXED);
      if (!tc->is_sentinel()) f(used[k], tc);
    }
  }
}

void SumPartitionCaches(PartitionCacheSums* out) {
  LockGuard g(g_registry_lock);
  int used[kCachedPartitions];
  int n = UsedPartitionSlotsLocked(used);
  for (int k = 0; k < n; k++) {
    int slot = used[k];
    for (int i = 1; i < kNumClasses; i++) {
      out[slot].allocs[i] += __atomic_load_n(&g_partition_gone[slot].allocs[i], __ATOMIC_RELAXED);
      out[slot].frees[i] += __atomic_load_n(&g_partition_gone[slot].frees[i], __ATOMIC_RELAXED);
    }
  }
  ForEachPartitionCacheLocked(used, n, [out](int slot, const ThreadCache* tc) {
    ThreadCache::Counters c = tc->ReadCounters();
    for (int i = 1; i < kNumClasses; i++) {
      out[slot].allocs[i] += c.allocs[i];
      out[slot].frees[i] += c.frees[i];
      out[slot].cached[i] += tc->ListCount(i);
    }
  });
}

void DestroyOtherThreadCachesInChild() {
  // The other threads are gone. Their caches are dropped, not flushed: a
  // cache's magazines are changed without a lock by their owner, which may
  // have been halfway through a push or a pop at the moment of fork, so
  // their contents cannot be trusted (following the linked lists they were
  // before crashed a strict-mode fork child about once in a few hundred
  // forks under load). What they
  // held stays allocated in the child: at most tcache_max_bytes (plus the
  // quarantine) per thread of the parent.
  ThreadCache* mine = DefaultCache();
  for (ThreadCache* tc = g_registry; tc != nullptr;) {
    ThreadCache* next = tc->next;
    if (tc != mine) DestroyThreadCache(tc, /*flush=*/false);
    tc = next;
  }
  // Their partition caches too (the same reason: dropped, not flushed).
  LockGuard g(g_registry_lock);
  for (ThreadCaches* t = g_partition_threads; t != nullptr;) {
    ThreadCaches* next = t->next;
    if (t != &tls_caches) ReleasePartitionCachesLocked(t, /*flush=*/false);
    t = next;
  }
  // The child's only thread is the one that forked: it is the program's
  // main thread from now on.
  g_main_exited.store(false, std::memory_order_relaxed);
}

void ForEachThreadCache(void (*f)(const ThreadCache* tc, void* ctx), void* ctx) {
  LockGuard g(g_registry_lock);
  for (ThreadCache* tc = g_registry; tc != nullptr; tc = tc->next) f(tc, ctx);
}

const ThreadCache::Counters& ExitedThreadCounters() { return g_exited_counters; }

size_t ThreadCount() {
  LockGuard g(g_registry_lock);
  return g_threads;
}

size_t ThreadCachedBytes() {
  LockGuard g(g_registry_lock);
  size_t bytes = 0;
  // Racy reads of other threads' counts: a statistic, not an invariant.
  for (ThreadCache* tc = g_registry; tc != nullptr; tc = tc->next) bytes += tc->CachedBytes();
  // The other partitions' caches too: what they hold is not the program's
  // (GetHeapStats subtracts this from the slabs' objects).
  int used[kCachedPartitions];
  int n = UsedPartitionSlotsLocked(used);
  ForEachPartitionCacheLocked(used, n, [&bytes](int, const ThreadCache* tc) { bytes += tc->CachedBytes(); });
  return bytes;
}

}  // namespace nitro
