// The reference and the double-precision arithmetic checked against Elixir's rem computed with 128-bit integers.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>

#include "core/modmath.h"
#include "kiln/kiln.hpp"

namespace {

using i64 = std::int64_t;
using i128 = __int128;

// Elixir's definition, literally: C++'s % truncates toward zero like rem/2. Only valid while
// mu * x * (x + 1) fits in 128 bits, which the callers below guarantee (|x|, |mu| <= 2^20).
i64 elixir_rem_definition(i64 x, i64 p, i64 mu, i64 k) {
  i128 v = x;
  for (i64 i = 0; i < k; ++i) v = (i128{mu} * v * (v + 1)) % p;
  return static_cast<i64>(v);
}

TEST(Reference, MatchesTheLiteralDefinitionOnBoundedInputs) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    i64 x = static_cast<i64>(rng() % (1u << 21)) - (1 << 20);
    i64 mu = static_cast<i64>(rng() % (1u << 21)) - (1 << 20);
    i64 p = 1 + static_cast<i64>(rng() % static_cast<std::uint64_t>(kiln::max_p));
    if (i % 4 == 0) p = 1 + static_cast<i64>(rng() % 100);  // small p: many zeros and sign cases
    i64 k = static_cast<i64>(rng() % 6);
    ASSERT_EQ(kiln::logistic_map_reference(x, {p, mu, k}), elixir_rem_definition(x, p, mu, k))
        << "x=" << x << " p=" << p << " mu=" << mu << " k=" << k;
  }
}

TEST(Reference, SeedExampleAndSigns) {
  EXPECT_EQ(kiln::logistic_map_reference(1, {61, 22, 10}), 28);
  EXPECT_EQ(kiln::logistic_map_reference(2, {61, 22, 10}), 25);
  EXPECT_EQ(kiln::logistic_map_reference(3, {61, 22, 10}), 37);
  // rem takes the sign of the dividend: negative mu gives results in (-p, 0].
  EXPECT_EQ(kiln::logistic_map_reference(3, {61, -22, 1}), (-22 * 3 * 4) % 61);
  EXPECT_EQ(kiln::logistic_map_reference(-1, {61, 22, 1}), 0);
  EXPECT_EQ(kiln::logistic_map_reference(12345, {1, 22, 3}), 0);
  EXPECT_EQ(kiln::logistic_map_reference(12345, {61, 22, 0}), 12345);
}

struct prepared {
  double p, pinv, two32;
};
prepared prep(i64 p) {
  return {static_cast<double>(p), 1.0 / static_cast<double>(p),
          static_cast<double>((std::uint64_t{1} << 32) % static_cast<std::uint64_t>(p))};
}

TEST(ModMath, MulModIsExactAtTheExtremes) {
  const i64 ps[] = {1, 2, 3, 61, 6700417, (i64{1} << 26) + 1, (i64{1} << 31) - 1, i64{1} << 31, kiln::max_p - 1,
                    kiln::max_p};
  std::mt19937_64 rng(11);
  for (i64 p : ps) {
    auto c = prep(p);
    auto check = [&](std::uint64_t a, std::uint64_t b) {
      std::uint64_t want = static_cast<std::uint64_t>((static_cast<unsigned __int128>(a) * b) % static_cast<std::uint64_t>(p));
      double got = kiln_mulmod(static_cast<double>(a), static_cast<double>(b), c.p, c.pinv);
      ASSERT_EQ(static_cast<std::uint64_t>(got), want) << a << "*" << b << " mod " << p;
    };
    const std::uint64_t up = static_cast<std::uint64_t>(p);
    for (std::uint64_t a : {std::uint64_t{0}, std::uint64_t{1}, up / 2, up - 1})
      for (std::uint64_t b : {std::uint64_t{0}, std::uint64_t{1}, up / 2, up - 1, up}) check(a, b);
    for (int i = 0; i < 100000; ++i) check(rng() % up, rng() % (up + 1));
  }
}

TEST(ModMath, ResidueOfEveryKindOfInt64) {
  const i64 ps[] = {1, 2, 3, 61, 6700417, (i64{1} << 31) - 1, kiln::max_p};
  std::mt19937_64 rng(13);
  for (i64 p : ps) {
    auto c = prep(p);
    auto check = [&](i64 x) {
      i64 r = x % p;
      if (r < 0) r += p;
      ASSERT_EQ(static_cast<i64>(kiln_residue(x, c.p, c.pinv, c.two32)), r) << x << " mod " << p;
    };
    for (i64 x : {std::numeric_limits<i64>::min(), std::numeric_limits<i64>::max(), i64{0}, i64{-1}, i64{1}, p, -p})
      check(x);
    for (int i = 0; i < 100000; ++i) check(static_cast<i64>(rng()));
  }
}

}  // namespace
