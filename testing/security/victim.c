/* The victim of testing/security/attack_test.sh: a plain program (NitroHeap
 * comes by LD_PRELOAD) that allocates, optionally forks children that
 * allocate, and optionally checks, for as long as it runs, that its live
 * statistics segment exists and is its own.
 *
 *   victim [--alloc-ms N] [--fork N] [--fork-exec N] [--exec-after-ms N]
 *          [--check-segment] [--check-updates] [--expect-no-segment]
 *
 * --fork-exec: each child execs this program at once (as subprocess does;
 * with --exec-after-ms, after allocating that long, past its first tick),
 * which checks its segment and that the segment's statistics are updated
 * while it allocates (--check-segment --check-updates); the parent then
 * checks that no child left a segment behind.
 *
 * Exit status: 0 all well; 2 usage; 3 the segment was missing or not ours
 * (--check-segment), not updated (--check-updates), present
 * (--expect-no-segment) or left by a child; 4 a child died of a signal or
 * failed. Every failure prints one line on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* 0 when /dev/shm/nitroheap.<pid> is a regular file of this user, of the
 * segment's size, whose header names this pid; else a reason. */
static const char* segment_problem(void) {
  char path[64];
  snprintf(path, sizeof(path), "/dev/shm/nitroheap.%d", (int)getpid());
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? "missing" : "cannot open";
  struct stat st;
  const char* problem = NULL;
  unsigned char header[24];
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) problem = "not a regular file";
  else if (st.st_uid != geteuid()) problem = "owned by another user";
  else if (st.st_size != 512 * 1024) problem = "wrong size";
  else if ((st.st_mode & 077) != 0) problem = "readable or writable by others";
  else if (pread(fd, header, sizeof(header), 0) != (ssize_t)sizeof(header) || memcmp(header, "NITROHP", 8) != 0)
    problem = "no segment header";
  else {
    uint64_t pid;
    memcpy(&pid, header + 16, sizeof(pid));
    if (pid != (uint64_t)getpid()) problem = "header names another pid";
  }
  close(fd);
  return problem;
}

/* The inode of this process's pid namespace (0 when /proc does not say). */
static uint64_t pid_namespace(void) {
  char link[64];
  ssize_t n = readlink("/proc/self/ns/pid", link, sizeof(link) - 1);
  unsigned long long inode = 0;
  if (n <= 0) return 0;
  link[n] = '\0';
  return sscanf(link, "pid:[%llu]", &inode) == 1 ? inode : 0;
}

/* 1 when `path` is a segment written by a process of this pid namespace:
 * sandboxes share /dev/shm, and a process of another namespace may have
 * the same pid number (and its own live segment of that name). */
static int segment_of_this_namespace(const char* path) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  uint64_t ns = 0;
  if (fd < 0) return 0;
  if (pread(fd, &ns, sizeof(ns), 56) != (ssize_t)sizeof(ns)) ns = 0;
  close(fd);
  return ns == 0 || ns == pid_namespace();
}

/* The segment header's update count (0 when it cannot be read). */
static uint64_t segment_updates(void) {
  char path[64];
  snprintf(path, sizeof(path), "/dev/shm/nitroheap.%d", (int)getpid());
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  uint64_t updates = 0;
  if (fd >= 0) {
    if (pread(fd, &updates, sizeof(updates), 48) != (ssize_t)sizeof(updates)) updates = 0;
    close(fd);
  }
  return updates;
}

static void churn(uint64_t ms) {
  void* slots[256] = {0};
  uint64_t end = now_ms() + ms;
  unsigned r = (unsigned)getpid() * 2654435761u;
  do {
    for (int i = 0; i < 4096; i++) {
      r = r * 1103515245u + 12345u;
      unsigned k = (r >> 8) & 255;
      free(slots[k]);
      size_t n = ((r >> 16) & 1023) + 1;
      slots[k] = malloc(n);
      if (slots[k]) memset(slots[k], 1, n < 8 ? n : 8);
    }
  } while (now_ms() < end);
  for (int i = 0; i < 256; i++) free(slots[i]);
}

int main(int argc, char** argv) {
  uint64_t alloc_ms = 200;
  int forks = 0, check = 0, expect_none = 0, fork_exec = 0, check_updates = 0;
  uint64_t exec_after_ms = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--alloc-ms") == 0 && i + 1 < argc) alloc_ms = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--fork") == 0 && i + 1 < argc) forks = atoi(argv[++i]);
    else if (strcmp(argv[i], "--fork-exec") == 0 && i + 1 < argc) forks = fork_exec = atoi(argv[++i]);
    else if (strcmp(argv[i], "--check-updates") == 0) check_updates = 1;
    else if (strcmp(argv[i], "--exec-after-ms") == 0 && i + 1 < argc) exec_after_ms = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--check-segment") == 0) check = 1;
    else if (strcmp(argv[i], "--expect-no-segment") == 0) expect_none = 1;
    else {
      fprintf(stderr, "victim: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  int status = 0;
  pid_t children[64];
  if (forks > 64) forks = 64;
  char ms[32];
  snprintf(ms, sizeof(ms), "%llu", (unsigned long long)alloc_ms);
  for (int c = 0; c < forks; c++) {
    pid_t pid = fork();
    if (pid < 0) {
      fprintf(stderr, "victim: fork: %s\n", strerror(errno));
      return 4;
    }
    if (pid == 0) {
      if (fork_exec) {
        if (exec_after_ms > 0) churn(exec_after_ms);
        char* args[] = {argv[0], "--alloc-ms", ms, "--check-segment", "--check-updates", NULL};
        execv("/proc/self/exe", args);
        fprintf(stderr, "victim: exec: %s\n", strerror(errno));
        _exit(4);
      }
      churn(alloc_ms);
      _exit(0);
    }
    children[c] = pid;
  }
  uint64_t first_updates = check_updates ? segment_updates() : 0;
  uint64_t end = now_ms() + alloc_ms;
  do {
    churn(alloc_ms < 50 ? alloc_ms : 50);
    if (check) {
      const char* p = segment_problem();
      if (p != NULL) {
        fprintf(stderr, "victim %d: its statistics segment is %s\n", (int)getpid(), p);
        status = 3;
        break;
      }
    }
  } while (now_ms() < end);
  if (check_updates && status == 0) {
    uint64_t updates = segment_updates();
    if (updates <= first_updates) {
      fprintf(stderr, "victim %d: its segment was not updated while it allocated (%llu updates)\n", (int)getpid(),
              (unsigned long long)updates);
      status = 3;
    }
  }
  if (expect_none && segment_problem() == NULL) {
    fprintf(stderr, "victim %d: has a segment, expected none\n", (int)getpid());
    status = 3;
  }
  for (int c = 0; c < forks; c++) {
    int ws;
    pid_t pid = waitpid(children[c], &ws, 0);
    if (pid < 0) break;
    char path[64];
    snprintf(path, sizeof(path), "/dev/shm/nitroheap.%d", (int)pid);
    if (fork_exec && access(path, F_OK) == 0 && segment_of_this_namespace(path)) {
      fprintf(stderr, "victim: child %d left its segment %s behind\n", (int)pid, path);
      status = 3;
    }
    if (WIFSIGNALED(ws)) {
      fprintf(stderr, "victim: child %d died of signal %d\n", (int)pid, WTERMSIG(ws));
      status = 4;
    } else if (WEXITSTATUS(ws) != 0) {
      fprintf(stderr, "victim: child %d exited %d\n", (int)pid, WEXITSTATUS(ws));
      status = 4;
    }
  }
  return status;
}
