// The reference and the double-precision arithmetic checked against Elixir's rem computed with 128-bit integers.
#include <gtest/gtest.h>

#include <cmath>
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

i64 mod(__int128 v, i64 p) {
  auto r = static_cast<i64>(v % p);
  return r < 0 ? r + p : r;
}

// The centred bound of core/modmath.h: |r| <= p (1/2 + 2^-13) + 2^9.
void expect_centred(double r, i64 p) {
  ASSERT_EQ(r, std::floor(r)) << "not an integer";
  ASSERT_LE(std::fabs(r), static_cast<double>(p) * (0.5 + 1.0 / 8192) + 512) << "p=" << p;
}

TEST(ModMath, MulModIsExactAndCentred) {
  const i64 ps[] = {1, 2, 3, 61, 6700417, 67108863, 67108864, (i64{1} << 31) - 1, i64{1} << 31, kiln::max_p - 1,
                    kiln::max_p};
  std::mt19937_64 rng(11);
  for (i64 p : ps) {
    auto c = prep(p);
    const bool small = static_cast<double>(p) <= KILN_SMALL_P_MAX;
    // Inputs anywhere in the centred range the loop produces, plus the edges.
    const i64 half = p / 2 + 1 + (small ? 0 : 512);
    auto check = [&](i64 a, i64 b) {
      double got = small ? kiln_mulmod_small(static_cast<double>(a), static_cast<double>(b), c.p, c.pinv)
                         : kiln_mulmod_split(static_cast<double>(a), static_cast<double>(b), c.p, c.pinv);
      expect_centred(got, p);
      ASSERT_EQ(mod(static_cast<__int128>(got), p), mod(static_cast<__int128>(a) * b, p)) << a << "*" << b << " mod " << p;
    };
    for (i64 a : {-half, i64{-1}, i64{0}, i64{1}, half})
      for (i64 b : {-half, i64{-1}, i64{0}, i64{1}, half, p - 1}) check(a, b);
    auto pick = [&] { return static_cast<i64>(rng() % static_cast<std::uint64_t>(2 * half + 1)) - half; };
    for (int i = 0; i < 100000; ++i) check(pick(), pick());
  }
}

TEST(ModMath, ResidueOfEveryKindOfInt64) {
  const i64 ps[] = {1, 2, 3, 61, 6700417, (i64{1} << 31) - 1, kiln::max_p};
  std::mt19937_64 rng(13);
  for (i64 p : ps) {
    auto c = prep(p);
    auto check = [&](i64 x) {
      double r = kiln_residue(x, c.p, c.pinv, c.two32);
      expect_centred(r, p);
      ASSERT_EQ(static_cast<i64>(kiln_normalize(r, c.p)), mod(x, p)) << x << " mod " << p;
    };
    for (i64 x : {std::numeric_limits<i64>::min(), std::numeric_limits<i64>::max(), i64{0}, i64{-1}, i64{1}, p, -p})
      check(x);
    for (int i = 0; i < 100000; ++i) check(static_cast<i64>(rng()));
  }
}

}  // namespace
