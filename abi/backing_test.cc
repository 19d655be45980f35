// Backing memory as a program chooses it (nitro_partition_create_with):
// every backing serves small and large blocks, realloc, reset and destroy;
// a FILE partition's memory is a mapping of an unlinked file whose blocks
// are freed when pages are released; a FIXED partition uses only the
// caller's memory and maps nothing; bad input fails cleanly.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "nitroheap/nitroheap.h"

namespace {

constexpr size_t kPage = 4096;

struct Mapping {
  uintptr_t start, end;
  std::string path;
};

// /proc/self/maps, read with the C library's stdio into a fixed buffer so
// that reading it allocates as little as possible.
std::vector<Mapping> Maps() {
  std::vector<Mapping> maps;
  maps.reserve(4096);
  FILE* f = fopen("/proc/self/maps", "r");
  char line[1024];
  while (f != nullptr && fgets(line, sizeof(line), f) != nullptr) {
    unsigned long start, end;
    int path_at = 0;
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &start, &end, &path_at) < 2) continue;
    std::string path = path_at > 0 ? line + path_at : "";
    if (!path.empty() && path.back() == '\n') path.pop_back();
    maps.push_back({start, end, path});
  }
  if (f != nullptr) fclose(f);
  return maps;
}

// The mapping holding `p` (start 0: none).
Mapping MappingOf(const void* p) {
  auto a = reinterpret_cast<uintptr_t>(p);
  for (const Mapping& m : Maps()) {
    if (a >= m.start && a < m.end) return m;
  }
  return {0, 0, ""};
}

int OpenFds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (d != nullptr && readdir(d) != nullptr) n++;
  if (d != nullptr) closedir(d);
  return n;
}

// Allocates small and large blocks, reallocates some, checks every byte,
// frees them; `inside` checks each block's place.
template <typename Inside>
void Exercise(nitro_partition_t* p, Inside inside) {
  std::vector<std::pair<unsigned char*, size_t>> blocks;
  const size_t sizes[] = {1, 16, 24, 100, 512, 3000, 8192, 40000, 300000, 1 << 20};
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
      size_t n = sizes[i];
      auto* b = static_cast<unsigned char*>(nitro_partition_malloc(p, n));
      ASSERT_NE(b, nullptr) << n;
      ASSERT_EQ(nitro_partition_of(b), p);
      inside(b, n);
      memset(b, static_cast<int>(blocks.size() & 0xff), n);
      blocks.push_back({b, n});
    }
  }
  // Grow every third block: its contents move along.
  for (size_t i = 0; i < blocks.size(); i += 3) {
    size_t n = blocks[i].second * 2 + 100;
    auto* b = static_cast<unsigned char*>(nitro_partition_realloc(p, blocks[i].first, n));
    ASSERT_NE(b, nullptr);
    inside(b, n);
    for (size_t k = 0; k < blocks[i].second; k++) ASSERT_EQ(b[k], i & 0xff) << i;
    memset(b, static_cast<int>(i & 0xff), n);
    blocks[i] = {b, n};
  }
  auto* zeroed = static_cast<unsigned char*>(nitro_partition_calloc(p, 1, 200000));
  ASSERT_NE(zeroed, nullptr);
  for (size_t k = 0; k < 200000; k++) ASSERT_EQ(zeroed[k], 0) << k;
  nitro_partition_free(p, zeroed);
  for (size_t i = 0; i < blocks.size(); i++) {
    for (size_t k = 0; k < blocks[i].second; k++) ASSERT_EQ(blocks[i].first[k], i & 0xff) << i;
    nitro_partition_free(p, blocks[i].first);
  }
}

// Exercises the partition, then again after a reset with blocks live.
template <typename Inside>
void ExerciseAndReset(nitro_partition_t* p, Inside inside) {
  Exercise(p, inside);
  for (int i = 0; i < 100; i++) ASSERT_NE(nitro_partition_malloc(p, 64 + i * 100), nullptr);
  ASSERT_NE(nitro_partition_malloc(p, 500000), nullptr);
  ASSERT_EQ(nitro_partition_reset(p), 0);
  EXPECT_EQ(nitro_partition_visit(p, [](void*, size_t, void*) { return 1; }, nullptr), 0);
  Exercise(p, inside);
}

