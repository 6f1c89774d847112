// The reference and the double-precision arithmetic checked against Elixir's rem computed with 128-bit integers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <utility>

#include "core/backend.hpp"
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

// 1 / 2^32 mod an odd p, by brute force over the residues' structure: 2^-1 = (p + 1) / 2.
i64 mod_inverse_r(i64 p) {
  __int128 half = (p + 1) / 2, v = 1 % p;
  for (int i = 0; i < 32; ++i) v = v * half % p;
  return static_cast<i64>(v);
}

// The centred bound of core/modmath.h: |r| <= floor(p/2), plus 2^10 on the split path.
void expect_centred(double r, i64 p, bool split = false) {
  ASSERT_EQ(r, std::floor(r)) << "not an integer";
  ASSERT_LE(std::fabs(r), static_cast<double>(p / 2 + (split ? 1024 : 0))) << "p=" << p;
}

TEST(ModMath, MulModSplitIsExactAndCentred) {
  const i64 ps[] = {67108864, (i64{1} << 31) - 1, i64{1} << 31, kiln::max_p - 1, kiln::max_p};
  std::mt19937_64 rng(11);
  for (i64 p : ps) {
    auto c = prep(p);
    const i64 half = p / 2 + 1024;  // the widest centred input the split path produces
    auto check = [&](i64 a, i64 b) {
      double got = kiln_mulmod_split(static_cast<double>(a), static_cast<double>(b), c.p, c.pinv);
      expect_centred(got, p, true);
      ASSERT_EQ(mod(static_cast<__int128>(got), p), mod(static_cast<__int128>(a) * b, p)) << a << "*" << b << " mod " << p;
    };
    for (i64 a : {-half, i64{-1}, i64{0}, i64{1}, half})
      for (i64 b : {-half, i64{-1}, i64{0}, i64{1}, half, p - 1}) check(a, b);
    auto pick = [&] { return static_cast<i64>(rng() % static_cast<std::uint64_t>(2 * half + 1)) - half; };
    for (int i = 0; i < 100000; ++i) check(pick(), pick());
  }
}

// Each step path against 128-bit arithmetic, on the inputs where the path is chosen.
TEST(ModMath, EveryStepPathIsExactWhereChosen) {
  std::mt19937_64 rng(17);
  int seen[3] = {0, 0, 0};
  for (int round = 0; round < 3000; ++round) {
    i64 p = 1 + static_cast<i64>(rng() % static_cast<std::uint64_t>(round % 3 == 0 ? 1000 : round % 3 == 1 ? (1 << 26) : kiln::max_p));
    if (round == 0) p = 6700417;
    auto c = prep(p);
    i64 mu_res = static_cast<i64>(rng() % static_cast<std::uint64_t>(p));
    if (round % 5 == 0) mu_res = 22 % p;
    double mu = kiln_centre(static_cast<double>(mu_res), c.p);
    int path = kiln_path(c.p, mu);
    seen[path]++;
    const i64 half = p / 2 + (path == KILN_PATH_SPLIT ? 1024 : 0);
    for (int i = 0; i < 200; ++i) {
      i64 sv = static_cast<i64>(rng() % static_cast<std::uint64_t>(2 * half + 1)) - half;
      if (i == 0) sv = half;
      if (i == 1) sv = -half;
      double s = static_cast<double>(sv);
      double got = path == KILN_PATH_FUSED ? kiln_step_fused(s, mu, c.p, c.pinv)
                   : path == KILN_PATH_SMALL ? kiln_step_small(s, mu, c.p, c.pinv)
                                             : kiln_step_split(s, mu, c.p, c.pinv);
      expect_centred(got, p, path == KILN_PATH_SPLIT);
      __int128 want = static_cast<__int128>(mu_res) * sv * (sv + 1);
      ASSERT_EQ(mod(static_cast<__int128>(got), p), mod(want, p)) << "path " << path << " p=" << p << " mu=" << mu_res << " s=" << sv;
    }
  }
  for (int path = 0; path < 3; ++path) EXPECT_GT(seen[path], 10) << "path " << path << " rarely chosen";
  EXPECT_EQ(kiln_path(6700417.0, 22.0), KILN_PATH_FUSED);  // the benchmark's parameters
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
    const i64 b51 = i64{1} << 51;  // where the one-reduction path ends
    for (i64 x : {std::numeric_limits<i64>::min(), std::numeric_limits<i64>::max(), i64{0}, i64{-1}, i64{1}, p, -p,
                  b51 - 1, b51, b51 + 1, -b51 + 1, -b51, -b51 - 1})
      check(x);
    for (int i = 0; i < 100000; ++i) check(static_cast<i64>(rng()));
    for (int i = 0; i < 100000; ++i) check(static_cast<i64>(rng() % (2 * static_cast<std::uint64_t>(b51))) - b51);
  }
}

