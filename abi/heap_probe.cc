// A small program linked with NitroHeap as its malloc (cc_binary malloc =
// "//abi:malloc"), run by process_test under different environments.
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "nitroheap/nitroheap.h"

namespace {

int Status() {
  auto* p = static_cast<char*>(malloc(100));
  p[0] = 1;
  printf("active=%d mode=%s owns=%d\n", nitro_is_active(), nitro_heap_mode(), nitro_owns(p));
  free(p);
  return 0;
}

void Churn(unsigned seed, int n) {
  std::vector<void*> live;
  for (int i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    if (live.size() < 64 || (seed >> 16) % 2) {
      size_t size = 1 + (seed >> 8) % ((seed & 1) ? 300000 : 2000);
      auto* p = static_cast<char*>(malloc(size));
      if (p == nullptr) abort();
      p[0] = p[size - 1] = 1;
      live.push_back(p);
    } else {
      size_t idx = (seed >> 4) % live.size();
      free(live[idx]);
      live[idx] = live.back();
      live.pop_back();
    }
  }
  for (void* p : live) free(p);
}

// Forks while other threads allocate (and so often hold the allocator's
// locks); every child must be able to allocate, free and start threads.
int Fork() {
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; t++) {
    workers.emplace_back([&stop, t] {
      unsigned seed = 77u + static_cast<unsigned>(t);
      while (!stop.load()) Churn(seed++, 500);
    });
  }
  int failures = 0;
  for (int i = 0; i < 60; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      alarm(20);  // a deadlocked child dies instead of hanging the test
      Churn(static_cast<unsigned>(i), 5000);
      std::thread t([] { Churn(5, 2000); });
      t.join();
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failures++;
  }
  stop = true;
  for (auto& w : workers) w.join();
  printf("forks=60 failures=%d\n", failures);
  return failures == 0 ? 0 : 1;
}

// Pointers from the C library's allocator are handed back to it.
int Proxy() {
  auto libc_malloc = reinterpret_cast<void* (*)(size_t)>(dlsym(RTLD_NEXT, "malloc"));
  if (libc_malloc == nullptr) return 2;
  auto* a = static_cast<char*>(libc_malloc(100));
  auto* b = static_cast<char*>(libc_malloc(1000));
  strcpy(a, "from the C library");
  memset(b, 'x', 1000);
  printf("owned_before=%d\n", nitro_owns(a));
  printf("usable_ok=%d\n", malloc_usable_size(b) >= 1000);
  free(a);  // must go to the C library's free
  auto* c = static_cast<char*>(realloc(b, 5000));
  printf("moved_into_nitroheap=%d kept=%d\n", nitro_owns(c), c[999] == 'x' && c[0] == 'x');
  free(c);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* cmd = argc > 1 ? argv[1] : "status";
  if (strcmp(cmd, "status") == 0) return Status();
  if (strcmp(cmd, "fork") == 0) return Fork();
  if (strcmp(cmd, "proxy") == 0) return Proxy();
  if (strcmp(cmd, "churn") == 0) {
    Churn(1, 100000);
    return 0;
  }
  fprintf(stderr, "usage: heap_probe status|fork|proxy|churn\n");
  return 2;
}
