/* Exact modular arithmetic for p < 2^32 in double precision: one source for C++, CUDA and OpenCL C.
 *
 * Why doubles: GPUs and SIMD units have no fast 64-bit integer divide, but they have fast fused
 * multiply-add on doubles, and every integer below 2^53 is exact in a double.
 *
 * Why residues: x * (x + 1) >= 0 for every integer x, so rem(mu * x * (x + 1), p) has the sign of
 * mu, and its residue mod p depends only on x mod p. Kiln iterates s <- mu * s * (s + 1) mod p on
 * residues and restores the sign at the end (a non-zero result is s - p when mu < 0).
 *
 * The reduction ("centred, lazy"): for an exact integer v with |v| < 2^51, the estimate
 * fma(v, 1/p, 1.5 * 2^52) - 1.5 * 2^52 rounds v * (1/p) to the nearest integer q (the 1.5 * 2^52
 * trick: two additions, no rounding-mode instruction); 1/p is off by at most 2^-53 relatively, so
 * |v / p - q| <= 1/2 + 2^51 / p * 2^-53 = 1/2 + 1 / (4p), and
 *     r = fma(-q, p, v)  is exactly v - q * p,  with  |r| <= p/2 + 1/4,  hence  |r| <= floor(p/2)
 * (r is an integer; the fma is exact because its true result is such a small integer). Residues
 * therefore stay centred on zero, |s| <= floor(p/2), and are never corrected inside the loop; one
 * correction at the end maps them to [0, p).
 *
 * Three ways to take one step s <- mu * s * (s + 1) mod p, with mu centred too (|mu| <= p/2);
 * the caller picks the cheapest that is exact for its (p, mu), uniformly for all elements:
 *  - fused (|mu| * h * (h + 1) < 2^50, h = p/2 + 1; e.g. the seed's p = 6700417, mu = 22): the whole
 *    product mu * s * (s + 1) is exact in one double, one reduction: 5 operations;
 *  - small (p < 2^26): s * (s + 1) and mu * t are each below 2^51: two reductions, 8 operations;
 *  - split (any p < 2^32): products below 2^62 are split exactly into hi = fl(a * b) and
 *    lo = fma(a, b, -hi), |lo| <= 2^9; r = fma(-q, p, hi) + lo, |r| <= p/2 + 2^10, still tiny
 *    against p > 2^26, so products stay below 2^62.
 *
 * A fourth way, in 32-bit integers (Montgomery's, R = 2^32), for odd p with 0 < mu' and
 * 6 * mu' * p < 2^32 (mu' = mu mod p in [0, p); the seed's 22 * 6700417 qualifies). Why: the fused step keeps a GPU's
 * FP64 pipe busy with five operations, while its integer multiply-adds run on another pipe that
 * the step leaves idle; stepping some elements this way beside others in doubles uses both (the
 * GPU kernels do; the CPUs keep the double paths). A residue s is held as X = s * R mod p, lazily
 * in [0, 2p). One step: B = mu' * X + mu' * R1 = mu' * (X + R1) with R1 = R mod p, so
 * B < 3 mu' p < 2^32; then t = X * B < 6 mu' p^2, m = t * (-1/p) mod R, X' = (t + m p) / R, an
 * exact integer because t + m p = 0 mod R; X' = X * B / R = mu' s (s + 1) R mod p, and
 * X' < 6 mu' p^2 / R + p < 2p. Four multiply-adds, no correction inside the loop. On sm_90 this
 * C compiles to IMAD, IMAD.WIDE.U32, IMAD, IMAD.HI.U32 and a carry: no other form measured (the
 * same arithmetic spelt in PTX, 32-bit halves, signed words without the carry) was faster by more
 * than the spread between runs (docs/BENCHMARKS.md, DA).
 *
 * The square form, used by the kernels beyond a few iterations where it holds: for odd p and mu
 * invertible mod p, v = mu * s + h with h = mu / 2 mod p (h = mu * (p + 1) / 2) turns the map
 * into v' = v^2 + e with e = h - h^2, because 2h = mu (mod p):
 *     mu * s' + h = mu^2 s^2 + mu^2 s + h = (mu s + h)^2 - h^2 + h.
 * A step is then one fma and one reduction, 4 operations against the fused path's 5, and it
 * needs no bound on mu: with v and e centred, |v^2 + e| <= H (H + 1) for H = floor(p/2), so it is
 * exact wherever H (H + 1) < 2^51 (p < 2^26.5). Into the form v = reduce(mu * s + h), out of it
 * s = reduce(mu^-1 * v + c) with c = -mu^-1 h, both within the same bound for centred operands;
 * the two cost 8 operations per element, repaid from 9 iterations. In 32-bit integers the form is
 * X = v * R mod p and the step X' = (X^2 + E) / R mod p with E = e * R^2 mod p: one
 * multiply-add fewer than kiln_mont_step, and X' < 2p from X < 2p for any odd p < 2^30:
 * (X^2 + E + m p) / R <= ((2p - 1)^2 + (p - 1) + (R - 1) p) / R = p + 4p (p - 1) / R < 2p.
 * The host (kiln::detail::prepare) finds the constants; the scalar reference keeps the paths above.
 *
 * This file must stay valid OpenCL C: no templates, references, namespaces or C++ headers there.
 */