// The Montgomery step where prepare() offers it: exact against 128-bit arithmetic from every
// representative X in [0, 2p), its output again below 2p, for (p, mu) up to the bound
// 6 * (mu mod p) * p < 2^32, and refused just past it, for even p and for mu = 0 mod p.
TEST(ModMath, MontgomeryStepIsExactWhereOffered) {
  using kiln::detail::prepare;
  const auto limit = static_cast<i64>(((std::uint64_t{1} << 32) - 1) / 6);  // mu' * p at most this
  EXPECT_EQ(prepare({6700417, 22, 1}).mont, 1);  // the benchmark's parameters
  EXPECT_EQ(prepare({6700418, 22, 1}).mont, 0);  // even p
  EXPECT_EQ(prepare({limit, 1, 1}).mont, limit % 2);
  EXPECT_EQ(prepare({limit + 2 - limit % 2, 1, 1}).mont, 0);  // the first odd p past the bound
  EXPECT_EQ(prepare({6700417, -22, 1}).mont, 0);             // mu mod p = p - 22: far past it
  EXPECT_EQ(prepare({4291092711, 0, 1}).mont, 0);            // mu' = 0: left to the doubles
  EXPECT_EQ(prepare({6700417, 6700417, 1}).mont, 0);
  std::mt19937_64 rng(23);
  int offered = 0;
  for (int round = 0; round < 4000; ++round) {
    i64 p = 1 + 2 * static_cast<i64>(rng() % static_cast<std::uint64_t>(round % 2 == 0 ? 500 : limit / 2));
    if (round == 0) p = 1;
    if (round == 1) p = limit - (limit % 2 == 0);  // the largest odd p with mu = 1
    i64 mu = static_cast<i64>(rng() % static_cast<std::uint64_t>(std::max<i64>(1, limit / p + 1)));
    if (round % 7 == 0) mu = -mu;
    if (round == 1) mu = 1;
    const kiln::detail::kernel_params kp = prepare({p, mu, 1});
    const i64 mu_res = static_cast<i64>(kp.mu_res);
    ASSERT_EQ(kp.mont, mu_res != 0 && 6 * static_cast<__int128>(mu_res) * p < (static_cast<__int128>(1) << 32) ? 1 : 0)
        << "p=" << p << " mu=" << mu;
    if (kp.mont == 0) continue;
    ++offered;
    ASSERT_EQ(static_cast<std::uint32_t>(p * static_cast<i64>(kp.mont_pneg)) + 1u, 0u) << "pneg, p=" << p;
    const auto r = static_cast<__int128>(std::uint64_t{1} << 32);  // R
    for (int i = 0; i < 100; ++i) {
      // X in [0, 2p), the edges first; the residue it stands for is X / R mod p.
      const i64 xv = i == 0 ? 0 : i == 1 ? 2 * p - 1 : i == 2 ? p : static_cast<i64>(rng() % static_cast<std::uint64_t>(2 * p));
      const auto x = static_cast<std::uint32_t>(xv);
      const std::uint32_t y = kiln_mont_step(x, kp.mont_mu, kp.mont_mu_r1, kp.mont_pneg, kp.mont_p);
      ASSERT_LT(static_cast<i64>(y), 2 * p) << "p=" << p << " mu=" << mu << " X=" << xv;
      // s = X / R, s' = mu s (s + 1): then s' R = X' (mod p), i.e. X' R = mu X (X + R) (mod p).
      ASSERT_EQ(mod(static_cast<__int128>(y) * r, p), mod(static_cast<__int128>(mu_res) * xv % p * ((xv + r) % p), p))
          << "p=" << p << " mu=" << mu << " X=" << xv;
      // Into the form and out of it: a centred residue comes back in [0, p).
      const i64 sv = static_cast<i64>(rng() % static_cast<std::uint64_t>(p)) - p / 2;
      const std::uint32_t in = kiln_mont_from(static_cast<double>(sv), kp.p_d, kp.mont_r2, kp.mont_pneg, kp.mont_p);
      ASSERT_LT(static_cast<i64>(in), 2 * p);
      ASSERT_EQ(mod(static_cast<__int128>(in), p), mod(static_cast<__int128>(mod(sv, p)) * r, p));
      const double back = kiln_mont_to(in, kp.mont_pneg, kp.mont_p);
      ASSERT_EQ(static_cast<i64>(back), mod(sv, p)) << "p=" << p << " s=" << sv;
      ASSERT_EQ(static_cast<i64>(kiln_mont_to(x, kp.mont_pneg, kp.mont_p)), mod(mod(xv, p) * mod_inverse_r(p), p));
    }
  }
  EXPECT_GT(offered, 1000);
}

