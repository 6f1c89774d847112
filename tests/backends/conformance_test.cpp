// Every available backend against the scalar reference and hand-checked values; unavailable ones skip with the reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend_test_support.hpp"
#include "core/lanes.hpp"
#include "kiln/kiln.hpp"

namespace {

using namespace kiln_test;
class Conformance : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    auto d = kiln::resolve(options());
    if (!d) GTEST_SKIP() << GetParam() << " unavailable: " << d.err().message;
  }

  // The backend under test, computing every element itself (host sharing off).
  static kiln::run_options options(std::size_t chunk = 0) { return options_for(GetParam(), chunk); }

  std::vector<i64> run(const std::vector<i64>& in, const kiln::map_params& prm, std::size_t chunk = 0) {
    std::vector<i64> out(in.size(), 0x5a5a5a5a);
    kiln::run_options o = options(chunk);
    auto r = kiln::logistic_map(in, out, prm, o);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
    return out;
  }
};

TEST_P(Conformance, SeedValues) {
  // The seed's doctest: 1..3 with p = 61, mu = 22, 10 iterations.
  EXPECT_EQ(run({1, 2, 3}, {61, 22, 10}), (std::vector<i64>{28, 25, 37}));
}

TEST_P(Conformance, EdgeValuesAcrossTheDomain) {
  const i64 ps[] = {1, 2, 3, 61, 6700417, (i64{1} << 26) - 1, i64{1} << 26, (i64{1} << 26) + 1, (i64{1} << 31) - 1, i64{1} << 31,
                    (i64{1} << 32) - 2, kiln::max_p};
  const i64 mus[] = {22, -22, 0, 1, -1, kMin, kMax, kMin + 1, 6700417};
  const i64 ks[] = {0, 1, 2, 10};
  for (i64 p : ps)
    for (i64 mu : mus)
      for (i64 k : ks) {
        kiln::map_params prm{p, mu, k};
        auto in = edge_inputs(p);
        ASSERT_EQ(run(in, prm), reference(in, prm)) << "p=" << p << " mu=" << mu << " k=" << k;
      }
}

TEST_P(Conformance, RandomArraysWithFixedSeed) {
  std::mt19937_64 rng(20181209);
  for (int round = 0; round < 8; ++round) {
    std::size_t n = 1000 + static_cast<std::size_t>(rng() % 50000);  // rarely a multiple of a vector
    std::vector<i64> in(n);
    for (auto& x : in) x = static_cast<i64>(rng());
    // Alternate between the two arithmetic paths: p below 2^26 and p up to 2^32 - 1.
    const std::uint64_t p_limit = round % 2 ? std::uint64_t{1} << 26 : static_cast<std::uint64_t>(kiln::max_p);
    kiln::map_params prm{static_cast<i64>(1 + rng() % p_limit),
                         static_cast<i64>(rng()), static_cast<i64>(rng() % 12)};
    ASSERT_EQ(run(in, prm), reference(in, prm)) << "round " << round << " p=" << prm.p << " mu=" << prm.mu;
  }
}

TEST_P(Conformance, SeedBenchmarkInputs) {
  std::vector<i64> in(1 << 16);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<i64>(i + 1);
  kiln::map_params prm;  // p = 6700417, mu = 22, 10 iterations
  EXPECT_EQ(run(in, prm), reference(in, prm));
}

TEST_P(Conformance, EmptyInput) {
  EXPECT_TRUE(run({}, {}).empty());
}

TEST_P(Conformance, TinyChunksGiveTheSameResult) {
  std::vector<i64> in(10007);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<i64>(i * 7919) - 40000;
  kiln::map_params prm{1000003, -7, 5};
  auto want = reference(in, prm);
  EXPECT_EQ(run(in, prm, 1), std::vector<i64>(want.begin(), want.end()));
  EXPECT_EQ(run(in, prm, 333), want);
}