#ifndef KILN_MODMATH_H
#define KILN_MODMATH_H

#if defined(__OPENCL_VERSION__)
#define KILN_FN inline
#define KILN_FMA fma
typedef long kiln_i64;
typedef uint kiln_u32;
typedef ulong kiln_u64;
#elif defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define KILN_FN static __host__ __device__ __forceinline__
#define KILN_FMA fma
typedef long long kiln_i64;
typedef unsigned int kiln_u32;
typedef unsigned long long kiln_u64;
#else
#include <cmath>
#include <cstdint>
#define KILN_FN static inline
#define KILN_FMA std::fma
typedef std::int64_t kiln_i64;
typedef std::uint32_t kiln_u32;
typedef std::uint64_t kiln_u64;
#endif

/* Largest p on the small path: below 2^26 every centred product is below 2^51. */
#define KILN_SMALL_P_MAX 67108863.0
#define KILN_FUSED_LIMIT 1125899906842624.0 /* 2^50 */
#define KILN_ROUND_MAGIC 6755399441055744.0 /* 1.5 * 2^52 */

enum { KILN_PATH_FUSED = 0, KILN_PATH_SMALL = 1, KILN_PATH_SPLIT = 2 };

/* mu mod p centred on zero, from mu_res in [0, p). */
KILN_FN double kiln_centre(double mu_res, double p) { return mu_res > 0.5 * p ? mu_res - p : mu_res; }

/* Which step is exact for this (p, centred mu); the same for every element. */
KILN_FN int kiln_path(double p, double mu) {
  double h = 0.5 * p + 1.0;
  double m = mu < 0.0 ? -mu : mu;
  if (m * h * (h + 1.0) < KILN_FUSED_LIMIT) return KILN_PATH_FUSED;
  return p <= KILN_SMALL_P_MAX ? KILN_PATH_SMALL : KILN_PATH_SPLIT;
}

/* A value congruent to v mod p with |result| <= floor(p/2), for an integer |v| < 2^51. */
KILN_FN double kiln_reduce(double v, double p, double pinv) {
  double q = KILN_FMA(v, pinv, KILN_ROUND_MAGIC) - KILN_ROUND_MAGIC;
  return KILN_FMA(-q, p, v);
}

/* a * b mod p, centred, for centred a and b, any p < 2^32 (|result| <= p/2 + 2^10). */
KILN_FN double kiln_mulmod_split(double a, double b, double p, double pinv) {
  double hi = a * b;
  double q = KILN_FMA(hi, pinv, KILN_ROUND_MAGIC) - KILN_ROUND_MAGIC;
  return KILN_FMA(-q, p, hi) + KILN_FMA(a, b, -hi);
}

/* One step of the map on a centred residue, each path as described above. */
KILN_FN double kiln_step_fused(double s, double mu, double p, double pinv) {
  double ms = mu * s;
  return kiln_reduce(KILN_FMA(ms, s, ms), p, pinv);
}
KILN_FN double kiln_step_small(double s, double mu, double p, double pinv) {
  return kiln_reduce(mu * kiln_reduce(KILN_FMA(s, s, s), p, pinv), p, pinv);
}
KILN_FN double kiln_step_split(double s, double mu, double p, double pinv) {
  return kiln_mulmod_split(mu, kiln_mulmod_split(s, s + 1.0, p, pinv), p, pinv);
}

/* A centred residue of any int64 x. |x| < 2^51 (every input of the benchmark) is exact in a
 * double and needs one reduction; otherwise x = xh * 2^32 + xl with |xh| <= 2^31 and
 * 0 <= xl < 2^32, both exact; two32 = 2^32 mod p (not centred: the product needs the split). */
KILN_FN double kiln_residue(kiln_i64 x, double p, double pinv, double two32) {
  if (x > -((kiln_i64)1 << 51) && x < ((kiln_i64)1 << 51)) return kiln_reduce((double)x, p, pinv);
  double xh = (double)(x >> 32);
  double xl = (double)(x & (kiln_i64)0xffffffff);
  return kiln_reduce(kiln_mulmod_split(kiln_reduce(xh, p, pinv), two32, p, pinv) + kiln_reduce(xl, p, pinv), p,
                     pinv);
}

