// SIMD kernel of the `cpu` backend: core/modmath.h's arithmetic on Highway vectors, best ISA picked at run time.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/cpu_simd.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/cache_control.h"

#include <cstdint>

#include "backends/cpu/cpu_simd.hpp"
#include "core/modmath.h"

HWY_BEFORE_NAMESPACE();
namespace kiln::detail::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<double>;
using DI = hn::RebindToSigned<D>;
using V = hn::Vec<D>;

// modmath.h's square form, a fourth path beside its three (kiln_path never picks it: the block
// below does, where use_square says; the scalar tail keeps kiln_logistic's paths).
constexpr int square_path = 3;

// The vector form of core/modmath.h (see there for the error analysis and the paths):
// residues stay centred on zero and exact; only the end maps them to [0, p).
struct mod_ops {
  D d;
  V p, pinv, magic;

  HWY_INLINE V reduce(V v) const {
    V q = hn::Sub(hn::MulAdd(v, pinv, magic), magic);  // round to nearest
    return hn::NegMulAdd(q, p, v);
  }
  // The split path's products reach 2^62, beyond a double's 53 bits, so both its multiplies
  // need their exact low parts: one fused operation each where the target has FMA. Elsewhere
  // (SSE4 and older, the scalar target) Highway's MulAdd is a multiply then an add, which loses
  // exactly those parts, so Dekker's product of halves supplies them.
  HWY_INLINE V mulmod_split(V a, V b) const {
    V hi = hn::Mul(a, b);
    V q = hn::Sub(hn::MulAdd(hi, pinv, magic), magic);
#if HWY_NATIVE_FMA
    return hn::Add(hn::NegMulAdd(q, p, hi), hn::MulSub(a, b, hi));
#else
    V qp = hn::Mul(q, p);  // hi - q * p = (hi - qp) - low(q * p): hi and qp are within a factor 2
    return hn::Add(hn::Sub(hn::Sub(hi, qp), product_low(q, p, qp)), product_low(a, b, hi));
#endif
  }
#if !HWY_NATIVE_FMA
  // a * b - hi exactly, where hi is a * b rounded (Dekker; exact while nothing overflows).
  HWY_INLINE V product_low(V a, V b, V hi) const {
    const V split = hn::Set(d, 134217729.0);  // 2^27 + 1: Veltkamp's split into 26-bit halves
    V ca = hn::Mul(a, split), cb = hn::Mul(b, split);
    V ah = hn::Sub(ca, hn::Sub(ca, a)), bh = hn::Sub(cb, hn::Sub(cb, b));
    V al = hn::Sub(a, ah), bl = hn::Sub(b, bh);
    V err = hn::Add(hn::Sub(hn::Mul(ah, bh), hi), hn::Mul(ah, bl));
    return hn::Add(hn::Add(err, hn::Mul(al, bh)), hn::Mul(al, bl));
  }
#endif
  // `mu` is e on the square form's path (square_path below), whose step is v^2 + e reduced.
  template <int Path>
  HWY_INLINE V step(V s, V mu, V one) const {
    if constexpr (Path == square_path) {
      return reduce(hn::MulAdd(s, s, mu));
    } else if constexpr (Path == KILN_PATH_FUSED) {
      V ms = hn::Mul(mu, s);
      return reduce(hn::MulAdd(ms, s, ms));
    } else if constexpr (Path == KILN_PATH_SMALL) {
      return reduce(hn::Mul(mu, reduce(hn::MulAdd(s, s, s))));
    } else {
      return mulmod_split(mu, mulmod_split(s, hn::Add(s, one)));
    }
  }
};

HWY_INLINE V residue(const mod_ops& m, V two32, const std::int64_t* x) {
  const DI di;
  auto xi = hn::LoadU(di, x);
  // Every lane below 2^51 in magnitude (the common case): exact as doubles, one reduction.
  // Conversion rounds monotonically, so a lane at or above 2^51 never converts below it.
  V xd = hn::ConvertTo(m.d, xi);
  if (hn::AllTrue(m.d, hn::Lt(hn::Abs(xd), hn::Set(m.d, 2251799813685248.0)))) return m.reduce(xd);
  V xh = hn::ConvertTo(m.d, hn::ShiftRight<32>(xi));
  V xl = hn::ConvertTo(m.d, hn::And(xi, hn::Set(di, 0xffffffffLL)));
  return m.reduce(hn::Add(m.mulmod_split(m.reduce(xh), two32), m.reduce(xl)));
}

// Stream: a non-temporal store to a vector-aligned `out` (no read for ownership, no cache pollution).
template <bool Stream>
HWY_INLINE void store_result(const mod_ops& m, V s, V neg_shift, std::int64_t* out) {
  const V zero = hn::Zero(m.d);
  s = hn::IfThenElse(hn::Lt(s, zero), hn::Add(s, m.p), s);  // kiln_normalize
  // Non-zero results move down by p when mu < 0 (neg_shift is p then, else 0).
  V shifted = hn::IfThenElse(hn::Eq(s, zero), s, hn::Sub(s, neg_shift));
  if constexpr (Stream)
    hn::Stream(hn::ConvertTo(DI(), shifted), DI(), out);
  else
    hn::StoreU(hn::ConvertTo(DI(), shifted), DI(), out);
}

