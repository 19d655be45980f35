#include "core/os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <time.h>

#include <atomic>

#include "core/base.h"

namespace nitro::os {

void* Reserve(size_t size, size_t align) {
  if (align < kPageSize) align = kPageSize;
  size_t padded = size + align - kPageSize;
  if (padded < size) return nullptr;
  void* raw = mmap(nullptr, padded, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = RoundUp(start, align);
  if (aligned > start) munmap(raw, aligned - start);
  uintptr_t end = start + padded;
  if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - aligned - size);
  return reinterpret_cast<void*>(aligned);
}

void Unmap(void* p, size_t size) { munmap(p, size); }

void Release(void* p, size_t size) {
  // MADV_DONTNEED (not MADV_FREE) so that RSS drops at once and the next
  // touch sees zeros: callers rely on released memory being zero.
  int saved = errno;
  madvise(p, size, MADV_DONTNEED);
  errno = saved;
}

bool MapFile(void* at, size_t size, int fd, size_t offset) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  if (static_cast<size_t>(st.st_size) < offset + size &&
      ftruncate(fd, static_cast<off_t>(offset + size)) != 0) {
    return false;
  }
  void* p = mmap(at, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_NORESERVE, fd,
                 static_cast<off_t>(offset));
  return p == at;
}

void PunchHole(int fd, size_t offset, size_t size) {
  int saved = errno;  // a file system without holes keeps its blocks
  fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
            static_cast<off_t>(size));
  errno = saved;
}

void TruncateFile(int fd, size_t size) {
  int saved = errno;  // only ever shrinks the file, to free its blocks
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
  }
  errno = saved;
}

void Close(int fd) {
  int saved = errno;
  close(fd);
  errno = saved;
}

void NoHugePages(void* p, size_t size) {
  int saved = errno;
  madvise(p, size, MADV_NOHUGEPAGE);  // advice only: a kernel without THP says EINVAL
  errno = saved;
}

bool ProtectNone(void* p, size_t size) { return mprotect(p, size, PROT_NONE) == 0; }
bool MapInaccessible(void* p, size_t size) {
  // The flags of Reserve's mapping, so the kernel can merge the new mapping
  // with its neighbours instead of adding one per call. errno is kept: free()
  // calls this.
  int saved = errno;
  bool ok = mmap(p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == p;
  errno = saved;
  return ok;
}
bool ProtectReadWrite(void* p, size_t size) {
  return mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
}

bool AdviseHugePages(void* p, size_t size) {
  int saved = errno;  // a hint: a kernel without THP leaves errno as it was
  bool ok = madvise(p, size, MADV_HUGEPAGE) == 0;
  errno = saved;
  return ok;
}

bool ReadWithoutFault(const void* addr, void* out, size_t len) {
  int saved = errno;
  struct iovec local = {out, len};
  struct iovec remote = {const_cast<void*>(addr), len};
  ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  errno = saved;
  return n == static_cast<ssize_t>(len);
}

void RandomBytes(void* buf, size_t len) {
  int saved = errno;
  ssize_t got = getrandom(buf, len, GRND_NONBLOCK);
  errno = saved;
  if (got == static_cast<ssize_t>(len)) return;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t x = static_cast<uint64_t>(ts.tv_nsec) ^ (static_cast<uint64_t>(ts.tv_sec) << 32) ^
               reinterpret_cast<uintptr_t>(buf) ^ reinterpret_cast<uintptr_t>(&ts);
  auto* out = static_cast<unsigned char*>(buf);
  x |= 1;
  for (size_t i = 0; i < len; i++) out[i] = static_cast<unsigned char>(XorShift64(&x));
}

namespace {
std::atomic<int> g_process_id_override{0};
}  // namespace

int ProcessId() {
  int pid = g_process_id_override.load(std::memory_order_relaxed);
  return pid != 0 ? pid : static_cast<int>(getpid());
}

void SetProcessIdOverride(int pid) { g_process_id_override.store(pid, std::memory_order_relaxed); }

}  // namespace nitro::os
