// A plain program for the pprof tests, built twice: as is (NitroHeap comes
// by LD_PRELOAD) and with malloc = "//abi:malloc" (NitroHeap linked in).
// Not linked with -rdynamic: its functions are in .symtab only, so naming
// them takes the binary's symbol table (NitroHeap's dump reads it; pprof
// does with the binary at hand), not dladdr.
//
//   profile_workload [--phases N] [--signal SIG DIR | --periodic DIR]
//     N phases (default 3) of allocations from three sites (about 6 MB
//     each), with a pause of 150 ms after each. --signal: after the first
//     phase, raise SIG and wait (up to 20 s) until a *.heap.pb.gz file
//     appears in DIR, so that the exit dump comes after the signal's.
//     --periodic: after phase k, wait (up to 20 s) until DIR holds k
//     profiles, however slowly the background thread runs.
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vector>

namespace {

std::vector<void*>* g_kept;     // from malloc and calloc
std::vector<char*>* g_strings;  // from new[]

__attribute__((noinline)) void* workload_small_node(size_t i) {
  void* p = malloc(48 + i % 64);
  memset(p, 1, 48);
  return p;
}

__attribute__((noinline)) char* workload_text_buffer(size_t i) {
  size_t n = 200 + i % 800;
  char* s = new char[n];
  memset(s, 'x', n);
  return s;
}

__attribute__((noinline)) void* workload_big_block(size_t i) {
  auto* p = static_cast<char*>(calloc(1, 40 * 1024 + (i % 8) * 4096));
  p[i % 4096] = 1;  // not a tail call: this function's frame stays on the stack
  return p;
}

void Phase(int rounds) {
  for (int i = 0; i < rounds; i++) {
    auto k = static_cast<size_t>(i);
    void* node = workload_small_node(k);
    if (i % 4 == 0) g_kept->push_back(node); else free(node);
    char* s = workload_text_buffer(k);
    if (i % 6 == 0) g_strings->push_back(s); else delete[] s;
    if (i % 40 == 0) {
      void* big = workload_big_block(k);
      if (i % 160 == 0) g_kept->push_back(big); else free(big);
    }
  }
}

int CountProfiles(const char* dir) {
  DIR* d = opendir(dir);
  if (d == nullptr) return 0;
  int found = 0;
  while (struct dirent* e = readdir(d)) {
    size_t n = strlen(e->d_name);
    if (n > 11 && strcmp(e->d_name + n - 11, ".heap.pb.gz") == 0) found++;
  }
  closedir(d);
  return found;
}

void WaitForProfiles(const char* dir, int count) {
  for (int waited = 0; waited < 2000 && CountProfiles(dir) < count; waited++) usleep(10 * 1000);
}

}  // namespace

int main(int argc, char** argv) {
  int phases = 3, sig = 0;
  const char* dir = nullptr;
  const char* periodic_dir = nullptr;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--phases") == 0 && i + 1 < argc) {
      phases = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--signal") == 0 && i + 2 < argc) {
      sig = atoi(argv[++i]);
      dir = argv[++i];
    } else if (strcmp(argv[i], "--periodic") == 0 && i + 1 < argc) {
      periodic_dir = argv[++i];
    } else {
      fprintf(stderr, "usage: profile_workload [--phases N] [--signal SIG DIR | --periodic DIR]\n");
      return 2;
    }
  }
  fprintf(stderr, "profile_workload: started\n");  // after anything NitroHeap says at start-up
  g_kept = new std::vector<void*>();
  g_strings = new std::vector<char*>();
  for (int p = 0; p < phases; p++) {
    Phase(3000);
    usleep(150 * 1000);
    if (p == 0 && sig != 0) {
      raise(sig);
      WaitForProfiles(dir, 1);
    }
    if (periodic_dir != nullptr) WaitForProfiles(periodic_dir, p + 1);
  }
  // Free half of what was kept; the rest is live at exit.
  for (size_t i = 0; i < g_kept->size(); i += 2) free((*g_kept)[i]);
  for (size_t i = 0; i < g_strings->size(); i += 2) delete[] (*g_strings)[i];
  printf("done phases=%d kept=%zu\n", phases, g_kept->size() + g_strings->size());
  return 0;
}
