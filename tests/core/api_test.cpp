// The public API's contract: validation errors, backend resolution, sizes, aliasing and identity cases.
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "kiln/kiln.hpp"

namespace {

using i64 = std::int64_t;

TEST(Validate, PDomain) {
  EXPECT_TRUE(kiln::validate({1, 22, 10}).ok());
  EXPECT_TRUE(kiln::validate({kiln::max_p, 22, 10}).ok());
  for (i64 p : {i64{0}, i64{-5}, kiln::max_p + 1, std::numeric_limits<i64>::max()}) {
    auto s = kiln::validate({p, 22, 10});
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.err().code, kiln::errc::invalid_argument);
    EXPECT_NE(s.err().message.find("p must be in 1..4294967295"), std::string::npos) << s.err().message;
  }
}

TEST(Validate, NegativeIterations) {
  auto s = kiln::validate({61, 22, -1});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.err().message.find("iterations"), std::string::npos);
}

TEST(Run, RejectsBadParamsBeforeTouchingOutput) {
  std::vector<i64> in{1, 2, 3}, out{9, 9, 9};
  auto r = kiln::logistic_map(in, out, {0, 22, 10}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, kiln::errc::invalid_argument);
  EXPECT_EQ(out, (std::vector<i64>{9, 9, 9}));
}

TEST(Run, SizeMismatchAndPartialOverlap) {
  std::vector<i64> a(10, 1), b(9);
  EXPECT_EQ(kiln::logistic_map(a, b, {}, {}).err().code, kiln::errc::invalid_argument);
  std::span<const i64> in(a.data(), 5);
  std::span<i64> out(a.data() + 2, 5);
  auto r = kiln::logistic_map(in, out, {}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("overlap"), std::string::npos);
}

TEST(Run, UnknownBackend) {
  std::vector<i64> a{1}, b(1);
  kiln::run_options o;
  o.backend = "tpu";
  auto r = kiln::logistic_map(a, b, {}, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, kiln::errc::unknown_backend);
  EXPECT_NE(r.err().message.find("tpu"), std::string::npos);
}

TEST(Run, DeviceIndexOutOfRange) {
  kiln::run_options o;
  o.backend = "cpu";
  o.device = 7;
  auto d = kiln::resolve(o);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.err().code, kiln::errc::invalid_argument);
}

TEST(Run, NegativeDeviceOtherThanAllDevicesIsInvalid) {
  kiln::run_options o;
  o.backend = "cpu";
  o.device = -2;
  auto d = kiln::resolve(o);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.err().code, kiln::errc::invalid_argument);
}

// A backend with one device runs an all_devices job on it, with the same results and name.
TEST(Run, AllDevicesOnAOneDeviceBackendRunsOnIt) {
  std::vector<i64> in(10'001), want(in.size()), got(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<i64>(i * 2'654'435'761u) - 5'000'000'000;
  for (const char* b : {"scalar", "cpu"}) {
    kiln::run_options one, all;
    one.backend = all.backend = b;
    all.device = kiln::all_devices;
    auto d = kiln::resolve(all);
    ASSERT_TRUE(d.ok()) << d.err().message;
    EXPECT_EQ(d->index, 0);
    auto r1 = kiln::logistic_map(in, want, {6'700'417, -22, 10}, one);
    auto r2 = kiln::logistic_map(in, got, {6'700'417, -22, 10}, all);
    ASSERT_TRUE(r1.ok() && r2.ok()) << b;
    EXPECT_EQ(got, want) << b;
    EXPECT_EQ(r2->device, r1->device) << b;
  }
}

TEST(DeviceBuffer, AllDevicesIsRefused) {
  std::vector<i64> in{1, 2, 3};
  kiln::run_options o;
  o.backend = "cpu";
  o.device = kiln::all_devices;
  auto b = kiln::device_buffer::upload(in, o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.err().code, kiln::errc::invalid_argument);
  EXPECT_NE(b.err().message.find("one device"), std::string::npos) << b.err().message;
}

TEST(Run, ZeroIterationsCopies) {
  std::vector<i64> in{5, -7, std::numeric_limits<i64>::min()}, out(3);
  ASSERT_TRUE(kiln::logistic_map(in, out, {61, 22, 0}, {}).ok());
  EXPECT_EQ(out, in);
}

