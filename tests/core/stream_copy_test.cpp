// The GPU staging copies (plain, streamed, narrowed to int32 and widened back) on every instruction set compiled in that this CPU runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/stream_copy.hpp"
#include "../hwy_target_override.hpp"
#include "hwy/targets.h"

namespace {

using i64 = std::int64_t;
using i32 = std::int32_t;
constexpr i64 lo32 = std::numeric_limits<i32>::min(), hi32 = std::numeric_limits<i32>::max();

// Calls body() once per instruction set, naming it in failures.
template <class F>
void on_every_target(F&& body) {
  for (std::int64_t target : hwy::SupportedAndGeneratedTargets()) {
    kiln_test::target_override use(target);
    SCOPED_TRACE(hwy::TargetName(target));
    body();
  }
}

// Lengths around every vector width and the 256-element blocks pack_narrow checks at a time.
const std::size_t lengths[] = {0, 1, 3, 5, 8, 9, 17, 255, 256, 257, 511, 4096, 100003};

// Non-temporal copies: unaligned heads and short tails must come out exactly as plain copies.
TEST(StreamCopy, StreamingCopyAnySizeAndOffset) {
  std::vector<i64> src(100020), dst(100036);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<i64>(i * 2654435761u) - 7;
  on_every_target([&] {
    for (std::size_t offset : {0u, 1u, 3u, 7u})
      for (std::size_t n : lengths) {
        std::fill(dst.begin(), dst.end(), -1);
        kiln::detail::copy_streaming(dst.data() + offset, src.data() + 1, n);
        for (std::size_t i = 0; i < offset; ++i) ASSERT_EQ(dst[i], -1);
        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(dst[offset + i], src[1 + i]) << "n=" << n << " offset=" << offset;
        ASSERT_EQ(dst[offset + n], -1) << "wrote past the end";
      }
  });
}

// Values that fit in int32 (both limits included) pack exactly, from any offset, and nothing is
// written past the end.
TEST(StreamCopy, PackNarrowKeepsEveryInt32) {
  std::mt19937_64 rng(5);
  std::vector<i64> src(100010);
  for (auto& x : src) x = lo32 + static_cast<i64>(rng() % (std::uint64_t{1} << 32));
  src[2] = lo32;
  src[3] = hi32;
  std::vector<i32> dst(src.size() + 8);
  on_every_target([&] {
    for (std::size_t offset : {0u, 1u, 2u})
      for (std::size_t n : lengths) {
        std::fill(dst.begin(), dst.end(), 77);
        ASSERT_TRUE(kiln::detail::pack_narrow(dst.data(), src.data() + offset, n)) << "n=" << n;
        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(dst[i], src[offset + i]) << "n=" << n << " i=" << i;
        ASSERT_EQ(dst[n], 77) << "wrote past the end";
      }
  });
}

// One value outside int32 anywhere (first block, a later block, the scalar tail; just past
// either limit or far beyond) and the chunk is refused.
TEST(StreamCopy, PackNarrowRefusesAnyWideValue) {
  const i64 wide[] = {hi32 + 1, lo32 - 1, i64{1} << 32, -(i64{1} << 32), std::numeric_limits<i64>::min(),
                      std::numeric_limits<i64>::max(), (i64{1} << 32) + 5};
  const std::size_t n = 1031;  // four blocks and a tail of 7
  std::vector<i32> dst(n);
  on_every_target([&] {
    for (i64 w : wide)
      for (std::size_t at : {std::size_t{0}, std::size_t{1}, std::size_t{255}, std::size_t{256}, std::size_t{700},
                             n - 8, n - 1}) {
        std::vector<i64> src(n, -3);
        src[at] = w;
        EXPECT_FALSE(kiln::detail::pack_narrow(dst.data(), src.data(), n)) << "wide " << w << " at " << at;
      }
  });
}

// Sign extension back to int64 with non-temporal stores, any offset and length.
TEST(StreamCopy, WidenStreamingSignExtends) {
  std::mt19937_64 rng(6);
  std::vector<i32> src(100010);
  for (auto& x : src) x = static_cast<i32>(static_cast<std::uint32_t>(rng()));
  src[0] = static_cast<i32>(lo32);
  src[1] = static_cast<i32>(hi32);
  src[2] = -1;
  std::vector<i64> dst(src.size() + 16);
  on_every_target([&] {
    for (std::size_t offset : {0u, 1u, 5u})
      for (std::size_t n : lengths) {
        std::fill(dst.begin(), dst.end(), 77);
        kiln::detail::widen_streaming(dst.data() + offset, src.data(), n);
        for (std::size_t i = 0; i < offset; ++i) ASSERT_EQ(dst[i], 77);
        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(dst[offset + i], i64{src[i]}) << "n=" << n << " i=" << i;
        ASSERT_EQ(dst[offset + n], 77) << "wrote past the end";
      }
  });
}

}  // namespace
