#include "core/guarded_pool.h"

#include <pthread.h>
#include <signal.h>
#include <ucontext.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/meta_pool.h"
#include "core/os.h"
#include "core/page_heap.h"
#include "core/page_map.h"
#include "core/partition.h"

namespace nitro {
namespace {

GuardedPool* g_fault_pool = nullptr;

// An already freed block handed to `what`: freeing it again (free, sized
// free, realloc) is a double free; asking its size is an invalid call.
const char* FreedKind(const char* what) {
  return strstr(what, "free") != nullptr || strcmp(what, "realloc") == 0 ? misuse::kDoubleFree
                                                                         : misuse::kInvalidFree;
}
ZeroSizeRegion* g_fault_zero = nullptr;
struct sigaction g_old_segv, g_old_bus;
bool g_handler_installed = false;

// The kind of the fault being reported, for the error callback.
const char* g_fault_kind = nullptr;

void WriteLine(const char* s) { WriteOutput(2, s, strlen(s)); }

// An access through a pointer malloc(0) returned (strict's zero-size
// region, or a kZeroSizeClass slab, PROT_NONE as a whole).
void ReportZeroSizeFault(uintptr_t addr, const char* partition) {
  char line[256];
  g_fault_kind = misuse::kOverflow;
  snprintf(line, sizeof(line),
           "nitroheap: %s at %p in partition %s: access through a pointer returned by malloc(0)\n",
           misuse::kOverflow, reinterpret_cast<void*>(addr), partition);
  WriteLine(line);
}

// Pages NitroHeap made PROT_NONE: freed large runs, large blocks' guard
// pages, and kZeroSizeClass slabs.
bool ReportPageFault(uintptr_t addr) {
  Span* s = GlobalPageMap().Get(reinterpret_cast<void*>(addr));
  if (s == nullptr) return false;
  if (s->state == SpanState::kSlab && s->size_class == kZeroSizeClass) {
    ReportZeroSizeFault(addr, s->partition->name());
    return true;
  }
  char line[320];
  if (s->state == SpanState::kFree && s->prot_none) {
    g_fault_kind = misuse::kUseAfterFree;
    snprintf(line, sizeof(line),
             "nitroheap: %s at %p in partition %s: access to freed large memory (a free run of %zu bytes)\n",
             misuse::kUseAfterFree, reinterpret_cast<void*>(addr), s->partition->name(), s->bytes());
  } else if (s->state == SpanState::kLarge && s->guard_pages && addr >= s->end() - kPageSize) {
    g_fault_kind = misuse::kOverflow;
    snprintf(line, sizeof(line),
             "nitroheap: %s at %p in partition %s: %zu bytes past the end of a %zu-byte allocation at %p\n",
             misuse::kOverflow, reinterpret_cast<void*>(addr), s->partition->name(),
             static_cast<size_t>(addr - s->start) - s->requested, s->requested,
             reinterpret_cast<void*>(s->start));
  } else {
    return false;
  }
  WriteLine(line);
  return true;
}

// Runs what was installed before us, or does what the default action would
// have done: the process dies of `sig`, as it would without NitroHeap.
void PassOn(int sig, siginfo_t* info, void* ctx) {
  struct sigaction* old = sig == SIGBUS ? &g_old_bus : &g_old_segv;
  bool sent = info->si_code <= 0;  // raise(), kill(), sigqueue(): no faulting access
  if (old->sa_flags & SA_SIGINFO) {
    old->sa_sigaction(sig, info, ctx);
    return;
  }
  if (old->sa_handler == SIG_IGN) {
    // An ignored signal someone sent is dropped; a real fault cannot be
    // ignored (the kernel kills the process when it recurs), so it kills.
    if (sent) return;
  } else if (old->sa_handler != SIG_DFL) {
    old->sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);
  // A fault happens again when the handler returns and then kills; a sent
  // signal does not, so send it again, now with the default action. (The
  // handler runs with SA_NODEFER: it is delivered at once.)
  if (sent) raise(sig);
}

// Set while this thread reports a fault: a fault inside the report (it
// must not happen, but a report must never loop) kills the process at once.
__thread bool tls_reporting_fault __attribute__((tls_model("initial-exec"))) = false;

void FaultHandler(int sig, siginfo_t* info, void* ctx) {
  // Only a fault of the kernel's making has a faulting address.
  if (info->si_code <= 0) {
    PassOn(sig, info, ctx);
    return;
  }
  if (tls_reporting_fault) {
    signal(sig, SIG_DFL);
    return;
  }
  auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  bool ours = false;
  tls_reporting_fault = true;
  if (g_fault_pool != nullptr && g_fault_pool->ReportFault(addr)) {
    ours = true;
  } else if (g_fault_zero != nullptr && g_fault_zero->Contains(addr)) {
    ReportZeroSizeFault(addr, "default");
    ours = true;
  } else if (ReportPageFault(addr)) {
    ours = true;
  }
  if (ours) {
    uintptr_t frames[kMaxFrames];
    int n;
#if defined(__x86_64__)
    auto* uc = static_cast<ucontext_t*>(ctx);
    n = CaptureStackFrom(static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RBP]),
                         static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]), frames, kMaxFrames);
