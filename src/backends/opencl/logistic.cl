/* The OpenCL kernel: one work-item maps one element with kiln_logistic() from core/modmath.h.
 *
 * The build embeds core/modmath.h followed by this file as kiln::detail::opencl_kernel_source,
 * and opencl_backend.cpp puts "#pragma OPENCL EXTENSION cl_khr_fp64 : enable" in a separate
 * source string ahead of it: the pragma has to precede modmath.h's double-precision code, which
 * this file cannot do from after it.
 */

/* `in` and `out` may be the same buffer (the backend runs every chunk in place), so neither is
 * restrict. The global size is the job's chunk (at least n) rounded up to the work-group size,
 * hence the guard. A chunk that crossed the bus narrowed (core/lanes.hpp, narrow_transfers) holds
 * int32 where in32 / out32 say so; the flags are the same for every work-item, so the branches
 * cost nothing. */
__kernel void kiln_logistic_map(__global const long* in, __global long* out, ulong n, long iterations, double p,
                                double pinv, double mu_res, double two32, int negative, int in32, int out32) {
  size_t i = get_global_id(0);
  if (i >= n) return;
  const long x = in32 ? (long)((__global const int*)in)[i] : in[i];
  const long r = kiln_logistic(x, iterations, p, pinv, mu_res, two32, negative);
  if (out32)
    ((__global int*)out)[i] = (int)r;
  else
    out[i] = r;
}
