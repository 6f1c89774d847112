// The pool behind kiln::host_memory: its settings, what it holds now, and a way to replace its pinning.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace kiln::detail {

// What the pool of host blocks holds now (pooled blocks only: those of 2 MiB and more).
struct host_pool_stats {
  std::size_t pinned_bytes = 0;   // page-locked: in use + cached + being pinned or unpinned
  std::size_t cached_bytes = 0;   // free blocks kept for reuse, pinned and ordinary
  std::size_t in_use_bytes = 0;   // blocks handed out and not yet given back, pinned and ordinary
  std::size_t pinned_limit = 0;   // the bound on pinned_bytes
  std::size_t pending_pins = 0;   // size classes queued for the pool thread to pin, or being pinned
  std::uint64_t pins = 0;         // blocks pinned so far (on any thread)
  std::uint64_t background_pins = 0;  // of those, by the pool thread
  std::size_t pending_spares = 0;     // size classes queued for a spare block, or being prepared
  std::size_t preparing_bytes = 0;    // the size of the spare being prepared now, 0 if none
  std::uint64_t spares = 0;           // spare blocks prepared so far, whole or cut short
  std::uint64_t spares_cut_short = 0; // of those, stopped by a run or a call before every page
};

host_pool_stats host_pool_statistics();

struct host_pool_settings {
  // Page-locked bytes at most (in use + cached + being pinned); 0: nothing is pinned.
  std::size_t pinned_limit = 0;
  // Free ordinary (pageable) bytes kept for reuse at most; beyond it a freed block goes back to
  // the system at once.
  std::size_t ordinary_cache_limit = 0;
  // A cached block unused this long is released (pinned ones unpinned).
  std::chrono::milliseconds idle{0};
  // Spare blocks: when a call takes a fresh block of a size class of 8 MiB or more, or the spare
  // prepared before, the pool thread prepares one (more) of that class, first touched, while no
  // run is in flight, within the ordinary cache's bound (KILN_SPARE_BLOCKS; core/host_memory.cpp).
  bool spares = false;
  // How blocks are pinned and unpinned; empty: through the CUDA backend, whose allocate_pinned
  // returns nullptr where no device is usable.
  std::function<void*(std::size_t)> pin;
  std::function<void(void*)> unpin;
};

// The settings a process starts with: KILN_PINNED_LIMIT (bytes) or the smaller of 1/8 of
// physical memory and 8 GiB; ordinary blocks cached up to the smaller of 1/8 of physical memory
// and 4 GiB; KILN_HOST_POOL_IDLE_MS or 2000 ms; spares unless KILN_SPARE_BLOCKS=0. Read from the
// environment at each call (KILN_SPARE_BLOCKS once per process, as every switch of settings.hpp).
host_pool_settings default_host_pool_settings();

// Waits for the pool thread's pin or release in flight, drops its queue, releases every cached
// block, zeroes the pin counters and installs `s` (for tests: a fake pinning allocator, a small
// bound, a short idle time). Refused (false) while pinned blocks are in use, since they would be
// unpinned by the new `unpin`, or once the pool is shutting down.
bool set_host_pool_settings(host_pool_settings s);

// Below this many bytes, blocks are plain heap memory, neither pooled nor pinned: pinning or
// holding a 2 MiB page for a small block costs more than any copy it could save.
inline constexpr std::size_t host_pool_block_min = std::size_t{2} << 20;

// A run in flight, as the pool thread sees it (GPU runs, and host runs over arrays of at least
// host_pool_block_min bytes: core/kernel_run.cpp): it pins no block while one runs, nor within
// run_quiet_ms of the last one's end or of the last request for a pin (whose call is about to run). Pinning a large block holds the CUDA driver for
// tens of milliseconds, which stalls the copies of a GPU run beside it (a call whose earlier
// results were still alive took 125 ms instead of 6 on the H200: docs/BENCHMARKS.md, CH), and it
// faults in and locks the block's pages under the process's memory map, which stalls the page
// faults of a host run beside it (`cpu` calls into fresh result blocks took 120-134 ms instead of
// 23-28: DN). Blocks are pinned while the engine rests; meanwhile calls take ordinary memory,
// which costs a staged copy.
inline constexpr int run_quiet_ms = 50;

class run_scope {
 public:
  run_scope();
  ~run_scope();
  run_scope(const run_scope&) = delete;
  run_scope& operator=(const run_scope&) = delete;
};

}  // namespace kiln::detail
