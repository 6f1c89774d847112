// kiln_lane_mix: how many of a thread's lanes should take modmath.h's Montgomery step beside the fused step in doubles.
//
// Times, by CUDA events at n = 2^25 from one buffer into another on one GPU, a kernel whose threads step NF elements
// with kiln_step_fused (the FP64 pipe) and NM with kiln_mont_step (the integer pipe) together, for
// several (NF, NM) and k = 10, 100, 1000, each output checked against the doubles-only kernel's,
// and three elements against a host loop. A measuring tool for docs/BENCHMARKS.md (the split the
// backends' kernels use), not part of the library.
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdint>
#include <vector>
#include <algorithm>
#include "core/modmath.h"


struct prm_t { double p, pinv, mu; uint32_t pi, mui, pneg, r1, r2, mur1; long long k; };

template <int NF, int NM>
__global__ void __launch_bounds__(256) mixed(const int64_t* in, int64_t* out, size_t n, prm_t q) {
  size_t base = ((size_t)blockIdx.x * blockDim.x + threadIdx.x);
  size_t stride = (size_t)gridDim.x * blockDim.x;
  double s[NF > 0 ? NF : 1];
  uint32_t X[NM > 0 ? NM : 1];
#pragma unroll
  for (int j = 0; j < NF; ++j) { size_t i = base + j * stride; s[j] = i < n ? kiln_reduce((double)in[i], q.p, q.pinv) : 0.0; }
#pragma unroll
  for (int j = 0; j < NM; ++j) {
    size_t i = base + (NF + j) * stride;
    double r = i < n ? kiln_normalize(kiln_reduce((double)in[i], q.p, q.pinv), q.p) : 0.0;
    X[j] = kiln_mont_mul((uint32_t)r, q.r2, q.pneg, q.pi);
  }
  for (long long t = 0; t < q.k; ++t) {
#pragma unroll
    for (int j = 0; j < NF; ++j) s[j] = kiln_step_fused(s[j], q.mu, q.p, q.pinv);
#pragma unroll
    for (int j = 0; j < NM; ++j) X[j] = kiln_mont_step(X[j], q.mui, q.mur1, q.pneg, q.pi);
  }
#pragma unroll
  for (int j = 0; j < NF; ++j) { size_t i = base + j * stride; if (i < n) out[i] = (int64_t)kiln_normalize(s[j], q.p); }
#pragma unroll
  for (int j = 0; j < NM; ++j) {
    size_t i = base + (NF + j) * stride;
    if (i < n) out[i] = (int64_t)kiln_mont_to(X[j], q.pneg, q.pi);
  }
}

static void ck(cudaError_t e, const char* w) { if (e) { printf("%s: %s\n", w, cudaGetErrorString(e)); exit(1); } }

template <int NF, int NM>
double run(const int64_t* in, int64_t* out, size_t n, prm_t q) {
  constexpr int L = NF + NM;
  size_t threads = (n + L - 1) / L;
  unsigned blocks = (unsigned)((threads + 255) / 256);
  cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
  mixed<NF, NM><<<blocks, 256>>>(in, out, n, q);
  ck(cudaDeviceSynchronize(), "warm");
  std::vector<float> v;
  for (int r = 0; r < 5; ++r) {
    cudaEventRecord(a); mixed<NF, NM><<<blocks, 256>>>(in, out, n, q); cudaEventRecord(b);
    cudaEventSynchronize(b); float ms; cudaEventElapsedTime(&ms, a, b); v.push_back(ms);
  }
  std::sort(v.begin(), v.end());
  return v[2];
}

int main() {
  size_t n = size_t(1) << 25;
  const uint32_t p = 6700417, mu = 22;
  uint32_t inv = 1; for (int i = 0; i < 6; ++i) inv *= 2 - p * inv;  // p^-1 mod 2^32
  prm_t q;
  q.p = p; q.pinv = 1.0 / p; q.mu = mu; q.pi = p; q.mui = mu; q.pneg = 0u - inv;
  q.r1 = (uint32_t)((uint64_t(1) << 32) % p);
  q.r2 = (uint32_t)(((uint64_t)q.r1 * q.r1) % p);
  q.mur1 = mu * q.r1;
  std::vector<int64_t> h(n); for (size_t i = 0; i < n; ++i) h[i] = (int64_t)i + 1;
  int64_t *in, *out; ck(cudaMalloc(&in, n * 8), "m"); ck(cudaMalloc(&out, n * 8), "m");
  ck(cudaMemcpy(in, h.data(), n * 8, cudaMemcpyHostToDevice), "cp");
  std::vector<int64_t> ref(n), got(n);
  for (long long k : {10LL, 100LL, 1000LL}) {
    q.k = k;
    double t; 
#define V(A, B) t = run<A, B>(in, out, n, q); cudaMemcpy(got.data(), out, n * 8, cudaMemcpyDeviceToHost); \
    if (A == 2 && B == 0) ref = got; \
    printf("k=%lld F%dM%d %.3f ms %s\n", k, A, B, t, got == ref ? "ok" : "MISMATCH"); fflush(stdout);
    V(2, 0) V(4, 0) V(0, 2) V(0, 4) V(1, 1) V(2, 2) V(1, 2) V(2, 1) V(1, 3) V(3, 1) V(2, 4) V(4, 2) V(3, 3) V(2, 3) V(3, 2)
    V(4, 4) V(5, 3) V(4, 3) V(3, 4) V(5, 5) V(6, 3)
  }
  // check reference on host against scalar for a few
  for (size_t i : {size_t(0), size_t(12345), n - 1}) {
    uint64_t x = i + 1; for (int t = 0; t < 1000; ++t) x = (mu * x % p) * (x + 1) % p;
    printf("host i=%zu %llu ref %lld\n", i, (unsigned long long)x, (long long)ref[i]);
  }
}
