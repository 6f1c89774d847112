// A measuring tool for docs/BENCHMARKS.md: what the first touch of fresh host memory costs, by thread count and grain.
//
// A result kept alive by its caller cannot reuse the pool's blocks, so the next result is fresh
// memory whose pages the kernel maps and zeroes on first write. This tool times that alone for
// one block (256 MiB by default, each run a fresh mmap): written by T threads in contiguous
// ranges, in grains handed out in turn (as a parallel_for does), or populated by
// madvise(MADV_POPULATE_WRITE); with transparent huge pages asked for (MADV_HUGEPAGE) and not.
//   usage: kiln_first_touch [MiB] [runs]
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "limits_common.hpp"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace {

using namespace kiln_limits;

constexpr std::size_t page_4k = 4096;
constexpr std::size_t page_2m = std::size_t{2} << 20;

enum class mode { ranges, grains, populate, memset_grains };

// One fresh block, first touched by `threads` threads the way `m` says; returns the ms it took
// (the mmap and munmap are outside the time).
double one_run(std::size_t bytes, bool huge, int threads, mode m, std::size_t grain) {
  // 2 MiB alignment by over-mapping, as aligned_alloc's large blocks are.
  const std::size_t span = bytes + page_2m;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    std::perror("mmap");
    std::exit(1);
  }
  auto* base = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(raw) + page_2m - 1) & ~(page_2m - 1));
  (void)madvise(base, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  std::atomic<std::size_t> next{0};
  std::atomic<bool> populate_failed{false};
  auto body = [&](int t) {
    if (m == mode::ranges || m == mode::populate) {
      // Contiguous ranges of whole 2 MiB pages.
      const std::size_t pages = (bytes + page_2m - 1) / page_2m;
      const std::size_t b = std::min(bytes, pages * t / threads * page_2m);
      const std::size_t e = std::min(bytes, pages * (t + 1) / threads * page_2m);
      if (m == mode::populate) {
        if (e > b && madvise(base + b, e - b, MADV_POPULATE_WRITE) != 0) populate_failed = true;
      } else {
        for (std::size_t o = b; o < e; o += page_4k) base[o] = 1;
      }
      return;
    }
    for (;;) {
      const std::size_t b = next.fetch_add(grain);
      if (b >= bytes) return;
      const std::size_t e = std::min(bytes, b + grain);
      if (m == mode::memset_grains)
        std::memset(base + b, 1, e - b);
      else
        for (std::size_t o = b; o < e; o += page_4k) base[o] = 1;
    }
  };
  const auto t0 = clock_type::now();
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(body, t);
  body(0);
  for (auto& th : pool) th.join();
  const double ms = ms_since(t0);
  munmap(raw, span);
  if (populate_failed) return -1.0;
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 256;
  const int runs = std::max(1, argc > 2 ? std::atoi(argv[2]) : 7);
  const std::size_t bytes = mib << 20;
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::printf("first touch of a fresh %zu MiB block, median of %d runs, %d hardware threads\n", mib, runs, hw);
  std::vector<int> counts;
  for (int t = 1; t < hw; t *= 2) counts.push_back(t);
  counts.push_back(hw);
  for (bool huge : {true, false}) {
    const char* h = huge ? "huge pages" : "4 KiB pages";
    for (int t : counts) {
      auto row = [&](const std::string& what, mode m, std::size_t grain) {
        const double ms = median_of(runs, [&] { return one_run(bytes, huge, t, m, grain); });
        if (ms < 0) {
          std::printf("%-58s   not supported here\n", (what + ", " + h + ", " + std::to_string(t) + " threads").c_str());
          return;
        }
        report(what + ", " + h + ", " + std::to_string(t) + " threads", ms, static_cast<double>(bytes));
      };
      row("ranges, a write per 4 KiB page", mode::ranges, 0);
      row("ranges, madvise populate", mode::populate, 0);
      row("grains 128 KiB, a write per page", mode::grains, std::size_t{128} << 10);
      row("grains 2 MiB, a write per page", mode::grains, page_2m);
      row("grains 128 KiB, memset", mode::memset_grains, std::size_t{128} << 10);
      row("grains 2 MiB, memset", mode::memset_grains, page_2m);
    }
  }
  return 0;
}
