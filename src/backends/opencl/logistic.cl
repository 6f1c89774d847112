/* The OpenCL kernels of the map, on core/modmath.h's arithmetic: chunks (two elements a work-item) and whole buffers (four).
 *
 * The build embeds core/modmath.h followed by this file as kiln::detail::opencl_kernel_source,
 * and opencl_backend.cpp puts "#pragma OPENCL EXTENSION cl_khr_fp64 : enable" in a separate
 * source string ahead of it: the pragma has to precede modmath.h's double-precision code, which
 * this file cannot do from after it.
 */

/* `in` and `out` may be the same buffer (the backend runs every chunk in place), so neither is
 * restrict. Two elements a work-item, `gap` apart so a work-group's loads stay contiguous,
 * stepped together as in the pairs kernel below (Montgomery lanes beside doubles where mont is
 * set, the square form's two steps where square is); each element is read and written by one
 * work-item, so in place is safe. The global size is half the job's chunk (at least n) rounded
 * up to the work-group size, hence the guard. A
 * chunk that crossed the bus narrowed (core/lanes.hpp, narrow_transfers) holds int32 where
 * in32 / out32 say so; the flags are the same for every work-item, so the branches cost nothing. */
inline long kiln_load(__global const long* in, ulong i, int in32) {
  return in32 ? (long)((__global const int*)in)[i] : in[i];
}
inline void kiln_store(__global long* out, ulong i, long r, int out32) {
  if (out32)
    ((__global int*)out)[i] = (int)r;
  else
    out[i] = r;
}
__kernel void kiln_logistic_map(__global const long* in, __global long* out, ulong n, long iterations, double p,
                                double pinv, double mu_res, double two32, int negative, int in32, int out32, int mont,
                                uint mont_p, uint mont_pneg, uint mont_r2, uint mont_mu, uint mont_mu_r1, int square,
                                uint mont_square_e2, double square_h, double square_e, double square_muinv,
                                double square_c) {
  const ulong gap = (n + 1) / 2; /* not `half`: a type's name in OpenCL C */
  const ulong i = get_global_id(0);
  if (i >= gap) return;
  const ulong j = i + gap;
  const int second = j < n;
  const double mu = kiln_centre(mu_res, p);
  const int path = kiln_path(p, mu);
  double s0 = kiln_residue(kiln_load(in, i, in32), p, pinv, two32);
  double s1 = second ? kiln_residue(kiln_load(in, j, in32), p, pinv, two32) : 0.0;
  long t;
  if (square) {
    /* modmath.h's square form: s0 in doubles, s1 in its Montgomery step (the host sets mont
     * wherever it sets square: the form offers that step wherever it holds) */
    s0 = kiln_square_in(s0, mu, square_h, p, pinv);
    s1 = kiln_square_in(s1, mu, square_h, p, pinv);
    uint x1 = kiln_mont_from(s1, p, mont_r2, mont_pneg, mont_p);
    for (t = 0; t < iterations; ++t) {
      s0 = kiln_square_step(s0, square_e, p, pinv);
      x1 = kiln_mont_square_step(x1, mont_square_e2, mont_pneg, mont_p);
    }
    s1 = kiln_centre(kiln_mont_to(x1, mont_pneg, mont_p), p);
    s0 = kiln_normalize(kiln_square_out(s0, square_muinv, square_c, p, pinv), p);
    s1 = kiln_normalize(kiln_square_out(s1, square_muinv, square_c, p, pinv), p);
  } else if (mont) {
    uint x1 = kiln_mont_from(s1, p, mont_r2, mont_pneg, mont_p);
    if (path == KILN_PATH_FUSED) {
      for (t = 0; t < iterations; ++t) {
        s0 = kiln_step_fused(s0, mu, p, pinv);
        x1 = kiln_mont_step(x1, mont_mu, mont_mu_r1, mont_pneg, mont_p);
      }
      s0 = kiln_normalize(s0, p);
    } else {
      uint x0 = kiln_mont_from(s0, p, mont_r2, mont_pneg, mont_p);
      for (t = 0; t < iterations; ++t) {
        x0 = kiln_mont_step(x0, mont_mu, mont_mu_r1, mont_pneg, mont_p);
        x1 = kiln_mont_step(x1, mont_mu, mont_mu_r1, mont_pneg, mont_p);
      }
      s0 = kiln_mont_to(x0, mont_pneg, mont_p);
    }
    s1 = kiln_mont_to(x1, mont_pneg, mont_p);
  } else {
    if (path == KILN_PATH_FUSED) {
      for (t = 0; t < iterations; ++t) {
        s0 = kiln_step_fused(s0, mu, p, pinv);
        s1 = kiln_step_fused(s1, mu, p, pinv);
      }
    } else if (path == KILN_PATH_SMALL) {
      for (t = 0; t < iterations; ++t) {
        s0 = kiln_step_small(s0, mu, p, pinv);
        s1 = kiln_step_small(s1, mu, p, pinv);
      }
    } else {
      for (t = 0; t < iterations; ++t) {
        s0 = kiln_step_split(s0, mu, p, pinv);
        s1 = kiln_step_split(s1, mu, p, pinv);
      }
    }
    s0 = kiln_normalize(s0, p);
    s1 = kiln_normalize(s1, p);
  }
  kiln_store(out, i, kiln_signed_result(s0, p, negative), out32);
  if (second) kiln_store(out, j, kiln_signed_result(s1, p, negative), out32);
}

