// kiln_lane_mix: which form of modmath.h's Montgomery step, and how many of a thread's lanes on it beside the fused doubles.
//
// Times, by CUDA events at n = 2^25 from one buffer into another on one GPU, kernels whose threads step NF elements
// with kiln_step_fused (the FP64 pipe) and NM with a Montgomery step (the integer pipe) together, for
// several forms of that step, several (NF, NM) and k = 100, 1000; every output is checked against
// the doubles-only kernel's and three elements against a host loop. A measuring tool for
// docs/BENCHMARKS.md (the form and split the backends' kernels use), not part of the library.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/modmath.h"

struct prm_t {
  double p, pinv, mu;
  uint32_t pi, mui, pneg, pinv32, r1, r2, mur1;
  long long k;
};

// The forms compared. Each holds an element as a 32-bit word W congruent to s * 2^32 mod p.
//  0: modmath.h's kiln_mont_step: unsigned W in [0, 2p), (t + m p) >> 32 from 64-bit C
//     expressions (ptxas makes IMAD, IMAD.WIDE.U32, IMAD, IMAD.HI.U32 and a carry of it);
//  1: the same arithmetic with the wide multiply-adds spelt in PTX (mul.wide / mad.wide.u32);
//  2: unsigned, 32-bit halves: hi + umulhi(m, p) + carry, the carry being (lo != 0);
//  3: signed W in (-2p, p): hi(W * B) - umulhi(lo * p^-1, p), no carry and no 64-bit addition
//     (W' = (t - m' p) / R with m' = t / p mod R lies in (t/R - p, t/R], and |t| < 4 mu' p^2).
// docs/BENCHMARKS.md (DA) has the figures, and each loop's SASS counted.
template <int F>
struct mont;
template <>
struct mont<0> {
  static __device__ __forceinline__ uint32_t step(uint32_t x, const prm_t& q) {
    return kiln_mont_step(x, q.mui, q.mur1, q.pneg, q.pi);
  }
};
template <>
struct mont<1> {
  static __device__ __forceinline__ uint32_t step(uint32_t x, const prm_t& q) {
    const uint32_t b = x * q.mui + q.mur1;
    uint64_t t, r;
    asm("mul.wide.u32 %0, %1, %2;" : "=l"(t) : "r"(x), "r"(b));
    const uint32_t m = static_cast<uint32_t>(t) * q.pneg;
    asm("mad.wide.u32 %0, %1, %2, %3;" : "=l"(r) : "r"(m), "r"(q.pi), "l"(t));
    return static_cast<uint32_t>(r >> 32);
  }
};
template <>
struct mont<2> {
  static __device__ __forceinline__ uint32_t step(uint32_t x, const prm_t& q) {
    const uint32_t b = x * q.mui + q.mur1;
    const uint32_t lo = x * b, hi = __umulhi(x, b);
    const uint32_t m = lo * q.pneg;
    return hi + __umulhi(m, q.pi) + (lo != 0u ? 1u : 0u);
  }
};
template <>
struct mont<3> {
  static __device__ __forceinline__ uint32_t step(uint32_t w, const prm_t& q) {
    const uint32_t b = w * q.mui + q.mur1;  // mu' (W + R1), exact as a signed word
    const uint32_t lo = w * b;
    const int hi = __mulhi(static_cast<int>(w), static_cast<int>(b));
    return static_cast<uint32_t>(hi - static_cast<int>(__umulhi(lo * q.pinv32, q.pi)));
  }
};

// Into and out of each form (the signed form's words may be negative; both start from the
// unsigned form's W in [0, 2p), inside the signed bound too).
template <int F>
__device__ uint32_t to_word(uint32_t r, const prm_t& q) {
  return kiln_mont_mul(r, q.r2, q.pneg, q.pi);
}
template <int F>
__device__ int64_t from_word(uint32_t w, const prm_t& q) {
  if constexpr (F == 3) {
    const long long t = static_cast<int>(w);
    const uint32_t m = static_cast<uint32_t>(t) * q.pinv32;
    const long long r = (t - static_cast<long long>(m) * q.pi) >> 32;  // in [-p, 0]
    return r < 0 ? r + q.pi : r;
  } else {
    return static_cast<int64_t>(kiln_mont_to(w, q.pneg, q.pi));
  }
}

template <int F, int NF, int NM>
__global__ void __launch_bounds__(256) mixed(const int64_t* in, int64_t* out, size_t n, prm_t q) {
  const size_t base = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  double s[NF > 0 ? NF : 1];
  uint32_t w[NM > 0 ? NM : 1];
#pragma unroll
  for (int j = 0; j < NF; ++j) {
    const size_t i = base + j * stride;
    s[j] = i < n ? kiln_reduce(static_cast<double>(in[i]), q.p, q.pinv) : 0.0;
  }
#pragma unroll
  for (int j = 0; j < NM; ++j) {
    const size_t i = base + (NF + j) * stride;
    const double r = i < n ? kiln_normalize(kiln_reduce(static_cast<double>(in[i]), q.p, q.pinv), q.p) : 0.0;
    w[j] = to_word<F>(static_cast<uint32_t>(r), q);
  }
  for (long long t = 0; t < q.k; ++t) {
#pragma unroll
    for (int j = 0; j < NF; ++j) s[j] = kiln_step_fused(s[j], q.mu, q.p, q.pinv);
#pragma unroll
    for (int j = 0; j < NM; ++j) w[j] = mont<F>::step(w[j], q);
  }
#pragma unroll
  for (int j = 0; j < NF; ++j) {
    const size_t i = base + j * stride;
    if (i < n) out[i] = static_cast<int64_t>(kiln_normalize(s[j], q.p));
  }
#pragma unroll
  for (int j = 0; j < NM; ++j) {
    const size_t i = base + (NF + j) * stride;
    if (i < n) out[i] = from_word<F>(w[j], q);
  }
}

