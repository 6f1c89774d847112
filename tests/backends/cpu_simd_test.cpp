// The cpu backend's SIMD kernel on every instruction set it was compiled for that this CPU runs, not only the best one.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "../hwy_target_override.hpp"
#include "backend_test_support.hpp"
#include "backends/cpu/cpu_simd.hpp"
#include "hwy/targets.h"
#include "kiln/kiln.hpp"

namespace {

using namespace kiln_test;

// Edge values and seeded random ones, dealt so that every loop of the kernel sees them: whole
// blocks of independent chains, single vectors after the blocks and the scalar tail. The length
// is no multiple of any vector width.
std::vector<i64> mixed_inputs(i64 p, std::uint64_t seed) {
  const auto edges = edge_inputs(p);
  std::mt19937_64 rng(seed);
  std::vector<i64> in(3 * 16 * 8 + 43);
  for (std::size_t i = 0; i < in.size(); ++i) {
    switch (rng() % 4) {
      case 0: in[i] = edges[rng() % edges.size()]; break;
      case 1: in[i] = static_cast<i64>(rng()); break;  // mostly beyond 2^51
      default: in[i] = static_cast<i64>(rng() % (std::uint64_t{1} << 51)) - (i64{1} << 50);  // the common residue path
    }
  }
  return in;
}

TEST(CpuSimd, EveryCompiledTargetMatchesTheReference) {
  // One (p, mu) per arithmetic path of core/modmath.h (fused, small p, split), both signs of mu;
  // the square form from 17 iterations (at its largest p too, and at p = 3, 5, 61, 1000003).
  // Then seeded random ones over the whole domain.
  std::vector<kiln::map_params> cases = {
      {6700417, 22, 10}, {6700417, -22, 10}, {61, 22, 3}, {1, 5, 2}, {2, kMin, 1},
      {(i64{1} << 26) - 1, 987654321, 10}, {(i64{1} << 26) - 1, -987654321, 4},
      {kiln::max_p, kMax, 10}, {kiln::max_p, kMin + 1, 7}, {(i64{1} << 31) + 11, 3, 10},
      {6700417, 22, 17}, {6700417, -22, 20}, {94906265, 47453131, 18}, {94906265, -47453131, 19},
      {3, 1, 17}, {3, -2, 18}, {61, -22, 25}, {1000003, 999999, 33}, {5, 2, 100},
  };
  std::mt19937_64 rng(20181209);
  for (int i = 0; i < 8; ++i)
    cases.push_back({static_cast<i64>(1 + rng() % static_cast<std::uint64_t>(kiln::max_p)), static_cast<i64>(rng()),
                     static_cast<i64>(1 + rng() % 11)});
  int tested = 0;
  for (std::int64_t target : hwy::SupportedAndGeneratedTargets()) {
    target_override use(target);
    ASSERT_STREQ(kiln::detail::simd_target_name(), hwy::TargetName(target));
    std::uint64_t seed = 7;
    for (const auto& prm : cases) {
      auto in = mixed_inputs(prm.p, seed++);
      const auto kp = kiln::detail::prepare(prm);
      // Every start offset within a vector, so unaligned blocks and every tail length occur;
      // with ordinary and with non-temporal stores (whose output starts at the same offsets).
      for (std::size_t offset = 0; offset < 8; ++offset)
        for (bool stream : {false, true}) {
          std::vector<i64> part(in.begin() + static_cast<std::ptrdiff_t>(offset), in.end());
          std::vector<i64> out(part.size() + offset, 0x5a5a5a5a);
          kiln::detail::logistic_simd(part.data(), out.data() + offset, part.size(), kp, stream);
          const std::vector<i64> got(out.begin() + static_cast<std::ptrdiff_t>(offset), out.end());
          ASSERT_EQ(got, reference(part, prm)) << hwy::TargetName(target) << " p=" << prm.p << " mu=" << prm.mu
                                               << " k=" << prm.iterations << " offset " << offset << " stream "
                                               << stream << ": " << first_difference(got, reference(part, prm));
          for (std::size_t i = 0; i < offset; ++i) ASSERT_EQ(out[i], 0x5a5a5a5a) << "written before the output";
        }
    }
    ++tested;
  }
  std::printf("[ targets  ] %d instruction sets checked, best here: %s\n", tested,
              hwy::TargetName(hwy::SupportedAndGeneratedTargets().front()));
  EXPECT_GE(tested, 1);
}

}  // namespace
