#include "core/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

namespace nitro {
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
  const char* p = buf;
  while (len > 0) {
    ssize_t w = write(2, p, len);
    if (w <= 0) break;
    p += w;
    len -= static_cast<size_t>(w);
  }
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
