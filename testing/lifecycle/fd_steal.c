/* Found by CPython's test_subprocess (issue 9's sweep moved onto the
 * background thread): a descriptor NitroHeap's background thread opens for a
 * moment takes the number the program's next open() or dup2() expects; a
 * child started with stdout closed got its stdout from our directory
 * descriptor, and our close() then closed it.
 *
 * The program keeps the lowest free descriptor number free and, for
 * SECONDS seconds, opens /dev/null and checks that it gets exactly that
 * number, while it allocates (so that sampling, the stale sweep and
 * numbered profiles give the background thread work that opens files).
 * Exit 0 when every open got the expected number; 1 otherwise, with a count.
 * Passes without NitroHeap by construction. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 3;
  int expected = open("/dev/null", O_RDONLY);
  if (expected < 0) {
    perror("open /dev/null");
    return 2;
  }
  close(expected);
  long opens = 0, stolen = 0;
  void* keep[64] = {0};
  double end = now() + seconds;
  unsigned r = 12345;
  while (now() < end) {
    for (int i = 0; i < 64; i++) {
      r = r * 1103515245u + 12345u;
      free(keep[i]);
      keep[i] = malloc((r >> 16) % 20000 + 1);
    }
    int fd = open("/dev/null", O_RDONLY);
    opens++;
    if (fd != expected) stolen++;
    if (fd >= 0) close(fd);
  }
  for (int i = 0; i < 64; i++) free(keep[i]);
  if (stolen != 0) {
    fprintf(stderr, "fd_steal: %ld of %ld opens got another number than %d: a descriptor of the allocator held it\n",
            stolen, opens, expected);
    return 1;
  }
  printf("ok %ld opens\n", opens);
  return 0;
}
