// Defect 1 (issue 8): exit() unmaps NitroHeap's statistics segment
// (ShmPublisher::Remove, from the atexit handler) while the background
// thread nitroheap-bg is inside Publish writing through it -> SIGSEGV in
// about 1 of 25 exits of loaded multithreaded programs.
//
// Threads allocate and free random sizes (malloc, std::string, std::vector)
// without pause; main returns while they run, so exit() runs the atexit
// handlers and static destructors with the heap busy. A correct allocator
// exits 0 every time.
//
// The race window is the background thread's Publish (about 100 us per
// tick: every 100 ms by default, every 10 ms with decay_ms=0), so one exit
// seldom hits it. To make one run of this program a real test it can fork
// CHILDREN processes (PARALLEL at a time) that each start two allocating
// threads (the child's background thread starts with them), work 5..45 ms
// and exit(). With decay_ms=0 about 1 child in 100 crashes on the baseline.
// The parent reports crashed and hung children (30 s), then exits while its
// own threads allocate.
//
// Usage: exit_race [CHILDREN [PARALLEL]]   (default 0 children, 2 at a time)
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

size_t RandomSize(std::mt19937& rng) {
  uint32_t r = rng();
  switch (r % 16) {
    case 0: return r % (1u << 20);   // up to 1 MiB: large blocks
    case 1: case 2: return r % 65536;
    default: return r % 512;         // mostly small objects
  }
}

[[noreturn]] void Worker(unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<void*> slots(512, nullptr);
  for (uint64_t i = 0;; i++) {
    size_t k = rng() % slots.size();
    free(slots[k]);
    size_t n = RandomSize(rng);
    slots[k] = malloc(n);
    if (slots[k] != nullptr && n > 0) static_cast<char*>(slots[k])[0] = 1;
    if (i % 8 == 0) {
      std::string s(rng() % 300, 'x');
      s += std::to_string(i);
      std::vector<uint64_t> v(rng() % 2000, i);
      v.push_back(s.size());
    }
  }
}

void AtExitAllocates() {
  // Runs inside exit(), next to NitroHeap's own atexit handler.
  for (int i = 0; i < 100; i++) free(malloc(static_cast<size_t>(i) * 97));
}

// Starts `threads` allocating threads, lets them run, and returns: the
// caller exits with them running.
void Race(unsigned seed, int threads, int ms) {
  for (int t = 0; t < threads; t++) std::thread(Worker, seed + static_cast<unsigned>(t) * 7919u).detach();
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

double Now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  int children = argc > 1 ? atoi(argv[1]) : 0;
  int parallel = argc > 2 ? atoi(argv[2]) : 2;
  if (parallel < 1) parallel = 1;
  std::random_device rd;
  atexit(AtExitAllocates);

  // Children first, while this process has no other thread.
  struct Running {
    pid_t pid;
    double deadline;
  };
  std::vector<Running> running;
  int started = 0, crashed = 0, hung = 0;
  while (started < children || !running.empty()) {
    if (started < children && static_cast<int>(running.size()) < parallel) {
      unsigned seed = rd();
      pid_t pid = fork();
      if (pid < 0) {
        perror("fork");
        crashed++;
        started = children;
        continue;
      }
      if (pid == 0) {
        Race(seed, 2, 5 + static_cast<int>(seed % 41));
        exit(0);
      }
      running.push_back({pid, Now() + 30});
      started++;
      continue;
    }
    usleep(1000);
    for (size_t i = 0; i < running.size();) {
      int status = 0;
      pid_t r = waitpid(running[i].pid, &status, WNOHANG);
      if (r == 0 && Now() > running[i].deadline) {
        kill(running[i].pid, SIGKILL);
        waitpid(running[i].pid, &status, 0);
        fprintf(stderr, "exit_race: child %d did not exit within 30 s (killed)\n", running[i].pid);
        hung++;
      } else if (r == 0) {
        i++;
        continue;
      } else if (WIFSIGNALED(status)) {
        fprintf(stderr, "exit_race: child %d died of signal %d at exit\n", running[i].pid, WTERMSIG(status));
        crashed++;
      } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "exit_race: child %d exited with status 0x%x\n", running[i].pid, status);
        crashed++;
      }
      running.erase(running.begin() + static_cast<long>(i));
    }
  }
  if (children > 0) printf("exit_race: %d children, %d crashed, %d hung\n", children, crashed, hung);
  fflush(stdout);

  // This process's own exit, with four threads allocating.
  unsigned seed = rd();
  Race(seed, 4, 5 + static_cast<int>(seed % 76));
  return crashed + hung == 0 ? 0 : 1;  // exit() with the workers running
}