#else
    n = CaptureStack(frames, kMaxFrames, 0);
#endif
    WriteStack(2, "faulting access at", frames, n);
    NotifyMisuse(g_fault_kind != nullptr ? g_fault_kind : "fault", reinterpret_cast<void*>(addr));
    // Die of the original signal: restore the default action and return, so
    // the faulting access runs again.
    signal(sig, SIG_DFL);
    return;
  }
  tls_reporting_fault = false;
  PassOn(sig, info, ctx);
}

}  // namespace

void RegisterFaultPools(GuardedPool* pool, ZeroSizeRegion* zero) {
  g_fault_pool = pool;
  g_fault_zero = zero;
}

void InstallFaultHandler() {
  if (g_handler_installed) return;
  g_handler_installed = true;
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = FaultHandler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_old_segv);
  sigaction(SIGBUS, &sa, &g_old_bus);
}

bool GuardedPool::Init(Partition* owner) {
  owner_ = owner;
  bytes_ = kPageSize + kSlots * kStride;
  void* base = os::Reserve(bytes_, kPageSize);
  if (base == nullptr) return false;
  if (!os::ProtectNone(base, bytes_)) {
    os::Unmap(base, bytes_);
    return false;
  }
  slots_ = static_cast<Slot*>(MetaAllocRaw(sizeof(Slot) * kSlots));
  spans_ = static_cast<Span**>(MetaAllocRaw(sizeof(Span*) * kSlots));
  if (slots_ == nullptr || spans_ == nullptr ||
      !GlobalPageMap().Ensure(reinterpret_cast<uintptr_t>(base), bytes_)) {
    os::Unmap(base, bytes_);
    return false;
  }
  // The slots and their spans stay zero, fresh from mmap: a slot's span is
  // made when the slot is first used (SpanFor), so that a process that
  // samples a few allocations does not keep 256 span descriptors (128 KiB)
  // resident. Until then the slot's pages are in no span: a free into them
  // is reported as memory not from the heap.
  os::RandomBytes(&rng_, sizeof(rng_));
  rng_ |= 1;
  base_ = reinterpret_cast<uintptr_t>(base);
  return true;
}

Span* GuardedPool::SpanFor(size_t i) {
  if (spans_[i] != nullptr) return spans_[i];
  Span* s = SpanPool().New();
  if (s == nullptr) return nullptr;
  s->state = SpanState::kGuarded;
  s->partition = owner_;
  s->partition_id = owner_->id();
  s->start = SlotData(i);
  s->pages = kDataPages;
  GlobalPageMap().Set(s->start, kDataPages, s);
  spans_[i] = s;
  return s;
}

