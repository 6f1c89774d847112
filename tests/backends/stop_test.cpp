// run_options::stop on every available backend: runs of any length end soon after a stop, with errc::cancelled.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdint>
#include <future>
#include <stop_token>
#include <thread>
#include <span>
#include <string>
#include <vector>

#include "backend_test_support.hpp"
#include "kiln/kiln.hpp"

namespace {

using kiln_test::i64;
using steady = std::chrono::steady_clock;

class Stop : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    auto d = kiln::resolve(kiln_test::options_for(GetParam()));
    if (!d) GTEST_SKIP() << GetParam() << " unavailable: " << d.err().message;
  }

  // Runs `body(options)` on another thread, asks it to stop after `after`, and returns how long
  // the run went on after the request, with its result.
  template <class Body>
  std::pair<double, kiln::result<kiln::run_stats>> stop_after(std::chrono::milliseconds after, Body body) {
    std::stop_source source;
    kiln::run_options o = kiln_test::options_for(GetParam());
    o.stop = source.get_token();
    auto run = std::async(std::launch::async, [&] { return body(o); });
    EXPECT_EQ(run.wait_for(after), std::future_status::timeout) << "the run ended before it was stopped";
    const auto t0 = steady::now();
    source.request_stop();
    auto r = run.get();
    const double after_s = std::chrono::duration<double>(steady::now() - t0).count();
    // The figure itself, for the benchmark journal: the bound below only says that it stopped.
    std::printf("[ stopped  ] %s: %.2f ms after the request\n", GetParam(), after_s * 1e3);
    return {after_s, std::move(r)};
  }
};

// Generous for a shared 2-core machine: the engine looks about every 10 ms of work. These tests
// run alone (RUN_SERIAL): other suites' GPU work would share the device's time with them.
constexpr double stop_within_s = 0.5;

TEST_P(Stop, AStopRequestedBeforeTheRunIsCancelled) {
  std::stop_source source;
  source.request_stop();
  kiln::run_options o = kiln_test::options_for(GetParam());
  o.stop = source.get_token();
  std::vector<i64> in(1000, 5), out(1000);
  auto r = kiln::logistic_map(in, out, {6'700'417, 22, 10}, o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, kiln::errc::cancelled) << r.err().message;
}

