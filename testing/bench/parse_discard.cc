// Parse-and-discard: the request pattern region heaps are for. Each round
// parses one JSON-like document into a tree (a node per value, a block per
// key and string), walks it for a checksum, and throws the whole tree away:
//   --heap=malloc     every node and string from malloc, freed one by one
//   --heap=bump       from a bump region, discarded with one reset
//   --heap=free_list  from a free-list region, freed one by one
// The regions live in one buffer allocated once; so the program links the
// region heaps (//abi:region) but not NitroHeap's malloc, and its malloc
// rows can run under any allocator (region_bench.py runs them).
// Prints: parse_discard heap=H docs=N nodes=M seconds=S checksum=C
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <string>
#include <vector>

#include "nitroheap/region.h"

namespace {

struct Node {
  enum Kind : uint8_t { kObject, kArray, kString, kNumber } kind;
  char* key;   // inside an object; nullptr otherwise
  char* text;  // kString
  double number;
  Node* first_child;
  Node* next;
};

// ---- the heaps: Alloc, and Discard of a whole tree --------------------------

struct MallocHeap {
  void* Alloc(size_t n) { return malloc(n); }
  void Discard(Node* n) {
    while (n != nullptr) {
      Discard(n->first_child);
      Node* next = n->next;
      free(n->key);
      free(n->text);
      free(n);
      n = next;
    }
  }
};

struct RegionHeap {
  nitro_region_t* region;
  bool reset;  // bump: one reset; free list: block by block
  void* Alloc(size_t n) { return nitro_region_alloc(region, n); }
  void Discard(Node* n) {
    if (reset) {
      nitro_region_reset(region);
      return;
    }
    while (n != nullptr) {
      Discard(n->first_child);
      Node* next = n->next;
      nitro_region_free(region, n->key);
      nitro_region_free(region, n->text);
      nitro_region_free(region, n);
      n = next;
    }
  }
};

// ---- documents --------------------------------------------------------------

uint64_t g_rng = 0x9e3779b97f4a7c15ull;
uint64_t Next() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

void Word(std::string* out) {
  int n = 3 + static_cast<int>(Next() % 12);
  for (int i = 0; i < n; i++) out->push_back(static_cast<char>('a' + Next() % 26));
}

void Value(std::string* out, int depth) {
  uint64_t r = Next() % 10;
  if (depth < 4 && r < 2) {
    out->push_back('{');
    int n = 1 + static_cast<int>(Next() % 8);
    for (int i = 0; i < n; i++) {
      if (i) out->push_back(',');
      out->push_back('"');
      Word(out);
      out->append("\":");
      Value(out, depth + 1);
    }
    out->push_back('}');
  } else if (depth < 4 && r < 4) {
    out->push_back('[');
    int n = 1 + static_cast<int>(Next() % 10);
    for (int i = 0; i < n; i++) {
      if (i) out->push_back(',');
      Value(out, depth + 1);
    }
    out->push_back(']');
  } else if (r < 7) {
    out->push_back('"');
    Word(out);
    if (Next() % 4 == 0) Word(out);
    out->push_back('"');
  } else {
    out->append(std::to_string(Next() % 100000));
  }
}

// ---- the parser ---------------------------------------------------------------

template <typename Heap>
struct Parser {
  Heap* heap;
  const char* p;
  size_t nodes = 0;