void* GuardedPool::Allocate(size_t size, size_t align, Partition* partition) {
  if (align < kMinAlign) align = kMinAlign;
  if (size > kDataPages * kPageSize || align > kPageSize) return nullptr;
  size_t need = size == 0 ? 1 : size;
  // The stack walk and the system call run outside the lock: with many
  // threads on few cores, a holder preempted in mprotect made every other
  // sample and guarded free wait (workloads scaling, 32 threads on 2 cores:
  // 229 of 1,030 futex waits were on this lock).
  uintptr_t stack[kMaxFrames];
  int frames = CaptureStack(stack, kMaxFrames, 2);
  size_t i = kSlots;
  uintptr_t ptr;
  Span* span;
  {
    LockGuard g(lock_);
    for (size_t k = 0; k < kSlots; k++) {
      size_t cand = (next_ + k) % kSlots;
      if (slots_[cand].state != SlotState::kLive && !slots_[cand].retired && !slots_[cand].busy) {
        i = cand;
        break;
      }
    }
    if (i == kSlots) return nullptr;
    span = SpanFor(i);
    if (span == nullptr) return nullptr;
    next_ = (i + 1) % kSlots;
    uintptr_t data = SlotData(i);
    uintptr_t data_end = data + kDataPages * kPageSize;
    // Against the right guard (overflows fault) or the left one (underflows).
    ptr = (XorShift64(&rng_) & 1) ? RoundDown(data_end - need, align) : data;
    // This thread's until published below: no other Allocate takes it, and
    // until then a free of, or a fault in, the slot concerns its previous
    // allocation, whose record stays as it was.
    slots_[i].busy = true;
  }
  uintptr_t first_page = RoundDown(ptr, kPageSize);
  uintptr_t last_page = RoundUp(ptr + need, kPageSize);
  // The one system call of a sampled allocation. No memset: an unused or
  // freed slot's pages are fresh from the kernel (Free remaps them), so they
  // read as zero, and touching them here would only add page faults.
  bool opened = os::ProtectReadWrite(reinterpret_cast<void*>(first_page), last_page - first_page);
  if (opened && canary_ != 0) memset(reinterpret_cast<void*>(ptr + size), canary_, last_page - (ptr + size));
  LockGuard g(lock_);
  Slot& slot = slots_[i];
  slot.busy = false;
  if (!opened) return nullptr;
  slot.state = SlotState::kLive;
  slot.ptr = ptr;
  slot.size = size;
  slot.alloc_thread = static_cast<unsigned long>(pthread_self());
  memcpy(slot.alloc_stack, stack, sizeof(uintptr_t) * static_cast<size_t>(frames));
  slot.alloc_frames = frames;
  slot.free_frames = 0;
  span->start = ptr;
  span->requested = size;
  span->partition = partition != nullptr ? partition : owner_;
  span->partition_id = span->partition->id();
  AddCount(total_, 1);  // before live_: counts() reads live_ first
  AddCount(live_, 1);
  AddCount(live_bytes_, size);
  return reinterpret_cast<void*>(ptr);
}

GuardedPool::Slot& GuardedPool::LiveSlot(Span* s, const void* p, const char* what) {
  auto a = reinterpret_cast<uintptr_t>(p);
  Slot& slot = slots_[(s->start - base_ - kPageSize) / kStride];
  if (slot.state == SlotState::kLive && a == slot.ptr) return slot;
  if (slot.state == SlotState::kFreed && a == slot.ptr) {
    ReportMisuse(FreedKind(what), p, s->partition->name(),
                 "%s of a guarded allocation of %zu bytes, already freed", what, slot.size);
  }
  if (slot.state == SlotState::kLive) {
    ReportMisuse(misuse::kInvalidFree, p, s->partition->name(),
                 "%s of a pointer that is not the start of a guarded allocation (%zu bytes at %p)", what,
                 slot.size, reinterpret_cast<void*>(slot.ptr));
  }
  ReportMisuse(misuse::kInvalidFree, p, s->partition->name(),
               "%s of a pointer into a guarded slot that holds no live allocation", what);
}

GuardedPool::Counts GuardedPool::counts() {
  // live_ before total_ (Allocate adds to them in the other order), so
  // that total never reads below live: frees are total - live.
  Counts c;
  c.live = __atomic_load_n(&live_, __ATOMIC_ACQUIRE);
  c.live_bytes = __atomic_load_n(&live_bytes_, __ATOMIC_RELAXED);
  c.total = __atomic_load_n(&total_, __ATOMIC_ACQUIRE);
  return c;
}

size_t GuardedPool::UsableSize(Span* s, const void* p, const char* what) {
  LockGuard g(lock_);
  return LiveSlot(s, p, what).size;
}

