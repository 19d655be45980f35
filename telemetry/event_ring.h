// The flight recorder's storage: the last `capacity` sampled events, kept in
// memory proportional to what they hold.
//
// An event's partition name, alignment and stack -- its "site", about 270
// bytes -- are what most events of a program share: a few call sites make
// most allocations. So the ring holds 40-byte records, and each record
// refers by id to an interned site: a deduplicated, reference-counted table
// with one entry per distinct site among the events in the ring. A site
// whose last event is overwritten goes back to the table's free list (LIFO,
// so the pages touched are those of the most sites live at once).
//
// The table cannot fill: it has one entry per ring slot, each event holds at
// most one reference, and the overwritten event's reference is dropped
// before the new event's site is looked up. Nothing is dropped or
// approximated: Snapshot() gives back every field of every event exactly as
// it was recorded (event_ring_test compares it with a plain ring of Events).
//
// Memory: one reservation, touched lazily: the records (40 B per event
// recorded, up to capacity), a bucket index (4 B per 2 events, touched where
// sites hash), an index of live allocations by address (4 B per 2 events
// and 4 B per event) and the sites (272 B per distinct site live at once).
// For 2048 events from a few call sites: ~100 KiB instead of 592 KiB of
// 296-byte events; when every event has a site of its own, 640 KiB.
//
// Not thread-safe: the flight recorder calls it under its lock.
#ifndef NITROHEAP_TELEMETRY_EVENT_RING_H_
#define NITROHEAP_TELEMETRY_EVENT_RING_H_

#include <stddef.h>
#include <stdint.h>

namespace nitro::telemetry {

// Deep enough for the program's frames when NitroHeap is linked into it and
// its own frames (dropped only when a profile is written) come first.
constexpr int kFrames = 24;
constexpr size_t kPartitionNameMax = 32;

// One event as recorded and as dumped (the ring stores it compactly).
struct Event {
  uintptr_t address;
  uint64_t requested, usable, alignment;
  char partition[kPartitionNameMax];  // a copy: the partition may be destroyed before the dump
  uint64_t thread_id;                 // a kernel thread id (gettid): below 2^32
  int32_t cpu;
  uint32_t frames;
  uint64_t alloc_ns, free_ns;
  // Non-zero: a move event (the sampled movable object now at `address`
  // came from here; alloc_ns is when it moved; no stack, never freed).
  uintptr_t moved_from;
  uintptr_t stack[kFrames];
};

class EventRing {
 public:
  // Reserves the ring for `capacity` events (>= 1); false when the kernel
  // refuses. Call once.
  bool Init(size_t capacity);
  bool ready() const { return records_ != nullptr; }
  size_t capacity() const { return capacity_; }

  // Appends an event (overwriting the oldest once full; dropped() counts
  // those). Fields are stored exactly; `thread_id` must be below 2^32 (a
  // kernel thread id is) -- a larger one is stored as 0.
  void Add(const Event& e);
  // The newest event in the ring at `address` that is a live allocation
  // (not freed, not a move): its sequence number in *seq, or false.
  bool FindLive(uintptr_t address, uint64_t* seq) const;
  void SetFreed(uint64_t seq, uint64_t free_ns);
  void SetAddress(uint64_t seq, uintptr_t address);
  // The full event with sequence number `seq` (one in the ring).
  void Get(uint64_t seq, Event* out) const;

  // Copies the events, oldest first, into `out` (room for `cap`); returns
  // how many.
  size_t Snapshot(Event* out, size_t cap) const;

  uint64_t dropped() const { return dropped_; }
  uint64_t first_seq() const { return next_ > capacity_ ? next_ - capacity_ : 0; }
  uint64_t next_seq() const { return next_; }
  // Distinct sites referred to by the ring's events now, and the most at
  // once (what the site table has touched).
  size_t sites_live() const { return sites_live_; }
  size_t sites_high_water() const { return sites_high_water_; }
  // Bytes of the reservation touched so far (records, index, sites), in
  // whole pages: what the recorder costs in resident memory at most.
  size_t touched_bytes() const;
  // The reservation (for tests that count its resident pages).
  const void* reservation() const { return records_; }
  size_t reservation_bytes() const { return reservation_bytes_; }

