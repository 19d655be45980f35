// The driver that runs heap_fuzz.cc's LLVMFuzzerTestOneInput without
// libFuzzer (gcc, `bazel test`): a deterministic set of generated inputs,
// bounded in count and time, or the files named on the command line (to
// replay a libFuzzer crash input with this build).
//
//   heap_fuzz_test [--options=NITROHEAP_OPTIONS] [--inputs=N] [--seconds=S]
//                  [--seed=X] [FILE...]
//
// Each input is written to current_input.bin in $TEST_UNDECLARED_OUTPUTS_DIR
// (under `bazel test`; or $NITRO_FUZZ_OUT) before it runs, so that a crash
// (the engine aborts on its own) leaves the input behind; the file is
// removed after a clean run.
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

double Now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

uint64_t Next(uint64_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

// Inputs with some shape: mostly random bytes, sometimes runs of one
// operation (repeated bytes) so that bursts of a size class happen.
std::vector<uint8_t> Generate(uint64_t seed, size_t index) {
  uint64_t s = (seed ^ (index * 0x9E3779B97F4A7C15ull)) | 1;
  for (int i = 0; i < 4; i++) Next(&s);
  size_t len = 16 + Next(&s) % (index % 20 == 0 ? 4096 : 512);
  std::vector<uint8_t> v(len);
  for (size_t i = 0; i < len; i++) {
    uint64_t r = Next(&s);
    if ((r & 31) == 0 && i >= 4) {
      size_t run = 1 + (r >> 8) % 16;
      for (size_t k = 0; k < run && i < len; k++, i++) v[i] = v[i - 4];
      i--;
    } else {
      v[i] = static_cast<uint8_t>(r >> 24);
    }
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  size_t inputs = 3000;
  double seconds = 8;
  uint64_t seed = 0x6e6974726f686561ull;  // "nitrohea"
  std::vector<const char*> files;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (strncmp(a, "--options=", 10) == 0) {
      // Before the engine's first use: it reads the environment once.
      setenv("NITROHEAP_OPTIONS", a + 10, 1);
    } else if (strncmp(a, "--inputs=", 9) == 0) {
      inputs = strtoull(a + 9, nullptr, 10);
    } else if (strncmp(a, "--seconds=", 10) == 0) {
      seconds = strtod(a + 10, nullptr);
    } else if (strncmp(a, "--seed=", 7) == 0) {
      seed = strtoull(a + 7, nullptr, 0);
    } else if (a[0] == '-') {
      fprintf(stderr, "usage: %s [--options=OPTS] [--inputs=N] [--seconds=S] [--seed=X] [FILE...]\n", argv[0]);
      return 2;
    } else {
      files.push_back(a);
    }
  }
  const char* opts = getenv("NITROHEAP_OPTIONS");
  printf("heap_fuzz: NITROHEAP_OPTIONS=%s\n", opts ? opts : "(unset)");
  fflush(stdout);

  if (!files.empty()) {
    for (const char* f : files) {
      FILE* in = fopen(f, "rb");
      if (in == nullptr) {
        perror(f);
        return 2;
      }
      std::vector<uint8_t> v;
      int c;
      while ((c = fgetc(in)) != EOF) v.push_back(static_cast<uint8_t>(c));
      fclose(in);
      printf("heap_fuzz: running %s (%zu bytes)\n", f, v.size());
      fflush(stdout);
      LLVMFuzzerTestOneInput(v.data(), v.size());
    }
    printf("heap_fuzz: %zu files ran clean\n", files.size());
    return 0;
  }

  std::string crumb;
  const char* dir = getenv("NITRO_FUZZ_OUT");
  if (dir == nullptr) dir = getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  if (dir != nullptr && getenv("NITRO_FUZZ_BREADCRUMB") == nullptr) {
    crumb = std::string(dir) + "/current_input.bin";
    setenv("NITRO_FUZZ_BREADCRUMB", crumb.c_str(), 1);
    if (getenv("NITRO_FUZZ_OUT") == nullptr) {
      const char* base = strrchr(argv[0], '/');
      base = base != nullptr ? base + 1 : argv[0];
      printf("heap_fuzz: on a crash the input being run is left in current_input.bin in "
             "bazel-testlogs/testing/fuzz/%s/test.outputs/outputs.zip; replay it with "
             "bazel-bin/testing/fuzz/%s --options=%s FILE\n",
             base, base, opts ? opts : "");
    } else {
      printf("heap_fuzz: on a crash the input being run is left in %s; replay it with %s "
             "--options=<these options> FILE\n",
             crumb.c_str(), argv[0]);
    }
  }
  fflush(stdout);
  double start = Now();
  size_t done = 0, bytes = 0;
  for (; done < inputs && Now() - start < seconds; done++) {
    std::vector<uint8_t> v = Generate(seed, done);
    LLVMFuzzerTestOneInput(v.data(), v.size());
    bytes += v.size();
  }
  if (!crumb.empty()) unlink(crumb.c_str());
  printf("heap_fuzz: %zu inputs (%zu bytes) ran clean in %.1f s (of %zu; seed %#llx)\n", done, bytes,
         Now() - start, inputs, static_cast<unsigned long long>(seed));
  return 0;
}
