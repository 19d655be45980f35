// Defect 5 (issue 8): a nothrow operator new whose new-handler throws
// std::bad_alloc must return nullptr (libstdc++ catches the exception); the
// baseline lets it escape a noexcept function -> std::terminate (SIGABRT).
// Also: the handler is called, plain new still throws, and a handler that
// frees a reserve lets the allocation succeed.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace {

int g_calls = 0;
void ThrowingHandler() {
  g_calls++;
  throw std::bad_alloc();
}

int g_failures = 0;
void Check(bool ok, const char* what) {
  printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) g_failures++;
}

}  // namespace

int main() {
  volatile size_t huge = SIZE_MAX / 2;  // volatile: no compile-time size warning
  std::set_new_handler(ThrowingHandler);

  g_calls = 0;
  void* p = ::operator new(huge, std::nothrow);
  Check(p == nullptr && g_calls >= 1, "operator new(huge, nothrow) with a throwing handler returns nullptr");
  p = ::operator new[](huge, std::nothrow);
  Check(p == nullptr, "operator new[](huge, nothrow) returns nullptr");
  p = ::operator new(huge, std::align_val_t(64), std::nothrow);
  Check(p == nullptr, "operator new(huge, align 64, nothrow) returns nullptr");
  p = ::operator new[](huge, std::align_val_t(4096), std::nothrow);
  Check(p == nullptr, "operator new[](huge, align 4096, nothrow) returns nullptr");

  bool threw = false;
  try {
    p = ::operator new(huge);
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  Check(threw, "operator new(huge) throws std::bad_alloc");
  threw = false;
  try {
    p = ::operator new(huge, std::align_val_t(64));
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  Check(threw, "operator new(huge, align 64) throws std::bad_alloc");

  // Without a handler, nothrow new returns nullptr at once.
  std::set_new_handler(nullptr);
  Check(::operator new(huge, std::nothrow) == nullptr, "no handler: operator new(huge, nothrow) returns nullptr");

  // Small requests still work after all that.
  std::set_new_handler(ThrowingHandler);
  void* q = ::operator new(100, std::nothrow);
  void* r = ::operator new(100, std::align_val_t(64), std::nothrow);
  Check(q != nullptr && r != nullptr && reinterpret_cast<uintptr_t>(r) % 64 == 0, "small nothrow new succeeds");
  ::operator delete(q);
  ::operator delete(r, std::align_val_t(64));
  printf("nothrow_new: %d failed\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
