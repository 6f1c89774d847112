// A process-wide pool of worker threads with a blocking parallel_for that many callers may share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stop_token>

namespace kiln::detail {

// Number of worker threads (hardware threads, at least 1).
std::size_t worker_count();

// Host threads a GPU backend feeds its staging lanes with: one per worker, at most 16, or
// KILN_STAGING_LANES (1..64) when set, for tuning on a given host.
std::size_t staging_lanes();

// Calls body(begin, end) on disjoint ranges covering [0, n), each at most `grain` long and
// aligned to `grain`, on the pool's threads and the caller's; returns when all are done.
// Safe to call concurrently from many threads (their tasks interleave on the same workers).
// Once `stop` is requested, ranges not yet started are skipped (the caller then reports the run
// cancelled; which ranges ran is unspecified).
void parallel_for(std::size_t n, std::size_t grain, const std::function<void(std::size_t, std::size_t)>& body,
                  std::stop_token stop = {});

}  // namespace kiln::detail