TEST(Devices, EveryBackendIsListedWithAReasonWhenUnavailable) {
  auto ds = kiln::devices();
  for (auto kind : {kiln::backend_kind::scalar, kiln::backend_kind::cpu, kiln::backend_kind::opencl,
                    kiln::backend_kind::cuda}) {
    bool seen = false;
    for (const auto& d : ds)
      if (d.backend == kind) {
        seen = true;
        EXPECT_FALSE(d.name.empty());
        if (!d.available) {
          EXPECT_FALSE(d.reason.empty()) << kiln::backend_name(kind);
        }
      }
    EXPECT_TRUE(seen) << kiln::backend_name(kind);
  }
}

TEST(Devices, AutoResolvesToSomethingAvailable) {
  auto d = kiln::resolve({});
  ASSERT_TRUE(d.ok()) << d.err().message;
  EXPECT_TRUE(d->available);
  // Without a GPU, auto is the multicore CPU backend.
  bool any_gpu = false;
  for (const auto& dev : kiln::devices()) any_gpu |= dev.available && dev.gpu;
  if (!any_gpu) {
    EXPECT_EQ(d->backend, kiln::backend_kind::cpu);
  } else {
    EXPECT_TRUE(d->gpu);
  }
}

// A run of little work (few elements and iterations) goes to the host's cores, where a GPU's
// fixed cost would be most of it; much work goes to the GPU where there is one.
TEST(Devices, AutoRunsLittleWorkOnTheHost) {
  std::vector<std::int64_t> in(4096), out(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<std::int64_t>(i);
  auto small = kiln::logistic_map(in, out, {6'700'417, 22, 10}, {});
  ASSERT_TRUE(small) << small.err().message;
  EXPECT_EQ(small->backend, "cpu");
  EXPECT_EQ(out[5], 2'830'244);  // rem(22 * x * (x + 1), 6_700_417) ten times from 5
  auto gpu = kiln::resolve({});
  ASSERT_TRUE(gpu) << gpu.err().message;
  if (!gpu->gpu) GTEST_SKIP() << "no GPU: every run of auto is on the host here";
  std::vector<std::int64_t> big(1 << 20), big_out(big.size());
  auto large = kiln::logistic_map(big, big_out, {6'700'417, 22, 100}, {});
  ASSERT_TRUE(large) << large.err().message;
  EXPECT_EQ(large->backend, kiln::backend_name(gpu->backend));
}

TEST(Result, ValueOrThrowIsTheExceptionBoundary) {
  kiln::result<int> bad = kiln::make_error(kiln::errc::device_error, "clFinish failed");
  try {
    (void)std::move(bad).value_or_throw();
    FAIL() << "expected kiln_error";
  } catch (const kiln::kiln_error& e) {
    EXPECT_EQ(e.err().code, kiln::errc::device_error);
    EXPECT_STREQ(e.what(), "clFinish failed");
  }
  EXPECT_EQ(kiln::result<int>(3).value_or_throw(), 3);
}

}  // namespace

namespace {

// "auto" never ignores a device index: it picks a device of that index among the backends it may
// choose, or says there is none (here, without a GPU, only the cpu backend's device 0 exists).
TEST(Api, AutoHonoursTheDeviceIndex) {
  kiln::run_options o;
  o.backend = "auto";
  o.device = 9;
  auto d = kiln::resolve(o);
  bool gpu9 = false;
  for (const auto& dev : kiln::devices()) gpu9 |= dev.gpu && dev.available && dev.index == 9;
  if (gpu9) GTEST_SKIP() << "a GPU with index 9 exists here";
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.err().code, kiln::errc::invalid_argument);
  EXPECT_NE(d.err().message.find("no device 9"), std::string::npos) << d.err().message;
  std::vector<std::int64_t> in{1, 2, 3}, out(3);
  EXPECT_FALSE(kiln::logistic_map(in, out, {61, 22, 10}, o).ok());
  o.device = 0;
  ASSERT_TRUE(kiln::logistic_map(in, out, {61, 22, 10}, o).ok());
  EXPECT_EQ(out, (std::vector<std::int64_t>{28, 25, 37}));
}

}  // namespace