  char* Copy(const char* s, size_t n) {
    auto* c = static_cast<char*>(heap->Alloc(n + 1));
    if (c == nullptr) Die();
    memcpy(c, s, n);
    c[n] = 0;
    return c;
  }
  [[noreturn]] static void Die() {
    fprintf(stderr, "parse_discard: out of memory (errno %d)\n", errno);
    exit(1);
  }
  char* String() {  // at '"'
    const char* start = ++p;
    while (*p != '"') p++;
    return Copy(start, static_cast<size_t>(p++ - start));
  }
  Node* Parse() {
    auto* n = static_cast<Node*>(heap->Alloc(sizeof(Node)));
    if (n == nullptr) Die();
    memset(n, 0, sizeof(*n));
    nodes++;
    if (*p == '{' || *p == '[') {
      bool object = *p == '{';
      n->kind = object ? Node::kObject : Node::kArray;
      Node** tail = &n->first_child;
      for (p++; *p != '}' && *p != ']';) {
        if (*p == ',') p++;
        char* key = nullptr;
        if (object) {
          key = String();
          p++;  // ':'
        }
        Node* child = Parse();
        child->key = key;
        *tail = child;
        tail = &child->next;
      }
      p++;
    } else if (*p == '"') {
      n->kind = Node::kString;
      n->text = String();
    } else {
      n->kind = Node::kNumber;
      n->number = strtod(p, const_cast<char**>(&p));
    }
    return n;
  }
};

uint64_t Checksum(const Node* n) {
  uint64_t h = 0;
  for (; n != nullptr; n = n->next) {
    h = h * 31 + n->kind;
    if (n->key) h = h * 131 + strlen(n->key);
    if (n->text) h = h * 137 + static_cast<unsigned char>(n->text[0]);
    h += static_cast<uint64_t>(n->number);
    h = h * 7 + Checksum(n->first_child);
  }
  return h;
}

template <typename Heap>
void Run(Heap* heap, const std::vector<std::string>& docs, long rounds, size_t* nodes, uint64_t* sum) {
  for (long i = 0; i < rounds; i++) {
    Parser<Heap> parser{heap, docs[static_cast<size_t>(i) % docs.size()].c_str()};
    Node* root = parser.Parse();
    *sum = *sum * 1000003 + Checksum(root);
    *nodes += parser.nodes;
    heap->Discard(root);
  }
}

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  std::string heap_name = "malloc";
  double scale = 1.0;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--heap=", 7) == 0) {
      heap_name = argv[i] + 7;
    } else if (strncmp(argv[i], "--scale=", 8) == 0) {
      scale = atof(argv[i] + 8);
    } else {
      fprintf(stderr, "usage: %s [--heap=malloc|bump|free_list] [--scale=F]\n", argv[0]);
      return 2;
    }
  }
  if (!(scale > 0) || (heap_name != "malloc" && heap_name != "bump" && heap_name != "free_list")) {
    fprintf(stderr, "parse_discard: --heap must be malloc, bump or free_list and --scale positive\n");
    return 2;
  }
  // 64 documents of about 8 KiB: an array of random values.
  std::vector<std::string> docs(64);
  for (auto& d : docs) {
    d = "[";
    while (d.size() < 8192) {
      if (d.size() > 1) d.push_back(',');
      Value(&d, 0);
    }
    d.push_back(']');
  }
  long rounds = static_cast<long>(20000 * scale);
  if (rounds < 1) rounds = 1;
  size_t nodes = 0;
  uint64_t sum = 0;
  double t0 = Now();
  if (heap_name == "malloc") {
    MallocHeap heap;
    Run(&heap, docs, rounds, &nodes, &sum);
  } else {
    const size_t bytes = size_t{8} << 20;
    void* buffer = aligned_alloc(4096, bytes);
    int kind = heap_name == "bump" ? NITRO_REGION_BUMP : NITRO_REGION_FREE_LIST;
    RegionHeap heap{nitro_region_create(buffer, bytes, kind), heap_name == "bump"};
    if (heap.region == nullptr) {
      fprintf(stderr, "parse_discard: nitro_region_create failed (errno %d)\n", errno);
      return 1;
    }
    Run(&heap, docs, rounds, &nodes, &sum);
    nitro_region_stats_t s;
    nitro_region_stats(heap.region, &s);
    if (s.failures != 0 || (kind == NITRO_REGION_FREE_LIST && s.free_blocks != 1)) {
      fprintf(stderr, "parse_discard: region not whole after the run\n");
      return 1;
    }
    nitro_region_destroy(heap.region);
    free(buffer);
  }
  double seconds = Now() - t0;
  printf("parse_discard heap=%s docs=%ld nodes=%zu seconds=%.4f checksum=%016llx\n", heap_name.c_str(),
         rounds, nodes, seconds, static_cast<unsigned long long>(sum));
  return 0;
}
