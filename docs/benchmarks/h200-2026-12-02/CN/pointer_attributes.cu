// What cudaPointerGetAttributes costs on ordinary (pageable) memory, the first time in a process and after, beside pinned memory.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void attributes(const char* label, const void* p) {
  auto t = std::chrono::steady_clock::now();
  cudaPointerAttributes a{};
  const cudaError_t e = cudaPointerGetAttributes(&a, p);
  std::printf("%s_ms=%.3f type=%d err=%d\n", label, ms_since(t), static_cast<int>(a.type), static_cast<int>(e));
}
}  // namespace

int main() {
  auto t = std::chrono::steady_clock::now();
  (void)cudaFree(nullptr);
  std::printf("context_ms=%.2f\n", ms_since(t));
  void* pinned = nullptr;
  (void)cudaHostAlloc(&pinned, 8 << 20, cudaHostAllocPortable);
  attributes("pinned_first", pinned);
  std::vector<long> pageable(1 << 20, 1);
  attributes("pageable_first", pageable.data());
  attributes("pageable_second", pageable.data() + 1000);
  std::vector<long> other(1 << 20, 2);
  attributes("pageable_other_block", other.data());
  void* fresh = std::malloc(64 << 20);
  attributes("pageable_untouched", fresh);
  attributes("pinned_again", pinned);
  return 0;
}
