// fork: which locks the handlers take is the lock registry's answer
// (core/lock_registry.h); this file registers the process heap's locks and
// says what else a child needs.
#include <pthread.h>

#include "core/central_free_list.h"
#include "core/heap_internal.h"
#include "core/libc_heap.h"
#include "core/lock_registry.h"
#include "core/meta_pool.h"
#include "core/page_heap.h"

namespace nitro {
namespace {

void ForkPrepare() { AcquireAllLocks(); }
void ForkParent() { ReleaseAllLocks(); }

void ForkChild() {
  ResetAllLocksInChild();
  // The background thread was not copied: the child starts its own on need.
  g_background.ForgetAfterFork();
  if (const TelemetryHooks* hooks = g_hooks.load(std::memory_order_acquire)) {
    if (hooks->on_fork_child != nullptr) hooks->on_fork_child();
  }
  DestroyOtherThreadCachesInChild();
}

bool Registered(const SpinLock* lock) { return IsRegisteredLock(lock); }

}  // namespace

void InstallForkHandlers() {
  // Every lock of the process heap, wherever it lives. Telemetry registers
  // its own (telemetry/runtime.cc). With lock_audit, a lock missing here
  // aborts the first time it is taken.
  RegisterLock(&LibcResolveLock());
  RegisterLock(&g_init_lock);
  RegisterLock(&ThreadRegistryLock());
  RegisterLock(&PartitionTableLock());
  RegisterLockGroup(PartitionLockGroup());
  RegisterLock(&g_pool.lock());
  RegisterLock(&g_zero.lock());
  RegisterLock(&GlobalPageMap().lock());
  RegisterLock(&PartitionPoolLock());
  RegisterLock(&SpanPool().lock());
  RegisterLock(&PageHeap::RegionPool().lock());
  RegisterLock(&SizeTablePoolLock());
  RegisterLock(&ThreadCachePoolLock());
  RegisterLock(&MagazineStoreLock());
  RegisterLock(&MetaLock());
  if (g_options.lock_audit) {
    SetLockAuditor(Registered);
    g_lock_audit = true;
  }
  pthread_atfork(ForkPrepare, ForkParent, ForkChild);
}

}  // namespace nitro
