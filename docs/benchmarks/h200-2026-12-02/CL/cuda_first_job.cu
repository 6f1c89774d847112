// What a process's first CUDA job pays for, piece by piece: the context, pinned and device staging of the lanes' sizes, streams and events, a first kernel launch.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdint>

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

__global__ void touch(std::int64_t* p, std::size_t n) {
  const std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x;
  if (i < n) p[i] = p[i] * 3 + 1;
}

#define CHECK(x)                                                                   \
  do {                                                                             \
    cudaError_t e_ = (x);                                                          \
    if (e_ != cudaSuccess) {                                                       \
      std::printf("%s: %s\n", #x, cudaGetErrorString(e_));                         \
      return 1;                                                                    \
    }                                                                              \
  } while (0)
}  // namespace

int main() {
  auto t = std::chrono::steady_clock::now();
  CHECK(cudaFree(nullptr));
  std::printf("context_ms=%.2f\n", ms_since(t));
  // The staged lanes: 16 lanes x 3 slots x (in + out) x 128 Ki int64 = 96 MiB; 8 lanes = 48 MiB;
  // the direct lane: 4 slots x 2 x 1 Mi int64 = 64 MiB.
  for (std::size_t mib : {96, 48, 64, 8, 96}) {
    void* h = nullptr;
    void* d = nullptr;
    t = std::chrono::steady_clock::now();
    CHECK(cudaHostAlloc(&h, mib << 20, cudaHostAllocPortable));
    const double host_ms = ms_since(t);
    t = std::chrono::steady_clock::now();
    CHECK(cudaMalloc(&d, mib << 20));
    const double dev_ms = ms_since(t);
    std::printf("staging_mib=%zu host_alloc_ms=%.2f device_alloc_ms=%.2f\n", mib, host_ms, dev_ms);
    t = std::chrono::steady_clock::now();
    CHECK(cudaFreeHost(h));
    CHECK(cudaFree(d));
    std::printf("staging_mib=%zu free_ms=%.2f\n", mib, ms_since(t));
  }
  t = std::chrono::steady_clock::now();
  cudaStream_t streams[48];
  cudaEvent_t events[48 * 3];
  for (auto& s : streams) CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  for (auto& e : events) CHECK(cudaEventCreate(&e));
  std::printf("streams48_events144_ms=%.2f\n", ms_since(t));
  std::int64_t* d = nullptr;
  CHECK(cudaMalloc(&d, 8 << 20));
  t = std::chrono::steady_clock::now();
  touch<<<(1 << 20) / 256, 256, 0, streams[0]>>>(d, 1 << 20);
  CHECK(cudaStreamSynchronize(streams[0]));
  std::printf("first_launch_ms=%.2f\n", ms_since(t));
  t = std::chrono::steady_clock::now();
  touch<<<(1 << 20) / 256, 256, 0, streams[0]>>>(d, 1 << 20);
  CHECK(cudaStreamSynchronize(streams[0]));
  std::printf("second_launch_ms=%.2f\n", ms_since(t));
  return 0;
}
