// Links of the free lists stored inside free objects. Each link is encoded
// with the partition's secret and the slot's own address (as glibc's
// safe-linking does), so a stray write or a leaked heap address does not
// give an attacker a usable pointer.
#ifndef NITROHEAP_CORE_FREE_LIST_H_
#define NITROHEAP_CORE_FREE_LIST_H_

#include <stdint.h>

#include "core/base.h"

namespace nitro {

NITRO_ALWAYS_INLINE void* EncodeLink(void* next, const void* slot, uintptr_t key) {
  return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(next) ^ key ^
                                 (reinterpret_cast<uintptr_t>(slot) >> kPageShift));
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
