// Runs a command and reports its resource usage: what run_bench.py uses to
// start every benchmark run.
//
// Why not os.wait4 from Python directly: Linux carries a process's peak RSS
// across exec (ru_maxrss includes the pre-exec image), and a child forked
// from the Python harness starts with the harness's ~20 MiB resident. This
// launcher is small, so the peak RSS it reports is the command's own.
//
// Usage: spawn_rusage RESULT_FILE COMMAND [ARGS...]
//   If BENCH_LD_PRELOAD is set, the command gets it as LD_PRELOAD (the
//   launcher itself never runs under the allocator being measured).
//   RESULT_FILE receives one line:
//     status=<exit code or 128+signal> wall=<s> user=<s> sys=<s> maxrss_kib=<n> minflt=<n>
//   user/sys/maxrss/minflt (minor page faults) come from wait4's rusage,
//   which covers the command and every descendant it waited for (for g++:
//   cc1plus, as).
//   The launcher's own exit status is 0 when it could run the command.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s RESULT_FILE COMMAND [ARGS...]\n", argv[0]);
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) {
    perror("spawn_rusage: fork");
    return 2;
  }
  if (pid == 0) {
    const char* preload = getenv("BENCH_LD_PRELOAD");
    if (preload != nullptr) {
      if (*preload != 0) setenv("LD_PRELOAD", preload, 1);
      unsetenv("BENCH_LD_PRELOAD");
    }
    execvp(argv[2], argv + 2);
    fprintf(stderr, "spawn_rusage: exec %s: %s\n", argv[2], strerror(errno));
    _exit(127);
  }
  int status = 0;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      perror("spawn_rusage: wait4");
      return 2;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  FILE* f = fopen(argv[1], "w");
  if (f == nullptr) {
    perror("spawn_rusage: result file");
    return 2;
  }
  fprintf(f, "status=%d wall=%.6f user=%.6f sys=%.6f maxrss_kib=%ld minflt=%ld\n", code,
          (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
          ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
          ru.ru_maxrss, ru.ru_minflt);
  fclose(f);
  return 0;
}