 private:
  // Links (bucket heads, chains, the free list) are a site's index + 1:
  // 0 is "none", so the fresh (zero) reservation needs no initialising.
  static constexpr uint32_t kMoveFlag = 0x80000000u;  // in Record::site

  // 40 bytes per event. Three fields are narrower than the event's; a
  // value that does not fit is held by the site instead (part of its key),
  // and the record's field holds the escape value: a request of 4 GiB or
  // more, a usable size below the request or 64 KiB or more above it (a
  // slab's rounding or a large block's page rounding fit), a CPU number
  // outside 16 bits.
  static constexpr uint32_t kRequestedInSite = 0xFFFFFFFFu;
  static constexpr uint16_t kExtraInSite = 0xFFFFu;
  static constexpr int16_t kCpuInSite = INT16_MIN;
  struct Record {
    uintptr_t address;
    uint64_t alloc_ns;
    uint64_t free_ns_or_moved_from;  // a move event has no free (site has kMoveFlag)
    uint32_t site;                   // index into sites_, | kMoveFlag for a move event
    uint32_t thread_id;
    uint32_t requested;      // or kRequestedInSite
    uint16_t usable_extra;   // usable - requested, or kExtraInSite
    int16_t cpu;             // or kCpuInSite
  };
  static_assert(sizeof(Record) == 40, "a record is 40 bytes");

  // The values a record could not hold (0 where it holds them).
  struct Wide {
    uint64_t requested, usable;
    int32_t cpu;
  };

  // What events share: 272 bytes.
  struct Site {
    uint32_t next;  // link: the bucket's chain, or the free list
    uint32_t refs;
    uint32_t hash;
    uint32_t frames;
    uint64_t alignment;
    Wide wide;
    char partition[kPartitionNameMax];
    uintptr_t stack[kFrames];
  };
  static_assert(sizeof(Site) == 272, "a site is 272 bytes");

  // A site's key: the event's alignment, partition and first `frames`
  // return addresses, and the values its record cannot hold.
  static uint32_t Hash(const Event& e, uint32_t frames, const Wide& wide);
  static bool SameKey(const Site& s, const Event& e, uint32_t frames, const Wide& wide);
  uint32_t Intern(const Event& e, uint32_t frames, const Wide& wide);
  void Release(uint32_t site);

  // The index of live allocations by address (FindLive, a lookup on every
  // recorded free): chains of ring slots (slot + 1, 0 ends a chain) from
  // live_heads_[hash of the address], linked through live_next_. A record
  // is in it exactly while it is a live allocation (Live): Add, SetFreed
  // and SetAddress keep that true. It replaced a scan of the whole ring,
  // which a free whose record had been overwritten paid in full: 3.4% of
  // `workloads working_set`'s instructions.
  static bool Live(const Record& r) { return r.free_ns_or_moved_from == 0 && (r.site & kMoveFlag) == 0; }
  uint32_t* LiveHead(uintptr_t address) const {
    return &live_heads_[((address >> 4) * 0x9E3779B97F4A7C15ull >> 32) & bucket_mask_];
  }
  void Link(uint32_t slot);
  void Unlink(uint32_t slot);

  Record* records_ = nullptr;
  uint32_t* buckets_ = nullptr;
  uint32_t* live_heads_ = nullptr;  // bucket_mask_ + 1 heads
  uint32_t* live_next_ = nullptr;   // one link per ring slot
  Site* sites_ = nullptr;
  size_t capacity_ = 0;
  size_t bucket_mask_ = 0;
  size_t reservation_bytes_ = 0;
  uint64_t next_ = 0;
  uint64_t dropped_ = 0;
  uint32_t free_sites_ = 0;  // link: head of the free list
  uint32_t sites_used_ = 0;  // sites ever handed out: [0, sites_used_) touched
  size_t sites_live_ = 0;
  size_t sites_high_water_ = 0;
};

}  // namespace nitro::telemetry

#endif  // NITROHEAP_TELEMETRY_EVENT_RING_H_