size_t GuardedPool::Free(Span* s, void* p) {
  size_t i = (s->start - base_ - kPageSize) / kStride;
  uintptr_t stack[kMaxFrames];
  int frames = CaptureStack(stack, kMaxFrames, 2);
  uintptr_t ptr, slack_end;
  size_t size;
  {
    LockGuard g(lock_);
    Slot& slot = LiveSlot(s, p, "free");
    // Freed from here on (a second free is reported as one), and this
    // thread's until its pages are closed below: not reused before.
    slot.state = SlotState::kFreed;
    slot.busy = true;
    slot.free_thread = static_cast<unsigned long>(pthread_self());
    memcpy(slot.free_stack, stack, sizeof(uintptr_t) * static_cast<size_t>(frames));
    slot.free_frames = frames;
    ptr = slot.ptr;
    size = slot.size;
    slack_end = SlackEnd(slot);
  }
  if (canary_ != 0) {
    for (uintptr_t b = ptr + size; b < slack_end; b++) {
      if (*reinterpret_cast<const uint8_t*>(b) != canary_) {
        ReportMisuse(misuse::kOverflow, reinterpret_cast<void*>(b), s->partition->name(),
                     "the %zu-byte guarded object at %p was written past its end (canary at offset %zu)",
                     size, p, static_cast<size_t>(b - ptr));
      }
    }
  }
  // The one system call of a sampled free: inaccessible, so a later access
  // faults; given back, so a freed slot costs no memory while it waits; and
  // zero when Allocate opens it again.
  bool closed = os::MapInaccessible(reinterpret_cast<void*>(SlotData(i)), kDataPages * kPageSize);
  LockGuard g(lock_);
  Slot& slot = slots_[i];
  slot.retired = !closed;
  slot.busy = false;
  AddCount(live_, ~size_t{0});
  AddCount(live_bytes_, size_t{0} - size);
  return size;
}

void GuardedPool::Resize(Span* s, size_t size) {
  size_t i = (s->start - base_ - kPageSize) / kStride;
  LockGuard g(lock_);
  Slot& slot = slots_[i];
  if (slot.state != SlotState::kLive || size > slot.size) return;
  if (canary_ != 0) memset(reinterpret_cast<void*>(slot.ptr + size), canary_, slot.size - size);
  AddCount(live_bytes_, size_t{0} - (slot.size - size));
  slot.size = size;
  s->requested = size;
}

bool GuardedPool::ReportFault(uintptr_t addr) {
  if (base_ == 0 || addr < base_ || addr >= base_ + bytes_) return false;
  // Layout: [guard][slot 0 data][guard][slot 1 data][guard]... An address in
  // a slot's data region belongs to that slot; one in a guard page belongs to
  // whichever neighbouring allocation it is nearer to (an overflow off the
  // left one's end, or an underflow before the right one's start).
  size_t i;
  if (addr < SlotData(0)) {
    i = 0;
  } else {
    i = (addr - SlotData(0)) / kStride;
    if (i >= kSlots) i = kSlots - 1;
    uintptr_t guard = SlotData(i) + kDataPages * kPageSize;
    if (addr >= guard && i + 1 < kSlots) {
      const Slot& left = slots_[i];
      const Slot& right = slots_[i + 1];
      uintptr_t d_left = left.state == SlotState::kUnused ? ~uintptr_t{0} : addr - (left.ptr + left.size);
      uintptr_t d_right = right.state == SlotState::kUnused || right.ptr < addr ? ~uintptr_t{0} : right.ptr - addr;
      if (d_right < d_left) i++;
    }
  }
  Slot& s = slots_[i];
  char line[400];
  const char* kind;
  char detail[200];
  if (s.state == SlotState::kUnused) {
    kind = "fault";
    snprintf(detail, sizeof(detail), "in guarded slot %zu, which has held no allocation yet (a wild pointer)", i);
  } else if (s.state == SlotState::kFreed) {
    kind = misuse::kUseAfterFree;
    snprintf(detail, sizeof(detail), "offset %ld in a freed guarded allocation of %zu bytes at %p",
             static_cast<long>(addr - s.ptr), s.size, reinterpret_cast<void*>(s.ptr));
  } else if (addr >= s.ptr + s.size) {
    kind = misuse::kOverflow;
    snprintf(detail, sizeof(detail), "%zu bytes past the end of a guarded allocation of %zu bytes at %p (offset %zu)",
             static_cast<size_t>(addr - (s.ptr + s.size)), s.size, reinterpret_cast<void*>(s.ptr),
             static_cast<size_t>(addr - s.ptr));
  } else if (addr < s.ptr) {
    kind = misuse::kUnderflow;
    snprintf(detail, sizeof(detail), "%zu bytes before a guarded allocation of %zu bytes at %p (offset -%zu)",
             static_cast<size_t>(s.ptr - addr), s.size, reinterpret_cast<void*>(s.ptr),
             static_cast<size_t>(s.ptr - addr));
  } else {
    kind = "fault";
    snprintf(detail, sizeof(detail), "inside a guarded allocation of %zu bytes at %p", s.size,
             reinterpret_cast<void*>(s.ptr));
  }
  g_fault_kind = kind;
  snprintf(line, sizeof(line), "nitroheap: %s at %p in partition %s: %s\n", kind,
           reinterpret_cast<void*>(addr), (spans_[i] != nullptr ? spans_[i]->partition : owner_)->name(),
           detail);
  WriteLine(line);
  char title[96];
  snprintf(title, sizeof(title), "allocated by thread %#lx at", s.alloc_thread);
  WriteStack(2, title, s.alloc_stack, s.alloc_frames);
  if (s.state == SlotState::kFreed) {
    snprintf(title, sizeof(title), "freed by thread %#lx at", s.free_thread);
    WriteStack(2, title, s.free_stack, s.free_frames);
  }
  return true;
}

