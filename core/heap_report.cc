// The heap's own numbers and the report printed by stats_print=1 and
// nitro_stats_print: both built without allocating.
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "core/heap_internal.h"
#include "core/meta_pool.h"
#include "core/numa.h"

namespace nitro {
namespace {

// Formats a report on the stack: printing it must not allocate.
class ReportBuffer {
 public:
  __attribute__((format(printf, 2, 3))) void Add(const char* fmt, ...) {
    if (n_ >= sizeof(buf_)) return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf_ + n_, sizeof(buf_) - n_, fmt, ap);
    va_end(ap);
    if (m > 0) n_ += static_cast<size_t>(m);
    if (n_ > sizeof(buf_)) n_ = sizeof(buf_);
  }
  void WriteTo(int fd) const { WriteOutput(fd, buf_, n_); }

 private:
  char buf_[4096];
  size_t n_ = 0;
};

}  // namespace

HeapStats GetHeapStats() {
  HeapStats st{};
  if (!Started()) return st;
  // The thread caches first: while the heap grows (threads carving slabs),
  // the slabs counted next include every object a cache held here, so
  // the small objects held by the program never come out negative.
  st.thread_cache_bytes = ThreadCachedBytes();
  size_t small_object_bytes = 0, large_usable_bytes = 0;
  Partition::ForEach([&st, &small_object_bytes, &large_usable_bytes](Partition* part) {
    PartitionStats ps = part->Stats();
    st.reserved_bytes += ps.pages.reserved_bytes;
    st.in_use_page_bytes += ps.pages.in_use_bytes;
    st.free_committed_bytes += ps.pages.free_committed_bytes;
    st.free_released_bytes += ps.pages.free_released_bytes;
    st.released_total_bytes += ps.pages.released_total_bytes;
    st.transfer_bytes += ps.small_transfer_bytes;
    st.slab_free_bytes += ps.small_slab_free_bytes;
    st.large_allocations += ps.large_allocations;
    st.large_bytes += ps.large_bytes;
    st.quarantine_bytes += ps.pages.quarantine_bytes;
    st.quarantine_committed_bytes += ps.pages.quarantine_committed_bytes;
    small_object_bytes += ps.small_object_bytes;
    large_usable_bytes += ps.large_usable_bytes;
    st.partitions++;
  });
  st.threads = ThreadCount();
  st.committed_bytes = st.in_use_page_bytes + st.free_committed_bytes + st.quarantine_committed_bytes;
  // Large blocks exactly (counted under the large-block lock); small
  // objects as the slabs' objects less the free ones. The layers are read
  // one after another, not at one instant: taking everything free from
  // every page in use read 0 once a program's threads had carved new slabs
  // between the reads (abi:mallctl_stress_test, about one run in six on a
  // loaded machine), large blocks included.
  size_t held = st.thread_cache_bytes + st.transfer_bytes + st.slab_free_bytes;
  st.allocated_bytes = (small_object_bytes > held ? small_object_bytes - held : 0) + large_usable_bytes;
  st.metadata_bytes = MetaBytesMapped();
  st.span_descriptor_bytes = SpanPool().committed_bytes();
  st.page_map_bytes = GlobalPageMap().ResidentBytes() + GlobalPageMap().HintResidentBytes();
  GuardedPool::Counts guarded = g_pool.counts();
  st.sampled_live = guarded.live;
  st.sampled_total = guarded.total;
  return st;
}

void PrintHeapReport(int fd, unsigned omit) {
  HeapStats st = GetHeapStats();
  ReportBuffer out;
  auto mib = [](size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
  out.Add("---- NitroHeap heap report (pid %d) ----\n", static_cast<int>(getpid()));
  if (Mode() == HeapMode::kLegacy) {
    out.Add("mode: legacy (every call goes to the C library's allocator)\n");
  } else if ((omit & kSectionMerged) == 0) {
    out.Add("allocated by program   %10.2f MiB\n", mib(st.allocated_bytes));
    if ((omit & kSectionLarge) == 0) {
      out.Add("  of which large       %10.2f MiB in %zu allocations\n", mib(st.large_bytes),
              st.large_allocations);
    }
    out.Add("committed              %10.2f MiB\n", mib(st.committed_bytes));
    out.Add("  thread caches        %10.2f MiB (%zu threads)\n", mib(st.thread_cache_bytes), st.threads);
    out.Add("  middle layer         %10.2f MiB\n", mib(st.transfer_bytes));
    out.Add("  free in slabs        %10.2f MiB\n", mib(st.slab_free_bytes));
    out.Add("  free pages (cached)  %10.2f MiB\n", mib(st.free_committed_bytes));
    out.Add("  large quarantine     %10.2f MiB not yet given back\n", mib(st.quarantine_committed_bytes));
    out.Add("returned to the OS     %10.2f MiB total\n", mib(st.released_total_bytes));
    out.Add("address space reserved %10.2f MiB in %zu partitions\n", mib(st.reserved_bytes),
        st.partitions);
    out.Add("metadata               %10.2f MiB\n", mib(st.metadata_bytes));
    out.Add("  span descriptors     %10.2f MiB committed (returned as they empty)\n",
            mib(st.span_descriptor_bytes));
    out.Add("  page map             %10.2f MiB resident\n", mib(st.page_map_bytes));
  }
  if (Mode() != HeapMode::kLegacy && (omit & kSectionGeneral) == 0) {
    out.Add("hardening              %s; large quarantine %.2f MiB; guarded %zu live, %zu sampled\n",
            ModeName(g_options.mode), mib(st.quarantine_bytes), st.sampled_live, st.sampled_total);
    int nodes = numa::OnlineNodes();
    if (numa::ProcessInterleaveMask() != 0) {
      out.Add("numa                   %d nodes: PERSISTENT partitions interleaved over %d\n", nodes,
              __builtin_popcountll(numa::ProcessInterleaveMask()));
    } else {
      out.Add("numa                   %d node%s usable: PERSISTENT partitions not interleaved\n", nodes,
              nodes == 1 ? "" : "s, fewer than two");
    }
  }
  out.Add("----------------------------------------\n");
  out.WriteTo(fd);
}

}  // namespace nitro
