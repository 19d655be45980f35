#include "core/report.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/base.h"
#include "core/os.h"

namespace nitro {
namespace {

void WriteAll(int fd, const char* p, size_t len) { WriteOutput(fd, p, len); }

}  // namespace

namespace {

// Pages a walk may read without asking the kernel: a run of pages going
// up from an anchor, the page of the walk's first frame. The anchor is
// readable (the thread runs on it), and a page joins the run only when the
// kernel read it and it is the next page up, so the run is one readable
// range that starts inside the stack this thread is running on. A walk uses
// only the run anchored at its own first page: a walk from another page
// (another call depth, a fiber's or a signal stack) starts a run of its own,
// and pages of a stack the program may since have unmapped are never
// trusted from anywhere else. Empty (pages 0) for a walk from an unknown
// frame pointer.
struct KnownPages {
  static constexpr size_t kMaxPages = 16;
  uintptr_t anchor;
  size_t pages;
  bool Has(uintptr_t p) const { return p >= anchor && p - anchor < pages * kPageSize; }
  void Add(uintptr_t p) {
    if (pages != 0 && pages < kMaxPages && p == anchor + pages * kPageSize) pages++;
  }
};

// A thread's runs, one per anchor page it walked from lately. Sampled
// allocations are captured at malloc and again at free, from frames at
// different depths; when those straddle a page boundary one run would be
// restarted by each walk, and every sample would pay a kernel read again
// (testing/bench:guarded_syscalls_test saw four system calls per sample
// instead of two, on one stack placement in five).
struct KnownStacks {
  static constexpr int kRuns = 4;
  KnownPages runs[kRuns];
  unsigned next;
  KnownPages* For(uintptr_t page) {
    for (KnownPages& run : runs) {
      if (run.pages != 0 && run.anchor == page) return &run;
    }
    KnownPages* run = &runs[next++ % kRuns];
    run->anchor = page;
    run->pages = 1;
    return run;
  }
};

// Kernel reads this thread's walks made (StackWalkKernelReads).
__thread uint64_t tls_stack_kernel_reads __attribute__((tls_model("initial-exec"))) = 0;

// Frame pointers are kept in NitroHeap's build (and usually in the
// program's); each frame is [saved fp][return address]. Stops at the first
// implausible frame: the caller's frame is above, on the same stack, aligned.
// Code built without frame pointers leaves anything in the frame-pointer
// register, so a walk must never fault: a frame on a page not `known` to be
// readable is read through the kernel (one system call), and its page joins
// the known run if it is the run's next page.
int WalkFrames(uintptr_t* fp, uintptr_t* frames, int max, int skip, KnownPages* known) {
  int n = 0;
  for (int depth = 0; fp != nullptr && n < max && depth < 256; depth++) {
    auto a = reinterpret_cast<uintptr_t>(fp);
    if ((a & 7) != 0 || a < 0x10000) break;
    uintptr_t words[2];
    uintptr_t first = RoundDown(a, kPageSize), last = RoundDown(a + 15, kPageSize);
    if (known->Has(first) && known->Has(last)) {
      words[0] = fp[0];
      words[1] = fp[1];
    } else {
      tls_stack_kernel_reads++;
      if (!os::ReadWithoutFault(fp, words, sizeof(words))) break;
      known->Add(first);
      known->Add(last);
    }
    uintptr_t next = words[0];
    uintptr_t ret = words[1];
    // Code built without frame pointers leaves garbage here: stop at it.
    if (ret < 0x10000) break;
    if (depth >= skip) frames[n++] = ret;
    if (next <= reinterpret_cast<uintptr_t>(fp) ||
        next - reinterpret_cast<uintptr_t>(fp) > (8u << 20) || (next & 7) != 0) {
      break;
    }
    fp = reinterpret_cast<uintptr_t*>(next);
  }
  return n;
}

// The run of this thread's stack that its earlier walks read, so that a
// sampled allocation's stacks cost no system call once the thread's usual
// frames are known (issue 13: two calls, getpid and process_vm_readv, per
// page a walk entered, per stack).
__thread KnownStacks tls_known_stacks __attribute__((tls_model("initial-exec"))) = {};

}  // namespace

int CaptureStack(uintptr_t* frames, int max, int skip) {
  // This function's own frame is readable, and so is the rest of its page.
  auto* fp = static_cast<uintptr_t*>(__builtin_frame_address(0));
  KnownPages* known = tls_known_stacks.For(RoundDown(reinterpret_cast<uintptr_t>(fp), kPageSize));
  return WalkFrames(fp, frames, max, skip, known);
}

uint64_t StackWalkKernelReads() { return tls_stack_kernel_reads; }

int CaptureStackFrom(uintptr_t fp, uintptr_t pc, uintptr_t* frames, int max) {
  if (max <= 0) return 0;
  frames[0] = pc + 1;  // WriteStack steps back one byte, as for return addresses
  // fp is whatever the faulting code left in the register: nothing is known.
  KnownPages none = {};
  return 1 + WalkFrames(reinterpret_cast<uintptr_t*>(fp), frames + 1, max - 1, 0, &none);
}

void WriteStack(int fd, const char* title, const uintptr_t* frames, int n) {
  char line[512];
  int len = snprintf(line, sizeof(line), "nitroheap: %s:\n", title);
  WriteAll(fd, line, static_cast<size_t>(len));
  for (int i = 0; i < n; i++) {
    Dl_info info;
    // Return addresses point after the call; step back into it.
    uintptr_t pc = frames[i] - 1;
    if (dladdr(reinterpret_cast<void*>(pc), &info) != 0 && info.dli_fname != nullptr) {
      if (info.dli_sname != nullptr) {
        len = snprintf(line, sizeof(line), "nitroheap:   #%d 0x%lx in %s+0x%lx (%s)\n", i,
                       static_cast<unsigned long>(frames[i]), info.dli_sname,
                       static_cast<unsigned long>(pc + 1 - reinterpret_cast<uintptr_t>(info.dli_saddr)),
                       info.dli_fname);
      } else {
        len = snprintf(line, sizeof(line), "nitroheap:   #%d 0x%lx in %s+0x%lx\n", i,
                       static_cast<unsigned long>(frames[i]), info.dli_fname,
                       static_cast<unsigned long>(pc + 1 - reinterpret_cast<uintptr_t>(info.dli_fbase)));
      }
    } else {
      len = snprintf(line, sizeof(line), "nitroheap:   #%d 0x%lx\n", i,
                     static_cast<unsigned long>(frames[i]));
    }
    if (len > 0) WriteAll(fd, line, static_cast<size_t>(len) < sizeof(line) ? static_cast<size_t>(len) : sizeof(line) - 1);
  }
}

void ReportMisuse(const char* kind, const void* addr, const char* partition, const char* fmt, ...) {
  char line[512];
  int n = snprintf(line, sizeof(line), "nitroheap: %s at %p in partition %s: ", kind, addr,
                   partition != nullptr ? partition : "(none)");
  if (n < 0) n = 0;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof(line) - static_cast<size_t>(n) - 1, fmt, ap);
  va_end(ap);
  size_t len = static_cast<size_t>(n) + (m > 0 ? static_cast<size_t>(m) : 0);
  if (len > sizeof(line) - 2) len = sizeof(line) - 2;
  line[len++] = '\n';
  WriteAll(2, line, len);
  uintptr_t frames[kMaxFrames];
  int count = CaptureStack(frames, kMaxFrames, 1);
  WriteStack(2, "stack", frames, count);
  NotifyMisuse(kind, addr);
  // abort() could run handlers that allocate; raise SIGABRT with the default action.
  signal(SIGABRT, SIG_DFL);
  abort();
}

}  // namespace nitro