static void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::printf("%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// Median of five timed launches after a warm one.
template <int F, int NF, int NM>
double time_mix(const int64_t* in, int64_t* out, size_t n, const prm_t& q) {
  constexpr int lanes = NF + NM;
  const size_t threads = (n + lanes - 1) / lanes;
  const auto blocks = static_cast<unsigned>((threads + 255) / 256);
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  mixed<F, NF, NM><<<blocks, 256>>>(in, out, n, q);
  check(cudaDeviceSynchronize(), "warm-up");
  std::vector<float> v;
  for (int r = 0; r < 5; ++r) {
    cudaEventRecord(a);
    mixed<F, NF, NM><<<blocks, 256>>>(in, out, n, q);
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    v.push_back(ms);
  }
  check(cudaGetLastError(), "launch");
  std::sort(v.begin(), v.end());
  return v[2];
}

int main() {
  const size_t n = size_t{1} << 25;
  const uint32_t p = 6700417, mu = 22;
  uint32_t inv = p;  // p^-1 mod 2^32 by Newton's iteration
  for (int i = 0; i < 4; ++i) inv *= 2u - p * inv;
  prm_t q{};
  q.p = p;
  q.pinv = 1.0 / p;
  q.mu = mu;
  q.pi = p;
  q.mui = mu;
  q.pneg = 0u - inv;
  q.pinv32 = inv;
  q.r1 = static_cast<uint32_t>((uint64_t{1} << 32) % p);
  q.r2 = static_cast<uint32_t>(static_cast<uint64_t>(q.r1) * q.r1 % p);
  q.mur1 = mu * q.r1;
  std::vector<int64_t> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = static_cast<int64_t>(i) + 1;
  int64_t *in = nullptr, *out = nullptr;
  check(cudaMalloc(&in, n * 8), "cudaMalloc");
  check(cudaMalloc(&out, n * 8), "cudaMalloc");
  check(cudaMemcpy(in, h.data(), n * 8, cudaMemcpyHostToDevice), "copy in");
  std::vector<int64_t> ref(n), got(n);
  for (long long k : {100LL, 1000LL}) {
    q.k = k;
#define KILN_MIX(F, A, B)                                                                     \
  {                                                                                           \
    const double t = time_mix<F, A, B>(in, out, n, q);                                        \
    check(cudaMemcpy(got.data(), out, n * 8, cudaMemcpyDeviceToHost), "copy out");            \
    if ((A) == 4 && (B) == 0) ref = got;                                                      \
    std::printf("k=%lld form%d F%dM%d %.3f ms %s\n", k, F, A, B, t, got == ref ? "ok" : "MISMATCH"); \
    std::fflush(stdout);                                                                      \
  }
    KILN_MIX(0, 4, 0)
    KILN_MIX(0, 0, 4) KILN_MIX(1, 0, 4) KILN_MIX(2, 0, 4) KILN_MIX(3, 0, 4)
    KILN_MIX(0, 0, 6) KILN_MIX(1, 0, 6) KILN_MIX(2, 0, 6) KILN_MIX(3, 0, 6)
    KILN_MIX(0, 3, 3) KILN_MIX(1, 3, 3) KILN_MIX(2, 3, 3) KILN_MIX(3, 3, 3)
    KILN_MIX(1, 2, 2) KILN_MIX(2, 2, 2) KILN_MIX(3, 2, 2)
    KILN_MIX(1, 1, 1) KILN_MIX(2, 1, 1) KILN_MIX(3, 1, 1)
    KILN_MIX(1, 2, 3) KILN_MIX(2, 2, 3) KILN_MIX(3, 2, 3)
    KILN_MIX(1, 3, 2) KILN_MIX(2, 3, 2) KILN_MIX(3, 3, 2)
    KILN_MIX(1, 2, 4) KILN_MIX(2, 2, 4) KILN_MIX(3, 2, 4)
    KILN_MIX(1, 4, 4) KILN_MIX(2, 4, 4) KILN_MIX(3, 4, 4)
    KILN_MIX(1, 1, 2) KILN_MIX(2, 1, 2) KILN_MIX(3, 1, 2)
    KILN_MIX(0, 1, 1) KILN_MIX(0, 2, 2) KILN_MIX(0, 2, 3) KILN_MIX(0, 3, 2) KILN_MIX(0, 2, 4) KILN_MIX(0, 1, 2)
    KILN_MIX(0, 4, 2) KILN_MIX(0, 3, 4) KILN_MIX(0, 4, 3) KILN_MIX(0, 4, 5) KILN_MIX(0, 4, 6) KILN_MIX(0, 5, 4)
  }
  for (size_t i : {size_t{0}, size_t{12345}, n - 1}) {
    uint64_t x = i + 1;
    for (int t = 0; t < 1000; ++t) x = (mu * x % p) * (x + 1) % p;
    std::printf("host i=%zu %llu ref %lld\n", i, static_cast<unsigned long long>(x), static_cast<long long>(ref[i]));
  }
}
