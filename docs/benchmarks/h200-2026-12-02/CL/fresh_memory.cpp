// What a fresh 256 MiB result block costs to first touch, by how it is touched: one thread or 16, 4 KiB pages or huge pages, faults or MADV_POPULATE_WRITE.
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace {
constexpr std::size_t bytes = std::size_t{256} << 20;
constexpr std::size_t huge = std::size_t{2} << 20;

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Touches [p, p + bytes) from `threads` threads, each its own contiguous range, by writing one
// word per 4 KiB page (how) or by madvise(MADV_POPULATE_WRITE).
double touch(char* p, unsigned threads, bool populate) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  const std::size_t part = bytes / threads / huge * huge;
  for (unsigned t = 0; t < threads; ++t) {
    char* b = p + t * part;
    const std::size_t len = t + 1 == threads ? bytes - t * part : part;
    ts.emplace_back([=] {
      if (populate) {
        if (madvise(b, len, MADV_POPULATE_WRITE) != 0) std::perror("MADV_POPULATE_WRITE");
      } else {
        for (std::size_t i = 0; i < len; i += 4096) b[i] = 1;
      }
    });
  }
  for (auto& t : ts) t.join();
  return ms_since(t0);
}

// Writes every byte (what a run's copy into the block does) from `threads` threads.
double fill(char* p, unsigned threads) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  const std::size_t part = bytes / threads;
  for (unsigned t = 0; t < threads; ++t) ts.emplace_back([=] { std::memset(p + t * part, 7, part); });
  for (auto& t : ts) t.join();
  return ms_since(t0);
}

void one(const char* label, bool hugepage, unsigned threads, bool populate) {
  for (int rep = 0; rep < 3; ++rep) {
    char* p = static_cast<char*>(std::aligned_alloc(huge, bytes));
    if (hugepage) (void)madvise(p, bytes, MADV_HUGEPAGE);
    else (void)madvise(p, bytes, MADV_NOHUGEPAGE);
    const double first = populate ? touch(p, threads, true) : fill(p, threads);
    const double again = fill(p, threads);
    std::printf("%s threads=%u first_ms=%.2f touched_ms=%.2f\n", label, threads, first, again);
    std::free(p);
  }
}
}  // namespace

int main() {
  for (unsigned threads : {1u, 4u, 16u}) {
    one("fill_4k", false, threads, false);
    one("fill_huge", true, threads, false);
    one("populate_4k", false, threads, true);
    one("populate_huge", true, threads, true);
  }
}
