/* Stands in for libjemalloc at link time, so the probe links without
 * jemalloc; under LD_PRELOAD=libnitroheap.so NitroHeap's definitions win and
 * nothing here runs. Reaching one means the preload did not interpose. */
#include <jemalloc/jemalloc.h>
#include <stdlib.h>
#include <unistd.h>

static void not_interposed(void) {
  static const char kMessage[] = "jemalloc_abi_stub: NitroHeap did not interpose the *allocx API or mallctl\n";
  (void)!write(2, kMessage, sizeof(kMessage) - 1);
  abort();
}

void* mallocx(size_t size, int flags) { (void)size, (void)flags; not_interposed(); return NULL; }
void* rallocx(void* p, size_t size, int flags) { (void)p, (void)size, (void)flags; not_interposed(); return NULL; }
size_t xallocx(void* p, size_t size, size_t extra, int flags) { (void)p, (void)size, (void)extra, (void)flags; not_interposed(); return 0; }
size_t sallocx(const void* p, int flags) { (void)p, (void)flags; not_interposed(); return 0; }
void dallocx(void* p, int flags) { (void)p, (void)flags; not_interposed(); }
void sdallocx(void* p, size_t size, int flags) { (void)p, (void)size, (void)flags; not_interposed(); }
size_t nallocx(size_t size, int flags) { (void)size, (void)flags; not_interposed(); return 0; }
int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp, size_t newlen) {
  (void)name, (void)oldp, (void)oldlenp, (void)newp, (void)newlen;
  not_interposed();
  return 0;
}
int mallctlnametomib(const char* name, size_t* mibp, size_t* miblenp) {
  (void)name, (void)mibp, (void)miblenp;
  not_interposed();
  return 0;
}
int mallctlbymib(const size_t* mib, size_t miblen, void* oldp, size_t* oldlenp, void* newp, size_t newlen) {
  (void)mib, (void)miblen, (void)oldp, (void)oldlenp, (void)newp, (void)newlen;
  not_interposed();
  return 0;
}