// GPU backends send a staged chunk as int32 when all its inputs fit, and return a map's results as
// int32 when p <= 2^31 (narrow_transfers): chunks that fit, chunks with one wide value anywhere,
// and the moduli on either side of that limit must all give the reference's results.
TEST_P(Conformance, ChunksOfNarrowAndWideValues) {
  constexpr std::size_t chunk = 1000, chunks = 48;
  constexpr i64 lo32 = std::numeric_limits<std::int32_t>::min(), hi32 = std::numeric_limits<std::int32_t>::max();
  std::mt19937_64 rng(31);
  std::vector<i64> in(chunk * chunks + 17);
  for (auto& x : in) x = lo32 + static_cast<i64>(rng() % (std::uint64_t{1} << 32));  // every int32
  for (std::size_t c = 0; c < chunks; ++c) {
    const std::size_t at = c * chunk;
    switch (c % 6) {
      case 0: in[at] = lo32, in[at + chunk - 1] = hi32; break;        // narrow, at both limits
      case 1: in[at + (c * 37) % chunk] = hi32 + 1; break;            // one value just too wide
      case 2: in[at + chunk - 1] = lo32 - 1; break;                   // ... in a chunk's last place
      case 3: in[at] = kMin; break;                                   // ... in its first
      case 4: in[at + 500] = kMax; in[at + 501] = i64{1} << 40; break;
      default: break;                                                 // narrow
    }
  }
  in.back() = hi32 + 1;  // the short last chunk is wide
  const kiln::map_params cases[] = {{6700417, 22, 10}, {i64{1} << 31, kMax, 3}, {(i64{1} << 31) + 1, i64{1} << 30, 1},
                                    {kiln::max_p, -5, 2}, {61, 22, 0}, {i64{1} << 31, kMin, 1},
                                    // From 17 iterations, the kernels' square form (modmath.h)
                                    // with the GPU kernels' integer lanes in it (the first three,
                                    // the fourth at the form's largest p, where the fused path and
                                    // the other Montgomery step are out of reach), and without it:
                                    // Montgomery lanes alone (past the form's bound, at that
                                    // step's largest p), beside fused doubles (gcd(mu, p) = 15).
                                    {61, -22, 20}, {6700417, 22, 21}, {16777213, 22, 17}, {94906265, 47453131, 18},
                                    {715827881, 1, 19}, {1000005, 15, 20}};
  for (const auto& prm : cases) {
    const auto want = reference(in, prm);
    ASSERT_EQ(run(in, prm, chunk), want) << "p=" << prm.p << " mu=" << prm.mu << " k=" << prm.iterations;
    ASSERT_EQ(run(in, prm, chunk - 1), want) << "odd chunks, p=" << prm.p << " mu=" << prm.mu;
    ASSERT_EQ(run(in, prm), want) << "p=" << prm.p << " mu=" << prm.mu << " k=" << prm.iterations;
    std::vector<i64> data = in;
    ASSERT_TRUE(kiln::logistic_map(data, data, prm, options(chunk)).ok());
    ASSERT_EQ(data, want) << "in place, p=" << prm.p;
  }
}

// Results that need 32 bits and a sign, so cannot come back as int32: with p = 2^31 + 1 and
// mu = +-2^30, one iteration maps 1 and -2 to +-2^31 and 2 to +-(2^31 - 2) (by hand: 2^30 * 2 =
// 2^31 < p; 2^30 * 6 = 3p - 3). Repeated over many chunks, so GPUs stage them.
TEST_P(Conformance, ResultsBeyondThirtyTwoBits) {
  const i64 p = (i64{1} << 31) + 1, two31 = i64{1} << 31;
  std::vector<i64> in, up, down;
  for (int i = 0; i < 50000; ++i) {
    in.insert(in.end(), {1, -2, 2, 0});
    up.insert(up.end(), {two31, two31, two31 - 2, 0});
    down.insert(down.end(), {-two31, -two31, -(two31 - 2), 0});
  }
  EXPECT_EQ(run(in, {p, i64{1} << 30, 1}), up);
  EXPECT_EQ(run(in, {p, -(i64{1} << 30), 1}), down);
  EXPECT_EQ(run(in, {p, i64{1} << 30, 1}, 4096), up);
}

