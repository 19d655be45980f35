#include "core/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <string.h>

#include <atomic>

namespace nitro {
namespace {

// A callback and its argument change together: a registration fills the
// slot not in use and publishes it with one store. (Registrations must not
// race each other; see nitroheap.h.)
template <typename Fn>
struct CallbackSlots {
  struct Slot {
    Fn fn;
    void* arg;
  };
  Slot slots[2] = {};
  std::atomic<Slot*> current{nullptr};

  void Set(Fn fn, void* arg) {
    Slot* in_use = current.load(std::memory_order_acquire);
    Slot* next = in_use == &slots[0] ? &slots[1] : &slots[0];
    next->fn = fn;
    next->arg = arg;
    current.store(fn != nullptr ? next : nullptr, std::memory_order_release);
  }
};

CallbackSlots<OutputCallback> g_output;
CallbackSlots<ErrorCallback> g_error;
__thread bool tls_in_error_callback __attribute__((tls_model("initial-exec"))) = false;

// What went to stderr before any output callback was registered.
char g_early[4096];
std::atomic<size_t> g_early_len{0};
std::atomic<bool> g_early_replayed{false};

void KeepEarly(const char* text, size_t len) {
  if (g_early_replayed.load(std::memory_order_relaxed)) return;
  size_t at = g_early_len.load(std::memory_order_relaxed);
  // Whole lines only: a line that does not fit is dropped.
  while (at + len <= sizeof(g_early)) {
    if (g_early_len.compare_exchange_weak(at, at + len, std::memory_order_relaxed)) {
      memcpy(g_early + at, text, len);
      return;
    }
  }
}

void WriteFd(int fd, const char* p, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w <= 0) break;
    p += w;
    len -= static_cast<size_t>(w);
  }
}

// Hands `text` to fn one line at a time.
void CallPerLine(OutputCallback fn, void* arg, const char* text, size_t len) {
  char line[1024];
  while (len > 0) {
    const char* nl = static_cast<const char*>(memchr(text, '\n', len));
    size_t n = nl != nullptr ? static_cast<size_t>(nl - text) + 1 : len;
    size_t copy = n < sizeof(line) - 2 ? n : sizeof(line) - 2;
    memcpy(line, text, copy);
    if (line[copy - 1] != '\n') line[copy++] = '\n';
    line[copy] = '\0';
    fn(line, arg);
    text += n;
    len -= n;
  }
}

}  // namespace

void SetOutputCallback(OutputCallback fn, void* arg) {
  g_output.Set(fn, arg);
  if (fn != nullptr && !g_early_replayed.exchange(true)) {
    CallPerLine(fn, arg, g_early, g_early_len.load(std::memory_order_acquire));
  }
}

void WriteOutput(int fd, const char* text, size_t len) {
  if (fd == 2) {
    if (auto* slot = g_output.current.load(std::memory_order_acquire)) {
      CallPerLine(slot->fn, slot->arg, text, len);
      return;
    }
    KeepEarly(text, len);
  }
  WriteFd(fd, text, len);
}

void SetErrorCallback(ErrorCallback fn, void* arg) { g_error.Set(fn, arg); }

void NotifyMisuse(const char* kind, const void* addr) {
  auto* slot = g_error.current.load(std::memory_order_acquire);
  if (slot == nullptr || tls_in_error_callback) return;
  tls_in_error_callback = true;
  slot->fn(kind, addr, slot->arg);
}

namespace {

// The format attribute passes the callers' checked format strings on (clang's
// -Wformat-nonliteral would otherwise flag the vsnprintf below).
__attribute__((format(printf, 2, 0))) void VWriteLine(const char* prefix, const char* fmt,
                                                      va_list ap) {
  char buf[512];
  int n = snprintf(buf, sizeof(buf), "%s", prefix);
  int m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
  if (m < 0) m = 0;
  size_t len = static_cast<size_t>(n) + static_cast<size_t>(m);
  if (len > sizeof(buf) - 2) len = sizeof(buf) - 2;
  buf[len++] = '\n';
  WriteOutput(2, buf, len);
}

}  // namespace

void LogLine(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  VWriteLine("nitroheap: ", fmt, ap);
  va_end(ap);
}

void Fatal(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  VWriteLine("nitroheap: ", fmt, ap);
  va_end(ap);
  abort();
}

}  // namespace nitro
