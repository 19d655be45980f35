// Links of the free lists stored inside free objects, encoded with the
// partition's secret: a stray write does not make a usable pointer, and a
// leaked link is not a heap address. (Mixing in the slot address as glibc's
// safe-linking does cost three instructions on each fast path; strict mode
// checks every link it follows instead.)
#ifndef NITROHEAP_CORE_FREE_LIST_H_
#define NITROHEAP_CORE_FREE_LIST_H_

#include <stdint.h>

#include "core/base.h"

namespace nitro {

NITRO_ALWAYS_INLINE void* EncodeLink(void* next, const void* slot, uintptr_t key) {
  (void)slot;
  return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(next) ^ key);
}
NITRO_ALWAYS_INLINE void* DecodeLink(void* encoded, const void* slot, uintptr_t key) {
  return EncodeLink(encoded, slot, key);
}
NITRO_ALWAYS_INLINE void SetLink(void* slot, void* next, uintptr_t key) {
  *static_cast<void**>(slot) = EncodeLink(next, slot, key);
}
NITRO_ALWAYS_INLINE void* GetLink(const void* slot, uintptr_t key) {
  return DecodeLink(*static_cast<void* const*>(slot), slot, key);
}

}  // namespace nitro

#endif  // NITROHEAP_CORE_FREE_LIST_H_
