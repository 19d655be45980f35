#include "core/page_heap.h"

#include "core/numa.h"
#include "core/os.h"
#include "core/page_map.h"

namespace nitro {

namespace {
// PageHeap::SetBoundDeferral's predicate (nullptr: never deferred).
std::atomic<bool (*)(bool)> g_bound_deferral{nullptr};
ReturningMetaPool<Span> g_span_pool;
}  // namespace

ReturningMetaPool<Span>& SpanPool() { return g_span_pool; }


MetaPool<PageHeap::Region>& PageHeap::RegionPool() {
  static MetaPool<Region> pool;
  return pool;
}


void PageHeap::Init(Partition* owner, uint16_t id, size_t region_bytes,
                    size_t max_free_committed, Clock clock) {
  owner_ = owner;
  id_ = id;
  region_bytes_ = RoundUp(region_bytes < (size_t{64} << 20) ? (size_t{64} << 20) : region_bytes,
                          size_t{1} << 21);
  next_region_bytes_ = size_t{64} << 20;
  max_free_committed_ = max_free_committed;
  clock_ = clock;
}

SpanList& PageHeap::ListFor(const Span* s) {
  size_t bucket = s->pages < kBuckets ? s->pages : kBuckets;
  return free_[SetOf(s)][bucket];
}

void PageHeap::InsertFree(Span* s) {
  s->state = SpanState::kFree;
  int set = SetOf(s);
  size_t bucket = s->pages < kBuckets ? s->pages : kBuckets;
  free_[set][bucket].PushFront(s);
  nonempty_[set][bucket / 64] |= uint64_t{1} << (bucket % 64);
  free_pages_[s->released ? 1 : 0] += s->pages;
  if (!s->released) {
    s->lru_prev = lru_tail_;
    s->lru_next = nullptr;
    if (lru_tail_) lru_tail_->lru_next = s; else lru_head_ = s;
    lru_tail_ = s;
  }
}

void PageHeap::RemoveFree(Span* s) {
  int set = SetOf(s);
  size_t bucket = s->pages < kBuckets ? s->pages : kBuckets;
  free_[set][bucket].Remove(s);
  if (free_[set][bucket].empty()) nonempty_[set][bucket / 64] &= ~(uint64_t{1} << (bucket % 64));
  free_pages_[s->released ? 1 : 0] -= s->pages;
  if (!s->released) {
    if (s->lru_prev) s->lru_prev->lru_next = s->lru_next; else lru_head_ = s->lru_next;
    if (s->lru_next) s->lru_next->lru_prev = s->lru_prev; else lru_tail_ = s->lru_prev;
    s->lru_next = s->lru_prev = nullptr;
  }
}

Span* PageHeap::NewSpan(uintptr_t start, size_t pages) {
  Span* s = SpanPool().New();
  if (s == nullptr) return nullptr;
  s->start = start;
  s->pages = static_cast<uint32_t>(pages);
  s->partition = owner_;
  s->partition_id = id_;
  return s;
}

Span* PageHeap::FindFree(size_t pages, size_t align_pages, size_t phase_pages, FreeSet set) {
  // In the exact-size buckets, a run that fits at any alignment; among the
  // large runs, one that fits once its start is aligned (so a freed aligned
  // run serves the next request of its size, as strict's huge blocks need).
  size_t want = pages + align_pages - 1;
  if (want < kBuckets) {
    pages = want;
    // First non-empty exact-size bucket at or above `pages`.
    for (size_t word = pages / 64; word < (kBuckets + 63) / 64; word++) {
      uint64_t bits = nonempty_[set][word];
      if (word == pages / 64) bits &= ~uint64_t{0} << (pages % 64);
      if (bits) {
        size_t bucket = word * 64 + static_cast<size_t>(__builtin_ctzll(bits));
        if (bucket < kBuckets) return free_[set][bucket].first();
      }
    }
  }
  // Best fit among the large runs.
  Span* best = nullptr;
  for (Span* s = free_[set][kBuckets].first(); s != nullptr; s = s->next) {
    size_t lead = LeadPages(s->start, align_pages, phase_pages);
    if (s->pages >= pages + lead && (best == nullptr || s->pages < best->pages)) best = s;
  }
  return best;
}

PageHeap::Region* PageHeap::NewRegion(size_t min_bytes) {
  if (fixed_bytes_ != 0) {
    // The caller's memory is the only region there can be.
    if (regions_ != nullptr || min_bytes > fixed_bytes_ - kPageSize) return nullptr;
    if (!GlobalPageMap().Ensure(fixed_base_, fixed_bytes_)) return nullptr;
    return AddRegion(fixed_base_, fixed_bytes_, /*oversized=*/false, 0);
  }
  constexpr size_t kStep = size_t{2} << 20;
  size_t need = RoundUp(min_bytes + kPageSize, kStep);
  if (need < min_bytes) return nullptr;  // overflow
  bool oversized = need > next_region_bytes_;
  size_t size = oversized ? need : next_region_bytes_;
  void* base = nullptr;
  for (;;) {
    // Aligned to a power of two up to the page map's leaf size, so that a
    // region needs few leaves; with little address space to spare (a
    // ulimit -v), aligned only to 2 MiB, which costs no padding.
    size_t align = size_t{1} << PageMap::kLeafShift;
    while (align > size) align >>= 1;
    base = os::Reserve(size, align < kStep ? kStep : align);
    if (base == nullptr && align > kStep) base = os::Reserve(size, kStep);
    if (base != nullptr) break;
    // Under an address-space limit a smaller region may still fit.
    if (size <= need) return nullptr;
    size = RoundUp(size / 2, kStep) < need ? need : RoundUp(size / 2, kStep);
  }
  if (!GlobalPageMap().Ensure(reinterpret_cast<uintptr_t>(base), size)) {
    os::Unmap(base, size);
    return nullptr;
  }
  if (huge_pages_) os::AdviseHugePages(base, size);
  size_t file_offset = file_bytes_;
  if (file_fd_ >= 0) {
    // The reserved range becomes the file's next `size` bytes.
    if (!os::MapFile(base, size, file_fd_, file_offset)) {
      os::Unmap(base, size);
      return nullptr;
    }
    file_bytes_ += size;
  }
  // After the file's mapping, which would replace the range's policy; before
  // any page is touched.
  if (numa_mask_ != 0) numa::Interleave(base, size, numa_mask_);
  Region* r = AddRegion(reinterpret_cast<uintptr_t>(base), size, oversized, file_offset);
  if (r == nullptr) {
    os::Unmap(base, size);
    return nullptr;
  }
  // Regions grow geometrically up to region_bytes_: a small program
  // reserves little (and dumps a small core), a large one few regions.
  if (!oversized) next_region_bytes_ = size * 2 < region_bytes_ ? size * 2 : region_bytes_;
  return r;
}

PageHeap::Region* PageHeap::AddRegion(uintptr_t base, size_t size, bool oversized,
                                      size_t file_offset) {
  Region* r = RegionPool().New();
  if (r == nullptr) return nullptr;
  r->base = base;
  r->size = size;
  r->frontier = r->base;
  r->oversized = oversized;
  r->file_offset = file_offset;
  r->next = regions_;
  regions_ = r;
  reserved_ += size;
  region_count_++;
  return r;
}

void PageHeap::GiveBackRegion(uintptr_t base, size_t size) {
  // The caller's memory is never unmapped: only the guard pages the heap
  // made in it are opened again.
  if (fixed_bytes_ != 0) {
    os::ProtectReadWrite(reinterpret_cast<void*>(base), size);
  } else {
    os::Unmap(reinterpret_cast<void*>(base), size);
  }
}

void PageHeap::ReturnPages(uintptr_t start, size_t bytes) {
  if (fixed_bytes_ != 0) return;  // the caller's memory stays as it is
  if (file_fd_ >= 0) {
    // The hole frees the file's blocks; the madvise below drops the pages.
    for (Region* r = regions_; r != nullptr; r = r->next) {
      if (start >= r->base && start < r->base + r->size) {
        os::PunchHole(file_fd_, r->file_offset + (start - r->base), bytes);
        break;
      }
    }
  }
  os::Release(reinterpret_cast<void*>(start), bytes);
}

Span* PageHeap::Carve(size_t pages) {
  size_t bytes = pages << kPageShift;
  // The last page of a region is never carved, so runs of two regions that
  // happen to be adjacent can never merge.
  Region* r = current_;
  if (r == nullptr || r->frontier + bytes > r->base + r->size - kPageSize) {
    r = NewRegion(bytes);
    if (r == nullptr) return nullptr;
    // A region made for one oversized run does not replace the current one;
    // the old region's uncarved rest is virgin and costs no memory.
    if (!r->oversized || current_ == nullptr) current_ = r;
  }
  Span* s = NewSpan(r->frontier, pages);
  if (s == nullptr) return nullptr;
  r->frontier += bytes;
  s->zeroed = true;
  return s;
}

void PageHeap::MapFree(Span* s) {
  if (MappedByEnds(s)) {
    GlobalPageMap().SetEndsOnly(s);
  } else {
    GlobalPageMap().Set(s->start, s->pages, s);
  }
}

void PageHeap::MapPiece(const Span* whole, Span* piece) {
  // The interior of a run mapped by its ends (or of virgin memory) holds no
  // entries: the piece's ends are all it needs.
  if (MappedByEnds(whole)) {
    GlobalPageMap().SetEnds(piece);
  } else {
    GlobalPageMap().Set(piece->start, piece->pages, piece);
  }
}

void PageHeap::Split(Span* s, size_t pages) {
  // s is not on any list. Its tail beyond `pages` becomes a free run of the
  // same kind; its right neighbour cannot be a free run of that kind (runs are
  // kept merged), so the tail needs no merging.
  if (s->pages == pages) return;
  Span* tail = NewSpan(s->start + (pages << kPageShift), s->pages - pages);
  if (tail == nullptr) return;  // keep the whole run: wasteful, never wrong
  tail->released = s->released;
  tail->prot_none = s->prot_none;
  tail->free_tick = s->free_tick;
  NITRO_ASSERT(!s->guard_tail);  // guard-tail runs are cut by TakeGuardTail
  MapPiece(s, tail);
  s->pages = static_cast<uint32_t>(pages);
  InsertFree(tail);
}

Span* PageHeap::Allocate(size_t pages, size_t align_pages, SpanState state, bool guard_page,
                         size_t phase_pages) {
  if (pages == 0 || pages > (kMaxRequest >> kPageShift)) return nullptr;
  // The contract is charged before any page is touched, so a refusal
  // changes nothing; a run that then cannot be made gives the charge back.
  if (!contract_.Charge(pages << kPageShift)) return nullptr;
  Span* s = AllocateRun(pages, align_pages, state, guard_page, phase_pages);
  if (s == nullptr) {
    contract_.Uncharge(pages << kPageShift);
  } else if (s->pages > pages) {
    contract_.ChargeAnyway((s->pages - pages) << kPageShift);  // kept whole: no metadata to split
  }
  return s;
}

Span* PageHeap::AllocateRun(size_t pages, size_t align_pages, SpanState state, bool guard_page,
                            size_t phase_pages) {
  if (align_pages == 0) align_pages = 1;
  LockGuard g(lock_);
  // Committed pages first: reusing them costs no page fault. When no single
  // committed run fits, adjacent ones are merged once (MergeCommittedFor)
  // and looked for again.
  Span* s = nullptr;
  for (bool merged = false;; merged = true) {
    // A guard-tail run ends in a guard page already: its tail serves an
    // unaligned guarded run with no system call. But one more than twice
    // the request, split, leaves a head in which the next large requests do
    // not fit, and the heap grows instead: when a plain committed run fits
    // in less than half of it, that run is taken and pays one mprotect for
    // its guard. (large_cycle, 16 live blocks of 64 KiB..4 MiB: 14,100 ->
    // 10,700 page faults, CPU 0.26 -> 0.19 s; large_trap 17,300 -> 11,500.)
    if (guard_page && pages > 1 && align_pages == 1) {
      Span* run = FindFree(pages, 1, 0, kGuardTail);
      if (run != nullptr && run->pages > 2 * pages) {
        Span* plain = FindFree(pages, 1, 0, kCommitted);
        if (plain != nullptr && 2 * plain->pages < run->pages) run = nullptr;
      }
      if (run != nullptr) {
        s = TakeGuardTail(run, pages);
        s->guard_pages = 1;
        return Handed(s, state, /*mapped=*/true);
      }
    }
    s = FindFree(pages, align_pages, phase_pages, kCommitted);
    if (s != nullptr || merged || align_pages != 1 || !MergeCommittedFor(pages)) break;
  }
  // A request without a guard page of its own: the head of a guard-tail
  // run (committed and open but for its last page) before released or
  // fresh pages, which cost a page fault per 4 KiB page. Freed large
  // blocks leave such runs, and slabs did not use them: Python building
  // JSON (PYTHONMALLOC=malloc) carved 1,316 fresh 4-page slabs while 7-16
  // MiB lay free in guard-tail runs, and peaked at 48 MiB of RSS (mimalloc
  // 28); now 39. Best fit, as everywhere: the smallest run that serves.
  if (s == nullptr && align_pages == 1 && !(guard_page && pages > 1)) {
    Span* run = FindFree(pages + 1, 1, 0, kGuardTail);
    if (run != nullptr && !run->released) {
      if (Span* head = TakeGuardHead(run, pages, state)) return head;
    }
  }
  if (s == nullptr) s = FindFree(pages, align_pages, phase_pages, kReleased);
  size_t want = pages + align_pages - 1;  // fits at any alignment
  if (s != nullptr) {
    RemoveFree(s);
  } else if ((s = Carve(want)) != nullptr) {
    s->released = true;  // virgin pages read as zero, like released ones
  } else if ((s = TakeAfterMakingRoom(want)) == nullptr) {
    return nullptr;
  }
  // Mark it taken at once, so that merging its trimmed lead cannot absorb it.
  s->state = SpanState::kLarge;
  if (align_pages > 1) {
    size_t lead = LeadPages(s->start, align_pages, phase_pages);
    uintptr_t aligned = s->start + (lead << kPageShift);
    if (lead > 0) {
      Span* head = NewSpan(s->start, lead);
      if (head != nullptr) {
        head->released = s->released;
        head->prot_none = s->prot_none;
        MapPiece(s, head);
        s->start = aligned;
        s->pages -= static_cast<uint32_t>(lead);
        InsertFree(MergeNeighbours(head));
      } else {
        // No metadata for the lead: give the run back whole.
        InsertFree(MergeNeighbours(s));
        return nullptr;
      }
    }
  }
  Split(s, pages);
  if (!MakeAccessible(s, guard_page && pages > 1)) {
    // The kernel refused (the mapping count limit): give the run back.
    s->state = SpanState::kFree;
    MapFree(s);  // Split gave its old last page to the tail
    InsertFree(MergeNeighbours(s));
    return nullptr;
  }
  return Handed(s, state);
}

bool PageHeap::MergeCommittedFor(size_t pages) {
  // Freed large blocks keep their guard pages (guard-tail runs), and a
  // guard-tail run never merges across its guard at free time (that would
  // cost an mprotect per free). So a heap of freed blocks is a row of
  // committed runs too short one by one for a request larger than each:
  // without this, the request takes fresh or released pages, one page
  // fault per 4 KiB page (tens of microseconds each on this project's
  // virtual machines), and the heap grows by a request's size each time.
  // Here the shortest row of adjacent committed runs that holds `pages`
  // becomes one run: one mprotect opens every guard page inside it.
  if (pages < kMergeMinPages) return false;
  PageMap& map = GlobalPageMap();
  auto joins = [&](const Span* n, uintptr_t at) {
    return n != nullptr && n->state == SpanState::kFree && n->partition == owner_ &&
           n->start == at && !n->released && !n->prot_none && !n->quarantined;
  };
  // The row from `first`: its right neighbours up to the one that makes
  // `pages`, and on while the row ends in a plain run (a plain free run
  // never has a free committed neighbour on its right). Its last run.
  auto row = [&](Span* first, size_t* total) {
    Span* last = first;
    *total = first->pages;
    for (Span* next; (*total < pages || !last->guard_tail) &&
                     joins(next = map.Get(reinterpret_cast<void*>(last->end())), last->end());) {
      *total += next->pages;
      last = next;
    }
    return last;
  };
  Span* best = nullptr;
  Span* best_last = nullptr;
  size_t best_pages = 0;
  size_t scanned = 0;
  for (Span* first = lru_head_; first != nullptr && scanned < kMergeScanRuns;
       first = first->lru_next, scanned++) {
    if (!joins(first, first->start)) continue;  // PROT_NONE (strict keeps freed runs closed)
    size_t total;
    Span* last = row(first, &total);
    if (last != first && total >= pages && (best == nullptr || total < best_pages)) {
      best = first;
      best_last = last;
      best_pages = total;
    }
  }
  if (best == nullptr) return false;
  // The row's last run decides whether the merged run ends in a guard page.
  uintptr_t row_end = best_last->end();
  bool guard_tail = best_last->guard_tail;
  uintptr_t open_end = guard_tail ? row_end - kPageSize : row_end;
  if (!os::ProtectReadWrite(reinterpret_cast<void*>(best->start), open_end - best->start)) {
    return false;  // the kernel refused (the mapping limit): the runs stay as they are
  }
  RemoveFree(best);
  while (best->end() != row_end) {
    Span* next = map.Get(reinterpret_cast<void*>(best->end()));
    RemoveFree(next);
    map.Set(next->start, next->pages, best);
    best->pages += next->pages;
    if (next->free_tick > best->free_tick) best->free_tick = next->free_tick;
    SpanPool().Delete(next);
  }
  best->guard_tail = guard_tail;
  InsertFree(best);
  return true;
}

Span* PageHeap::TakeAfterMakingRoom(size_t pages) {
  // Only the caller's memory (UseFixed) cannot grow: there the quarantine
  // and the guard-tail runs, which only some requests can use, give their
  // pages up, and every free run merges with its neighbours, before a
  // request fails.
  if (fixed_bytes_ == 0) return nullptr;
  while (quarantine_head_ != nullptr) Unquarantine(quarantine_head_);
  while (lru_head_ != nullptr) ReleaseSpan(lru_head_);  // no system call here
  Span* s = FindFree(pages, 1, 0, kReleased);
  if (s != nullptr) RemoveFree(s);
  return s;
}

Span* PageHeap::Handed(Span* s, SpanState state, bool mapped) {
  s->state = state;
  s->zeroed = s->released && released_reads_zero_;
  s->released = false;
  s->next = s->prev = s->lru_next = s->lru_prev = nullptr;
  in_use_pages_ += s->pages;
  if (!mapped) GlobalPageMap().Set(s->start, s->pages, s);
  return s;
}

Span* PageHeap::TakeGuardTail(Span* run, size_t pages) {
  // Returns the block mapped to itself in the page map. A committed
  // guard-tail run has all its pages mapped to it: the part that keeps the
  // run's descriptor is mapped already, and the new descriptor goes to the
  // shorter part, so a cycle maps the fewest pages (a 4 MiB block is 1024
  // entries; large_cycle spent half its instructions mapping). A released
  // one (ReleasePages could not open its guard page) may have merged with
  // runs mapped by their ends, so its block is mapped anew.
  RemoveFree(run);
  run->state = SpanState::kLarge;  // taken: the head must not merge with it
  run->guard_tail = false;
  bool mapped = !run->released;
  size_t head_pages = run->pages - pages;
  if (head_pages > pages && mapped) {
    if (Span* tail = NewSpan(run->start + (head_pages << kPageShift), pages)) {
      tail->state = SpanState::kLarge;
      GlobalPageMap().Set(tail->start, tail->pages, tail);  // before the head looks right
      run->pages = static_cast<uint32_t>(head_pages);
      run->state = SpanState::kFree;
      InsertFree(MergeNeighbours(run));
      return tail;
    }
  }
  // The head stays free as an ordinary committed run (all accessible).
  // Without metadata for it the whole run is used: wasteful, never wrong.
  if (head_pages > 0) {
    if (Span* head = NewSpan(run->start, head_pages)) {
      head->released = run->released;
      head->free_tick = run->free_tick;
      run->start = head->end();
      run->pages = static_cast<uint32_t>(pages);
      MapFree(head);
      InsertFree(MergeNeighbours(head));
    }
  }
  if (!mapped) GlobalPageMap().Set(run->start, run->pages, run);
  return run;
}

Span* PageHeap::TakeGuardHead(Span* run, size_t pages, SpanState state) {
  // As TakeGuardTail: the longer part keeps the run's descriptor and the
  // page-map entries that point at it; the new one maps the shorter part.
  size_t rest = run->pages - pages;
  if (pages <= rest) {
    Span* head = NewSpan(run->start, pages);
    if (head == nullptr) return nullptr;
    RemoveFree(run);
    run->start = head->end();
    run->pages = static_cast<uint32_t>(rest);
    InsertFree(run);
    return Handed(head, state);
  }
  Span* tail = NewSpan(run->start + (pages << kPageShift), rest);
  if (tail == nullptr) return nullptr;
  RemoveFree(run);
  tail->guard_tail = true;
  tail->free_tick = run->free_tick;
  tail->state = SpanState::kFree;
  GlobalPageMap().Set(tail->start, tail->pages, tail);
  InsertFree(tail);
  run->guard_tail = false;
  run->pages = static_cast<uint32_t>(pages);
  return Handed(run, state, /*mapped=*/true);
}

void PageHeap::ClearAround(Span* merged, uintptr_t junction) {
  // The parts' interiors were cleared (and their whole pages of entries
  // returned) when they were released; the pages of entries that straddle
  // the junction become wholly interior only now.
  PageMap& map = GlobalPageMap();
  map.SetEnds(merged);
  uintptr_t lo = merged->start + kPageSize, hi = merged->end() - kPageSize;
  uintptr_t from = junction - PageMap::kEntryPageSpan, to = junction + PageMap::kEntryPageSpan;
  map.ReleaseClear(from > lo ? from : lo, to < hi ? to : hi);
  // The same for free's class guesses, a page of which covers more (8 MiB):
  // runs are released one by one, most smaller than that, so a page of
  // guesses is covered whole only by a merge, at a junction within it.
  from = junction - PageMap::kHintPageSpan;
  to = junction + PageMap::kHintPageSpan;
  map.ReleaseHints(from > lo ? from : lo, to < hi ? to : hi);
}

Span* PageHeap::Join(Span* left, Span* right) {
  PageMap& map = GlobalPageMap();
  bool ends_only = MappedByEnds(left) && MappedByEnds(right);
  bool keep_right = !ends_only && left->pages < right->pages;
  Span* keep = keep_right ? right : left;
  Span* gone = keep_right ? left : right;
  uintptr_t junction = right->start;
  if (ends_only) {
    // Only the ends are mapped: the two inner ends become interior.
    if (left->pages > 1) map.Set(left->end() - kPageSize, 1, nullptr);
    if (right->pages > 1) map.Set(right->start, 1, nullptr);
  } else {
    map.Set(gone->start, gone->pages, keep);
  }
  keep->start = left->start;
  keep->pages = left->pages + right->pages;
  keep->guard_tail = right->guard_tail;
  if (gone->free_tick > keep->free_tick) keep->free_tick = gone->free_tick;
  if (ends_only) ClearAround(keep, junction);
  SpanPool().Delete(gone);
  return keep;
}

Span* PageHeap::MergeNeighbours(Span* s) {
  // s is free, not on a list. Absorb free neighbours of the same kind. A
  // guard-tail run's guard page must stay its last page: it absorbs a plain
  // run on its left (the result is a guard-tail run), never one on its right.
  PageMap& map = GlobalPageMap();
  Span* left = map.Get(reinterpret_cast<void*>(s->start - 1));
  if (left != nullptr && left->state == SpanState::kFree && left->partition == owner_ &&
      left->released == s->released && left->prot_none == s->prot_none && !left->quarantined &&
      !left->guard_tail && left->end() == s->start) {
    RemoveFree(left);
    s = Join(left, s);
  }
  if (s->guard_tail) return s;
  Span* right = map.Get(reinterpret_cast<void*>(s->end()));
  if (right != nullptr && right->state == SpanState::kFree && right->partition == owner_ &&
      right->released == s->released && right->prot_none == s->prot_none && !right->quarantined &&
      right->start == s->end()) {
    RemoveFree(right);
    s = Join(s, right);
  }
  return s;
}

bool PageHeap::MakeAccessible(Span* s, bool guard_page) {
  s->guard_pages = 0;
  if (s->prot_none) {
    // Freed memory is PROT_NONE already: open all but the guard page.
    size_t open = guard_page ? s->bytes() - kPageSize : s->bytes();
    if (!os::ProtectReadWrite(reinterpret_cast<void*>(s->start), open)) return false;
    s->prot_none = false;
    if (guard_page) s->guard_pages = 1;
    return true;
  }
  // Accessible (virgin or committed) memory: close the guard page only. If
  // the kernel refuses, the allocation simply has no guard.
  if (guard_page && os::ProtectNone(reinterpret_cast<void*>(s->end() - kPageSize), kPageSize)) {
    s->guard_pages = 1;
  }
  return true;
}

void PageHeap::SetQuarantine(size_t max_bytes, size_t max_spans, bool keeps_protection) {
  // Set before the partition is listed (Partition::Init): nobody else sees
  // this page heap yet, and a lock fork does not take must not be taken.
  quarantine_max_bytes_ = max_bytes;
  quarantine_base_bytes_ = max_bytes;
  quarantine_max_spans_ = max_spans;
  quarantine_keeps_protection_ = keeps_protection;
}

void PageHeap::EnlargeQuarantine(size_t factor) {
  LockGuard g(lock_);
  size_t cap = quarantine_base_bytes_ * 8;
  // Atomic: Partition::FreeLarge reads it without this lock (ProtectionLasts).
  __atomic_store_n(&quarantine_max_bytes_,
                   quarantine_max_bytes_ > cap / factor ? cap : quarantine_max_bytes_ * factor,
                   __ATOMIC_RELAXED);
  quarantine_max_spans_ = quarantine_max_spans_ * factor > 512 ? 512 : quarantine_max_spans_ * factor;
}

void PageHeap::Unquarantine(Span* s) {
  // s is the oldest entry.
  quarantine_head_ = s->next;
  if (quarantine_head_ == nullptr) quarantine_tail_ = nullptr;
  s->next = s->prev = nullptr;
  quarantine_bytes_ -= s->bytes();
  quarantine_spans_--;
  s->quarantined = false;
  // A run released while it waited is the kernel's memory: it keeps no
  // guard page and opens whole, an ordinary released run. A released
  // guard-tail run would be on no LRU and in no set that a plain request or
  // TakeAfterMakingRoom looks at: lost to all but guarded requests.
  size_t open = s->released ? s->bytes() : s->bytes() - kPageSize;
  if (s->prot_none && !quarantine_keeps_protection_ && open != 0 &&
      os::ProtectReadWrite(reinterpret_cast<void*>(s->start), open)) {
    // Opened now rather than at reuse (the same one mprotect): as a
    // guard-tail run it merges and is reused like any unprotected block,
    // where PROT_NONE runs, merging only with each other, fragment the heap.
    s->prot_none = false;
    s->guard_tail = !s->released;
  }
  if (MappedByEnds(s)) GlobalPageMap().SetEndsOnly(s);  // released while it waited
  InsertFree(MergeNeighbours(s));
}

void PageHeap::Free(Span* s, bool quarantine, LargeProtection protection) {
  LockGuard g(lock_);
  NITRO_ASSERT(s->state != SpanState::kFree);
  in_use_pages_ -= s->pages;
  contract_.Uncharge(s->bytes());
  s->state = SpanState::kFree;
  s->released = false;
  s->free_tick = clock_ ? clock_() : 0;
  // prot_none means "any of the run's pages may be inaccessible" (the
  // whole run or its first pages, protected on free); such a run is opened whole
  // again before reuse. An unprotected block keeps its guard page as the
  // last page of a guard-tail run.
  size_t closed_pages = protection == LargeProtection::kHead       ? kProtectHeadPages
                        : protection == LargeProtection::kFirstMiB ? kProtectFirstMiBPages
                                                                   : s->pages;
  size_t closed = (closed_pages < s->pages ? closed_pages : s->pages) << kPageShift;
  bool protect = protection != LargeProtection::kNone;
  if (protect && !os::ProtectNone(reinterpret_cast<void*>(s->start), closed)) {
    protect = false;  // the kernel refused (the mapping limit): keep it unprotected
  }
  s->prot_none = protect;
  s->guard_tail = !protect && s->guard_pages != 0;
  s->guard_pages = 0;
  if (quarantine && quarantine_max_bytes_ > 0) {
    s->quarantined = true;
    s->next = nullptr;
    if (quarantine_tail_) quarantine_tail_->next = s; else quarantine_head_ = s;
    quarantine_tail_ = s;
    quarantine_bytes_ += s->bytes();
    quarantine_spans_++;
    while (quarantine_head_ != nullptr && quarantine_head_ != s &&
           (quarantine_bytes_ > quarantine_max_bytes_ || quarantine_spans_ > quarantine_max_spans_)) {
      Unquarantine(quarantine_head_);
    }
    if (quarantine_bytes_ > quarantine_max_bytes_ || quarantine_spans_ > quarantine_max_spans_) {
      Unquarantine(s);  // larger than the whole quarantine
    }
  } else {
    InsertFree(MergeNeighbours(s));
  }
  if (free_pages_[0] << kPageShift > max_free_committed_) {
    bool (*deferral)(bool) = g_bound_deferral.load(std::memory_order_acquire);
    if (max_free_committed_ == 0 || deferral == nullptr || !deferral(!trim_requested_)) {
      EnforceCommittedBound();
    } else {
      trim_requested_ = true;
    }
  }
}

void PageHeap::SetBoundDeferral(bool (*reclaimer_running)(bool wake)) {
  g_bound_deferral.store(reclaimer_running, std::memory_order_release);
}

void PageHeap::TrimToBound() {
  LockGuard g(lock_);
  trim_requested_ = false;
  EnforceCommittedBound();
}

void PageHeap::EnforceCommittedBound() {
  while (free_pages_[0] << kPageShift > max_free_committed_ && lru_head_ != nullptr) {
    ReleaseSpan(lru_head_);
  }
}

void PageHeap::ReleasePages(Span* s) {
  // s is free and on no list. A released run is an ordinary one: a
  // guard-tail run gives its guard page up, so that it can merge again.
  ReturnPages(s->start, s->bytes());
  if (s->guard_tail && os::ProtectReadWrite(reinterpret_cast<void*>(s->end() - kPageSize), kPageSize)) {
    s->guard_tail = false;
  }
  if (fixed_bytes_ == 0) released_total_pages_ += s->pages;  // the caller's memory never goes
  s->released = true;
  if (MappedByEnds(s)) GlobalPageMap().SetEndsOnly(s);
}

Span* PageHeap::Repacked(Span* s) {
  // What stays of a heap after it is freed is mostly released runs between
  // the few blocks still in use, each with a descriptor that may hold a
  // page of descriptors alone (issue 13: +88 KiB at 1 GiB).
  bool ends = MappedByEnds(s);
  if (!ends && s->pages > PageMap::kEntryPageSpan / kPageSize) return s;
  Span* moved = SpanPool().Repack(s);
  if (moved == s) return s;
  if (ends) {
    GlobalPageMap().SetEnds(moved);
  } else {
    GlobalPageMap().Set(moved->start, moved->pages, moved);
  }
  SpanPool().Delete(s);
  return moved;
}

void PageHeap::ReleaseSpan(Span* s) {
  RemoveFree(s);
  ReleasePages(s);
  InsertFree(Repacked(MergeNeighbours(s)));
}

size_t PageHeap::ReleaseFreedBefore(uint64_t tick) {
  LockGuard g(lock_);
  size_t released = 0;
  // Quarantined runs keep their place but not their memory.
  for (Span** link = &quarantine_head_; *link != nullptr; link = &(*link)->next) {
    Span* q = *link;
    if (!q->released && q->free_tick <= tick) {
      ReleasePages(q);
      released += q->bytes();
      *link = Repacked(q);
      if (quarantine_tail_ == q) quarantine_tail_ = *link;
    }
  }
  while (lru_head_ != nullptr && lru_head_->free_tick <= tick) {
    released += lru_head_->bytes();
    ReleaseSpan(lru_head_);
  }
  return released;
}

bool PageHeap::GrowInPlace(Span* s, size_t new_pages) {
  if (new_pages <= s->pages) return true;
  if (new_pages > (kMaxRequest >> kPageShift)) return false;
  size_t need = new_pages - s->pages;
  if (!contract_.Charge(need << kPageShift)) return false;
  bool grown = GrowRun(s, new_pages, need);
  if (!grown) contract_.Uncharge(need << kPageShift);
  return grown;
}

bool PageHeap::GrowRun(Span* s, size_t new_pages, size_t need) {
  LockGuard g(lock_);
  PageMap& map = GlobalPageMap();
  Span* right = map.Get(reinterpret_cast<void*>(s->end()));
  // A guard-tail neighbour gives pages short of its guard page only.
  if (right != nullptr && right->state == SpanState::kFree && right->partition == owner_ &&
      !right->quarantined && right->start == s->end() &&
      right->pages >= need + (right->guard_tail ? 1 : 0)) {
    if (right->prot_none &&
        !os::ProtectReadWrite(reinterpret_cast<void*>(right->start), need << kPageShift)) {
      return false;
    }
    RemoveFree(right);
    if (right->pages > need) {
      // Keep the rest of the neighbour as a (shorter) free run.
      right->start += need << kPageShift;
      right->pages -= static_cast<uint32_t>(need);
      if (MappedByEnds(right)) map.SetEnds(right);  // its new first page was interior
      InsertFree(right);
    } else {
      SpanPool().Delete(right);
    }
    map.Set(s->end(), need, s);
    s->pages = static_cast<uint32_t>(new_pages);
    s->zeroed = false;
    in_use_pages_ += need;
    return true;
  }
  // The run ends at the frontier of its region: extend into virgin pages.
  for (Region* r = regions_; r != nullptr; r = r->next) {
    if (r->frontier == s->end() && r->frontier + (need << kPageShift) <= r->base + r->size - kPageSize) {
      r->frontier += need << kPageShift;
      map.Set(s->end(), need, s);
      s->pages = static_cast<uint32_t>(new_pages);
      s->zeroed = false;
      in_use_pages_ += need;
      return true;
    }
  }
  return false;
}

void PageHeap::Shrink(Span* s, size_t new_pages) {
  if (new_pages >= s->pages || new_pages == 0) return;
  Span* tail;
  {
    LockGuard g(lock_);
    tail = NewSpan(s->start + (new_pages << kPageShift), s->pages - new_pages);
    if (tail == nullptr) return;
    tail->state = SpanState::kLarge;
    s->pages = static_cast<uint32_t>(new_pages);
    GlobalPageMap().Set(tail->start, tail->pages, tail);
  }
  Free(tail, /*quarantine=*/true, LargeProtection::kWhole);
}

void PageHeap::Destroy() {
  LockGuard g(lock_);
  DestroyLocked();
  if (file_fd_ >= 0) os::Close(file_fd_);
  file_fd_ = -1;
}

void PageHeap::DestroyLocked() {
  PageMap& map = GlobalPageMap();
  for (Region* r = regions_; r != nullptr;) {
    for (uintptr_t a = r->base; a < r->frontier;) {
      Span* s = map.Get(reinterpret_cast<void*>(a));
      size_t pages = s != nullptr && s->start == a ? s->pages : 1;
      map.Set(a, pages, nullptr);
      if (s != nullptr && s->start == a) SpanPool().Delete(s);
      a += pages << kPageShift;
    }
    GiveBackRegion(r->base, r->size);
    Region* next = r->next;
    RegionPool().Delete(r);
    r = next;
  }
  regions_ = current_ = nullptr;
  if (file_fd_ >= 0) os::TruncateFile(file_fd_, 0);  // the file's blocks go too
  file_bytes_ = 0;
  for (auto& set : free_) for (auto& list : set) list = SpanList();
  for (auto& set : nonempty_) for (auto& w : set) w = 0;
  lru_head_ = lru_tail_ = nullptr;
  quarantine_head_ = quarantine_tail_ = nullptr;
  quarantine_bytes_ = quarantine_spans_ = 0;
  contract_.Uncharge(in_use_pages_ << kPageShift);
  // A crossing still queued on some thread must not call into a partition
  // that is gone.
  contract_.SetCallback(nullptr, nullptr);
  contract_.SetActions(0);
  reserved_ = in_use_pages_ = 0;
  free_pages_[0] = free_pages_[1] = 0;
  region_count_ = 0;
}

PageHeapStats PageHeap::Stats() {
  LockGuard g(lock_);
  PageHeapStats st;
  st.reserved_bytes = reserved_;
  st.in_use_bytes = in_use_pages_ << kPageShift;
  st.free_committed_bytes = free_pages_[0] << kPageShift;
  st.free_released_bytes = free_pages_[1] << kPageShift;
  st.released_total_bytes = released_total_pages_ << kPageShift;
  st.quarantine_bytes = quarantine_bytes_;
  // A walk of at most 512 runs (the quarantine's bound).
  st.quarantine_committed_bytes = 0;
  for (const Span* q = quarantine_head_; q != nullptr; q = q->next) {
    if (!q->released) st.quarantine_committed_bytes += q->bytes();
  }
  st.regions = region_count_;
  return st;
}

}  // namespace nitro
