/* Defect 9 (issue 8): NitroHeap holds a descriptor the program never opened
 * (the baseline keeps /dev/shm/nitroheap.<pid> open as descriptor 512 for
 * the life of the process). Prints the open descriptors at the start of main,
 * one line "fds: 0 1 2", and names any descriptor above 2 on stderr. The
 * driver compares the line with the same program run without NitroHeap.
 * With "fork", the line is printed by a forked child (the baseline's child
 * opens a segment of its own). */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void ListFds(void) {
  DIR* d = opendir("/proc/self/fd");
  if (d == NULL) {
    perror("opendir /proc/self/fd");
    exit(2);
  }
  int self = dirfd(d);
  int fds[1024];
  int n = 0;
  struct dirent* e;
  while ((e = readdir(d)) != NULL && n < 1024) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd != self) fds[n++] = fd;
  }
  /* sort: readdir order is not numeric */
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
      int t = fds[j];
      fds[j] = fds[j - 1];
      fds[j - 1] = t;
    }
  printf("fds:");
  for (int i = 0; i < n; i++) {
    printf(" %d", fds[i]);
    if (fds[i] > 2) {
      char link[64], target[512];
      snprintf(link, sizeof link, "/proc/self/fd/%d", fds[i]);
      ssize_t len = readlink(link, target, sizeof target - 1);
      target[len > 0 ? len : 0] = 0;
      fprintf(stderr, "fd_list: descriptor %d -> %s\n", fds[i], target);
    }
  }
  printf("\n");
  fflush(stdout);
  closedir(d);
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "fork") == 0) {
    free(malloc(100));
    pid_t pid = fork();
    if (pid == 0) {
      free(malloc(100));
      ListFds();
      exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  }
  ListFds();
  return 0;
}