// Many steps from spread starts, against the map in 64-bit integers: the words stay below 2p
// however long the chain.
TEST(ModMath, MontgomeryChainsMatchTheMap) {
  using kiln::detail::prepare;
  for (const auto& [p, mu] : {std::pair<i64, i64>{6700417, 22}, {3, 1}, {7, 2}, {1000003, 22}, {101, 100}}) {
    const kiln::detail::kernel_params kp = prepare({p, mu, 1});
    ASSERT_EQ(kp.mont, 1) << p;
    const i64 step = std::max<i64>(1, p / 5000);
    for (i64 x0 = 0; x0 < p; x0 += step) {
      i64 x = x0;
      std::uint32_t w = kiln_mont_from(static_cast<double>(x0), kp.p_d, kp.mont_r2, kp.mont_pneg, kp.mont_p);
      for (int k = 0; k < 200; ++k) {
        x = mu * x % p * (x + 1) % p;
        w = kiln_mont_step(w, kp.mont_mu, kp.mont_mu_r1, kp.mont_pneg, kp.mont_p);
        ASSERT_LT(static_cast<i64>(w), 2 * p);
      }
      ASSERT_EQ(static_cast<i64>(kiln_mont_to(w, kp.mont_pneg, kp.mont_p)), x) << "p=" << p << " x0=" << x0;
    }
  }
}

