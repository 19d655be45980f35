#include "telemetry/event_ring.h"

#include <string.h>

#include "core/base.h"
#include "core/os.h"

namespace nitro::telemetry {

bool EventRing::Init(size_t capacity) {
  if (capacity == 0 || capacity > (size_t{1} << 30)) return false;
  size_t buckets = 16;
  while (buckets < capacity / 2) buckets *= 2;
  size_t record_bytes = RoundUp(capacity * sizeof(Record), kPageSize);
  size_t bucket_bytes = RoundUp(buckets * sizeof(uint32_t), kPageSize);
  size_t link_bytes = RoundUp(capacity * sizeof(uint32_t), kPageSize);
  size_t bytes = record_bytes + 2 * bucket_bytes + link_bytes + capacity * sizeof(Site);
  auto* mem = static_cast<char*>(os::Reserve(bytes, kPageSize));
  if (mem == nullptr) return false;
  // Written sparsely and lazily: a huge page would make 2 MiB resident for
  // the first few events.
  os::NoHugePages(mem, bytes);
  records_ = reinterpret_cast<Record*>(mem);
  buckets_ = reinterpret_cast<uint32_t*>(mem + record_bytes);
  live_heads_ = reinterpret_cast<uint32_t*>(mem + record_bytes + bucket_bytes);
  live_next_ = reinterpret_cast<uint32_t*>(mem + record_bytes + 2 * bucket_bytes);
  sites_ = reinterpret_cast<Site*>(mem + record_bytes + 2 * bucket_bytes + link_bytes);
  capacity_ = capacity;
  bucket_mask_ = buckets - 1;
  reservation_bytes_ = bytes;
  return true;
}

uint32_t EventRing::Hash(const Event& e, uint32_t frames, const Wide& wide) {
  uint64_t h = 0x9E3779B97F4A7C15ull;
  auto mix = [&h](uint64_t w) {
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  };
  mix(frames);
  mix(e.alignment);
  mix(wide.requested);
  mix(wide.usable);
  mix(static_cast<uint32_t>(wide.cpu));
  uint64_t name[kPartitionNameMax / 8];
  memcpy(name, e.partition, sizeof(name));
  for (uint64_t w : name) mix(w);
  for (uint32_t f = 0; f < frames; f++) mix(e.stack[f]);
  return static_cast<uint32_t>(h ^ (h >> 32));
}

bool EventRing::SameKey(const Site& s, const Event& e, uint32_t frames, const Wide& wide) {
  return s.frames == frames && s.alignment == e.alignment && s.wide.requested == wide.requested &&
         s.wide.usable == wide.usable && s.wide.cpu == wide.cpu &&
         memcmp(s.partition, e.partition, sizeof(s.partition)) == 0 &&
         memcmp(s.stack, e.stack, frames * sizeof(s.stack[0])) == 0;
}

uint32_t EventRing::Intern(const Event& e, uint32_t frames, const Wide& wide) {
  uint32_t hash = Hash(e, frames, wide);
  uint32_t* head = &buckets_[hash & bucket_mask_];
  for (uint32_t link = *head; link != 0; link = sites_[link - 1].next) {
    Site& s = sites_[link - 1];
    if (s.hash == hash && SameKey(s, e, frames, wide)) {
      s.refs++;
      return link - 1;
    }
  }
  uint32_t index;
  if (free_sites_ != 0) {
    index = free_sites_ - 1;
    free_sites_ = sites_[index].next;
  } else {
    index = sites_used_++;
  }
  // One site per ring slot at most (the overwritten event's reference is
  // dropped first): running out would be a bug, and would write past the
  // reservation.
  NITRO_CHECK(index < capacity_, "flight recorder: site table overflow (%u sites)", index);
  Site& s = sites_[index];
  s.hash = hash;
  s.refs = 1;
  s.frames = frames;
  s.alignment = e.alignment;
  s.wide = wide;
  memcpy(s.partition, e.partition, sizeof(s.partition));
  memcpy(s.stack, e.stack, frames * sizeof(s.stack[0]));
  // A reused site's other frames are stale: Get copies only `frames`.
  s.next = *head;
  *head = index + 1;
  if (++sites_live_ > sites_high_water_) sites_high_water_ = sites_live_;
  return index;
}

void EventRing::Release(uint32_t index) {
  Site& s = sites_[index];
  if (--s.refs != 0) return;
  for (uint32_t* link = &buckets_[s.hash & bucket_mask_]; *link != 0; link = &sites_[*link - 1].next) {
    if (*link == index + 1) {
      *link = s.next;
      break;
    }
  }
  s.next = free_sites_;
  free_sites_ = index + 1;
  sites_live_--;
}

void EventRing::Link(uint32_t slot) {
  uint32_t* head = LiveHead(records_[slot].address);
  live_next_[slot] = *head;
  *head = slot + 1;
}

void EventRing::Unlink(uint32_t slot) {
  for (uint32_t* link = LiveHead(records_[slot].address); *link != 0; link = &live_next_[*link - 1]) {
    if (*link == slot + 1) {
      *link = live_next_[slot];
      return;
    }
  }
  NITRO_CHECK(false, "flight recorder: a live event missing from the address index (slot %u)", slot);
}

void EventRing::Add(const Event& e) {
  uint64_t seq = next_++;
  uint32_t slot = static_cast<uint32_t>(seq % capacity_);
  Record& r = records_[slot];
  if (seq >= capacity_) {
    dropped_++;
    if (Live(r)) Unlink(slot);
    Release(r.site & ~kMoveFlag);
  }
  uint32_t frames = e.frames < kFrames ? e.frames : kFrames;
  bool requested_fits = e.requested < kRequestedInSite;
  bool extra_fits = e.usable >= e.requested && e.usable - e.requested < kExtraInSite;
  bool cpu_fits = e.cpu > kCpuInSite && e.cpu <= INT16_MAX;
  Wide wide = {requested_fits ? 0 : e.requested, extra_fits ? 0 : e.usable, cpu_fits ? 0 : e.cpu};
  bool move = e.moved_from != 0;
  r.address = e.address;
  r.alloc_ns = e.alloc_ns;
  r.free_ns_or_moved_from = move ? e.moved_from : e.free_ns;
  r.site = Intern(e, frames, wide) | (move ? kMoveFlag : 0);
  r.thread_id = e.thread_id >> 32 == 0 ? static_cast<uint32_t>(e.thread_id) : 0;
  r.requested = requested_fits ? static_cast<uint32_t>(e.requested) : kRequestedInSite;
  r.usable_extra = extra_fits ? static_cast<uint16_t>(e.usable - e.requested) : kExtraInSite;
  r.cpu = cpu_fits ? static_cast<int16_t>(e.cpu) : kCpuInSite;
  if (Live(r)) Link(slot);
}

bool EventRing::FindLive(uintptr_t address, uint64_t* seq) const {
  // Several live events may share an address (a free the recorder did not
  // see): the newest is the one.
  const uint64_t first = first_seq();
  const uint64_t first_slot = first % capacity_;
  bool found = false;
  uint64_t best = 0;
  for (uint32_t link = *LiveHead(address); link != 0; link = live_next_[link - 1]) {
    uint32_t slot = link - 1;
    if (records_[slot].address != address) continue;
    uint64_t s = first + (slot >= first_slot ? slot - first_slot : slot + capacity_ - first_slot);
    if (!found || s > best) best = s;
    found = true;
  }
  if (found) *seq = best;
  return found;
}

void EventRing::SetFreed(uint64_t seq, uint64_t free_ns) {
  uint32_t slot = static_cast<uint32_t>(seq % capacity_);
  Record& r = records_[slot];
  if (Live(r)) Unlink(slot);
  r.free_ns_or_moved_from = free_ns;
  if (Live(r)) Link(slot);  // a free time of 0 keeps it live
}

void EventRing::SetAddress(uint64_t seq, uintptr_t address) {
  uint32_t slot = static_cast<uint32_t>(seq % capacity_);
  Record& r = records_[slot];
  bool live = Live(r);
  if (live) Unlink(slot);
  r.address = address;
  if (live) Link(slot);
}

void EventRing::Get(uint64_t seq, Event* out) const {
  const Record& r = records_[seq % capacity_];
  const Site& s = sites_[r.site & ~kMoveFlag];
  bool move = (r.site & kMoveFlag) != 0;
  memset(out, 0, sizeof(*out));
  out->address = r.address;
  out->requested = r.requested == kRequestedInSite ? s.wide.requested : r.requested;
  out->usable = r.usable_extra == kExtraInSite ? s.wide.usable : out->requested + r.usable_extra;
  out->alignment = s.alignment;
  memcpy(out->partition, s.partition, sizeof(out->partition));
  out->thread_id = r.thread_id;
  out->cpu = r.cpu == kCpuInSite ? s.wide.cpu : r.cpu;
  out->frames = s.frames;
  out->alloc_ns = r.alloc_ns;
  out->free_ns = move ? 0 : r.free_ns_or_moved_from;
  out->moved_from = move ? r.free_ns_or_moved_from : 0;
  memcpy(out->stack, s.stack, s.frames * sizeof(s.stack[0]));
}

size_t EventRing::Snapshot(Event* out, size_t cap) const {
  size_t n = 0;
  for (uint64_t seq = first_seq(); seq < next_ && n < cap; seq++) Get(seq, &out[n++]);
  return n;
}

size_t EventRing::touched_bytes() const {
  if (records_ == nullptr) return 0;
  size_t events = next_ < capacity_ ? static_cast<size_t>(next_) : capacity_;
  size_t bucket_bytes = RoundUp((bucket_mask_ + 1) * sizeof(uint32_t), kPageSize);
  return RoundUp(events * sizeof(Record), kPageSize) + 2 * bucket_bytes +
         RoundUp(events * sizeof(uint32_t), kPageSize) + RoundUp(sites_used_ * sizeof(Site), kPageSize);
}

}  // namespace nitro::telemetry
