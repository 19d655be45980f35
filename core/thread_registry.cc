// Thread caches: made on a thread's first slow-path call, registered for
// statistics and fork, destroyed when the thread exits.
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/heap_internal.h"
#include "core/meta_pool.h"

namespace nitro {
namespace {

// Constant-initialized: an all-empty cache with no room, shared by every
// thread until it gets its own.
ThreadCache g_sentinel;
MetaPool<ThreadCache> g_cache_pool;
SpinLock g_registry_lock{LockRank::kThreadRegistry};
ThreadCache* g_registry = nullptr;  // under g_registry_lock
size_t g_threads = 0;               // under g_registry_lock
ThreadCache::Counters g_exited_counters;  // under g_registry_lock
pthread_key_t g_thread_key;
bool g_thread_key_ok = false;
std::atomic<bool> g_main_exited{false};
// The value the main thread's key holds before it has a cache, so that its
// exit is seen (pthread_exit from main runs the destructor).
char g_main_marker;

__thread bool tls_dead __attribute__((tls_model("initial-exec"))) = false;

bool IsMainThread() { return syscall(SYS_gettid) == getpid(); }

// Unlinks a cache and keeps its counts; `flush` first returns its objects.
void DestroyThreadCache(ThreadCache* tc, bool flush) {
  if (flush) tc->Flush();
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
  if (arg != &g_main_marker) {
    // Later destructors of this thread may still allocate: they go to the
    // middle layer directly instead of creating a new cache.
    tls_dead = true;
    tls_cache = &g_sentinel;
    DestroyThreadCache(static_cast<ThreadCache*>(arg), /*flush=*/true);
  }
  if (main) g_main_exited.store(true, std::memory_order_release);
  if (ProgramThreadsGone()) g_background.Wake();
}

}  // namespace

__thread ThreadCache* tls_cache __attribute__((tls_model("initial-exec"))) = &g_sentinel;

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
  tls_cache = tc;
  if (g_thread_key_ok) pthread_setspecific(g_thread_key, tc);
  return tc;
}

ThreadCache* CacheForThisThread() {
  ThreadCache* tc = tls_cache;
  return tc->is_sentinel() ? CreateThreadCache() : tc;
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
  ThreadCache* mine = tls_cache;
  for (ThreadCache* tc = g_registry; tc != nullptr;) {
    ThreadCache* next = tc->next;
    if (tc != mine) DestroyThreadCache(tc, /*flush=*/false);
    tc = next;
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
  return bytes;
}

}  // namespace nitro
