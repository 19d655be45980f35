// What protecting a freed large block costs on this machine, by phase:
// closing it (PROT_NONE), opening it again, and touching its pages after.
// Three ways to close: mprotect over the resident pages (what NitroHeap
// does), mmap(MAP_FIXED, PROT_NONE) over them, madvise(DONTNEED) then
// mprotect. The block is filled (resident) before each close; then either
// two bytes or every page are touched after the open. Wall microseconds per
// round, averaged; compare the rows of one run, not runs.
// Usage: protect_cost [--all] [MiB]   (recorded in docs/security.md)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

namespace {

double Now() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  bool all = false;
  size_t mib = 4;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--all") == 0) {
      all = true;
    } else {
      char* end = nullptr;
      unsigned long v = strtoul(argv[i], &end, 10);
      if (end == argv[i] || *end != '\0' || v == 0 || v > 1024) {
        fprintf(stderr, "usage: protect_cost [--all] [MiB, 1..1024]\n");
        return 2;
      }
      mib = v;
    }
  }
  const size_t size = mib << 20;
  const int rounds = 50;
  auto* p = static_cast<char*>(
      mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (p == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  const char* names[] = {"mprotect(PROT_NONE)", "mmap(MAP_FIXED, PROT_NONE)",
                         "madvise(DONTNEED)+mprotect"};
  printf("%zu MiB block, %d rounds, touching %s after the open\n", mib, rounds,
         all ? "every page" : "two bytes");
  for (int way = 0; way < 3; way++) {
    double close_s = 0, open_s = 0, touch_s = 0;
    for (int r = 0; r < rounds; r++) {
      memset(p, r, size);
      double a = Now();
      int rc = 0;
      if (way == 0) rc = mprotect(p, size, PROT_NONE);
      if (way == 1) {
        rc = mmap(p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p ? 0 : -1;
      }
      if (way == 2) rc = madvise(p, size, MADV_DONTNEED) | mprotect(p, size, PROT_NONE);
      double b = Now();
      rc |= mprotect(p, size, PROT_READ | PROT_WRITE);
      double c = Now();
      if (rc != 0) {
        perror(names[way]);
        return 1;
      }
      if (all) {
        for (size_t i = 0; i < size; i += 4096) p[i]++;
      } else {
        p[0]++;
      }
      p[size - 1]++;
      double d = Now();
      close_s += b - a;
      open_s += c - b;
      touch_s += d - c;
    }
    printf("%-28s close %8.1f us  open %7.1f us  touch %9.1f us\n", names[way],
           close_s / rounds * 1e6, open_s / rounds * 1e6, touch_s / rounds * 1e6);
  }
  // The baseline: the same touch with no protection in between.
  double a = Now();
  for (int r = 0; r < rounds; r++) {
    if (all) {
      for (size_t i = 0; i < size; i += 4096) p[i]++;
    } else {
      p[0]++;
    }
    p[size - 1]++;
  }
  printf("%-28s %52s %9.1f us\n", "no protection", "touch", (Now() - a) / rounds * 1e6);
  return 0;
}
