// Defect 9 (issue 8): programs that close every descriptor at start
// (daemons, close_range) close NitroHeap's descriptor behind its back; an
// allocator must hold none, and keep working. Closes 3..~0, then four
// threads allocate for a second; a forked child does the same. Both check
// that no descriptor above 2 appeared (the baseline's child opens a new
// statistics segment). Exits 0 when clean.
#include <dirent.h>
#include <errno.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

void CloseFrom3() {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0) return;
#endif
  for (int fd = 3; fd < 65536; fd++) close(fd);
}

// Descriptors above 2 other than the listing's own, as text ("" if none).
std::string ExtraFds() {
  std::string out;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return "(cannot list)";
  int self = dirfd(d);
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd <= 2 || fd == self) continue;
    char link[64], target[512];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, target, sizeof target - 1);
    target[len > 0 ? len : 0] = 0;
    out += " " + std::to_string(fd) + "->" + target;
  }
  closedir(d);
  return out;
}

void Allocate(unsigned seed, double seconds) {
  std::mt19937 rng(seed);
  std::vector<void*> slots(256, nullptr);
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 1000; i++) {
      size_t k = rng() % slots.size();
      free(slots[k]);
      size_t n = rng() % 16 == 0 ? rng() % 400000 : rng() % 700;
      slots[k] = malloc(n);
      if (slots[k] != nullptr && n > 0) static_cast<char*>(slots[k])[n - 1] = 1;
    }
  }
  for (void* p : slots) free(p);
}

void AllocateWithThreads(double seconds) {
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 4; t++) threads.emplace_back(Allocate, t * 17u + 1u, seconds);
  for (std::thread& t : threads) t.join();
}

}  // namespace

int main() {
  CloseFrom3();
  AllocateWithThreads(1.0);
  int failed = 0;
  std::string extra = ExtraFds();
  if (!extra.empty()) {
    fprintf(stderr, "close_fds: descriptors the program did not open:%s\n", extra.c_str());
    failed = 1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    AllocateWithThreads(0.3);
    std::string child_extra = ExtraFds();
    if (!child_extra.empty()) {
      fprintf(stderr, "close_fds: in the forked child, descriptors it did not open:%s\n", child_extra.c_str());
      exit(1);
    }
    exit(0);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "close_fds: the child failed (status 0x%x)\n", status);
    failed = 1;
  }
  printf("close_fds: %s\n", failed ? "FAIL" : "ok");
  return failed;
}
