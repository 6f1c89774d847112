/* Exact modular arithmetic for p < 2^32 in double precision: one source for C++, CUDA and OpenCL C.
 *
 * Why doubles: GPUs and SIMD units have no fast 64-bit integer divide, but they have fast
 * fused multiply-add on doubles. For a, b in [0, p], p < 2^32, the product a*b < 2^64 is split
 * exactly into hi + lo (hi = fl(a*b), lo = fma(a, b, -hi), |lo| <= 2^11). With Q + f = (a*b)/p
 * (Q integer, 0 <= f < 1), the estimate hi * (1/p) is within 2^-19 of it (relative error < 2^-51
 * on a value < 2^32), so rounding it to nearest gives q = Q or Q + 1, and fma(-q, p, hi) + lo is
 * the exact remainder in [-p, p): one correction (+p when negative) finishes. Every value stays an
 * integer below 2^53 in magnitude where it is rounded, so each step is exact. Rounding to nearest
 * is done with the 1.5 * 2^52 trick (two additions, no rounding-mode instruction); it holds for
 * the estimate's whole range, |hi / p| < 2^51, and whether or not the compiler fuses the first
 * multiply-add.
 *
 * The map's structure makes this the whole story: x * (x + 1) >= 0 for every integer x, so
 * rem(mu * x * (x + 1), p) has the sign of mu, and its residue mod p depends only on x mod p.
 * Kiln therefore iterates s <- (mu mod p) * s * (s + 1) mod p on residues and restores the
 * sign at the end (a non-zero result is s - p when mu < 0).
 *
 * This file must stay valid OpenCL C: no templates, no references, no namespaces.
 */
#ifndef KILN_MODMATH_H
#define KILN_MODMATH_H

#if defined(__OPENCL_VERSION__)
#define KILN_FN inline
#define KILN_FMA fma
typedef long kiln_i64;
#elif defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define KILN_FN static __host__ __device__ __forceinline__
#define KILN_FMA fma
typedef long long kiln_i64;
#else
#include <cmath>
#include <cstdint>
#define KILN_FN static inline
#define KILN_FMA std::fma
typedef std::int64_t kiln_i64;
#endif

/* (hi + lo) mod p, for integers hi, lo with hi + lo in (-2^63, 2^64), |lo| <= 2^11, and the
 * estimate hi / p within 2^-19 of (hi + lo) / p (true for every caller below). */
KILN_FN double kiln_reduce(double hi, double lo, double p, double pinv) {
  const double round_magic = 6755399441055744.0; /* 1.5 * 2^52 */
  double q = (hi * pinv + round_magic) - round_magic;
  double r = KILN_FMA(-q, p, hi) + lo;
  return r < 0.0 ? r + p : r;
}

/* a * b mod p for integers a, b in [0, p], p < 2^32. */
KILN_FN double kiln_mulmod(double a, double b, double p, double pinv) {
  double hi = a * b;
  double lo = KILN_FMA(a, b, -hi);
  return kiln_reduce(hi, lo, p, pinv);
}

/* x mod p in [0, p) for any int64 x: x = xh * 2^32 + xl with |xh| <= 2^31, 0 <= xl < 2^32,
 * both exact in a double; two32 = 2^32 mod p. */
KILN_FN double kiln_residue(kiln_i64 x, double p, double pinv, double two32) {
  double xh = (double)(x >> 32);
  double xl = (double)(x & (kiln_i64)0xffffffff);
  double s = kiln_mulmod(kiln_reduce(xh, 0.0, p, pinv), two32, p, pinv) + kiln_reduce(xl, 0.0, p, pinv);
  return s >= p ? s - p : s;
}

/* One element through `iterations` >= 1 steps of the map; mu_res = mu mod p, negative = (mu < 0). */
KILN_FN kiln_i64 kiln_logistic(kiln_i64 x, kiln_i64 iterations, double p, double pinv, double mu_res,
                               double two32, int negative) {
  double s = kiln_residue(x, p, pinv, two32);
  for (kiln_i64 i = 0; i < iterations; ++i) {
    double t = kiln_mulmod(s, s + 1.0, p, pinv);
    s = kiln_mulmod(mu_res, t, p, pinv);
  }
  kiln_i64 r = (kiln_i64)s;
  return (negative && r != 0) ? r - (kiln_i64)p : r;
}

#endif /* KILN_MODMATH_H */