/* The representative in [0, p) of a centred residue: |s| <= p/2 + 2^10 < p on every path (the
 * 2^10 only where p > 2^26), so adding p to a negative one is the whole correction. */
KILN_FN double kiln_normalize(double s, double p) { return s < 0.0 ? s + p : s; }

/* The signed result from a residue in [0, p): rem takes the sign of mu. */
KILN_FN kiln_i64 kiln_signed_result(double s, double p, int negative) {
  kiln_i64 r = (kiln_i64)s;
  return (negative && r != 0) ? r - (kiln_i64)p : r;
}

/* Montgomery's reduction t / R mod p, exact for t + (R - 1) p < 2^64; pneg = -1/p mod 2^32. */
KILN_FN kiln_u32 kiln_mont_reduce(kiln_u64 t, kiln_u32 pneg, kiln_u32 p) {
  kiln_u32 m = (kiln_u32)t * pneg;
  return (kiln_u32)((t + (kiln_u64)m * p) >> 32);
}

/* Montgomery's product a * b / R mod p for a * b < 2^32 * p (so the result is below 2p). */
KILN_FN kiln_u32 kiln_mont_mul(kiln_u32 a, kiln_u32 b, kiln_u32 pneg, kiln_u32 p) {
  return kiln_mont_reduce((kiln_u64)a * b, pneg, p);
}

/* One step on X = s * R mod p in [0, 2p): mu = mu mod p, mu_r1 = mu * (R mod p) (see above). */
KILN_FN kiln_u32 kiln_mont_step(kiln_u32 x, kiln_u32 mu, kiln_u32 mu_r1, kiln_u32 pneg, kiln_u32 p) {
  return kiln_mont_mul(x, x * mu + mu_r1, pneg, p);
}

/* X for a centred residue s: r2 = R^2 mod p, and (s mod p) * r2 < p^2 < 2^32 p. */
KILN_FN kiln_u32 kiln_mont_from(double s, double p, kiln_u32 r2, kiln_u32 pneg, kiln_u32 pi) {
  return kiln_mont_mul((kiln_u32)kiln_normalize(s, p), r2, pneg, pi);
}

/* The residue in [0, p) that X stands for: X / R mod p is at most p (X < 2p), p only for X = p. */
KILN_FN double kiln_mont_to(kiln_u32 x, kiln_u32 pneg, kiln_u32 p) {
  kiln_u32 r = kiln_mont_mul(x, 1u, pneg, p);
  return (double)(r >= p ? r - p : r);
}

/* The square form (see the top of this file): into it from a centred residue s, one step, and
 * out of it to a centred residue; every operand centred (h, e, muinv, c included). */
KILN_FN double kiln_square_in(double s, double mu, double h, double p, double pinv) {
  return kiln_reduce(KILN_FMA(mu, s, h), p, pinv);
}
KILN_FN double kiln_square_step(double v, double e, double p, double pinv) {
  return kiln_reduce(KILN_FMA(v, v, e), p, pinv);
}
KILN_FN double kiln_square_out(double v, double muinv, double c, double p, double pinv) {
  return kiln_reduce(KILN_FMA(muinv, v, c), p, pinv);
}

/* The square form's step on X = v * R mod p in [0, 2p): e2 = e * R^2 mod p, pneg = -1/p mod 2^32. */
KILN_FN kiln_u32 kiln_mont_square_step(kiln_u32 x, kiln_u32 e2, kiln_u32 pneg, kiln_u32 p) {
  return kiln_mont_reduce((kiln_u64)x * x + e2, pneg, p);
}

/* One element through `iterations` >= 1 steps of the map; mu_res = mu mod p in [0, p),
 * negative = (mu < 0). The path test depends only on the parameters, so compilers hoist it. */
KILN_FN kiln_i64 kiln_logistic(kiln_i64 x, kiln_i64 iterations, double p, double pinv, double mu_res,
                               double two32, int negative) {
  double mu = kiln_centre(mu_res, p);
  int path = kiln_path(p, mu);
  double s = kiln_residue(x, p, pinv, two32);
  kiln_i64 i;
  if (path == KILN_PATH_FUSED) {
    for (i = 0; i < iterations; ++i) s = kiln_step_fused(s, mu, p, pinv);
  } else if (path == KILN_PATH_SMALL) {
    for (i = 0; i < iterations; ++i) s = kiln_step_small(s, mu, p, pinv);
  } else {
    for (i = 0; i < iterations; ++i) s = kiln_step_split(s, mu, p, pinv);
  }
  return kiln_signed_result(kiln_normalize(s, p), p, negative);
}

#endif /* KILN_MODMATH_H */
