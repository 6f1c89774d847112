// copy_streaming, pack_narrow and widen_streaming: the GPU staging copies, best ISA picked at run time (Highway).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/stream_copy.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include "hwy/cache_control.h"
#include "hwy/highway.h"

#include "core/stream_copy.hpp"

HWY_BEFORE_NAMESPACE();
namespace kiln::detail::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Non-temporal stores write whole cache lines without first reading them (a plain memcpy's
// stores read each destination line before overwriting it), and leave the caches to others:
// the destination is an array far larger than any cache. glibc switches to such stores only for
// single copies of several MiB, and a lane's chunks are smaller than that. Writes n int64 to dst,
// each vector from load(d, src + i) and each single element as src[i] converts to int64.
template <class Src, class Load>
HWY_INLINE void store_streaming(std::int64_t* dst, const Src* src, std::size_t n, Load load) {
  const hn::ScalableTag<std::int64_t> d;
  const std::size_t N = hn::Lanes(d);
  std::size_t i = 0;
  // Stream needs a vector-aligned destination.
  while (i < n && reinterpret_cast<std::uintptr_t>(dst + i) % (N * sizeof(std::int64_t)) != 0) {
    dst[i] = src[i];
    ++i;
  }
  for (; i + N <= n; i += N) hn::Stream(load(d, src + i), d, dst + i);
  for (; i < n; ++i) dst[i] = src[i];
  hwy::FlushStream();  // make the stores visible before the caller hands the memory on
}

void copy_streaming(std::int64_t* dst, const std::int64_t* src, std::size_t n) {
  store_streaming(dst, src, n, [](auto d, const std::int64_t* p) HWY_ATTR { return hn::LoadU(d, p); });
}

// Plain stores: the staging is read by the DMA engine moments later, from the cache if it is
// still there. Checked a block at a time, so wide data gives up after its first block.
bool pack_narrow(std::int32_t* dst, const std::int64_t* src, std::size_t n) {
  const hn::ScalableTag<std::int64_t> d;
  const hn::RebindToUnsigned<decltype(d)> du;
  const hn::Rebind<std::uint32_t, decltype(d)> du32;
  const hn::Rebind<std::int32_t, decltype(d)> d32;
  const std::size_t N = hn::Lanes(d);
  constexpr std::size_t block = 256;
  std::size_t i = 0;
  while (i + N <= n) {
    const std::size_t end = std::min(n, i + block) / N * N;
    auto differ = hn::Zero(d);
    for (; i < end; i += N) {
      const auto v = hn::LoadU(d, src + i);
      // The low 32 bits, as int32; the value fits when sign-extending them gives it back.
      const auto low = hn::BitCast(d32, hn::TruncateTo(du32, hn::BitCast(du, v)));
      differ = hn::Or(differ, hn::Xor(v, hn::PromoteTo(d, low)));
      hn::StoreU(low, d32, dst + i);
    }
    if (!hn::AllTrue(d, hn::Eq(differ, hn::Zero(d)))) return false;
  }
  for (; i < n; ++i) {
    if (src[i] != static_cast<std::int32_t>(src[i])) return false;
    dst[i] = static_cast<std::int32_t>(src[i]);
  }
  return true;
}

void widen_streaming(std::int64_t* dst, const std::int32_t* src, std::size_t n) {
  store_streaming(dst, src, n, [](auto d, const std::int32_t* p) HWY_ATTR {
    return hn::PromoteTo(d, hn::LoadU(hn::Rebind<std::int32_t, decltype(d)>(), p));
  });
}

}  // namespace kiln::detail::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kiln::detail {

HWY_EXPORT(copy_streaming);
HWY_EXPORT(pack_narrow);
HWY_EXPORT(widen_streaming);

void copy_streaming(std::int64_t* dst, const std::int64_t* src, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(copy_streaming)(dst, src, n);
}

bool pack_narrow(std::int32_t* dst, const std::int64_t* src, std::size_t n) {
  return HWY_DYNAMIC_DISPATCH(pack_narrow)(dst, src, n);
}

void widen_streaming(std::int64_t* dst, const std::int32_t* src, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(widen_streaming)(dst, src, n);
}

}  // namespace kiln::detail
#endif
