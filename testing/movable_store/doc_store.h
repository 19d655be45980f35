// A small document store built on movable allocations: each document (its
// key and value) lives in one movable object, reached by handle; the index
// holds only handles and hashes. Deleting documents leaves holes that
// Compact() (nitro_compact) closes, and the pages go back to the kernel
// while the store keeps serving. Not thread-safe: one store per thread, or
// a lock around it (the store itself never keeps a pointer from nitro_hptr
// past a call, so the calling thread may pass quiescent points anywhere
// between calls).
#ifndef NITROHEAP_TESTING_MOVABLE_STORE_DOC_STORE_H_
#define NITROHEAP_TESTING_MOVABLE_STORE_DOC_STORE_H_

#include <stddef.h>
#include <stdint.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "nitroheap/movable.h"

namespace docstore {

class DocStore {
 public:
  DocStore() : slots_(16) {}
  ~DocStore();
  DocStore(const DocStore&) = delete;
  DocStore& operator=(const DocStore&) = delete;

  // Inserts or replaces; false when out of memory (the store is unchanged).
  bool Put(std::string_view key, std::string_view value);
  // Copies the value out; false when absent.
  bool Get(std::string_view key, std::string* value) const;
  // Calls `fn` with the value in place (the document is pinned meanwhile, so
  // `fn` may pass quiescent points or run while another thread compacts).
  bool View(std::string_view key, const std::function<void(std::string_view)>& fn) const;
  // Replaces the value's bytes in place when the size is unchanged, else
  // like Put (nitro_hrealloc keeps the handle either way).
  bool Append(std::string_view key, std::string_view more);
  bool Erase(std::string_view key);
  size_t size() const { return count_; }
  // Compacts every movable heap (budget: bytes to move at most).
  static size_t Compact(size_t budget = SIZE_MAX) { return nitro_compact(nullptr, budget); }

 private:
  struct Slot {
    uint64_t hash = 0;
    nitro_handle_t handle = NITRO_HANDLE_NULL;  // NULL: empty; kTombstone: erased
  };
  static constexpr nitro_handle_t kTombstone = 1;  // never a handle (even generation)
  size_t Find(std::string_view key, uint64_t hash) const;  // index in slots_, or SIZE_MAX
  void Grow();

  std::vector<Slot> slots_;
  size_t count_ = 0;
  size_t used_ = 0;  // live + tombstones
};

}  // namespace docstore

#endif  // NITROHEAP_TESTING_MOVABLE_STORE_DOC_STORE_H_
