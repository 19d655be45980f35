// nitro_partition_create_with: a partition over chosen backing memory
// (include/nitroheap/nitroheap.h, docs/regions.md). The checks happen here,
// before the partition exists, so that bad input leaves nothing behind.
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/heap.h"
#include "core/lock.h"
#include "core/page_map.h"
#include "core/partition.h"
#include "nitroheap/nitroheap.h"

namespace {
// Less than this leaves no room for a slab beside the never-carved last page.
constexpr size_t kMinFixedBytes = size_t{64} << 10;

// True when a page of [base, base + length) belongs to a partition already
// (a block from malloc, say): two partitions cannot own one page.
bool OwnedByAPartition(uintptr_t base, size_t length) {
  for (uintptr_t a = base; a < base + length; a += nitro::kPageSize) {
    if (nitro::GlobalPageMap().Get(reinterpret_cast<void*>(a)) != nullptr) return true;
  }
  return false;
}

// The unlinked file of a FILE partition, or -1 with errno set.
int OpenBackingFile(const char* directory) {
  if (directory == nullptr) directory = getenv("TMPDIR");
  if (directory == nullptr || directory[0] == '\0') directory = "/tmp";
  int fd = open(directory, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  // A file system without O_TMPFILE says EOPNOTSUPP (or EISDIR on old
  // kernels): the directory cannot hold such a file.
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) errno = EINVAL;
  return fd;
}
}  // namespace

extern "C" {

NITRO_EXPORT nitro_partition_t* nitro_partition_create_with(
    const char* name, const nitro_partition_config_t* config) {
  int backing = config != nullptr ? config->backing : NITRO_BACKING_ANONYMOUS;
  auto fixed = config != nullptr ? reinterpret_cast<uintptr_t>(config->memory) : 0;
  size_t length = config != nullptr ? config->length : 0;
  if (backing < NITRO_BACKING_ANONYMOUS || backing > NITRO_BACKING_FIXED ||
      (backing == NITRO_BACKING_FIXED &&
       (fixed == 0 || fixed % nitro::kPageSize != 0 || length % nitro::kPageSize != 0 ||
        length < kMinFixedBytes || fixed + length < fixed))) {
    errno = EINVAL;
    return nullptr;
  }
  nitro::EnsureStarted();
  if (backing == NITRO_BACKING_FIXED && OwnedByAPartition(fixed, length)) {
    errno = EINVAL;
    return nullptr;
  }
  int fd = -1;
  if (backing == NITRO_BACKING_FILE && (fd = OpenBackingFile(config->directory)) < 0) {
    return nullptr;
  }
  // The page map covers the caller's memory before the partition exists.
  if (backing == NITRO_BACKING_FIXED && !nitro::GlobalPageMap().Ensure(fixed, length)) {
    errno = ENOMEM;
    return nullptr;
  }
  nitro::PartitionPolicy policy = nitro::DefaultPolicy();
  if (backing == NITRO_BACKING_HUGE_PAGES) policy.huge_pages = true;
  nitro::Partition* p = nitro::CreatePartition(name, policy);
  if (p == nullptr) {
    if (fd >= 0) {
      int saved = errno;
      close(fd);
      errno = saved;
    }
    return nullptr;
  }
  // Nobody else holds the partition yet, and it has no region: the page
  // heap takes its backing before its first allocation.
  {
    nitro::LockGuard g(p->pages().lock());  // the reclaimer may look already
    if (fd >= 0) p->pages().UseFile(fd);
    if (backing == NITRO_BACKING_FIXED) p->pages().UseFixed(config->memory, length);
  }
  return reinterpret_cast<nitro_partition_t*>(p);
}

}  // extern "C"