// The square form where prepare() offers it (odd p >= 3, mu invertible mod p, floor(p/2)
// (floor(p/2) + 1) < 2^51): its constants, and each of its steps exact and centred against
// 128-bit arithmetic, at the edges of the centred range and at random, up to the bound's largest
// p; refused for even p, for mu sharing a factor with p, and just past the bound.
TEST(ModMath, SquareFormIsExactWhereOffered) {
  using kiln::detail::prepare;
  const i64 largest = 94906265;  // floor(p/2) = 47453132, the last H with H (H + 1) < 2^51
  EXPECT_EQ(prepare({6700417, 22, 1}).square, 1);
  EXPECT_EQ(prepare({6700417, -22, 1}).square, 1);
  EXPECT_EQ(prepare({6700418, 22, 1}).square, 0);   // even p
  EXPECT_EQ(prepare({1000005, 15, 1}).square, 0);   // gcd(15, p) = 15
  EXPECT_EQ(prepare({6700417, 0, 1}).square, 0);    // mu = 0 mod p
  EXPECT_EQ(prepare({1, 1, 1}).square, 0);
  EXPECT_EQ(prepare({3, 1, 1}).square, 1);
  EXPECT_EQ(prepare({largest, 2, 1}).square, 1);
  EXPECT_EQ(prepare({largest + 2, 2, 1}).square, 0);  // the first odd p past the bound
  const auto r = static_cast<__int128>(std::uint64_t{1} << 32);  // R
  std::mt19937_64 rng(41);
  int offered = 0;
  for (int round = 0; round < 3000; ++round) {
    i64 p = 3 + 2 * static_cast<i64>(rng() % static_cast<std::uint64_t>(round % 3 == 0 ? 300 : (largest - 3) / 2 + 1));
    if (round == 0) p = largest;
    if (round == 1) p = 3;
    i64 mu = static_cast<i64>(rng()) >> (rng() % 63);
    if (round % 5 == 0) {  // a multiple of 3 for p and mu: gcd(mu, p) >= 3, refused
      p = p / 3 * 3 + (p / 3 % 2 == 0 ? 3 : 0);
      mu = 3 * (static_cast<i64>(rng() % 1000) + 1);
    }
    const kiln::detail::kernel_params kp = prepare({p, mu, 1});
    const i64 mu_res = mod(mu, p);
    i64 a = mu_res, b = p;
    while (b != 0) a = std::exchange(b, a % b);
    const bool within = (p / 2) * (p / 2 + 1) < (i64{1} << 51);
    ASSERT_EQ(kp.square, a == 1 && within ? 1 : 0) << "p=" << p << " mu=" << mu;
    if (kp.square == 0) continue;
    ++offered;
    const i64 half = p / 2;
    const auto h = static_cast<i64>(kp.square_h), e = static_cast<i64>(kp.square_e);
    const auto muinv = static_cast<i64>(kp.square_muinv), c = static_cast<i64>(kp.square_c);
    for (double k : {kp.square_h, kp.square_e, kp.square_muinv, kp.square_c}) expect_centred(k, p);
    ASSERT_EQ(mod(2 * static_cast<__int128>(h), p), mu_res) << "p=" << p;
    ASSERT_EQ(mod(static_cast<__int128>(h) - static_cast<__int128>(h) * h, p), mod(e, p));
    ASSERT_EQ(mod(static_cast<__int128>(muinv) * mu_res, p), 1 % p);
    ASSERT_EQ(mod(static_cast<__int128>(c) + static_cast<__int128>(muinv) * h, p), 0);
    ASSERT_EQ(static_cast<i64>(kp.mont_square_e2), mod(static_cast<__int128>(e) * mod(r * r % p, p), p));
    ASSERT_EQ(static_cast<std::uint32_t>(p * static_cast<i64>(kp.mont_pneg)) + 1u, 0u) << "pneg, p=" << p;
    const double mu_c = kiln_centre(kp.mu_res, kp.p_d);
    for (int i = 0; i < 60; ++i) {
      const i64 sv = i == 0 ? -half : i == 1 ? half : i == 2 ? 0 : static_cast<i64>(rng() % static_cast<std::uint64_t>(p)) - half;
      const double s = static_cast<double>(sv);
      const double v = kiln_square_in(s, mu_c, kp.square_h, kp.p_d, kp.pinv);
      expect_centred(v, p);
      ASSERT_EQ(mod(static_cast<i64>(v), p), mod(static_cast<__int128>(mu_res) * sv + h, p));
      // The step on the edges of the centred range too, and the way out.
      const i64 vv = i == 3 ? -half : i == 4 ? half : static_cast<i64>(v);
      const double w = kiln_square_step(static_cast<double>(vv), kp.square_e, kp.p_d, kp.pinv);
      expect_centred(w, p);
      ASSERT_EQ(mod(static_cast<i64>(w), p), mod(static_cast<__int128>(vv) * vv + e, p)) << "p=" << p << " v=" << vv;
      const double back = kiln_square_out(static_cast<double>(vv), kp.square_muinv, kp.square_c, kp.p_d, kp.pinv);
      expect_centred(back, p);
      ASSERT_EQ(mod(static_cast<__int128>(static_cast<i64>(back)) * mu_res + h, p), mod(vv, p));
      // One step in the form is one step of the map.
      const double s1 = kiln_square_out(kiln_square_step(v, kp.square_e, kp.p_d, kp.pinv), kp.square_muinv,
                                        kp.square_c, kp.p_d, kp.pinv);
      ASSERT_EQ(mod(static_cast<i64>(s1), p), mod(static_cast<__int128>(mu_res) * sv % p * (sv + 1), p));
      // The Montgomery step of the form: X in [0, 2p), the edges first; X' R = X^2 + E (mod p), X' < 2p.
      const i64 xv = i == 0 ? 0 : i == 1 ? 2 * p - 1 : i == 2 ? p : static_cast<i64>(rng() % static_cast<std::uint64_t>(2 * p));
      const std::uint32_t y = kiln_mont_square_step(static_cast<std::uint32_t>(xv), kp.mont_square_e2, kp.mont_pneg,
                                                    static_cast<std::uint32_t>(p));
      ASSERT_LT(static_cast<i64>(y), 2 * p) << "p=" << p << " X=" << xv;
      ASSERT_EQ(mod(static_cast<__int128>(y) * r, p), mod(static_cast<__int128>(xv) * xv + kp.mont_square_e2, p))
          << "p=" << p << " X=" << xv;
    }
  }
  EXPECT_GT(offered, 1500);
}