TEST_P(Conformance, InPlace) {
  std::vector<i64> data(4099);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<i64>(i) * 1234567 - 99;
  kiln::map_params prm{61, 22, 10};
  auto want = reference(data, prm);
  kiln::run_options o = options();
  ASSERT_TRUE(kiln::logistic_map(data, data, prm, o).ok());
  EXPECT_EQ(data, want);
}

// Kiln's own host blocks (pinned where CUDA runs: transfers then skip the staging copies).
TEST_P(Conformance, HostMemoryInAndOutAndInPlace) {
  const std::size_t n = 300007;
  auto in = kiln::host_memory::allocate_pinned(n), out = kiln::host_memory::allocate_pinned(n);
  ASSERT_TRUE(in.ok() && out.ok());
  std::vector<i64> plain(n);
  for (std::size_t i = 0; i < n; ++i) plain[i] = in->data()[i] = static_cast<i64>(i * 2654435761u) - (1 << 30);
  kiln::map_params prm{6700417, -22, 10};
  auto want = reference(plain, prm);
  kiln::run_options o = options();
  o.chunk_elements = 65536;  // several chunks through the direct path
  ASSERT_TRUE(kiln::logistic_map(in->span(), out->span(), prm, o).ok());
  EXPECT_TRUE(std::equal(want.begin(), want.end(), out->data()));
  ASSERT_TRUE(kiln::logistic_map(in->span(), in->span(), prm, o).ok());  // in place
  EXPECT_TRUE(std::equal(want.begin(), want.end(), in->data()));
  // Pinned input, ordinary output, and the other way round.
  std::vector<i64> plain_out(n);
  ASSERT_TRUE(kiln::logistic_map(out->span(), plain_out, {6700417, 3, 1}, o).ok());
  EXPECT_EQ(plain_out, reference(want, {6700417, 3, 1}));
  ASSERT_TRUE(kiln::logistic_map(plain, out->span(), prm, o).ok());
  EXPECT_TRUE(std::equal(want.begin(), want.end(), out->data()));
}

TEST_P(Conformance, ResidentBufferChainsRuns) {
  std::vector<i64> in(5000);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<i64>(i) - 2500;
  kiln::run_options o = options();
  auto buf = kiln::device_buffer::upload(in, o);
  ASSERT_TRUE(buf.ok()) << buf.err().message;
  EXPECT_EQ(buf->size(), in.size());
  // Three steps then seven are ten steps.
  ASSERT_TRUE(buf->run({6700417, 22, 3}).ok());
  ASSERT_TRUE(buf->run({6700417, 22, 7}).ok());
  std::vector<i64> out(in.size());
  ASSERT_TRUE(buf->download(out).ok());
  EXPECT_EQ(out, reference(in, {6700417, 22, 10}));
  std::vector<i64> wrong(3);
  EXPECT_EQ(buf->download(wrong).err().code, kiln::errc::invalid_argument);
}

