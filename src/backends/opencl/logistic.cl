/* The OpenCL kernel: one work-item maps one element with kiln_logistic() from core/modmath.h.
 *
 * The build embeds core/modmath.h followed by this file as kiln::detail::opencl_kernel_source,
 * and opencl_backend.cpp puts "#pragma OPENCL EXTENSION cl_khr_fp64 : enable" in a separate
 * source string ahead of it: the pragma has to precede modmath.h's double-precision code, which
 * this file cannot do from after it.
 */

/* `in` and `out` may be the same buffer (the backend runs every chunk in place), so neither is
 * restrict. The global size is n rounded up to the work-group size, hence the guard. */
__kernel void kiln_logistic_map(__global const long* in, __global long* out, ulong n, long iterations, double p,
                                double pinv, double mu_res, double two32, int negative) {
  size_t i = get_global_id(0);
  if (i >= n) return;
  out[i] = kiln_logistic(in[i], iterations, p, pinv, mu_res, two32, negative);
}