TEST_P(Stop, TheMapWithUnboundedIterationsStopsSoon) {
  std::vector<i64> in{1, 2, 3}, out(3);
  auto [after, r] = stop_after(std::chrono::milliseconds(200), [&](const kiln::run_options& o) {
    return kiln::logistic_map(in, out, {6'700'417, 22, i64{1} << 40}, o);
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, kiln::errc::cancelled) << r.err().message;
  EXPECT_LT(after, stop_within_s);
}

TEST_P(Stop, ALongArrayStopsBetweenChunks) {
  std::vector<i64> in(1 << 20), out(1 << 20);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<i64>(i);
  auto [after, r] = stop_after(std::chrono::milliseconds(200), [&](const kiln::run_options& o) {
    return kiln::logistic_map(in, out, {6'700'417, 22, 1'000'000}, o);
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, kiln::errc::cancelled) << r.err().message;
  EXPECT_LT(after, stop_within_s);
}

TEST_P(Stop, AStoppedRunLeavesTheBackendUsable) {
  {
    std::vector<i64> in{1}, out(1);
    auto [after, r] = stop_after(std::chrono::milliseconds(50), [&](const kiln::run_options& o) {
      return kiln::logistic_map(in, out, {6'700'417, 22, i64{1} << 40}, o);
    });
    ASSERT_FALSE(r);
  }
  std::vector<i64> in{1, 2, 3}, out(3);
  auto r = kiln::logistic_map(in, out, {61, 22, 10}, kiln_test::options_for(GetParam()));
  ASSERT_TRUE(r) << r.err().message;
  EXPECT_EQ(out, (std::vector<i64>{28, 25, 37}));
}

// x <- rem(x * 3 + 1, 1_000_003): a kernel the engine does not recognise as its map.
const std::vector<i64> affine_code = {
    static_cast<i64>(kiln::op::arg), 0, static_cast<i64>(kiln::op::literal), 3, static_cast<i64>(kiln::op::mul),
    static_cast<i64>(kiln::op::literal), 1, static_cast<i64>(kiln::op::add), static_cast<i64>(kiln::op::literal),
    1'000'003, static_cast<i64>(kiln::op::rem)};

TEST_P(Stop, AKernelWithUnboundedIterationsStopsSoon) {
  std::vector<i64> in{1, 2, 3}, out(3);
  kiln::kernel k{affine_code, 1, 1, 0, i64{1} << 40};
  const kiln::arg args[] = {kiln::arg::of_array(in)};
  const std::span<i64> outs[] = {out};
  // Compiled first (GPU backends), on the path a long run takes (in rounds over buffers): a
  // compile in progress finishes before a stop is seen.
  ASSERT_TRUE(kiln::run({affine_code, 1, 1, 0, 5000}, args, outs, kiln_test::options_for(GetParam())));
  auto [after, r] = stop_after(std::chrono::milliseconds(200), [&](const kiln::run_options& o) {
    return kiln::run(k, args, outs, o);
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, kiln::errc::cancelled) << r.err().message;
  EXPECT_LT(after, stop_within_s);
}

TEST_P(Stop, AKernelOverBuffersStopsSoon) {
  std::vector<i64> in{1, 2, 3};
  auto b = kiln::device_buffer::upload(in, kiln_test::options_for(GetParam()));
  ASSERT_TRUE(b) << b.err().message;
  kiln::kernel k{affine_code, 1, 1, 0, i64{1} << 40};
  const kiln::arg args[] = {kiln::arg::of_buffer(*b)};
  kiln::device_buffer* outs[] = {&*b};
  ASSERT_TRUE(kiln::run({affine_code, 1, 1, 0, 5000}, args, outs, kiln_test::options_for(GetParam())));
  auto [after, r] = stop_after(std::chrono::milliseconds(200), [&](const kiln::run_options& o) {
    return kiln::run(k, args, outs, o);
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, kiln::errc::cancelled) << r.err().message;
  EXPECT_LT(after, stop_within_s);
}

// Many iterations in rounds give the same results as one run (the rounds' seams are exact), for
// the map and for a kernel the engine interprets or compiles.
TEST_P(Stop, RoundsOfIterationsGiveTheSameResults) {
  const auto in = kiln_test::random_inputs(1024, 7);
  std::vector<i64> out(in.size());
  const kiln::map_params prm{6'700'417, 22, 9'000};
  auto r = kiln::logistic_map(in, out, prm, kiln_test::options_for(GetParam()));
  ASSERT_TRUE(r) << r.err().message;
  EXPECT_EQ(out, kiln_test::reference(in, prm));

  // Inputs the kernel takes without leaving int64 (x * 3 + 1 on any int64 would fault).
  std::vector<i64> kin(in.size()), kout(in.size()), want(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) kin[i] = in[i] % 1'000'003;
  const kiln::arg args[] = {kiln::arg::of_array(kin)};
  const std::span<i64> outs[] = {kout};
  auto rk = kiln::run({affine_code, 1, 1, 0, 9'000}, args, outs, kiln_test::options_for(GetParam()));
  ASSERT_TRUE(rk) << rk.err().message;
  for (std::size_t i = 0; i < in.size(); ++i) {
    i64 x = kin[i];
    for (int it = 0; it < 9'000; ++it) x = (x * 3 + 1) % 1'000'003;  // |x| < 1_000_003 throughout
    want[i] = x;
  }
  EXPECT_EQ(kout, want);
}


}  // namespace

namespace {

// A fault in a later round is named by its iteration in the whole run, as in one run.
TEST_P(Stop, AFaultInALaterRoundNamesTheRunsIteration) {
  const std::vector<i64> code = {static_cast<i64>(kiln::op::arg), 0, static_cast<i64>(kiln::op::literal),
                                 1'000'000'000'000'000, static_cast<i64>(kiln::op::add)};
  std::vector<i64> in{0, 5}, out(2);
  const kiln::arg args[] = {kiln::arg::of_array(in)};
  const std::span<i64> outs[] = {out};
  // 9223 additions of 10^15 fit in int64, the 9224th does not.
  auto r = kiln::run({code, 1, 1, 0, 10'000}, args, outs, kiln_test::options_for(GetParam()));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, kiln::errc::invalid_argument);
  EXPECT_NE(r.err().message.find("element 0"), std::string::npos) << r.err().message;
  EXPECT_NE(r.err().message.find("iteration 9224"), std::string::npos) << r.err().message;
}

}  // namespace

namespace {
INSTANTIATE_TEST_SUITE_P(Backends, Stop, ::testing::Values("scalar", "cpu", "opencl", "cuda"),
                         [](const auto& info) { return std::string(info.param); });
}  // namespace