// The map on buffers of every length (odd ones end in a lone element, which the GPU kernels that
// work in pairs take apart) and on each of the arithmetic's paths (fused, small, split, mu < 0),
// in place and into another buffer, with inputs at the edges of the domain.
TEST_P(Conformance, ResidentMapOfAnyLengthOnEveryPath) {
  using kiln::op;
  auto w = [](op o) { return static_cast<i64>(o); };
  // rem(mu * x * (x + 1), p) with x, p, mu the arguments 0, 1, 2: the built-in map's kernel.
  const std::vector<i64> code{w(op::arg), 2, w(op::arg), 0, w(op::mul), w(op::arg), 0, w(op::literal), 1,
                              w(op::add), w(op::mul), w(op::arg), 1, w(op::rem)};
  // Iteration counts on both sides of the kernels' switch (16 / 17: from 17 the square form and
  // the GPU kernels' integer lanes, core/backend.hpp use_square, use_int_lanes); every arithmetic
  // mix: the square form with its integer lanes (the seed's, 61 with -22, 6700417 with -22,
  // 16777213 with 22, and 94906265, the form's largest p, with a mu past the fused path),
  // Montgomery lanes alone (715827881 with 1: past the form, at that step's largest p), beside
  // fused doubles (1000005 with 15: gcd(mu, p) = 15, no square form), doubles alone (the rest:
  // even p, mu mod p too large, or 16 iterations and fewer).
  const kiln::map_params params[] = {{6700417, 22, 10},          {6700417, 22, 17},  {33554393, 16777000, 3},
                                     {4294967291, 123456789, 2}, {61, -22, 1},       {6700417, -22, 100},
                                     {16777213, 22, 18},         {715827881, 1, 33}, {6700418, 22, 5},
                                     {61, -22, 25},              {6700417, 22, 16},  {94906265, 47453131, 19},
                                     {1000005, 15, 20}};
  std::mt19937_64 rng(7);
  kiln::run_options o = options();
  // Odd and even counts of pairs (the OpenCL kernel's second pair absent at its last work-item),
  // a lone element; on CUDA also a length past one grid's reach, so the loop takes a second step.
  std::vector<std::size_t> lengths{0, 1, 2, 3, 4, 5, 6, 7, 64, 1003, 65537};
  if (std::string(GetParam()) == "cuda") lengths.push_back(4'400'003);
  for (std::size_t n : lengths) {
    for (const auto& prm : params) {
      if (n > 100'000 && prm.iterations > 10) continue;
      // The edge values after one ordinary value, so that no element, the first included, maps
      // to itself by chance (0 does).
      std::vector<i64> in{123456789};
      for (i64 e : edge_inputs(prm.p)) in.push_back(e);
      const std::size_t edges = in.size();
      in.resize(n);
      for (std::size_t i = edges; i < n; ++i) in[i] = static_cast<i64>(rng());
      const auto want = reference(in, prm);
      auto buf = kiln::device_buffer::upload(in, o);
      auto into = kiln::device_buffer::allocate(n, o);
      ASSERT_TRUE(buf.ok() && into.ok());
      const kiln::arg args[] = {kiln::arg::of_buffer(*buf), kiln::arg::of_scalar(prm.p), kiln::arg::of_scalar(prm.mu)};
      kiln::device_buffer* const outs[] = {&*into};
      auto r = kiln::run(kiln::kernel{code, 3, 1, 0, prm.iterations}, args, outs);
      ASSERT_TRUE(r.ok()) << r.err().message;
      ASSERT_TRUE(buf->run(prm).ok());
      std::vector<i64> in_place(n), other(n);
      ASSERT_TRUE(buf->download(in_place).ok());
      ASSERT_TRUE(into->download(other).ok());
      ASSERT_EQ(in_place, want) << "in place, n=" << n << " p=" << prm.p << " mu=" << prm.mu;
      ASSERT_EQ(other, want) << "into another buffer, n=" << n << " p=" << prm.p << " mu=" << prm.mu;
    }
  }
}

// Kernels over buffers: three arrays and a scalar in, two outputs, then a chain in place through
// one of them, and a fault named by its element with the buffers' inputs left for it.
TEST_P(Conformance, KernelsOverBuffersOfSeveralArrays) {
  using kiln::op;
  auto w = [](op o) { return static_cast<i64>(o); };
  const std::size_t n = 70'000;  // beyond one OpenCL segment's launch width on small devices too
  std::vector<i64> a(n), b(n), c(n);
  for (std::size_t i = 0; i < n; ++i) {
    a[i] = static_cast<i64>(i) * 7 - 3;
    b[i] = (static_cast<i64>(i) % 1000) - 500;
    c[i] = kMax - static_cast<i64>(i);
  }
  kiln::run_options o = options();
  auto ab = kiln::device_buffer::upload(a, o);
  auto bb = kiln::device_buffer::upload(b, o);
  auto cb = kiln::device_buffer::upload(c, o);
  auto s = kiln::device_buffer::allocate(n, o);
  auto m = kiln::device_buffer::allocate(n, o);
  ASSERT_TRUE(ab.ok() && bb.ok() && cb.ok() && s.ok() && m.ok());
  // {a * k + b, rem(c * (c - 1) * a, 4294967291) + index}: the rem is exact for every int64.
  const std::vector<i64> code{w(op::arg), 0, w(op::arg), 3, w(op::mul), w(op::arg), 1, w(op::add),
                              w(op::arg), 2, w(op::arg), 2, w(op::literal), 1, w(op::sub), w(op::mul), w(op::arg), 0,
                              w(op::mul), w(op::literal), 4'294'967'291, w(op::rem), w(op::index), w(op::add)};
  const kiln::arg args[] = {kiln::arg::of_buffer(*ab), kiln::arg::of_buffer(*bb), kiln::arg::of_buffer(*cb),
                            kiln::arg::of_scalar(3)};
  kiln::device_buffer* const outs[] = {&*s, &*m};
  auto r = kiln::run(kiln::kernel{code, 4, 2, 0, 1}, args, outs);
  ASSERT_TRUE(r.ok()) << r.err().message;
  std::vector<i64> got_s(n), got_m(n);
  ASSERT_TRUE(s->download(got_s).ok());
  ASSERT_TRUE(m->download(got_m).ok());
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(got_s[i], a[i] * 3 + b[i]) << "element " << i;
    // |c (c - 1) a| mod p from 128-bit pieces; the sign is the product's.
    const i64 p = 4'294'967'291;
    const __int128 cc = static_cast<__int128>(c[i]) * (static_cast<__int128>(c[i]) - 1);
    const unsigned __int128 mc = cc < 0 ? -static_cast<unsigned __int128>(cc) : cc;
    const unsigned __int128 ma = a[i] < 0 ? -static_cast<unsigned __int128>(a[i]) : static_cast<unsigned __int128>(a[i]);
    const i64 res = static_cast<i64>(mc % p * (ma % p) % p);
    const bool negative = cc != 0 && a[i] != 0 && ((cc < 0) != (a[i] < 0));
    ASSERT_EQ(got_m[i], (negative ? -res : res) + static_cast<i64>(i)) << "element " << i;
  }
  // The map in place on the sum, as a kernel over one buffer, twice: 3 then 7 iterations.
  ASSERT_TRUE(s->run({6700417, 22, 3}).ok());
  ASSERT_TRUE(s->run({6700417, 22, 7}).ok());
  ASSERT_TRUE(s->download(got_s).ok());
  std::vector<i64> sums(n);
  for (std::size_t i = 0; i < n; ++i) sums[i] = a[i] * 3 + b[i];
  EXPECT_EQ(got_s, reference(sums, {6700417, 22, 10}));
  // div(1000, b - 7) faults first where b == 7, at element 507; b is left as it was.
  const std::vector<i64> faulting{w(op::literal), 1000, w(op::arg), 0, w(op::literal), 7, w(op::sub), w(op::div)};
  const kiln::arg one[] = {kiln::arg::of_buffer(*bb)};
  kiln::device_buffer* const into[] = {&*bb};
  auto f = kiln::run(kiln::kernel{faulting, 1, 1, 0, 1}, one, into);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.err().code, kiln::errc::arithmetic);
  EXPECT_NE(f.err().message.find("element 507 (7)"), std::string::npos) << f.err().message;
  // Buffers of different lengths, or a host array among buffers, are refused.
  auto small = kiln::device_buffer::allocate(5, o);
  ASSERT_TRUE(small.ok());
  kiln::device_buffer* const wrong[] = {&*small, &*m};
  EXPECT_EQ(kiln::run(kiln::kernel{code, 4, 2, 0, 1}, args, wrong).err().code, kiln::errc::invalid_argument);
  const kiln::arg mixed[] = {kiln::arg::of_array(a), kiln::arg::of_buffer(*bb), kiln::arg::of_buffer(*cb),
                             kiln::arg::of_scalar(3)};
  EXPECT_EQ(kiln::run(kiln::kernel{code, 4, 2, 0, 1}, mixed, outs).err().code, kiln::errc::invalid_argument);
  // And a buffer among host arrays, into host outputs.
  std::vector<i64> host_s(n), host_m(n);
  const std::span<i64> host_outs[] = {host_s, host_m};
  EXPECT_EQ(kiln::run(kiln::kernel{code, 4, 2, 0, 1}, mixed, host_outs, o).err().code, kiln::errc::invalid_argument);
}

