// NUMA placement for PERSISTENT partitions (core/traits.h): their regions
// are interleaved page by page over the nodes the process may use, with one
// mbind(MPOL_INTERLEAVE) system call per region (no libnuma), when there are
// two nodes or more. On one node nothing is done: there is nothing to
// spread, and the heap report says so.
#ifndef NITROHEAP_CORE_NUMA_H_
#define NITROHEAP_CORE_NUMA_H_

#include <stddef.h>
#include <stdint.h>

namespace nitro::numa {

// Nodes numbered at least this are ignored (a mask is one word).
inline constexpr int kMaxNodes = 64;

// Parses a kernel node list ("0", "0-3", "0,2-5\n") into a mask; false for
// text that is not one (the mask is then 0).
bool ParseNodeList(const char* text, uint64_t* mask);
// The decision: the nodes to interleave over, those both online and
// allowed; 0 (do nothing) when fewer than two.
uint64_t InterleaveMask(uint64_t online, uint64_t allowed);
// The process's mask, from /sys/devices/system/node/online and
// /proc/self/status (Mems_allowed_list), read once without allocating; 0 on
// one node or when either cannot be read.
uint64_t ProcessInterleaveMask();
// Nodes online (1 when unreadable), for the report.
int OnlineNodes();
// Interleaves [p, p + size) over `mask` (mbind); false for mask 0 or when
// the kernel refuses (the memory is then placed as the kernel's policy says).
bool Interleave(void* p, size_t size, uint64_t mask);
// mbind calls made so far (statistics, tests).
uint64_t InterleaveCalls();

}  // namespace nitro::numa

#endif  // NITROHEAP_CORE_NUMA_H_