/* Whole int64 buffers (in may equal out), four elements per work-item: two pairs `gap` pairs
 * apart, so a work-group's 16-byte loads stay contiguous, stepped together. One element's steps
 * are a chain of dependent operations; interleaving four chains keeps a pipe busy while loads are
 * in flight, where one element per work-item leaves it waiting on latency. Where modmath.h's
 * Montgomery step is exact (mont != 0), each pair's second element takes it in 32-bit integers
 * beside the first in doubles (the fused path), so the integer pipe works beside the FP64 pipe;
 * with the fused path out of reach all four take it. In the square form (square != 0) the
 * doubles take its step and the integer elements its Montgomery step. Every buffer and segment
 * starts at the device's base address alignment, so long2 accesses are aligned. An odd last
 * element is work-item 0's. Results are kiln_logistic's exactly (every path is exact). */
__kernel void kiln_logistic_map_pairs(__global const long* in, __global long* out, ulong n, long iterations, double p,
                                      double pinv, double mu_res, double two32, int negative, int mont, uint mont_p,
                                      uint mont_pneg, uint mont_r2, uint mont_mu, uint mont_mu_r1, int square,
                                      uint mont_square_e2, double square_h, double square_e, double square_muinv,
                                      double square_c) {
  const ulong pairs = n / 2;
  const ulong gap = (pairs + 1) / 2; /* not `half`: a type's name in OpenCL C */
  const ulong i = get_global_id(0);
  if (i == 0 && (n & 1) != 0) out[n - 1] = kiln_logistic(in[n - 1], iterations, p, pinv, mu_res, two32, negative);
  if (i >= gap) return;
  const ulong j = i + gap;
  const int second = j < pairs;
  const long2 a = ((__global const long2*)in)[i];
  const long2 b = second ? ((__global const long2*)in)[j] : (long2)(0, 0);
  const double mu = kiln_centre(mu_res, p);
  const int path = kiln_path(p, mu);
  double s0 = kiln_residue(a.x, p, pinv, two32), s1 = kiln_residue(a.y, p, pinv, two32);
  double s2 = kiln_residue(b.x, p, pinv, two32), s3 = kiln_residue(b.y, p, pinv, two32);
  long t;
  if (square) {
    /* modmath.h's square form: each pair's second element in its Montgomery step (mont is set
     * wherever square is, as in the chunks' kernel above) */
    s0 = kiln_square_in(s0, mu, square_h, p, pinv);
    s1 = kiln_square_in(s1, mu, square_h, p, pinv);
    s2 = kiln_square_in(s2, mu, square_h, p, pinv);
    s3 = kiln_square_in(s3, mu, square_h, p, pinv);
    uint x1 = kiln_mont_from(s1, p, mont_r2, mont_pneg, mont_p), x3 = kiln_mont_from(s3, p, mont_r2, mont_pneg, mont_p);
    for (t = 0; t < iterations; ++t) {
      s0 = kiln_square_step(s0, square_e, p, pinv);
      x1 = kiln_mont_square_step(x1, mont_square_e2, mont_pneg, mont_p);
      s2 = kiln_square_step(s2, square_e, p, pinv);
      x3 = kiln_mont_square_step(x3, mont_square_e2, mont_pneg, mont_p);
    }
    s1 = kiln_centre(kiln_mont_to(x1, mont_pneg, mont_p), p);
    s3 = kiln_centre(kiln_mont_to(x3, mont_pneg, mont_p), p);
    s0 = kiln_normalize(kiln_square_out(s0, square_muinv, square_c, p, pinv), p);
    s1 = kiln_normalize(kiln_square_out(s1, square_muinv, square_c, p, pinv), p);
    s2 = kiln_normalize(kiln_square_out(s2, square_muinv, square_c, p, pinv), p);
    s3 = kiln_normalize(kiln_square_out(s3, square_muinv, square_c, p, pinv), p);
  } else if (mont && path == KILN_PATH_FUSED) {
    uint x1 = kiln_mont_from(s1, p, mont_r2, mont_pneg, mont_p), x3 = kiln_mont_from(s3, p, mont_r2, mont_pneg, mont_p);
    for (t = 0; t < iterations; ++t) {
      s0 = kiln_step_fused(s0, mu, p, pinv);
      x1 = kiln_mont_step(x1, mont_mu, mont_mu_r1, mont_pneg, mont_p);
      s2 = kiln_step_fused(s2, mu, p, pinv);
      x3 = kiln_mont_step(x3, mont_mu, mont_mu_r1, mont_pneg, mont_p);
    }
    s0 = kiln_normalize(s0, p);
    s1 = kiln_mont_to(x1, mont_pneg, mont_p);
    s2 = kiln_normalize(s2, p);
    s3 = kiln_mont_to(x3, mont_pneg, mont_p);
  } else if (mont) {
    uint x0 = kiln_mont_from(s0, p, mont_r2, mont_pneg, mont_p), x1 = kiln_mont_from(s1, p, mont_r2, mont_pneg, mont_p);
    uint x2 = kiln_mont_from(s2, p, mont_r2, mont_pneg, mont_p), x3 = kiln_mont_from(s3, p, mont_r2, mont_pneg, mont_p);
    for (t = 0; t < iterations; ++t) {
      x0 = kiln_mont_step(x0, mont_mu, mont_mu_r1, mont_pneg, mont_p);
      x1 = kiln_mont_step(x1, mont_mu, mont_mu_r1, mont_pneg, mont_p);
      x2 = kiln_mont_step(x2, mont_mu, mont_mu_r1, mont_pneg, mont_p);
      x3 = kiln_mont_step(x3, mont_mu, mont_mu_r1, mont_pneg, mont_p);
    }
    s0 = kiln_mont_to(x0, mont_pneg, mont_p);
    s1 = kiln_mont_to(x1, mont_pneg, mont_p);
    s2 = kiln_mont_to(x2, mont_pneg, mont_p);
    s3 = kiln_mont_to(x3, mont_pneg, mont_p);
  } else {
    if (path == KILN_PATH_FUSED) {
      for (t = 0; t < iterations; ++t) {
        s0 = kiln_step_fused(s0, mu, p, pinv);
        s1 = kiln_step_fused(s1, mu, p, pinv);
        s2 = kiln_step_fused(s2, mu, p, pinv);
        s3 = kiln_step_fused(s3, mu, p, pinv);
      }
    } else if (path == KILN_PATH_SMALL) {
      for (t = 0; t < iterations; ++t) {
        s0 = kiln_step_small(s0, mu, p, pinv);
        s1 = kiln_step_small(s1, mu, p, pinv);
        s2 = kiln_step_small(s2, mu, p, pinv);
        s3 = kiln_step_small(s3, mu, p, pinv);
      }
    } else {
      for (t = 0; t < iterations; ++t) {
        s0 = kiln_step_split(s0, mu, p, pinv);
        s1 = kiln_step_split(s1, mu, p, pinv);
        s2 = kiln_step_split(s2, mu, p, pinv);
        s3 = kiln_step_split(s3, mu, p, pinv);
      }
    }
    s0 = kiln_normalize(s0, p);
    s1 = kiln_normalize(s1, p);
    s2 = kiln_normalize(s2, p);
    s3 = kiln_normalize(s3, p);
  }
  ((__global long2*)out)[i] = (long2)(kiln_signed_result(s0, p, negative), kiln_signed_result(s1, p, negative));
  if (second)
    ((__global long2*)out)[j] = (long2)(kiln_signed_result(s2, p, negative), kiln_signed_result(s3, p, negative));
}