// The same kind of kernel from host arrays: the GPU backends copy each array whole to the
// device and run it there over buffers; the host backends interpret it in place.
TEST_P(Conformance, KernelsOfSeveralArraysFromHostArrays) {
  using kiln::op;
  auto w = [](op o) { return static_cast<i64>(o); };
  const std::size_t n = 9'001;
  std::vector<i64> a(n), b(n);
  for (std::size_t i = 0; i < n; ++i) a[i] = static_cast<i64>(i * i) - 4'000'000, b[i] = kMin + static_cast<i64>(i);
  // {a - b * 0 + index, max(a, b) * k}: the second faults nowhere for these values.
  const std::vector<i64> code{w(op::arg), 0, w(op::arg), 1, w(op::literal), 0, w(op::mul), w(op::sub), w(op::index),
                              w(op::add), w(op::arg), 0, w(op::arg), 1, w(op::max), w(op::arg), 2, w(op::mul)};
  const kiln::arg args[] = {kiln::arg::of_array(a), kiln::arg::of_array(b), kiln::arg::of_scalar(-3)};
  std::vector<i64> s(n), m(n);
  const std::span<i64> outs[] = {s, m};
  auto r = kiln::run(kiln::kernel{code, 3, 2, 0, 1}, args, outs, options());
  ASSERT_TRUE(r.ok()) << r.err().message;
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(s[i], a[i] + static_cast<i64>(i)) << "element " << i;
    ASSERT_EQ(m[i], std::max(a[i], b[i]) * -3) << "element " << i;
  }
}

