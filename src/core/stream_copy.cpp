// copy_streaming: int64 copies with non-temporal stores, best ISA picked at run time (Highway).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/stream_copy.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"

#include "core/thread_pool.hpp"

HWY_BEFORE_NAMESPACE();
namespace kiln::detail::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Non-temporal stores write whole cache lines without first reading them (a plain memcpy's
// stores read each destination line before overwriting it), and leave the caches to others:
// the destination is an array far larger than any cache. glibc switches to such stores only for
// single copies of several MiB, and a lane's chunks are smaller than that.
void copy_streaming(std::int64_t* dst, const std::int64_t* src, std::size_t n) {
  const hn::ScalableTag<std::int64_t> d;
  const std::size_t N = hn::Lanes(d);
  std::size_t i = 0;
  // Stream needs a vector-aligned destination.
  while (i < n && reinterpret_cast<std::uintptr_t>(dst + i) % (N * sizeof(std::int64_t)) != 0) {
    dst[i] = src[i];
    ++i;
  }
  for (; i + N <= n; i += N) hn::Stream(hn::LoadU(d, src + i), d, dst + i);
  for (; i < n; ++i) dst[i] = src[i];
  hwy::FlushStream();  // make the stores visible before the caller hands the memory on
}

}  // namespace kiln::detail::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kiln::detail {

HWY_EXPORT(copy_streaming);

void copy_streaming(std::int64_t* dst, const std::int64_t* src, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(copy_streaming)(dst, src, n);
}

}  // namespace kiln::detail
#endif
