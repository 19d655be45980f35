// The reclaimer: what the background thread does each period. Batches and
// spare slabs idle in the middle layer for a quarter of decay_ms go back to
// the page heap; pages free for longer than decay_ms go back to the kernel,
// so freed small objects' memory returns within about 1.25 decay_ms plus a
// period or two; telemetry publishes.
#include "core/heap_internal.h"
#include "core/movable.h"

namespace nitro {
namespace {

// decay_ms can change at run time (nitro_ctl): one atomic load per use.
uint64_t DecayMs() { return __atomic_load_n(&g_options.decay_ms, __ATOMIC_RELAXED); }

unsigned ReclaimerPeriodMs() {
  uint64_t decay = DecayMs();
  uint64_t period = decay / 4 < 10 ? 10 : (decay / 4 > 1000 ? 1000 : decay / 4);
  const TelemetryHooks* hooks = g_hooks.load(std::memory_order_acquire);
  if (hooks != nullptr && period > 100) period = 100;  // statistics at least every 100 ms
  return static_cast<unsigned>(period);
}

void ReclaimerTick() {
  uint64_t decay = DecayMs();
  uint64_t now = NowMs();
  uint64_t cutoff = now > decay ? now - decay : 0;
  // Stamped objects and slabs idle since before this go to the page heap
  // (every tick: by age, not by when a period happens to end).
  uint64_t idle_cutoff = now > decay / 4 ? now - decay / 4 : 0;
  Partition::ForEach([cutoff, idle_cutoff](Partition* p) {
    p->ReleaseIdleObjects(idle_cutoff);
    p->pages().TrimToBound();  // deferred by Free while this thread runs
    // A partition without decay (PERSISTENT) keeps its free pages.
    if (p->policy().decay) p->ReleaseFreedBefore(cutoff);
  });
  movable::BackgroundTick(now, g_options.compact_interval_ms, g_options.compact_budget,
                          g_options.compact_budget_us, TakePressureCompaction());
  // Chunks of span descriptors found empty at two ticks in a row go back.
  SpanPool().ReleaseEmpty();
  const TelemetryHooks* hooks = g_hooks.load(std::memory_order_acquire);
  if (hooks != nullptr && hooks->on_tick != nullptr) hooks->on_tick();
}

}  // namespace

BackgroundThread g_background(ReclaimerTick, ReclaimerPeriodMs, ProgramThreadsGone);

}  // namespace nitro
