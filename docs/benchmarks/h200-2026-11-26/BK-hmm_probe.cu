// Probe: can kernels reach pageable memory (HMM/ATS), and how fast is a map over it?
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <vector>
#include <cuda_runtime.h>
__global__ void k(const long long* in, long long* out, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) out[i] = in[i] * 3 + 1;
}
int main() {
  int a = 0, b = 0, c = 0, d = 0;
  cudaDeviceGetAttribute(&a, cudaDevAttrPageableMemoryAccess, 0);
  cudaDeviceGetAttribute(&b, cudaDevAttrPageableMemoryAccessUsesHostPageTables, 0);
  cudaDeviceGetAttribute(&c, cudaDevAttrConcurrentManagedAccess, 0);
  cudaDeviceGetAttribute(&d, cudaDevAttrHostRegisterSupported, 0);
  printf("pageableMemoryAccess=%d usesHostPageTables=%d concurrentManaged=%d hostRegister=%d\n", a, b, c, d);
  if (!a) return 0;
  size_t n = size_t(1) << 25;
  std::vector<long long> in(n), out(n);
  for (size_t i = 0; i < n; ++i) in[i] = i;
  for (int r = 0; r < 5; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    k<<<132 * 8, 256>>>(in.data(), out.data(), n);
    cudaError_t e = cudaDeviceSynchronize();
    volatile long long s = 0; for (size_t i = 0; i < n; i += 512) s += out[i];
    auto t1 = std::chrono::steady_clock::now();
    printf("round %d: %s %.2f ms out[n-1]=%lld\n", r, cudaGetErrorString(e), std::chrono::duration<double, std::milli>(t1 - t0).count(), out[n - 1]);
  }
}
