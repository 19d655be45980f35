// The compact ring against a model: a plain ring of full Events, as the
// flight recorder kept before. Every snapshot must be byte for byte the
// model's.
#include "telemetry/event_ring.h"

#include <gtest/gtest.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <random>
#include <set>
#include <string>
#include <vector>

namespace nitro::telemetry {
namespace {

class ModelRing {
 public:
  explicit ModelRing(size_t cap) : events_(cap) {}
  void Add(const Event& e) {
    if (next_ >= events_.size()) dropped_++;
    events_[next_++ % events_.size()] = e;
  }
  bool FindLive(uintptr_t address, uint64_t* seq) const {
    uint64_t first = next_ > events_.size() ? next_ - events_.size() : 0;
    for (uint64_t s = next_; s-- > first;) {
      const Event& e = events_[s % events_.size()];
      if (e.address == address && e.free_ns == 0 && e.moved_from == 0) {
        *seq = s;
        return true;
      }
    }
    return false;
  }
  Event& at(uint64_t seq) { return events_[seq % events_.size()]; }
  std::vector<Event> Snapshot() const {
    std::vector<Event> out;
    uint64_t first = next_ > events_.size() ? next_ - events_.size() : 0;
    for (uint64_t s = first; s < next_; s++) out.push_back(events_[s % events_.size()]);
    return out;
  }
  uint64_t dropped() const { return dropped_; }

