#include "core/cache_slots.h"

namespace nitro {
namespace {

constexpr ThreadCaches EmptyThreadCaches(ThreadCache* sentinel) {
  ThreadCaches t{};
  for (ThreadCache*& c : t.by_slot) c = sentinel;
  return t;
}

}  // namespace

ThreadCache g_sentinel_cache;
__thread ThreadCache* tls_cache __attribute__((tls_model("initial-exec"))) = &g_sentinel_cache;
__thread ThreadCaches tls_caches __attribute__((tls_model("initial-exec"))) =
    EmptyThreadCaches(&g_sentinel_cache);

intptr_t CacheSlotTpOffset(int slot) {
  return reinterpret_cast<intptr_t>(&tls_caches.by_slot[slot]) -
         reinterpret_cast<intptr_t>(__builtin_thread_pointer());
}

}  // namespace nitro