void Anywhere(const void*, size_t) {}

TEST(Backing, NullConfigIsAnonymous) {
  nitro_partition_t* p = nitro_partition_create_with("backing-null", nullptr);
  ASSERT_NE(p, nullptr);
  ExerciseAndReset(p, Anywhere);
  void* b = nitro_partition_malloc(p, 100000);
  Mapping m = MappingOf(b);
  ASSERT_NE(m.start, 0u);
  EXPECT_EQ(m.path, "");  // anonymous
  EXPECT_EQ(nitro_partition_destroy(p), 0);
}

TEST(Backing, HugePages) {
  nitro_partition_config_t config = {NITRO_BACKING_HUGE_PAGES, nullptr, nullptr, 0};
  nitro_partition_t* p = nitro_partition_create_with("backing-huge", &config);
  ASSERT_NE(p, nullptr);
  ExerciseAndReset(p, Anywhere);
  // The region carries the hint where the kernel has transparent huge pages.
  auto* b = static_cast<char*>(nitro_partition_malloc(p, 100000));
  ASSERT_NE(b, nullptr);
  if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0) {
    FILE* f = fopen("/proc/self/smaps", "r");
    ASSERT_NE(f, nullptr);
    char line[1024];
    bool in_block = false, hinted = false;
    while (fgets(line, sizeof(line), f) != nullptr) {
      unsigned long start, end;
      if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' ')) {
        in_block = reinterpret_cast<uintptr_t>(b) >= start && reinterpret_cast<uintptr_t>(b) < end;
      } else if (in_block && strncmp(line, "VmFlags:", 8) == 0) {
        hinted = strstr(line, " hg") != nullptr;
      }
    }
    fclose(f);
    EXPECT_TRUE(hinted) << "no MADV_HUGEPAGE on the partition's region";
  }
  EXPECT_EQ(nitro_partition_destroy(p), 0);
}

// A directory where O_TMPFILE works, for FILE partitions.
std::string FileDirectory() {
  const char* candidates[] = {getenv("TEST_TMPDIR"), "/tmp", "/dev/shm"};
  for (const char* dir : candidates) {
    if (dir == nullptr) continue;
    int fd = open(dir, O_TMPFILE | O_RDWR, 0600);
    if (fd >= 0) {
      close(fd);
      return dir;
    }
  }
  return "";
}