 private:
  std::vector<Event> events_;
  uint64_t next_ = 0, dropped_ = 0;
};

// The site key of an event, as a string: what must be shared (with the
// values a 40-byte record cannot hold).
std::string SiteKey(const Event& e) {
  std::string k(reinterpret_cast<const char*>(&e.alignment), sizeof(e.alignment));
  k.append(e.partition, sizeof(e.partition));
  k.append(reinterpret_cast<const char*>(e.stack), e.frames * sizeof(e.stack[0]));
  k.append(reinterpret_cast<const char*>(&e.frames), sizeof(e.frames));
  bool requested_fits = e.requested < 0xFFFFFFFFull;
  bool extra_fits = e.usable >= e.requested && e.usable - e.requested < 0xFFFF;
  bool cpu_fits = e.cpu > -32768 && e.cpu <= 32767;
  // A wide value of 0 is the same site as a value the record holds.
  uint64_t wide[3] = {requested_fits ? 0 : e.requested, extra_fits ? 0 : e.usable,
                      cpu_fits ? 0 : static_cast<uint64_t>(static_cast<uint32_t>(e.cpu))};
  k.append(reinterpret_cast<const char*>(wide), sizeof(wide));
  return k;
}

void ExpectSame(const EventRing& ring, const ModelRing& model) {
  std::vector<Event> want = model.Snapshot();
  std::vector<Event> got(ring.capacity());
  size_t n = ring.Snapshot(got.data(), got.size());
  ASSERT_EQ(n, want.size());
  for (size_t i = 0; i < n; i++) {
    ASSERT_EQ(memcmp(&got[i], &want[i], sizeof(Event)), 0)
        << "event " << i << ": address " << got[i].address << " vs " << want[i].address;
  }
  EXPECT_EQ(ring.dropped(), model.dropped());
  std::set<std::string> sites;
  for (const Event& e : want) sites.insert(SiteKey(e));
  EXPECT_EQ(ring.sites_live(), sites.size());
}

// A random event from `stacks` call sites (0: every event its own stack);
// with `odd_usable`, some have values a record cannot hold (then they are
// part of the site): a usable size 2^33 or 70,000 above the request or
// below it, a request past 4 GiB, a CPU number past 16 bits.
Event RandomEvent(std::mt19937_64& rng, int stacks, bool odd_usable = true) {
  Event e;
  memset(&e, 0, sizeof(e));
  e.address = (rng() & 0x7FFFFFFFFFF0ull) | 0x10;
  e.requested = odd_usable && rng() % 16 == 0 ? (uint64_t{1} << 32) + rng() % 3 : rng() % 5000;
  switch (odd_usable ? rng() % 10 : 9) {
    case 0: e.usable = e.requested + (uint64_t{1} << 33); break;      // far above: in the site
    case 1: e.usable = e.requested > 0 ? e.requested - 1 : 0; break;  // below the request (a move's)
    case 2: e.usable = e.requested + 70000; break;                   // past 16 bits
    case 3: e.usable = e.requested + 0xFFFE; break;                  // the largest excess a record holds
    default: e.usable = e.requested + rng() % 64; break;
  }
  int site = stacks > 0 ? static_cast<int>(rng() % static_cast<uint64_t>(stacks)) : -1;
  std::mt19937_64 site_rng(site >= 0 ? static_cast<uint64_t>(site) : rng());
  static const uint64_t kAlign[] = {0, 16, 64, 4096};
  e.alignment = kAlign[site_rng() % 4];
  // The partition's bytes after the name are kept too (a copy is exact).
  memset(e.partition, static_cast<int>(site_rng() & 0xFF), sizeof(e.partition));
  snprintf(e.partition, 8, "p%d", static_cast<int>(site_rng() % 3));
  e.frames = static_cast<uint32_t>(site_rng() % (kFrames + 1));
  for (uint32_t f = 0; f < e.frames; f++) e.stack[f] = site_rng();
  e.thread_id = 1000 + rng() % 4;
  e.cpu = static_cast<int32_t>(rng() % 5) - 1;  // sched_getcpu may say -1
  if (odd_usable && rng() % 32 == 0) e.cpu = rng() % 2 ? 40000 : -32768;
  e.alloc_ns = rng();
  return e;
}

void RunAgainstModel(size_t cap, int stacks, int ops, uint64_t seed) {
  EventRing ring;
  ASSERT_TRUE(ring.Init(cap));
  ModelRing model(cap);
  std::mt19937_64 rng(seed);
  std::vector<uintptr_t> addresses;
  for (int i = 0; i < ops; i++) {
    uint64_t what = rng() % 10;
    if (what < 6 || addresses.empty()) {
      Event e = RandomEvent(rng, stacks);
      if (!addresses.empty() && rng() % 4 == 0) e.address = addresses[rng() % addresses.size()];  // reused
      ring.Add(e);
      model.Add(e);
      addresses.push_back(e.address);
    } else if (what < 9) {  // a sampled free, as FlightRecorder::Freed
      uintptr_t a = addresses[rng() % addresses.size()];
      uint64_t ns = rng() | 1, seq, model_seq;
      bool found = ring.FindLive(a, &seq);
      ASSERT_EQ(found, model.FindLive(a, &model_seq));
      if (found) {
        ASSERT_EQ(seq, model_seq);
        ring.SetFreed(seq, ns);
        model.at(seq).free_ns = ns;
      }
    } else {  // a move, as FlightRecorder::Moved
      uintptr_t from = addresses[rng() % addresses.size()];
      Event move;
      memset(&move, 0, sizeof(move));
      move.address = (rng() & 0x7FFFFFFFFFF0ull) | 0x20;
      move.moved_from = from;
      move.requested = rng() % 3000;
      move.usable = move.requested;
      move.thread_id = 77;
      move.alloc_ns = rng();
      snprintf(move.partition, sizeof(move.partition), "movable");
      uint64_t seq, model_seq;
      bool found = ring.FindLive(from, &seq);
      ASSERT_EQ(found, model.FindLive(from, &model_seq));
      if (found) {
        ASSERT_EQ(seq, model_seq);
        ring.SetAddress(seq, move.address);
        model.at(seq).address = move.address;
        Event alloc;
        ring.Get(seq, &alloc);
        ASSERT_EQ(memcmp(&alloc, &model.at(seq), sizeof(Event)), 0);
        memcpy(move.partition, alloc.partition, sizeof(move.partition));
        move.usable = alloc.usable;
      }
      ring.Add(move);
      model.Add(move);
      addresses.push_back(move.address);
    }
    if (addresses.size() > 4 * cap) addresses.erase(addresses.begin(), addresses.begin() + cap);
    if (i % 97 == 0) ExpectSame(ring, model);
  }
  ExpectSame(ring, model);
  EXPECT_LE(ring.sites_high_water(), cap);
}

TEST(EventRing, FewSitesMatchModelThroughManyWraps) { RunAgainstModel(64, 5, 20000, 1); }
TEST(EventRing, DistinctSitesMatchModelThroughManyWraps) { RunAgainstModel(64, 0, 20000, 2); }
TEST(EventRing, MixedSitesMatchModelAtDefaultCapacity) { RunAgainstModel(2048, 300, 12000, 3); }
TEST(EventRing, SmallestCapacityMatchesModel) { RunAgainstModel(16, 40, 5000, 4); }

// Every event its own site: the table has one entry per ring slot, never
// more live than the ring holds, and overwritten events give theirs back.
TEST(EventRing, SiteTableNeverFillsAndEmptiesWithTheRing) {
  EventRing ring;
  ASSERT_TRUE(ring.Init(32));
  std::mt19937_64 rng(5);
  for (int i = 0; i < 1000; i++) {
    ring.Add(RandomEvent(rng, 0));
    EXPECT_EQ(ring.sites_live(), i < 32 ? static_cast<size_t>(i + 1) : 32u);
  }
  EXPECT_EQ(ring.sites_high_water(), 32u);
  // Now one site for everything: the 32 distinct ones go back as they are
  // overwritten.
  Event same = RandomEvent(rng, 1);
  for (int i = 0; i < 32; i++) ring.Add(same);
  EXPECT_EQ(ring.sites_live(), 1u);
  EXPECT_EQ(ring.dropped(), 1000u);
}

// Resident pages of the reservation, counted by the kernel.
size_t ResidentBytes(const EventRing& ring) {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t pages = (ring.reservation_bytes() + page - 1) / page;
  std::vector<unsigned char> v(pages);
  EXPECT_EQ(mincore(const_cast<void*>(ring.reservation()), ring.reservation_bytes(), v.data()), 0);
  size_t resident = 0;
  for (unsigned char c : v) resident += (c & 1) * page;
  return resident;
}

// The point of the compact ring: 2048 events from a few call sites cost
// 40 bytes each plus their sites, not 296 bytes each.
TEST(EventRing, FewSitesTouchAFractionOfTheFullEvents) {
  EventRing ring;
  ASSERT_TRUE(ring.Init(2048));
  EXPECT_EQ(ResidentBytes(ring), 0u);
  std::mt19937_64 rng(6);
  for (int i = 0; i < 2048; i++) ring.Add(RandomEvent(rng, 8, /*odd_usable=*/false));
  size_t resident = ResidentBytes(ring);
  EXPECT_EQ(ring.sites_high_water(), 8u);
  EXPECT_LE(resident, ring.touched_bytes());
  // Records (and a partial page), site index, sites, and the address index
  // (its heads and a link per event).
  EXPECT_LE(resident, 2048u * 40 + 4096 + 4096 + 4096 + 4096 + 2048u * 4);
  EXPECT_LT(resident, 2048u * sizeof(Event) / 4);
  // Every event its own site: at most the sites' 272 bytes more per event.
  EventRing distinct;
  ASSERT_TRUE(distinct.Init(2048));
  for (int i = 0; i < 2048; i++) distinct.Add(RandomEvent(rng, 0));
  EXPECT_LE(ResidentBytes(distinct), 2048u * (40 + 272 + 4) + 4 * 4096);
}

TEST(EventRing, ThreadIdsBeyond32BitsAreStoredAsZero) {
  EventRing ring;
  ASSERT_TRUE(ring.Init(16));
  std::mt19937_64 rng(7);
  Event e = RandomEvent(rng, 1);
  e.thread_id = (uint64_t{1} << 32) + 5;
  ring.Add(e);
  Event back;
  ring.Get(0, &back);
  EXPECT_EQ(back.thread_id, 0u);
  e.thread_id = 0xFFFFFFFFu;
  ring.Add(e);
  ring.Get(1, &back);
  EXPECT_EQ(back.thread_id, 0xFFFFFFFFu);
}

TEST(EventRing, RefusesAZeroCapacity) {
  EventRing ring;
  EXPECT_FALSE(ring.Init(0));
  EXPECT_FALSE(ring.ready());
}

}  // namespace
}  // namespace nitro::telemetry