// Sixteen vectors at once. Each element is a chain of dependent operations (five on the FMA units
// a step, each waiting on the last, about 20 cycles), so only independent chains side by side
// keep the FMA units busy: on AVX-512 one thread gets faster from 4 chains up to 12 or 16, and
// slower again beyond. Where 16 vectors do not fit the registers (AVX2, SSE4), the spilled states
// are L1 loads folded into the arithmetic, still faster than 4 or 8 chains (every target's
// figures in docs/BENCHMARKS.md).
constexpr std::size_t chains = 16;

template <int Path, bool Stream>
HWY_INLINE void logistic_block(const std::int64_t* in, std::int64_t* out, std::size_t n, const kernel_params& kp) {
  const D d;
  const mod_ops m{d, hn::Set(d, kp.p_d), hn::Set(d, kp.pinv), hn::Set(d, KILN_ROUND_MAGIC)};
  const V one = hn::Set(d, 1.0), two32 = hn::Set(d, kp.two32);
  const V mu = hn::Set(d, kiln_centre(kp.mu_res, kp.p_d));
  const V neg_shift = hn::Set(d, kp.negative ? kp.p_d : 0.0);
  // On the square form's path: into it from the residue (v = mu s + h), e as the step's `mu`,
  // and out of it before the store (s = v / mu + c), modmath.h's kiln_square_in / _out.
  constexpr bool square = Path == square_path;
  const V step_mu = square ? hn::Set(d, kp.square_e) : mu;
  const V h = hn::Set(d, kp.square_h), muinv = hn::Set(d, kp.square_muinv), c0 = hn::Set(d, kp.square_c);
  auto enter = [&](V s) HWY_ATTR { return square ? m.reduce(hn::MulAdd(mu, s, h)) : s; };
  auto leave = [&](V v) HWY_ATTR { return square ? m.reduce(hn::MulAdd(muinv, v, c0)) : v; };
  const std::size_t N = hn::Lanes(d);
  std::size_t i = 0;
#if !HWY_HAVE_SCALABLE  // an array of vectors needs sized vector types (not SVE's or RVV's)
  for (; i + chains * N <= n; i += chains * N) {
    V s[chains];
    for (std::size_t c = 0; c < chains; ++c) s[c] = enter(residue(m, two32, in + i + c * N));
    for (std::int64_t k = 0; k < kp.iterations; ++k)
      for (std::size_t c = 0; c < chains; ++c) s[c] = m.step<Path>(s[c], step_mu, one);
    for (std::size_t c = 0; c < chains; ++c) store_result<Stream>(m, leave(s[c]), neg_shift, out + i + c * N);
  }
#endif
  for (; i + N <= n; i += N) {
    V s = enter(residue(m, two32, in + i));
    for (std::int64_t k = 0; k < kp.iterations; ++k) s = m.step<Path>(s, step_mu, one);
    store_result<Stream>(m, leave(s), neg_shift, out + i);
  }
  // Fewer than one vector left: the scalar form of the same arithmetic.
  for (; i < n; ++i)
    out[i] = kiln_logistic(in[i], kp.iterations, kp.p_d, kp.pinv, kp.mu_res, kp.two32, kp.negative);
}

template <bool Stream>
void logistic_path(const std::int64_t* in, std::int64_t* out, std::size_t n, const kernel_params& kp) {
  if (use_square(kp)) return logistic_block<square_path, Stream>(in, out, n, kp);
  switch (kiln_path(kp.p_d, kiln_centre(kp.mu_res, kp.p_d))) {
    case KILN_PATH_FUSED: return logistic_block<KILN_PATH_FUSED, Stream>(in, out, n, kp);
    case KILN_PATH_SMALL: return logistic_block<KILN_PATH_SMALL, Stream>(in, out, n, kp);
    default: return logistic_block<KILN_PATH_SPLIT, Stream>(in, out, n, kp);
  }
}

void logistic_simd(const std::int64_t* in, std::int64_t* out, std::size_t n, const kernel_params& kp, bool stream) {
  const std::size_t vec_bytes = hn::Lanes(D()) * sizeof(std::int64_t);
  const auto addr = reinterpret_cast<std::uintptr_t>(out);
  // Streaming needs vector-aligned stores, and a separate output (in place, the lines are in the
  // cache already): the elements before the first aligned one go the ordinary way.
  if (!stream || in == out || n * sizeof(std::int64_t) < 2 * vec_bytes || addr % sizeof(std::int64_t) != 0)
    return logistic_path<false>(in, out, n, kp);
  const std::size_t head = (vec_bytes - addr % vec_bytes) % vec_bytes / sizeof(std::int64_t);
  logistic_path<false>(in, out, head, kp);
  logistic_path<true>(in + head, out + head, n - head, kp);
  // Non-temporal stores are weakly ordered: make them visible before another thread reads them.
  hwy::FlushStream();
}

const char* target_name() { return hwy::TargetName(HWY_TARGET); }

}  // namespace kiln::detail::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kiln::detail {

HWY_EXPORT(logistic_simd);
HWY_EXPORT(target_name);

void logistic_simd(const std::int64_t* in, std::int64_t* out, std::size_t n, const kernel_params& kp, bool stream) {
  HWY_DYNAMIC_DISPATCH(logistic_simd)(in, out, n, kp, stream);
}

const char* simd_target_name() { return HWY_DYNAMIC_DISPATCH(target_name)(); }

}  // namespace kiln::detail
#endif
