#include "core/lock_registry.h"

#include <atomic>

namespace nitro {
namespace {

constexpr int kMaxLocks = 48;
constexpr int kMaxGroups = 4;

std::atomic<SpinLock*> g_locks[kMaxLocks];
std::atomic<const LockGroup*> g_groups[kMaxGroups];

template <typename T>
bool AddOnce(std::atomic<T*>* table, int n, T* item) {
  for (int i = 0; i < n; i++) {
    T* cur = table[i].load(std::memory_order_acquire);
    if (cur == item) return true;
    if (cur == nullptr) {
      T* expected = nullptr;
      if (table[i].compare_exchange_strong(expected, item, std::memory_order_acq_rel)) return true;
      if (expected == item) return true;
    }
  }
  return false;
}

constexpr int kRanks = static_cast<int>(LockRank::kCount);

}  // namespace

void RegisterLock(SpinLock* lock) {
  if (!AddOnce(g_locks, kMaxLocks, lock)) Fatal("lock registry: more than %d locks", kMaxLocks);
}

void RegisterLockGroup(const LockGroup* group) {
  if (!AddOnce(g_groups, kMaxGroups, group)) Fatal("lock registry: more than %d lock groups", kMaxGroups);
}

bool IsRegisteredLock(const SpinLock* lock) {
  for (auto& slot : g_locks) {
    if (slot.load(std::memory_order_acquire) == lock) return true;
  }
  for (auto& slot : g_groups) {
    const LockGroup* g = slot.load(std::memory_order_acquire);
    if (g != nullptr && g->owns(lock)) return true;
  }
  return false;
}

void AcquireAllLocks() {
  for (int r = 0; r < kRanks; r++) {
    for (auto& slot : g_locks) {
      SpinLock* l = slot.load(std::memory_order_acquire);
      if (l != nullptr && static_cast<int>(l->rank()) == r) l->Lock();
    }
    for (auto& slot : g_groups) {
      const LockGroup* g = slot.load(std::memory_order_acquire);
      if (g != nullptr && static_cast<int>(g->rank) == r) g->lock_all();
    }
  }
}

void ReleaseAllLocks() {
  for (int r = kRanks - 1; r >= 0; r--) {
    for (int i = kMaxGroups - 1; i >= 0; i--) {
      const LockGroup* g = g_groups[i].load(std::memory_order_acquire);
      if (g != nullptr && static_cast<int>(g->rank) == r) g->unlock_all();
    }
    for (int i = kMaxLocks - 1; i >= 0; i--) {
      SpinLock* l = g_locks[i].load(std::memory_order_acquire);
      if (l != nullptr && static_cast<int>(l->rank()) == r) l->Unlock();
    }
  }
}

void ResetAllLocksInChild() {
  for (auto& slot : g_locks) {
    if (SpinLock* l = slot.load(std::memory_order_acquire)) l->ResetAfterFork();
  }
  for (auto& slot : g_groups) {
    if (const LockGroup* g = slot.load(std::memory_order_acquire)) g->reset_all();
  }
  AuditResetAfterFork();
}

}  // namespace nitro
