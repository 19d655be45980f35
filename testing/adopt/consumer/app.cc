// A consumer's program: prints whether NitroHeap serves its malloc and new.
// C++11 only: Bazel 4's toolchain compiles the consumer's own code with
// -std=c++0x unless the consumer says otherwise (NitroHeap's own code says so).
#include <nitroheap/nitroheap.h>

#include <cstdio>
#include <cstdlib>
#include <string>

int main() {
  void* block = std::malloc(100);
  std::string* text = new std::string(200, 'x');
  std::printf("active=%d mode=%s malloc_owned=%d new_owned=%d\n", nitro_is_active(),
              nitro_heap_mode(), nitro_owns(block), nitro_owns(text));
  delete text;
  std::free(block);
  return 0;
}
