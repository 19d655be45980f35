#include <cstdlib>

extern "C" int nitro_fake_malloc_linked();

int main() {
  void* p = std::malloc(32);
  std::free(p);
  return nitro_fake_malloc_linked() == 1 ? 0 : 1;
}
