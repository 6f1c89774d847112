// A measuring tool for docs/BENCHMARKS.md: calls of the map whose results are all kept alive, each call's result block and run timed apart, with the host pool's state.
//
// A caller keeping its results leaves the host pool nothing to reuse: each call's result block is
// fresh memory (or a spare the pool prepared between calls), and what that costs shows as the
// block's allocation (its first touch) or inside the run (pages touched there). This tool makes
// `calls` calls from one pageable input, as the NIF does (allocate the result, run into it), with
// an optional pause before each, and prints for every call the allocation's and the run's time and
// the pool's spares (prepared, cut short, pending) and cached bytes just before it. `input` is the
// input's memory: `ordinary` (a staged run's) or `pinned` (a direct one's, as a result binary fed
// back in is once its block came from the pool's pinned ones).
//   usage: kiln_kept_calls [backend] [n] [calls] [pause_ms] [keep] [input]
//          (defaults: cuda 33554432 8 0 1 ordinary; keep 0 drops each result before the next call)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "core/host_pool.hpp"
#include "kiln/kiln.hpp"
#include "limits_common.hpp"

using kiln_limits::clock_type;
using kiln_limits::ms_since;

int main(int argc, char** argv) {
  const std::string backend = argc > 1 ? argv[1] : "cuda";
  const std::size_t n = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : std::size_t{1} << 25;
  const int calls = argc > 3 ? std::atoi(argv[3]) : 8;
  const int pause_ms = argc > 4 ? std::atoi(argv[4]) : 0;
  const bool keep = argc > 5 ? std::atoi(argv[5]) != 0 : true;
  const std::string input_kind = argc > 6 ? argv[6] : "ordinary";
  if (n == 0 || calls <= 0 || pause_ms < 0 || (input_kind != "ordinary" && input_kind != "pinned")) {
    std::fprintf(stderr,
                 "usage: kiln_kept_calls [backend] [n > 0] [calls > 0] [pause_ms >= 0] [keep 0|1] [ordinary|pinned]\n");
    return 2;
  }
  auto input = input_kind == "pinned" ? kiln::host_memory::allocate_pinned(n) : kiln::host_memory::allocate(n);
  if (!input) {
    std::fprintf(stderr, "kiln_kept_calls: %s\n", input.err().message.c_str());
    return 1;
  }
  for (std::size_t i = 0; i < n; ++i) input->data()[i] = static_cast<std::int64_t>(i + 1);
  kiln::run_options opts;
  opts.backend = backend;
  const kiln::map_params params;
  std::vector<kiln::host_memory> kept;
  std::printf("%s, n = %zu, %d calls, %d ms pause, results %s, input %s\n", backend.c_str(), n, calls, pause_ms,
              keep ? "kept" : "dropped", input->pinned() ? "pinned" : "ordinary");
  std::printf("call  alloc_ms   run_ms  total_ms  spares cut_short pending cached_MiB\n");
  // Call 0 is the warm-up the bench rows leave untimed: printed here, its result dropped.
  for (int c = 0; c <= calls; ++c) {
    if (pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    const auto s = kiln::detail::host_pool_statistics();
    const auto t0 = clock_type::now();
    auto out = kiln::host_memory::allocate(n);
    if (!out) {
      std::fprintf(stderr, "kiln_kept_calls: %s\n", out.err().message.c_str());
      return 1;
    }
    const double alloc = ms_since(t0);
    const auto t1 = clock_type::now();
    auto st = kiln::logistic_map(input->span(), out->span(), params, opts);
    if (!st) {
      std::fprintf(stderr, "kiln_kept_calls: %s\n", st.err().message.c_str());
      return 1;
    }
    const double run = ms_since(t1);
    std::printf("%4d %9.3f %8.3f %9.3f %7llu %9llu %7zu %10zu\n", c, alloc, run, alloc + run,
                static_cast<unsigned long long>(s.spares), static_cast<unsigned long long>(s.spares_cut_short),
                s.pending_spares, s.cached_bytes >> 20);
    // Every 4093rd element (a prime stride, so that the samples do not keep one offset within
    // chunks and pages) and the last, against the reference.
    bool right = out->data()[n - 1] == kiln::logistic_map_reference(static_cast<std::int64_t>(n), params);
    for (std::size_t i = 0; i < n && right; i += 4093)
      right = out->data()[i] == kiln::logistic_map_reference(static_cast<std::int64_t>(i + 1), params);
    if (!right) {
      std::fprintf(stderr, "kiln_kept_calls: wrong result in call %d\n", c);
      return 1;
    }
    if (keep && c > 0) kept.push_back(std::move(out).value());
  }
  return 0;
}
