/* Built without NitroHeap and linked with -rdynamic: under LD_PRELOAD of
 * libnitroheap.so, NitroHeap finds these built-in options. Prints the
 * options in force as "sample_rate=N decay_ms=N", or "inactive". */
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

const char* nitroheap_options = "sample_rate=4242,decay_ms=77";

typedef int ctl_fn(const char*, void*, size_t*, const void*, size_t);

int main(void) {
  free(malloc(1));
  ctl_fn* ctl = (ctl_fn*)dlsym(RTLD_DEFAULT, "nitro_ctl");
  if (ctl == NULL) {
    printf("inactive\n");
    return 0;
  }
  uint64_t rate = 0, decay = 0;
  size_t len = sizeof(rate);
  if (ctl("opt.sample_rate", &rate, &len, NULL, 0) != 0 || ctl("opt.decay_ms", &decay, &len, NULL, 0) != 0) {
    printf("nitro_ctl failed\n");
    return 1;
  }
  printf("sample_rate=%llu decay_ms=%llu\n", (unsigned long long)rate, (unsigned long long)decay);
  return 0;
}