bool ZeroSizeRegion::Init(Partition* owner) {
  owner_ = owner;
  void* base = os::Reserve(kBytes, kPageSize);
  if (base == nullptr) return false;
  os::ProtectNone(base, kBytes);
  live_bits_ = static_cast<uint64_t*>(os::Reserve(kBytes / kMinAlign / 8, kPageSize));
  Span* s = SpanPool().New();
  if (live_bits_ == nullptr || s == nullptr ||
      !GlobalPageMap().Ensure(reinterpret_cast<uintptr_t>(base), kBytes)) {
    return false;
  }
  s->state = SpanState::kZeroSize;
  s->partition = owner;
  s->partition_id = owner->id();
  s->start = reinterpret_cast<uintptr_t>(base);
  s->pages = static_cast<uint32_t>(kBytes >> kPageShift);
  GlobalPageMap().Set(s->start, s->pages, s);
  base_ = reinterpret_cast<uintptr_t>(base);
  return true;
}

void* ZeroSizeRegion::Allocate() {
  LockGuard g(lock_);
  if (base_ == 0 || next_ >= kBytes / kMinAlign) return nullptr;
  size_t i = next_++;
  live_bits_[i / 64] |= uint64_t{1} << (i % 64);
  return reinterpret_cast<void*>(base_ + i * kMinAlign);
}

namespace {

// Reports `p` unless it is a live zero-size allocation; returns its index.
size_t CheckZeroSize(uintptr_t base, const uint64_t* live_bits, size_t issued, const void* p,
                     const char* partition, const char* what) {
  auto a = reinterpret_cast<uintptr_t>(p);
  size_t i = (a - base) / kMinAlign;
  if ((a - base) % kMinAlign != 0 || i >= issued) {
    ReportMisuse(misuse::kInvalidFree, p, partition, "%s of a pointer that malloc(0) did not return", what);
  }
  if ((live_bits[i / 64] & (uint64_t{1} << (i % 64))) == 0) {
    ReportMisuse(FreedKind(what), p, partition, "%s of a zero-size allocation, already freed", what);
  }
  return i;
}

}  // namespace

void ZeroSizeRegion::Free(void* p) {
  LockGuard g(lock_);
  size_t i = CheckZeroSize(base_, live_bits_, next_, p, owner_->name(), "free");
  live_bits_[i / 64] &= ~(uint64_t{1} << (i % 64));
}

size_t ZeroSizeRegion::UsableSize(const void* p, const char* what) {
  LockGuard g(lock_);
  CheckZeroSize(base_, live_bits_, next_, p, owner_->name(), what);
  return 0;
}

}  // namespace nitro
