// kiln::run over kernels: the built-in map as a kernel, its recognition, loops, several arrays and outputs, faults.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/kernel_ir.hpp"
#include "kiln/kernel.hpp"
#include "kiln/kiln.hpp"

namespace {

using i64 = std::int64_t;
using kiln::op;
constexpr i64 w(op o) { return static_cast<i64>(o); }

constexpr i64 int64_min = std::numeric_limits<i64>::min();
constexpr i64 int64_max = std::numeric_limits<i64>::max();

std::vector<i64> edge_and_random(std::size_t n, std::uint64_t seed) {
  std::vector<i64> v{0, 1, -1, 2, -2, int64_min, int64_max, int64_min + 1, int64_max - 1, 6'700'417, -6'700'417};
  std::mt19937_64 rng(seed);
  while (v.size() < n) v.push_back(static_cast<i64>(rng()) >> (rng() % 64));
  return v;
}

kiln::run_options on(const char* backend) {
  kiln::run_options o;
  o.backend = backend;
  return o;
}

// The seed's map written as Enum.reduce(1..k, x, fn _, x -> rem(mu * x * (x + 1), p) end), with
// the step computed as Elixir 1.14 does for first..last (-1 when first > last).
std::vector<i64> reduce_form() {
  return {w(op::arg), 0, w(op::local_set), 0,
          // first = 1, last = k, step = if 1 <= k, do: 1, else: -1
          w(op::literal), 1, w(op::arg), 3, w(op::literal), 1, w(op::arg), 3, w(op::le), w(op::if_then), w(op::literal), 1,
          w(op::if_else), w(op::literal), -1, w(op::if_end), w(op::loop_begin), 1,
          w(op::arg), 2, w(op::local_get), 0, w(op::mul), w(op::local_get), 0, w(op::literal), 1, w(op::add), w(op::mul),
          w(op::arg), 1, w(op::rem), w(op::local_set), 0, w(op::loop_end), w(op::local_get), 0};
}

TEST(Kernel, TheBuiltInMapIsRecognisedInBothForms) {
  const i64 xs[] = {1, 2, 3};
  const kiln::arg args[] = {kiln::arg::of_array(xs), kiln::arg::of_scalar(61), kiln::arg::of_scalar(22)};
  auto plain = kiln::detail::decode_kernel(kiln::logistic_kernel(10), args);
  ASSERT_TRUE(plain.ok()) << plain.err().message;
  ASSERT_TRUE(plain->builtin.has_value());
  EXPECT_EQ(plain->builtin->params.p, 61);
  EXPECT_EQ(plain->builtin->params.mu, 22);
  EXPECT_EQ(plain->builtin->params.iterations, 10);

  const auto code = reduce_form();
  const kiln::arg args4[] = {kiln::arg::of_array(xs), kiln::arg::of_scalar(61), kiln::arg::of_scalar(22),
                             kiln::arg::of_scalar(10)};
  auto loop = kiln::detail::decode_kernel(kiln::kernel{code, 4, 1, 2, 1}, args4);
  ASSERT_TRUE(loop.ok()) << loop.err().message;
  ASSERT_TRUE(loop->builtin.has_value());
  EXPECT_EQ(loop->builtin->params.iterations, 10);
  // 1..0 holds two values in Elixir 1.14 (step -1).
  const kiln::arg args0[] = {kiln::arg::of_array(xs), kiln::arg::of_scalar(61), kiln::arg::of_scalar(22),
                             kiln::arg::of_scalar(0)};
  auto two = kiln::detail::decode_kernel(kiln::kernel{code, 4, 1, 2, 1}, args0);
  ASSERT_TRUE(two.ok()) << two.err().message;
  ASSERT_TRUE(two->builtin.has_value());
  EXPECT_EQ(two->builtin->params.iterations, 2);
  // A divisor beyond 2^32 - 1 is no map: the generic path, with its overflow checks.
  const kiln::arg wide[] = {kiln::arg::of_array(xs), kiln::arg::of_scalar(i64{1} << 40), kiln::arg::of_scalar(22)};
  auto generic = kiln::detail::decode_kernel(kiln::logistic_kernel(1), wide);
  ASSERT_TRUE(generic.ok());
  EXPECT_FALSE(generic->builtin.has_value());
}

// The seed's map, recognised or interpreted, equals the reference on every backend for every
// int64 input, in both forms (the interpreter path is forced by a kernel that adds 0 at the end).
TEST(Kernel, SeedMapEqualsTheReferenceEverywhere) {
  const auto xs = edge_and_random(5000, 1);
  const kiln::map_params params{6'700'417, -22, 7};
  std::vector<i64> want(xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) want[i] = kiln::logistic_map_reference(xs[i], params);
  auto code = reduce_form();
  auto interpreted = code;
  interpreted.insert(interpreted.end(), {w(op::literal), 0, w(op::add)});
  const kiln::arg args[] = {kiln::arg::of_array(xs), kiln::arg::of_scalar(params.p), kiln::arg::of_scalar(params.mu),
                            kiln::arg::of_scalar(params.iterations)};
  for (const char* b : {"scalar", "cpu"}) {
    for (const auto* c : {&code, &interpreted}) {
      std::vector<i64> got(xs.size());
      const std::span<i64> outs[] = {got};
      auto r = kiln::run(kiln::kernel{*c, 4, 1, 2, 1}, args, outs, on(b));
      ASSERT_TRUE(r.ok()) << b << ": " << r.err().message;
      EXPECT_EQ(got, want) << b << (c == &code ? " (recognised)" : " (interpreted)");
    }
  }
}

// Two arrays and a scalar in, two outputs: {x + y * a, max(x, y) - index}.
TEST(Kernel, SeveralArraysAndOutputs) {
  const std::vector<i64> x{1, 2, 3, -4, 5}, y{10, -20, 30, 40, -50};
  const std::vector<i64> code{w(op::arg), 0, w(op::arg), 1, w(op::arg), 2, w(op::mul), w(op::add),
                              w(op::arg), 0, w(op::arg), 1, w(op::max), w(op::index), w(op::sub)};
  const kiln::arg args[] = {kiln::arg::of_array(x), kiln::arg::of_array(y), kiln::arg::of_scalar(3)};
  for (const char* b : {"scalar", "cpu", "auto"}) {
    std::vector<i64> a(x.size()), m(x.size());
    const std::span<i64> outs[] = {a, m};
    auto r = kiln::run(kiln::kernel{code, 3, 2, 0, 1}, args, outs, on(b));
    ASSERT_TRUE(r.ok()) << b << ": " << r.err().message;
    for (std::size_t i = 0; i < x.size(); ++i) {
      EXPECT_EQ(a[i], x[i] + y[i] * 3) << b << " element " << i;
      EXPECT_EQ(m[i], std::max(x[i], y[i]) - static_cast<i64>(i)) << b << " element " << i;
    }
  }
  // Arrays of different lengths are refused.
  const std::vector<i64> short_y{1, 2};
  const kiln::arg bad[] = {kiln::arg::of_array(x), kiln::arg::of_array(short_y), kiln::arg::of_scalar(3)};
  std::vector<i64> a(x.size()), m(x.size());
  const std::span<i64> outs[] = {a, m};
  auto r = kiln::run(kiln::kernel{code, 3, 2, 0, 1}, bad, outs, on("cpu"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, kiln::errc::invalid_argument);
}

// rem of a product is exact for every int64 (no overflow fault), as Elixir's big integers give:
// checked against residues computed independently in 128 bits.
TEST(Kernel, RemOfAProductIsExactForEveryInt64) {
  const auto xs = edge_and_random(3000, 2);
  // rem(x * (x - 3) * mu, p) with p = 4294967291 (the largest prime below 2^32), mu = INT64_MIN
  const std::vector<i64> code{w(op::arg), 0, w(op::arg), 0, w(op::literal), 3, w(op::sub), w(op::mul), w(op::arg), 2,
                              w(op::mul), w(op::arg), 1, w(op::rem)};
  const i64 p = 4'294'967'291, mu = int64_min;
  const kiln::arg args[] = {kiln::arg::of_array(xs), kiln::arg::of_scalar(p), kiln::arg::of_scalar(mu)};
  std::vector<i64> got(xs.size());
  const std::span<i64> outs[] = {got};
  auto r = kiln::run(kiln::kernel{code, 3, 1, 0, 1}, args, outs, on("cpu"));
  ASSERT_TRUE(r.ok()) << r.err().message;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const __int128 a = xs[i], b = static_cast<__int128>(xs[i]) - 3;
    // |a * b * mu| mod p from 128-bit pieces: (|a*b| mod p) * (|mu| mod p) mod p.
    const __int128 ab = a * b;  // |a * b| < 2^127
    const unsigned __int128 mag_ab = ab < 0 ? -static_cast<unsigned __int128>(ab) : ab;
    const unsigned __int128 mag_mu = static_cast<unsigned __int128>(-static_cast<__int128>(mu));
    const unsigned __int128 res = (mag_ab % p) * (mag_mu % p) % p;
    const bool negative = ab != 0 && ((ab < 0) != (mu < 0));
    const i64 want = static_cast<i64>(negative ? -static_cast<__int128>(res) : static_cast<__int128>(res));
    ASSERT_EQ(got[i], want) << "x = " << xs[i];
  }
}

TEST(Kernel, FaultsNameTheElement) {
  const std::vector<i64> xs{4, 2, 0, 1};
  // div(100, x)
  const std::vector<i64> code{w(op::literal), 100, w(op::arg), 0, w(op::div)};
  const kiln::arg args[] = {kiln::arg::of_array(xs)};
  std::vector<i64> out(xs.size());
  const std::span<i64> outs[] = {out};
  auto r = kiln::run(kiln::kernel{code, 1, 1, 0, 1}, args, outs, on("cpu"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, kiln::errc::arithmetic);
  EXPECT_NE(r.err().message.find("element 2"), std::string::npos) << r.err().message;
  // A loop bound from the element is refused at validation.
  const std::vector<i64> loop{w(op::literal), 0, w(op::local_set), 0, w(op::literal), 1, w(op::arg), 0, w(op::literal), 1,
                              w(op::loop_begin), 1, w(op::loop_end), w(op::local_get), 0};
  auto s = kiln::validate(kiln::kernel{loop, 1, 1, 2, 1}, args);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.err().message.find("bounds depend on the element"), std::string::npos) << s.err().message;
}

// A local set inside a branch changes it only for the elements that take the branch; the others
// keep their value (the interpreter runs a branch over a whole block, masked). Blocks hold
// elements of both kinds here.
TEST(Kernel, ALocalSetInABranchChangesOnlyTheElementsThatTakeIt) {
  const i64 t = w(op::if_then), e = w(op::if_else), end = w(op::if_end);
  // l0 = x; _ = if x > 0, do: (l0 = 7; 1), else: 2; l0
  const std::vector<i64> set{w(op::arg), 0, w(op::local_set), 0, w(op::arg), 0, w(op::literal), 0, w(op::gt), t,
                             w(op::literal), 7, w(op::local_set), 0, w(op::literal), 1, e, w(op::literal), 2, end,
                             w(op::local_set), 1, w(op::local_get), 0};
  // l0 = x; _ = if x > 0, do: (for l0 <- 1..3, do: nothing; 1), else: 2; l0 (the loop variable
  // is a local like any other)
  const std::vector<i64> loop{w(op::arg), 0, w(op::local_set), 0, w(op::arg), 0, w(op::literal), 0, w(op::gt), t,
                              w(op::literal), 1, w(op::literal), 3, w(op::literal), 1, w(op::loop_begin), 0,
                              w(op::loop_end), w(op::literal), 1, e, w(op::literal), 2, end, w(op::local_set), 1,
                              w(op::local_get), 0};
  std::vector<i64> xs(1000);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = i % 3 ? static_cast<i64>(i) : -static_cast<i64>(i) - 1;
  const kiln::arg args[] = {kiln::arg::of_array(xs)};
  for (const char* b : {"scalar", "cpu"}) {
    std::vector<i64> got_set(xs.size()), got_loop(xs.size());
    const std::span<i64> outs_set[] = {got_set}, outs_loop[] = {got_loop};
    ASSERT_TRUE(kiln::run(kiln::kernel{set, 1, 1, 2, 1}, args, outs_set, on(b)).ok());
    ASSERT_TRUE(kiln::run(kiln::kernel{loop, 1, 1, 2, 1}, args, outs_loop, on(b)).ok());
    for (std::size_t i = 0; i < xs.size(); ++i) {
      EXPECT_EQ(got_set[i], xs[i] > 0 ? 7 : xs[i]) << b << " element " << i;
      EXPECT_EQ(got_loop[i], xs[i] > 0 ? 3 : xs[i]) << b << " element " << i;
    }
  }
}

}  // namespace
