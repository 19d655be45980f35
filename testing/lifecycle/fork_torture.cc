// Defect 3 (issue 8): the fork handler (ForkPrepare) does not take the
// guarded pool's lock (held across mprotect/madvise) nor the zero-size
// region's lock, so a child forked while another thread holds one hangs at
// its next sampled allocation (19 of 20 children with sample_rate=1; with
// mode=strict the same for malloc(0)).
//
// The parent's threads allocate (every size, new, malloc(0) in a tight loop,
// and flight recorder / heap profile dumps when NitroHeap is loaded) while main forks
// FORKS children. Each child allocates and frees, forks a grandchild that
// does the same, waits for it (10 s at most) and exits. A child that is not
// gone within 15 s hangs: it is killed (with its grandchild) and the program
// stops and exits 1.
//
// Usage: fork_torture [FORKS]   (default 30)
#include <dlfcn.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

std::atomic<bool> g_stop{false};

// The current grandchild's pid, in memory shared with the children: the
// parent kills it along with a hung child, so that no hung process outlives
// the test.
volatile pid_t* g_grandchild = nullptr;

size_t RandomSize(std::mt19937& rng) {
  uint32_t r = rng();
  switch (r % 8) {
    case 0: return 0;
    case 1: return r % 300000;
    default: return r % 1024;
  }
}

// Allocates and frees n random blocks, writing every byte it asked for.
void Churn(std::mt19937& rng, int n) {
  std::vector<void*> live;
  for (int i = 0; i < n; i++) {
    size_t sz = RandomSize(rng);
    void* p = (i % 5 == 0) ? calloc(1, sz) : malloc(sz);
    if (p != nullptr && sz > 0) memset(p, 0x5a, sz < 4096 ? sz : 4096);
    live.push_back(p);
    if (i % 7 == 0) live.back() = realloc(live.back(), RandomSize(rng) + 1);
    if (i % 3 == 0) {
      std::string* s = new std::string(rng() % 100, 'q');
      delete s;
    }
    if (live.size() > 64) {
      size_t k = rng() % live.size();
      free(live[k]);
      live[k] = live.back();
      live.pop_back();
    }
  }
  for (void* p : live) free(p);
}

using DumpFn = int (*)(const char*);

// Dumps go to real files (not /dev/null: a writer may replace its target),
// in $TEST_TMPDIR or $TMPDIR, removed at the end.
std::string g_recording_path, g_profile_path;

void SetDumpPaths() {
  const char* dir = getenv("TEST_TMPDIR");
  if (dir == nullptr || *dir == 0) dir = getenv("TMPDIR");
  if (dir == nullptr || *dir == 0) dir = "/tmp";
  std::string base = std::string(dir) + "/fork_torture." + std::to_string(getpid());
  g_recording_path = base + ".pb";
  g_profile_path = base + ".heap";
}

void ParentThread(unsigned index, unsigned seed) {
  std::mt19937 rng(seed);
  if (index == 3) {  // malloc(0): the zero-size region in mode=strict
    std::vector<void*> v(64, nullptr);
    for (unsigned i = 0; !g_stop.load(std::memory_order_relaxed); i++) {
      free(v[i % 64]);
      v[i % 64] = malloc(0);
    }
    for (void* p : v) free(p);
    return;
  }
  DumpFn recorder = reinterpret_cast<DumpFn>(dlsym(RTLD_DEFAULT, "nitro_flight_recorder_dump"));
  DumpFn profile = reinterpret_cast<DumpFn>(dlsym(RTLD_DEFAULT, "nitro_heap_profile_dump"));
  for (unsigned i = 0; !g_stop.load(std::memory_order_relaxed); i++) {
    Churn(rng, 200);
    if (index == 0 && i % 50 == 0) {  // one thread also dumps, as a service would
      if (recorder != nullptr) recorder(g_recording_path.c_str());
      if (profile != nullptr) profile(g_profile_path.c_str());
    }
  }
}

double Now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Waits up to `seconds` for pid; returns its status, or -1 after killing a
// hung process.
int WaitWithTimeout(pid_t pid, double seconds) {
  double deadline = Now() + seconds;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -2;
    if (Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    usleep(2000);
  }
}

bool StatusOk(int status) { return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0; }

// In a child: allocate, fork a grandchild that allocates, wait for it.
[[noreturn]] void Child(unsigned seed) {
  std::mt19937 rng(seed);
  Churn(rng, 300);
  std::thread t([seed] {  // a thread in the child too
    std::mt19937 r2(seed + 1);
    Churn(r2, 200);
  });
  t.join();
  pid_t g = fork();
  if (g > 0) *g_grandchild = g;
  if (g == 0) {
    std::mt19937 r3(seed + 2);
    Churn(r3, 200);
    exit(0);
  }
  int code = 0;
  if (g < 0) {
    code = 4;
  } else {
    int status = WaitWithTimeout(g, 10);
    *g_grandchild = 0;  // reaped: its pid may be reused
    if (status == -1) {
      code = 3;  // grandchild hung
    } else if (!StatusOk(status)) {
      code = 5;
      if (WIFSIGNALED(status)) fprintf(stderr, "fork_torture: a grandchild died of signal %d\n", WTERMSIG(status));
      else fprintf(stderr, "fork_torture: a grandchild exited with status 0x%x\n", status);
    }
  }
  Churn(rng, 100);
  exit(code);
}

}  // namespace

int main(int argc, char** argv) {
  int forks = argc > 1 ? atoi(argv[1]) : 30;
  std::random_device rd;
  unsigned seed = rd();
  SetDumpPaths();
  void* shared = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) {
    perror("mmap");
    return 2;
  }
  g_grandchild = static_cast<volatile pid_t*>(shared);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 4; t++) threads.emplace_back(ParentThread, t, seed + t * 31u);
  int hangs = 0, failures = 0;
  for (int i = 0; i < forks; i++) {
    std::mt19937 rng(seed + 1000u + static_cast<unsigned>(i));
    Churn(rng, 50);
    *g_grandchild = 0;
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      failures++;
      continue;
    }
    if (pid == 0) Child(seed + 5000u + static_cast<unsigned>(i));
    int status = WaitWithTimeout(pid, 15);  // the child waits 10 s for its own
    if (status == -1 && *g_grandchild > 0) kill(*g_grandchild, SIGKILL);  // orphaned otherwise
    if (status == -1) {
      hangs++;
      fprintf(stderr, "fork_torture: child %d of %d hung (killed after 15 s)\n", i + 1, forks);
    } else if (!StatusOk(status)) {
      failures++;
      if (WIFSIGNALED(status))
        fprintf(stderr, "fork_torture: child %d died of signal %d\n", i + 1, WTERMSIG(status));
      else if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
        fprintf(stderr, "fork_torture: grandchild of child %d hung (killed after 10 s)\n", i + 1);
      else
        fprintf(stderr, "fork_torture: child %d exited with status 0x%x\n", i + 1, status);
    }
    if (hangs + failures > 0) break;  // enough evidence; do not wait 10 s per child
  }
  g_stop.store(true);
  for (std::thread& t : threads) t.join();
  unlink(g_recording_path.c_str());
  unlink(g_profile_path.c_str());
  printf("fork_torture: %d forks, %d hung, %d failed\n", forks, hangs, failures);
  return hangs + failures == 0 ? 0 : 1;
}
