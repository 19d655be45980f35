#include "testing/movable_store/doc_store.h"

#include <string.h>

namespace docstore {
namespace {

// A document: [key length][value length][key][value].
struct Header {
  uint32_t key_len;
  uint32_t value_len;
};

uint64_t Hash(std::string_view s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h | 1;  // never 0: 0 marks nothing
}

std::string_view KeyOf(const void* doc) {
  const auto* hdr = static_cast<const Header*>(doc);
  return {static_cast<const char*>(doc) + sizeof(Header), hdr->key_len};
}

std::string_view ValueOf(const void* doc) {
  const auto* hdr = static_cast<const Header*>(doc);
  return {static_cast<const char*>(doc) + sizeof(Header) + hdr->key_len, hdr->value_len};
}

}  // namespace

DocStore::~DocStore() {
  for (const Slot& s : slots_) {
    if (s.handle != NITRO_HANDLE_NULL && s.handle != kTombstone) nitro_hfree(s.handle);
  }
}

size_t DocStore::Find(std::string_view key, uint64_t hash) const {
  size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.handle == NITRO_HANDLE_NULL) return SIZE_MAX;
    if (s.handle != kTombstone && s.hash == hash && KeyOf(nitro_hptr(s.handle)) == key) return i;
  }
}

void DocStore::Grow() {
  std::vector<Slot> old(slots_.size() * 2);
  old.swap(slots_);
  used_ = 0;
  size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.handle == NITRO_HANDLE_NULL || s.handle == kTombstone) continue;
    size_t i = s.hash & mask;
    while (slots_[i].handle != NITRO_HANDLE_NULL) i = (i + 1) & mask;
    slots_[i] = s;
    used_++;
  }
}

bool DocStore::Put(std::string_view key, std::string_view value) {
  uint64_t hash = Hash(key);
  size_t bytes = sizeof(Header) + key.size() + value.size();
  size_t at = Find(key, hash);
  nitro_handle_t h;
  if (at != SIZE_MAX) {
    h = slots_[at].handle;
    if (nitro_hrealloc(h, bytes) != 0) return false;
  } else {
    h = nitro_halloc(bytes, NITRO_TRAIT_MOVABLE);
    if (h == NITRO_HANDLE_NULL) return false;
    if ((used_ + 1) * 4 > slots_.size() * 3) Grow();
    size_t mask = slots_.size() - 1;
    size_t i = hash & mask;
    while (slots_[i].handle != NITRO_HANDLE_NULL && slots_[i].handle != kTombstone) i = (i + 1) & mask;
    if (slots_[i].handle == NITRO_HANDLE_NULL) used_++;
    slots_[i] = {hash, h};
    count_++;
  }
  char* doc = static_cast<char*>(nitro_hptr(h));
  Header hdr = {static_cast<uint32_t>(key.size()), static_cast<uint32_t>(value.size())};
  memcpy(doc, &hdr, sizeof(hdr));
  memcpy(doc + sizeof(hdr), key.data(), key.size());
  memcpy(doc + sizeof(hdr) + key.size(), value.data(), value.size());
  return true;
}

bool DocStore::Get(std::string_view key, std::string* value) const {
  size_t at = Find(key, Hash(key));
  if (at == SIZE_MAX) return false;
  value->assign(ValueOf(nitro_hptr(slots_[at].handle)));
  return true;
}

bool DocStore::View(std::string_view key, const std::function<void(std::string_view)>& fn) const {
  size_t at = Find(key, Hash(key));
  if (at == SIZE_MAX) return false;
  nitro_handle_t h = slots_[at].handle;
  fn(ValueOf(nitro_hpin(h)));
  nitro_hunpin(h);
  return true;
}

bool DocStore::Append(std::string_view key, std::string_view more) {
  size_t at = Find(key, Hash(key));
  if (at == SIZE_MAX) return false;
  nitro_handle_t h = slots_[at].handle;
  const auto* hdr = static_cast<const Header*>(nitro_hptr(h));
  size_t old_bytes = sizeof(Header) + hdr->key_len + hdr->value_len;
  if (nitro_hrealloc(h, old_bytes + more.size()) != 0) return false;
  char* doc = static_cast<char*>(nitro_hptr(h));  // it may have moved
  memcpy(doc + old_bytes, more.data(), more.size());
  reinterpret_cast<Header*>(doc)->value_len += static_cast<uint32_t>(more.size());
  return true;
}

bool DocStore::Erase(std::string_view key) {
  size_t at = Find(key, Hash(key));
  if (at == SIZE_MAX) return false;
  nitro_hfree(slots_[at].handle);
  slots_[at].handle = kTombstone;
  count_--;
  return true;
}

}  // namespace docstore