TEST_P(Conformance, ManyThreadsAtOnce) {
  std::vector<std::thread> threads;
  std::vector<int> ok(16, 0);
  for (int t = 0; t < 16; ++t)
    threads.emplace_back([&, t] {
      std::vector<i64> in(3000 + t * 17);
      for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<i64>(i) * (t + 1) - 1000;
      kiln::map_params prm{61 + t * 1000, 22 - t, 1 + t % 10};
      std::vector<i64> out(in.size());
      kiln::run_options o = options();
      ok[t] = kiln::logistic_map(in, out, prm, o).ok() && out == reference(in, prm);
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 16; ++t) EXPECT_TRUE(ok[t]) << "thread " << t;
}

// With host sharing (the default) a GPU backend's host threads compute part of the array with
// the cpu kernel: the output must be the same whoever computed which range, from ordinary and
// from Kiln's host blocks (page-locked where CUDA runs), in place too. How much the host takes
// depends on timing, so it is printed, not asserted (tests/core/lanes_test.cpp checks the
// mechanism with a scripted device); host backends share nothing, and off means nothing.
TEST_P(Conformance, HostSharingGivesTheSameResults) {
  const std::size_t n = kiln::detail::min_shared_elements + 11, chunk = 4096;  // large enough to share
  auto in = random_inputs(n, 77);
  const kiln::map_params prm{6700417, -22, 10};
  const auto want = reference(in, prm);
  kiln::run_options o = options_for(GetParam(), chunk, 0, false, /*host_share=*/true);
  auto hin = kiln::host_memory::allocate_pinned(n), hout = kiln::host_memory::allocate_pinned(n);
  ASSERT_TRUE(hin.ok() && hout.ok());
  std::copy(in.begin(), in.end(), hin->data());
  std::size_t shared_ordinary = 0, shared_blocks = 0;
  std::string backend;
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::vector<i64> out(n, 0x5a5a5a5a);
    auto r = kiln::logistic_map(in, out, prm, o);
    ASSERT_TRUE(r.ok()) << r.err().message;
    ASSERT_EQ(out, want) << first_difference(out, want);
    ASSERT_LE(r->host_elements, n);
    shared_ordinary += r->host_elements;
    backend = r->backend;
    std::fill(hout->data(), hout->data() + n, 0x5a5a5a5a);
    auto hr = kiln::logistic_map(hin->span(), hout->span(), prm, o);
    ASSERT_TRUE(hr.ok()) << hr.err().message;
    ASSERT_TRUE(std::equal(want.begin(), want.end(), hout->data())) << "host blocks, attempt " << attempt;
    ASSERT_LE(hr->host_elements, n);
    shared_blocks += hr->host_elements;
  }
  std::cout << "[ sharing  ] " << backend << ": the host computed " << shared_ordinary << " of " << 5 * n
            << " elements from ordinary memory, " << shared_blocks << " from host blocks" << std::endl;
  if (backend != "opencl" && backend != "cuda") {
    EXPECT_EQ(shared_ordinary, 0u);
    EXPECT_EQ(shared_blocks, 0u);
  }
  std::vector<i64> data = in;
  ASSERT_TRUE(kiln::logistic_map(data, data, prm, o).ok());
  EXPECT_EQ(data, want) << first_difference(data, want);
  // Off: the device computes everything.
  std::vector<i64> out(n);
  auto off = kiln::logistic_map(in, out, prm, options(chunk));
  ASSERT_TRUE(off.ok()) << off.err().message;
  EXPECT_EQ(off->host_elements, 0u);
  EXPECT_EQ(out, want) << first_difference(out, want);
}

