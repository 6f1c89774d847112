// What a GPU backend keeps for a device between jobs: held while in use, released once idle (KILN_DEVICE_POOL_IDLE_MS), right again afterwards.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "backend_test_support.hpp"
#include "core/backend.hpp"
#include "core/idle_release.hpp"
#include "core/thread_pool.hpp"
#include "kiln/kernel.hpp"
#include "kiln/kiln.hpp"

namespace {

using namespace kiln_test;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

const kiln::map_params prm{6'700'417, 22, 3};

std::vector<i64> expected(const std::vector<i64>& in) { return kiln_test::cpu_expected(in, prm); }

std::string describe(const kiln::detail::held_memory& h) {
  return std::to_string(h.device_bytes) + " device bytes, " + std::to_string(h.pinned_bytes) + " pinned bytes";
}

bool none(const kiln::detail::held_memory& h) { return h.device_bytes == 0 && h.pinned_bytes == 0; }

// The suite runs under CTest with a short idle time (tests/CMakeLists.txt), and again with 0.
class DeviceMemory : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    auto d = kiln::resolve(options());
    if (!d) GTEST_SKIP() << GetParam() << " unavailable: " << d.err().message;
    device_ = d->index;
    backend_ = &kiln::detail::backend_of(d->backend);
    idle_ = kiln::detail::device_pool_idle();
  }

  kiln::run_options options() const { return options_for(GetParam(), chunk, device_); }

  kiln::detail::held_memory held() const { return backend_->held_bytes(device_); }

  // Waits for the release: up to the idle time and a generous margin for a loaded host.
  bool released() const {
    const auto until = clock_type::now() + idle_ + 20s;
    while (!none(held())) {
      if (clock_type::now() > until) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  // A map over n elements in several chunks, checked against the cpu backend; whether it was
  // right. Sets ended_ to when it returned.
  void run_map_and_check(std::size_t n, std::uint64_t seed) {
    auto in = random_inputs(n, seed);
    std::vector<i64> out(n);
    auto r = kiln::logistic_map(in, out, prm, options());
    ended_ = clock_type::now();
    ASSERT_TRUE(r.ok()) << r.err().message;
    auto want = expected(in);
    EXPECT_TRUE(out == want) << first_difference(out, want);
  }

  // Right after a job the memory is held, unless the test thread was held up for longer than
  // half the idle time (then the release may already have come, and nothing is asserted).
  void expect_held_after_job() const {
    const auto h = held();
    if (clock_type::now() - ended_ < idle_ / 2) {
      EXPECT_GT(h.device_bytes, 0u) << describe(h);
    }
  }

  static constexpr std::size_t chunk = std::size_t{1} << 16;
  int device_ = 0;
  kiln::detail::backend* backend_ = nullptr;
  std::chrono::milliseconds idle_{0};
  clock_type::time_point ended_;
};

TEST_P(DeviceMemory, ReleasedAfterTheIdleTimeAndRightAgainAfterwards) {
  if (idle_.count() == 0) GTEST_SKIP() << "KILN_DEVICE_POOL_IDLE_MS=0: device memory is kept (KeptWhenTheIdleTimeIsZero)";
  run_map_and_check(std::size_t{1} << 20, 1);
  expect_held_after_job();
  ASSERT_TRUE(released()) << "still held " << idle_.count() << " ms after the job and 20 s more: " << describe(held());
  EXPECT_GE(clock_type::now() - ended_, idle_) << "released before the device was idle for the idle time";
  std::cout << "[ " << GetParam() << " ] released after " << idle_.count() << " ms idle" << std::endl;

  // After the release: the lanes come back for the next job, which is right.
  run_map_and_check(std::size_t{1} << 20, 2);
  expect_held_after_job();
  ASSERT_TRUE(released()) << describe(held());

  // Resident buffers: uploaded and downloaded through the lanes, run on the device; a freed
  // buffer's body may be kept for reuse, and goes with the rest.
  {
    auto in = random_inputs(300'000, 3);
    auto buf = kiln::device_buffer::upload(in, options());
    ASSERT_TRUE(buf.ok()) << buf.err().message;
    auto r = buf->run(prm);
    ASSERT_TRUE(r.ok()) << r.err().message;
    ASSERT_TRUE(released()) << "with a live buffer: " << describe(held());
    // The buffer itself is the caller's, never released: it still holds its data.
    std::vector<i64> out(in.size());
    ASSERT_TRUE(buf->download(out).ok());
    auto want = expected(in);
    EXPECT_TRUE(out == want) << first_difference(out, want);
  }
  ended_ = clock_type::now();
  ASSERT_TRUE(released()) << "after the buffer was freed: " << describe(held());
}

// CUDA stages a job through as many lanes as it has chunks, each slot no longer than the job: a
// small first job pins little (pinning costs about 0.55 ms per MiB on the H200 machine), and the
// lanes grow when a larger job comes.
TEST_P(DeviceMemory, CudaStagingFollowsTheJobsSize) {
  if (std::string(GetParam()) != "cuda") GTEST_SKIP() << "the lane groups' sizing is CUDA's";
  if (idle_.count() == 0) GTEST_SKIP() << "KILN_DEVICE_POOL_IDLE_MS=0: the lanes of earlier tests stay";
  ASSERT_TRUE(released()) << describe(held());
  run_map_and_check(std::size_t{1} << 14, 5);
  const auto small = held();
  // One lane of 3 slots, in and out, of one 64 Ki-element step each.
  const std::size_t one_lane = 3 * 2 * (std::size_t{1} << 16) * sizeof(i64);
  if (clock_type::now() - ended_ < idle_ / 2) {
    EXPECT_GT(small.pinned_bytes, 0u) << describe(small);
    EXPECT_LE(small.pinned_bytes, one_lane) << describe(small);
  }
  run_map_and_check(std::size_t{1} << 22, 6);
  const auto large = held();
  if (clock_type::now() - ended_ < idle_ / 2 && kiln::detail::staging_lanes() > 1) {
    EXPECT_GT(large.pinned_bytes, one_lane) << describe(large);
  }
  std::cout << "[ cuda ] staging after a 2^14 job: " << describe(small) << "; after a 2^22 job: " << describe(large)
            << std::endl;
}

TEST_P(DeviceMemory, AKernelsMemoryIsReleasedToo) {
  if (idle_.count() == 0) GTEST_SKIP() << "KILN_DEVICE_POOL_IDLE_MS=0: device memory is kept";
  if (!backend_->kernel_support().ok()) GTEST_SKIP() << GetParam() << " compiles no kernels here: "
                                                     << backend_->kernel_support().err().message;
  const auto w = [](kiln::op o) { return static_cast<i64>(o); };
  // a * 3 + 1
  const std::vector<i64> code{w(kiln::op::arg), 0, w(kiln::op::literal), 3, w(kiln::op::mul),
                              w(kiln::op::literal), 1, w(kiln::op::add)};
  for (int round = 0; round < 2; ++round) {
    std::vector<i64> in(200'000), out(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<i64>(i) * 5 - 7 + round;
    const kiln::arg args[] = {kiln::arg::of_array(in)};
    const std::span<i64> outs[] = {out};
    auto r = kiln::run(kiln::kernel{code, 1, 1, 0, 1}, args, outs, options());
    ASSERT_TRUE(r.ok()) << r.err().message;
    for (std::size_t i = 0; i < in.size(); ++i) ASSERT_EQ(out[i], in[i] * 3 + 1) << "element " << i;
    ASSERT_TRUE(released()) << "round " << round << ": " << describe(held());
  }
}

// Jobs that end just before or after a release is due, from two threads: the release never
// takes memory from a job under way, and every result stays right.
TEST_P(DeviceMemory, JobsAroundTheReleaseStayRight) {
  if (idle_.count() == 0) GTEST_SKIP() << "KILN_DEVICE_POOL_IDLE_MS=0: nothing is released";
  const auto stop_at = clock_type::now() + std::max<std::chrono::milliseconds>(10 * idle_, 1500ms);
  std::atomic<int> wrong{0}, failed{0}, jobs{0};
  auto worker = [&](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    const auto options = options_for(GetParam(), chunk, device_);
    while (clock_type::now() < stop_at) {
      auto in = random_inputs(100'000 + rng() % 200'000, rng());
      std::vector<i64> out(in.size());
      auto r = kiln::logistic_map(in, out, prm, options);
      if (!r.ok()) ++failed;
      else if (out != expected(in)) ++wrong;
      ++jobs;
      // Idle for up to twice the idle time: some gaps see a release, some end just before one.
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % (2 * idle_.count() + 1)));
    }
  };
  std::thread a(worker, 11), b(worker, 12);
  a.join();
  b.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(jobs.load(), 2);
  ended_ = clock_type::now();
  EXPECT_TRUE(released()) << describe(held());
}

TEST_P(DeviceMemory, KeptWhenTheIdleTimeIsZero) {
  if (idle_.count() != 0) GTEST_SKIP() << "KILN_DEVICE_POOL_IDLE_MS=" << idle_.count() << ": the kept case runs with 0";
  run_map_and_check(std::size_t{1} << 20, 4);
  std::this_thread::sleep_for(500ms);
  const auto h = held();
  EXPECT_GT(h.device_bytes, 0u) << describe(h);
  EXPECT_GT(h.pinned_bytes, 0u) << describe(h);
}

INSTANTIATE_TEST_SUITE_P(Gpu, DeviceMemory, ::testing::Values("opencl", "cuda"),
                         [](const ::testing::TestParamInfo<const char*>& p) { return std::string(p.param); });

}  // namespace