// Many steps in the form from spread starts, in doubles and in its Montgomery step, against the
// map in 64-bit integers, for the benchmark's parameters, small p, a negative mu and the bound's
// largest p.
TEST(ModMath, SquareFormChainsMatchTheMap) {
  using kiln::detail::prepare;
  for (const auto& [p, mu] : {std::pair<i64, i64>{6700417, 22}, {6700417, -22}, {3, 1}, {7, 2}, {94906265, 47453131},
                              {1000003, 999999}}) {
    const kiln::detail::kernel_params kp = prepare({p, mu, 1});
    ASSERT_EQ(kp.square, 1) << p;
    const i64 mu_res = mod(mu, p);
    const double mu_c = kiln_centre(kp.mu_res, kp.p_d);
    const i64 step = std::max<i64>(1, p / 3000);
    for (i64 x0 = 0; x0 < p; x0 += step) {
      i64 x = x0;
      double v = kiln_square_in(kiln_centre(static_cast<double>(x0), kp.p_d), mu_c, kp.square_h, kp.p_d, kp.pinv);
      std::uint32_t w = kiln_mont_from(v, kp.p_d, kp.mont_r2, kp.mont_pneg, kp.mont_p);
      for (int k = 0; k < 200; ++k) {
        x = static_cast<i64>(static_cast<__int128>(mu_res) * x % p * (x + 1) % p);
        v = kiln_square_step(v, kp.square_e, kp.p_d, kp.pinv);
        w = kiln_mont_square_step(w, kp.mont_square_e2, kp.mont_pneg, kp.mont_p);
        ASSERT_LT(static_cast<i64>(w), 2 * p);
      }
      const double from_doubles = kiln_square_out(v, kp.square_muinv, kp.square_c, kp.p_d, kp.pinv);
      const double from_words = kiln_square_out(kiln_centre(kiln_mont_to(w, kp.mont_pneg, kp.mont_p), kp.p_d),
                                                kp.square_muinv, kp.square_c, kp.p_d, kp.pinv);
      ASSERT_EQ(static_cast<i64>(kiln_normalize(from_doubles, kp.p_d)), x) << "p=" << p << " x0=" << x0;
      ASSERT_EQ(static_cast<i64>(kiln_normalize(from_words, kp.p_d)), x) << "words, p=" << p << " x0=" << x0;
    }
  }
}

}  // namespace
