/* Exact modular arithmetic for p < 2^32 in double precision: one source for C++, CUDA and OpenCL C.
 *
 * Why doubles: GPUs and SIMD units have no fast 64-bit integer divide, but they have fast fused
 * multiply-add on doubles, and every integer below 2^53 is exact in a double.
 *
 * Why residues: x * (x + 1) >= 0 for every integer x, so rem(mu * x * (x + 1), p) has the sign of
 * mu, and its residue mod p depends only on x mod p. Kiln iterates s <- mu * s * (s + 1) mod p on
 * residues and restores the sign at the end (a non-zero result is s - p when mu < 0).
 *
 * The reduction ("centred, lazy"): for an exact integer value v = hi + lo, the quotient estimate
 * q = round(hi * (1/p)) is within 1/2 + 2^-13 of v / p whenever |v / p| < 2^38 (relative error of
 * hi * (1/p) below 2^-51; |lo| <= 2^9 is negligible against p in the one case it is non-zero), so
 *     r = fma(-q, p, hi) + lo  is exactly v - q * p,  with  |r| <= p * (1/2 + 2^-13) + |lo|.
 * The fma is exact because its true result is such a small integer. Residues therefore stay
 * centred on zero and are never corrected inside the loop; one correction at the end maps them
 * to [0, p). Rounding to nearest uses the 1.5 * 2^52 trick (two additions, no rounding-mode
 * instruction), valid while |hi / p| < 2^51, and correct whether or not the compiler fuses the
 * multiply with the addition.
 *
 * Products: with |a|, |b| <= p/2 (1 + 2^-12) + 2^9, a * b is exact in one double while p < 2^26
 * (|a * b| < 2^51): the "small" path, 4 floating-point operations per modular multiply. Above
 * that, a * b (< 2^62) is split exactly into hi = fl(a * b) and lo = fma(a, b, -hi), |lo| <= 2^9:
 * the "split" path, 6 operations.
 *
 * This file must stay valid OpenCL C: no templates, references, namespaces or C++ headers there.
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

/* Largest p on the small path: below 2^26 every centred product is exact in one double. */
#define KILN_SMALL_P_MAX 67108863.0
#define KILN_ROUND_MAGIC 6755399441055744.0 /* 1.5 * 2^52 */

/* A value congruent to hi + lo mod p, centred: |result| <= p (1/2 + 2^-13) + |lo|. */
KILN_FN double kiln_reduce(double hi, double lo, double p, double pinv) {
  double q = (hi * pinv + KILN_ROUND_MAGIC) - KILN_ROUND_MAGIC;
  return KILN_FMA(-q, p, hi) + lo;
}

/* a * b mod p, centred, for centred a and b, p <= KILN_SMALL_P_MAX. */
KILN_FN double kiln_mulmod_small(double a, double b, double p, double pinv) {
  double hi = a * b;
  double q = (hi * pinv + KILN_ROUND_MAGIC) - KILN_ROUND_MAGIC;
  return KILN_FMA(-q, p, hi);
}

/* a * b mod p, centred, for centred a and b, any p < 2^32. */
KILN_FN double kiln_mulmod_split(double a, double b, double p, double pinv) {
  double hi = a * b;
  return kiln_reduce(hi, KILN_FMA(a, b, -hi), p, pinv);
}

/* A centred residue of any int64 x: x = xh * 2^32 + xl with |xh| <= 2^31 and 0 <= xl < 2^32,
 * both exact in a double; two32 = 2^32 mod p. */
KILN_FN double kiln_residue(kiln_i64 x, double p, double pinv, double two32) {
  double xh = (double)(x >> 32);
  double xl = (double)(x & (kiln_i64)0xffffffff);
  return kiln_reduce(kiln_mulmod_split(kiln_reduce(xh, 0.0, p, pinv), two32, p, pinv) +
                         kiln_reduce(xl, 0.0, p, pinv),
                     0.0, p, pinv);
}

/* The representative in [0, p) of a centred residue. */
KILN_FN double kiln_normalize(double s, double p) {
  s = s < 0.0 ? s + p : s;
  return s >= p ? s - p : s;
}

/* The signed result from a residue in [0, p): rem takes the sign of mu. */
KILN_FN kiln_i64 kiln_signed_result(double s, double p, int negative) {
  kiln_i64 r = (kiln_i64)s;
  return (negative && r != 0) ? r - (kiln_i64)p : r;
}

/* One element through `iterations` >= 1 steps of the map; mu_res = mu mod p, negative = (mu < 0). */
KILN_FN kiln_i64 kiln_logistic(kiln_i64 x, kiln_i64 iterations, double p, double pinv, double mu_res,
                               double two32, int negative) {
  double s = kiln_residue(x, p, pinv, two32);
  kiln_i64 i;
  if (p <= KILN_SMALL_P_MAX) {
    for (i = 0; i < iterations; ++i) s = kiln_mulmod_small(mu_res, kiln_mulmod_small(s, s + 1.0, p, pinv), p, pinv);
  } else {
    for (i = 0; i < iterations; ++i) s = kiln_mulmod_split(mu_res, kiln_mulmod_split(s, s + 1.0, p, pinv), p, pinv);
  }
  return kiln_signed_result(kiln_normalize(s, p), p, negative);
}

#endif /* KILN_MODMATH_H */