// The allocated bytes of the file behind a mapping (found among the
// process's descriptors by the name /proc/self/maps gives it).
long long FileBlockBytes(const std::string& path) {
  DIR* d = opendir("/proc/self/fd");
  long long bytes = -1;
  while (struct dirent* e = d != nullptr ? readdir(d) : nullptr) {
    std::string fd_path = std::string("/proc/self/fd/") + e->d_name;
    char target[1024];
    ssize_t n = readlink(fd_path.c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    struct stat st;
    if (path == target && stat(fd_path.c_str(), &st) == 0) bytes = st.st_blocks * 512LL;
  }
  if (d != nullptr) closedir(d);
  return bytes;
}

TEST(Backing, FileMappingReleasesBlocks) {
  std::string dir = FileDirectory();
  ASSERT_FALSE(dir.empty()) << "no directory here supports O_TMPFILE";
  int fds = OpenFds();
  nitro_partition_config_t config = {NITRO_BACKING_FILE, dir.c_str(), nullptr, 0};
  nitro_partition_t* p = nitro_partition_create_with("backing-file", &config);
  ASSERT_NE(p, nullptr) << strerror(errno);
  EXPECT_EQ(OpenFds(), fds + 1);  // the unlinked file
  ExerciseAndReset(p, [](const void* b, size_t) {
    Mapping m = MappingOf(b);
    ASSERT_NE(m.start, 0u);
    EXPECT_NE(m.path.find("(deleted)"), std::string::npos) << m.path;
  });

  // 16 MiB written: the file holds them; freed and released: it does not.
  const size_t n = size_t{16} << 20;
  auto* b = static_cast<char*>(nitro_partition_malloc(p, n));
  ASSERT_NE(b, nullptr);
  memset(b, 0x5a, n);
  Mapping m = MappingOf(b);
  ASSERT_NE(m.start, 0u);
  std::string path = m.path;
  EXPECT_EQ(path.rfind(dir, 0), 0u) << path;
  long long written = FileBlockBytes(path);
  EXPECT_GE(written, static_cast<long long>(n)) << path;
  nitro_partition_free(p, b);
  nitro_release_free_memory();
  long long released = FileBlockBytes(path);
  EXPECT_GE(released, 0);
  EXPECT_LE(released, written - static_cast<long long>(n)) << "the file kept the freed blocks";
  // Released pages read as zero when used again.
  auto* again = static_cast<unsigned char*>(nitro_partition_calloc(p, 1, n));
  ASSERT_NE(again, nullptr);
  for (size_t k = 0; k < n; k += 997) ASSERT_EQ(again[k], 0) << k;

  EXPECT_EQ(nitro_partition_destroy(p), 0);
  EXPECT_EQ(OpenFds(), fds);  // the file is closed
  for (const Mapping& mm : Maps()) EXPECT_NE(mm.path, path);  // and unmapped
}

std::vector<Mapping> MappingsOutside(uintptr_t base, size_t length) {
  std::vector<Mapping> outside;
  outside.reserve(4096);
  for (const Mapping& m : Maps()) {
    if (m.end <= base || m.start >= base + length) outside.push_back(m);
  }
  return outside;
}

// The mappings of `now` that cover addresses no mapping of `before` did:
// new mappings (mprotect splits and merges mappings, which changes their
// count but not the addresses they cover).
std::string NewMappings(const std::vector<Mapping>& before, const std::vector<Mapping>& now) {
  std::string found;
  for (const Mapping& m : now) {
    uintptr_t a = m.start;
    // /proc/self/maps lists mappings in address order: walk `before`.
    for (const Mapping& b : before) {
      if (b.start <= a && a < b.end) a = b.end;
      if (a >= m.end) break;
    }
    if (a < m.end) {
      char line[128];
      snprintf(line, sizeof(line), "%lx-%lx ", static_cast<unsigned long>(m.start),
               static_cast<unsigned long>(m.end));
      found += line + m.path + "\n";
    }
  }
  return found;
}

TEST(Backing, FixedUsesOnlyTheCallersMemory) {
  const size_t length = size_t{8} << 20;
  void* memory = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(memory, MAP_FAILED);
  memset(memory, 0xab, length);  // not zero: the heap must not assume it is
  auto base = reinterpret_cast<uintptr_t>(memory);
  auto inside = [base, length](const void* b, size_t n) {
    auto a = reinterpret_cast<uintptr_t>(b);
    ASSERT_TRUE(a >= base && a + n <= base + length) << b;
  };
  nitro_partition_config_t config = {NITRO_BACKING_FIXED, nullptr, memory, length};
  nitro_partition_t* p = nitro_partition_create_with("backing-fixed", &config);
  ASSERT_NE(p, nullptr) << strerror(errno);
  ExerciseAndReset(p, inside);

  // Exhaustion: NULL with ENOMEM and no mapping made; frees make room.
  auto fill = [&](std::vector<void*>* blocks) {
    for (;;) {
      errno = 0;
      void* b = nitro_partition_malloc(p, 64 << 10);
      if (b == nullptr) break;
      inside(b, 64 << 10);
      blocks->push_back(b);
    }
    EXPECT_EQ(errno, ENOMEM);
  };
  std::vector<void*> blocks;
  blocks.reserve(1024);
  fill(&blocks);  // a first round, so that metadata pools have grown
  ASSERT_GT(blocks.size(), 64u);
  for (void* b : blocks) nitro_partition_free(p, b);
  blocks.clear();
  std::vector<Mapping> outside = MappingsOutside(base, length);
  fill(&blocks);
  size_t full = blocks.size();
  ASSERT_GT(full, 64u);
  EXPECT_EQ(nitro_partition_malloc(p, 1 << 20), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  for (size_t i = 0; i < 32; i++) nitro_partition_free(p, blocks[i]);
  for (size_t i = 0; i < 32; i++) {
    blocks[i] = nitro_partition_malloc(p, 64 << 10);
    ASSERT_NE(blocks[i], nullptr) << i;
    inside(blocks[i], 64 << 10);
  }
  // The background thread's statistics tick maps a scratch buffer for a
  // moment (telemetry/stats.cc): a mapping that stays is the partition's.
  std::string fresh = NewMappings(outside, MappingsOutside(base, length));
  for (int i = 0; i < 5 && !fresh.empty(); i++) {
    usleep(50000);
    fresh = NewMappings(outside, MappingsOutside(base, length));
  }
  EXPECT_EQ(fresh, "");
  // Small blocks still come from the buffer (or fail) when it is full.
  for (void* b : blocks) nitro_partition_free(p, b);

  // Destroy leaves the buffer mapped, readable and writable (no guard page).
  EXPECT_EQ(nitro_partition_destroy(p), 0);
  memset(memory, 0x11, length);
  auto* bytes = static_cast<unsigned char*>(memory);
  for (size_t k = 0; k < length; k += kPage) ASSERT_EQ(bytes[k + kPage - 1], 0x11) << k;
  // The same memory serves a new partition.
  p = nitro_partition_create_with("backing-fixed-again", &config);
  ASSERT_NE(p, nullptr);
  Exercise(p, inside);
  EXPECT_EQ(nitro_partition_destroy(p), 0);
  munmap(memory, length);
}

TEST(Backing, BadInputFailsAndLeavesNothing) {
  alignas(4096) static char buffer[256 << 10];
  int fds = OpenFds();
  struct Case {
    nitro_partition_config_t config;
    int error;
  } cases[] = {
      {{-1, nullptr, nullptr, 0}, EINVAL},
      {{4, nullptr, nullptr, 0}, EINVAL},
      {{NITRO_BACKING_FIXED, nullptr, nullptr, sizeof(buffer)}, EINVAL},
      {{NITRO_BACKING_FIXED, nullptr, buffer + 1, sizeof(buffer) - kPage}, EINVAL},
      {{NITRO_BACKING_FIXED, nullptr, buffer, sizeof(buffer) - 1}, EINVAL},
      {{NITRO_BACKING_FIXED, nullptr, buffer, kPage}, EINVAL},
      {{NITRO_BACKING_FILE, "/nonexistent-backing-dir", nullptr, 0}, ENOENT},
      {{NITRO_BACKING_FILE, "/proc/self/status", nullptr, 0}, ENOTDIR},
  };
  for (const Case& c : cases) {
    errno = 0;
    EXPECT_EQ(nitro_partition_create_with("backing-bad", &c.config), nullptr) << c.config.backing;
    EXPECT_EQ(errno, c.error) << c.config.backing;
  }
  // Memory NitroHeap serves already (a block from malloc) cannot back a
  // partition: its pages belong to the default partition.
  void* from_malloc = aligned_alloc(kPage, 1 << 20);
  ASSERT_NE(from_malloc, nullptr);
  nitro_partition_config_t owned = {NITRO_BACKING_FIXED, nullptr, from_malloc, 1 << 20};
  errno = 0;
  EXPECT_EQ(nitro_partition_create_with("backing-bad", &owned), nullptr);
  EXPECT_EQ(errno, EINVAL);
  free(from_malloc);
  EXPECT_EQ(OpenFds(), fds);
  // No partition was left behind under the name, and the buffer is usable.
  nitro_partition_config_t fixed = {NITRO_BACKING_FIXED, nullptr, buffer, sizeof(buffer)};
  nitro_partition_t* p = nitro_partition_create_with("backing-bad", &fixed);
  ASSERT_NE(p, nullptr);
  void* b = nitro_partition_malloc(p, 1000);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(b >= buffer && b < buffer + sizeof(buffer));
  // A name in use: EEXIST, and the file is not left open.
  std::string dir = FileDirectory();
  nitro_partition_config_t file = {NITRO_BACKING_FILE, dir.c_str(), nullptr, 0};
  errno = 0;
  EXPECT_EQ(nitro_partition_create_with("backing-bad", &file), nullptr);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(OpenFds(), fds);
  EXPECT_EQ(nitro_partition_destroy(p), 0);
}

}  // namespace