// Outputs of 32 MiB and more are written with non-temporal stores (kiln::detail::stream_output),
// from every backend that computes on the host: the whole array must come out right, both out of
// place (streamed, from a misaligned start too) and in place (not streamed).
TEST_P(Conformance, LargeOutputsMatchTheReference) {
  if (std::string(GetParam()) == "scalar") GTEST_SKIP() << "the reference itself";
  const std::size_t n = (std::size_t{36} << 20) / sizeof(i64) + 5;
  auto in = random_inputs(n + 1, 91);
  const kiln::map_params prm{6700417, 22, 3};
  std::vector<i64> want(n + 1);
  kiln::run_options scalar;
  scalar.backend = "scalar";
  ASSERT_TRUE(kiln::logistic_map(in, want, prm, scalar).ok());
  std::vector<i64> out(n + 1, -1);
  // One element in: the output starts 8 bytes past an aligned block.
  auto r = kiln::logistic_map(std::span<const i64>(in).subspan(1), std::span<i64>(out).subspan(1), prm,
                              options_for(GetParam(), 0, 0, false, true));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(out[0], -1);
  EXPECT_TRUE(std::equal(want.begin() + 1, want.end(), out.begin() + 1)) << "out of place";
  ASSERT_TRUE(kiln::logistic_map(in, in, prm, options_for(GetParam(), 0, 0, false, true)).ok());
  EXPECT_EQ(in, want) << first_difference(in, want);
}

INSTANTIATE_TEST_SUITE_P(Backends, Conformance, ::testing::Values("scalar", "cpu", "opencl", "cuda", "auto"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
