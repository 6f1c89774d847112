// The CUDA backend: its unavailable path (no driver or GPU), the chunked pipeline, resident buffers, device indices, and NVRTC.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "../core/kernel_reference.hpp"
#include "../core/index_kernel_case.hpp"
#include "backend_test_support.hpp"
#include "backends/cuda/nvrtc.hpp"
#include "core/kernel_cache.hpp"
#include "core/kernel_ir.hpp"
#include "kiln/kiln.hpp"

namespace {

using namespace kiln_test;

kiln::run_options cuda_options(std::size_t chunk = 0, int device = 0, bool phase_times = false) {
  return options_for("cuda", chunk, device, phase_times);
}

// Whether staged chunks run zero copy (the default; the suite runs again with KILN_ZERO_COPY=0).
bool zero_copy_on() {
  const char* v = std::getenv("KILN_ZERO_COPY");
  return !(v && std::string(v) == "0");
}

std::vector<kiln::device_info> cuda_devices() { return devices_of(kiln::backend_kind::cuda); }

std::vector<i64> expected(const std::vector<i64>& in, const kiln::map_params& prm) {
  return kiln_test::cpu_expected(in, prm);
}

TEST(CudaBackend, ListsItselfAndExplainsWhenUnavailable) {
  auto ds = cuda_devices();
  ASSERT_FALSE(ds.empty()) << "devices() has no cuda entry";
  if (ds.size() == 1 && !ds.front().available) {
    const std::string reason = ds.front().reason;
    std::cout << "[ cuda     ] unavailable: " << reason << std::endl;
    ASSERT_FALSE(reason.empty());
    EXPECT_EQ(ds.front().name, "cuda");
    std::vector<i64> in = {1, 2, 3}, out(3);
    auto r = kiln::logistic_map(in, out, {61, 22, 10}, cuda_options());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, kiln::errc::backend_unavailable);
    EXPECT_NE(r.err().message.find(reason), std::string::npos) << r.err().message;
    auto buf = kiln::device_buffer::upload(in, cuda_options());
    ASSERT_FALSE(buf.ok());
    EXPECT_EQ(buf.err().code, kiln::errc::backend_unavailable);
    EXPECT_NE(buf.err().message.find(reason), std::string::npos) << buf.err().message;
    return;
  }
  for (std::size_t i = 0; i < ds.size(); ++i) {
    const auto& d = ds[i];
    std::cout << "[ cuda     ] device " << d.index << ": " << d.name << " | " << d.platform << " | "
              << d.compute_units << " SMs | " << d.memory_bytes << " bytes"
              << (d.available ? "" : " | unavailable: " + d.reason) << std::endl;
    EXPECT_EQ(d.index, static_cast<int>(i));
    EXPECT_TRUE(d.gpu);
    EXPECT_FALSE(d.name.empty());
    EXPECT_EQ(d.platform.rfind("CUDA ", 0), 0u) << d.platform;
    EXPECT_NE(d.platform.find(" / driver "), std::string::npos) << d.platform;
    if (d.available) {
      EXPECT_GT(d.compute_units, 0);
      EXPECT_GT(d.memory_bytes, 0u);
    } else {
      EXPECT_FALSE(d.reason.empty());
    }
  }
}

class Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = kiln::resolve(cuda_options());
    if (!d) GTEST_SKIP() << "cuda unavailable: " << d.err().message;
  }
};

TEST_F(Cuda, SeedValues) {
  std::vector<i64> in = {1, 2, 3}, out(3);
  auto r = kiln::logistic_map(in, out, {61, 22, 10}, cuda_options());
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(out, (std::vector<i64>{28, 25, 37}));
  EXPECT_EQ(r->backend, "cuda");
  EXPECT_EQ(r->chunks, 1u);
}

// 3M elements of ordinary memory in chunks of 2^16 + 3: 46 chunks over the staged lanes (3 slots
// each), so every slot is reused and the last chunk is short; any staging reuse hazard shows up as
// wrong elements.
TEST_F(Cuda, ManyChunksThroughTheLanesMatchTheCpuBackend) {
  const std::size_t n = 3'000'017, chunk = (std::size_t{1} << 16) + 3;
  auto in = random_inputs(n, 42);
  const kiln::map_params prm{4'294'967'291, -1'234'567'890'123, 10};
  auto want = expected(in, prm);
  std::vector<i64> out(n, 0x5a5a5a5a);
  auto r = kiln::logistic_map(in, out, prm, cuda_options(chunk, 0, true));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_TRUE(out == want) << first_difference(out, want);
  EXPECT_EQ(r->chunks, (n + chunk - 1) / chunk);
  // Ordinary memory: zero copy (the default) has no copy commands to time, only the kernel.
  if (zero_copy_on()) {
    EXPECT_EQ(r->host_to_device_s, 0);
    EXPECT_EQ(r->device_to_host_s, 0);
  } else {
    EXPECT_GT(r->host_to_device_s, 0);
    EXPECT_GT(r->device_to_host_s, 0);
  }
  EXPECT_GT(r->kernel_s, 0);
  EXPECT_GT(r->total_s, 0);
  // Without phase times: the same result, no phase measured.
  std::vector<i64> out2(n, 0x5a5a5a5a);
  auto r2 = kiln::logistic_map(in, out2, prm, cuda_options(chunk));
  ASSERT_TRUE(r2.ok()) << r2.err().message;
  EXPECT_TRUE(out2 == want) << first_difference(out2, want);
  EXPECT_EQ(r2->host_to_device_s, 0);
  EXPECT_EQ(r2->kernel_s, 0);
  EXPECT_EQ(r2->device_to_host_s, 0);
  std::cout << "[ cuda     ] " << n << " elements, " << r->chunks << " chunks: total " << r->total_s << " s, h2d "
            << r->host_to_device_s << " s, kernel " << r->kernel_s << " s, d2h " << r->device_to_host_s << " s"
            << std::endl;
}

// Ordinary memory in place: staged lanes, whose chunks stay at 2^17 elements (1 MiB) whatever
// larger bound the caller gives.
TEST_F(Cuda, InPlaceStagedChunksStaySmall) {
  const std::size_t n = 5'000'000;
  const kiln::map_params prm{6'700'417, 22, 7};
  auto data = random_inputs(n, 7);
  auto want = expected(data, prm);
  auto r = kiln::logistic_map(data, data, prm, cuda_options());
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_TRUE(data == want) << first_difference(data, want);
  EXPECT_EQ(r->chunks, (n + (std::size_t{1} << 17) - 1) >> 17);

  auto data2 = random_inputs(n, 8);
  auto want2 = expected(data2, prm);
  auto r2 = kiln::logistic_map(data2, data2, prm, cuda_options(std::size_t{1} << 22));
  ASSERT_TRUE(r2.ok()) << r2.err().message;
  EXPECT_TRUE(data2 == want2) << first_difference(data2, want2);
  EXPECT_EQ(r2->chunks, (n + (std::size_t{1} << 17) - 1) >> 17);
}

// Pinned memory in place takes the direct lane: the default chunk (2^20 elements), then chunks
// larger than the lane held so far, which makes it grow.
TEST_F(Cuda, InPlacePinnedWithDefaultAndGrowingChunks) {
  const std::size_t n = 5'000'000;
  const kiln::map_params prm{6'700'417, 22, 7};
  for (std::size_t chunk : {std::size_t{0}, std::size_t{1} << 22}) {
    auto block = kiln::host_memory::allocate_pinned(n);
    ASSERT_TRUE(block.ok()) << block.err().message;
    ASSERT_TRUE(block->pinned()) << "host_memory is not pinned although CUDA is usable";
    auto data = random_inputs(n, 9 + chunk);
    std::copy(data.begin(), data.end(), block->data());
    auto want = expected(data, prm);
    auto r = kiln::logistic_map(block->span(), block->span(), prm, cuda_options(chunk));
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_TRUE(std::equal(want.begin(), want.end(), block->data())) << "chunk " << chunk;
    const std::size_t used = chunk ? chunk : std::size_t{1} << 20;
    EXPECT_EQ(r->chunks, (n + used - 1) / used);
  }
}

// One side page-locked, the other ordinary: a staged job whose kernel (zero copy) reads or writes
// the caller's pinned array itself at full width and the other side through staging (narrowed
// where it fits), or, with KILN_ZERO_COPY=0, copies each side its own way. Chunks with a short
// last one, against the reference; the device computes all of it, so every chunk's phases are timed.
TEST_F(Cuda, OnePinnedSideAndOneOrdinarySide) {
  const std::size_t n = 300'007, chunk = 65'536;
  auto in = random_inputs(n, 5);
  for (std::size_t i = 0; i < n; i += 3) in[i] %= 100'000;  // some chunks narrow, some wide
  const kiln::map_params prm{4'294'967'291, 987'654'321, 10};
  const auto want = expected(in, prm);
  auto block_in = kiln::host_memory::allocate_pinned(n), block_out = kiln::host_memory::allocate_pinned(n);
  ASSERT_TRUE(block_in.ok() && block_out.ok());
  ASSERT_TRUE(block_in->pinned() && block_out->pinned());
  std::copy(in.begin(), in.end(), block_in->data());
  kiln::run_options o = cuda_options(chunk, 0, true);
  o.host_share = false;
  auto check_phases = [](const kiln::run_stats& r) {
    EXPECT_GT(r.kernel_s, 0);
    if (zero_copy_on()) {
      EXPECT_EQ(r.host_to_device_s, 0);
      EXPECT_EQ(r.device_to_host_s, 0);
    } else {
      EXPECT_GT(r.host_to_device_s, 0);
      EXPECT_GT(r.device_to_host_s, 0);
    }
  };
  // Pinned in, ordinary out.
  std::vector<i64> out(n, 0x5a5a5a5a);
  auto r1 = kiln::logistic_map(block_in->span(), out, prm, o);
  ASSERT_TRUE(r1.ok()) << r1.err().message;
  EXPECT_TRUE(out == want) << first_difference(out, want);
  check_phases(*r1);
  // Ordinary in, pinned out.
  std::fill(block_out->data(), block_out->data() + n, 0x5a5a5a5a);
  auto r2 = kiln::logistic_map(in, block_out->span(), prm, o);
  ASSERT_TRUE(r2.ok()) << r2.err().message;
  EXPECT_TRUE(std::equal(want.begin(), want.end(), block_out->data())) << "ordinary in, pinned out";
  check_phases(*r2);
}

TEST_F(Cuda, ResidentBufferRunsAndTimesTheKernelAlone) {
  // Larger than one chunk, so upload and download also go through the lanes in pieces.
  const std::size_t n = 2'500'000;
  auto in = random_inputs(n, 99);
  auto buf = kiln::device_buffer::upload(in, cuda_options());
  ASSERT_TRUE(buf.ok()) << buf.err().message;
  ASSERT_EQ(buf->size(), n);
  EXPECT_EQ(buf->device().backend, kiln::backend_kind::cuda);
  auto r1 = buf->run({6'700'417, 22, 4});
  ASSERT_TRUE(r1.ok()) << r1.err().message;
  EXPECT_GT(r1->kernel_s, 0);
  EXPECT_EQ(r1->host_to_device_s, 0);
  EXPECT_EQ(r1->device_to_host_s, 0);
  EXPECT_GT(r1->total_s, 0);
  auto r2 = buf->run({6'700'417, 22, 6});
  ASSERT_TRUE(r2.ok()) << r2.err().message;
  std::vector<i64> out(n);
  ASSERT_TRUE(buf->download(out).ok());
  auto want = expected(in, {6'700'417, 22, 10});
  EXPECT_TRUE(out == want) << first_difference(out, want);
  std::cout << "[ cuda     ] resident kernel over " << n << " elements, 4 iterations: " << r1->kernel_s << " s"
            << std::endl;
}

TEST_F(Cuda, EmptyResidentBuffer) {
  std::vector<i64> none;
  auto buf = kiln::device_buffer::upload(none, cuda_options());
  ASSERT_TRUE(buf.ok()) << buf.err().message;
  EXPECT_EQ(buf->size(), 0u);
  EXPECT_TRUE(buf->run({61, 22, 10}).ok());
  EXPECT_TRUE(buf->download(none).ok());
}

TEST_F(Cuda, OutOfRangeDeviceIsInvalidArgument) {
  const int count = static_cast<int>(cuda_devices().size());
  std::vector<i64> in = {1, 2, 3}, out(3);
  for (int bad : {count, count + 5, -2}) {
    auto r = kiln::logistic_map(in, out, {61, 22, 10}, cuda_options(0, bad));
    ASSERT_FALSE(r.ok()) << "device " << bad;
    EXPECT_EQ(r.err().code, kiln::errc::invalid_argument) << r.err().message;
    auto buf = kiln::device_buffer::upload(in, cuda_options(0, bad));
    ASSERT_FALSE(buf.ok()) << "device " << bad;
    EXPECT_EQ(buf.err().code, kiln::errc::invalid_argument) << buf.err().message;
  }
}

// A run over several devices as all_devices makes it on a machine of several GPUs (where
// run_decoded routes runs through buffers to run_over_devices), here cut into slices of one GPU
// (device 0 twice, weights 1 and 3): a kernel of two arrays and two outputs that reads `index`,
// in place too, and its faults, as one device gives them; the built-in map at many iterations
// (through buffers, in rounds) as the cpu backend gives it.
TEST_F(Cuda, SlicesOfARunOverDevicesGiveTheOneDevicesResults) {
  if (auto s = kiln::detail::nvrtc_available(); !s.ok()) GTEST_SKIP() << s.err().message;
  using kiln::op;
  auto w = [](op o) { return static_cast<i64>(o); };
  const std::size_t n = 1'000'003;
  const auto c = make_index_kernel_case(n);
  const auto& x = c.x;
  const auto& y = c.y;
  const auto& want0 = c.want0;
  const auto& want1 = c.want1;
  const auto args = c.args();
  auto dk = kiln::detail::decode_kernel(c.kernel(), args);
  ASSERT_TRUE(dk.ok()) << dk.err().message;
  std::vector<kiln::device_info> twice(2, cuda_devices().front());
  twice[0].compute_units = 1;
  twice[1].compute_units = 3;
  const auto on_cuda = cuda_options(0, 0);
  std::vector<i64> got0(n, -1), got1(n, -1);
  bool placed = false;
  auto r = kiln::detail::run_over_devices(*dk, args, std::vector<std::span<i64>>{got0, got1}, on_cuda,
                                          kiln::backend_kind::cuda, twice, placed);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_TRUE(placed);
  EXPECT_TRUE(got0 == want0) << first_difference(got0, want0);
  EXPECT_TRUE(got1 == want1) << first_difference(got1, want1);
  std::vector<i64> xs = x, ys = y;
  const std::vector<kiln::arg> in_place{kiln::arg::of_array(xs), kiln::arg::of_array(ys)};
  r = kiln::detail::run_over_devices(*dk, in_place, std::vector<std::span<i64>>{ys, xs}, on_cuda,
                                     kiln::backend_kind::cuda, twice, placed);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_TRUE(ys == want0) << first_difference(ys, want0);
  EXPECT_TRUE(xs == want1) << first_difference(xs, want1);
  // div(x, y) with y = 0 at two elements of the second slice ([250000, 1000003)): the lower one;
  // then one in the first slice as well: that one, as one device names it.
  const std::vector<i64> div{w(op::arg), 0, w(op::arg), 1, w(op::div)};
  const kiln::kernel kd{div, 2, 1, 0, 1};
  std::vector<i64> nonzero(n, 3);
  nonzero[900'000] = 0;
  nonzero[600'000] = 0;
  std::vector<i64> out(n);
  const std::vector<std::span<i64>> outs{out};
  for (const std::size_t first : {std::size_t{600'000}, std::size_t{100'000}}) {
    nonzero[first] = 0;
    const std::vector<kiln::arg> div_args{kiln::arg::of_array(x), kiln::arg::of_array(nonzero)};
    auto dd = kiln::detail::decode_kernel(kd, div_args);
    ASSERT_TRUE(dd.ok());
    r = kiln::detail::run_over_devices(*dd, div_args, outs, on_cuda, kiln::backend_kind::cuda, twice, placed);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().message, "element " + std::to_string(first) + ": division by zero");
  }
  // The built-in map beyond the rounds' threshold: through buffers, slice by slice.
  const kiln::map_params prm{6'700'417, 22, 5'000};
  auto in = random_inputs(300'007, 9);
  const auto want = expected(in, prm);
  std::vector<i64> mapped(in.size());
  const kiln::arg map_args[] = {kiln::arg::of_array(in), kiln::arg::of_scalar(prm.p), kiln::arg::of_scalar(prm.mu)};
  auto dm = kiln::detail::decode_kernel(kiln::logistic_kernel(prm.iterations), map_args);
  ASSERT_TRUE(dm.ok());
  r = kiln::detail::run_over_devices(*dm, map_args, std::vector<std::span<i64>>{mapped}, on_cuda,
                                     kiln::backend_kind::cuda, twice, placed);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_TRUE(mapped == want) << first_difference(mapped, want);
}

// Every usable GPU shares one run: ordinary and pinned memory, with and without the host's
// share, chunks small enough that every device's lanes cycle. On a one-GPU machine this is the
// one device; the same code path splits the lanes among several where there are more.
TEST_F(Cuda, AllDevicesShareOneRun) {
  std::vector<std::string> names;
  for (const auto& d : cuda_devices())
    if (d.available) names.push_back(d.name);
  std::string joined;
  for (const auto& name : names) joined += (joined.empty() ? "" : " + ") + name;
  const std::size_t n = 3'000'017, chunk = (std::size_t{1} << 15) + 5;
  const kiln::map_params prm{4'294'967'291, 987'654'321'987, 10};
  auto in = random_inputs(n, 77);
  auto want = expected(in, prm);
  auto block_in = kiln::host_memory::allocate_pinned(n), block_out = kiln::host_memory::allocate_pinned(n);
  ASSERT_TRUE(block_in.ok() && block_out.ok());
  std::copy(in.begin(), in.end(), block_in->data());
  for (bool pinned : {false, true})
    for (bool share : {true, false}) {
      auto o = cuda_options(chunk, kiln::all_devices);
      o.host_share = share;
      std::vector<i64> out(n, 0x5a5a5a5a);
      std::fill(block_out->data(), block_out->data() + n, 0x5a5a5a5a);
      auto r = pinned ? kiln::logistic_map(block_in->span(), block_out->span(), prm, o)
                      : kiln::logistic_map(in, out, prm, o);
      ASSERT_TRUE(r.ok()) << r.err().message;
      if (pinned) out.assign(block_out->data(), block_out->data() + n);
      EXPECT_TRUE(out == want) << "pinned " << pinned << ", share " << share << ": " << first_difference(out, want);
      EXPECT_EQ(r->device, joined);
      // Ranges are whole chunks without the host's share; with it, the pinned job's host workers
      // take smaller pieces, and a staged lane's pieces fit what is left of its oldest chunk's run.
      if (share) {
        EXPECT_GE(r->chunks, (n + chunk - 1) / chunk);
      } else {
        EXPECT_EQ(r->chunks, (n + chunk - 1) / chunk) << "pinned " << pinned << ", share " << share;
      }
      if (!share) {
        EXPECT_EQ(r->host_elements, 0u);
      }
      std::cout << "[ cuda all ] " << names.size() << " device(s), pinned " << pinned << ", share " << share
                << ": " << r->total_s << " s, host " << r->host_elements << " of " << n << std::endl;
    }
}

// Threads contend for one device's lanes with chunks small enough that each call cycles them.
TEST_F(Cuda, ManyThreadsShareTheLanes) {
  constexpr int threads = 8;
  std::vector<std::vector<i64>> ins(threads), wants(threads), outs(threads);
  std::vector<kiln::map_params> prms(threads);
  for (int t = 0; t < threads; ++t) {
    ins[t] = random_inputs(200'000 + static_cast<std::size_t>(t) * 1'001, 1000 + static_cast<std::uint64_t>(t));
    prms[t] = {1'000'003 + t * 7'919, 22 - 5 * t, 1 + t};
    wants[t] = expected(ins[t], prms[t]);
    outs[t].assign(ins[t].size(), 0);
  }
  std::vector<int> ok(threads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      // Every other thread spreads its run over all devices, so their locks interleave.
      auto r = kiln::logistic_map(ins[t], outs[t], prms[t],
                                  cuda_options(std::size_t{1} << 14, t % 2 ? kiln::all_devices : 0));
      ok[t] = r.ok() && outs[t] == wants[t];
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) EXPECT_TRUE(ok[t]) << "thread " << t << ": " << first_difference(outs[t], wants[t]);
}

// Kernels compile with NVRTC, which needs no GPU: every operation of the CUDA dialect (nested
// branches and loops, the lowered rem of a product, edge literals) compiles for the oldest and
// newest architectures this build targets (so here and in CI, where the GPU tests skip, the
// generated CUDA C is still checked by the compiler).
TEST(CudaNvrtc, CompilesEveryOperationForEachArchitecture) {
  if (auto s = kiln::detail::nvrtc_available(); !s.ok()) GTEST_SKIP() << s.err().message;
  using kiln::op;
  auto w = [](op o) { return static_cast<i64>(o); };
  // Arguments (x, p0, p1), scalars p0 = 3 and p1 = 5:
  //   if not(x < p0) and x != 3, do: neg(rem(div(x * p0 + p1 - INT64_MIN, p1), x)) - 7,
  //   else: max(abs(x), min(x, p1))
  // then, with that as y: Enum.reduce(1..p1, y, fn i, acc -> rem(acc * (acc + 1) * p1, p0) + band(i, 3)
  //   + bsl(1, i) - bsr(acc, 2) + bxor(bor(acc, i), bnot(i)) + Integer.pow(2, i) + index end),
  // the first rem lowered (a product by a small scalar divisor), and a fail in a dead branch.
  const i64 t = w(op::if_then), e = w(op::if_else), end = w(op::if_end);
  const std::vector<i64> code{
      w(op::arg), 0, w(op::arg), 1, w(op::lt), w(op::logical_not), t, w(op::arg), 0, w(op::literal), 3, w(op::ne), e,
      w(op::boolean), 0, end, t,
      w(op::arg), 0, w(op::arg), 1, w(op::mul), w(op::arg), 2, w(op::add), w(op::literal),
      std::numeric_limits<i64>::min(), w(op::sub), w(op::arg), 2, w(op::div), w(op::arg), 0,
      w(op::rem), w(op::neg), w(op::literal), 7, w(op::sub), e,
      w(op::arg), 0, w(op::abs), w(op::arg), 0, w(op::arg), 2, w(op::min), w(op::max), end,
      w(op::local_set), 0,
      w(op::literal), 1, w(op::arg), 2, w(op::literal), 1, w(op::loop_begin), 1,
      w(op::local_get), 0, w(op::local_get), 0, w(op::literal), 1, w(op::add), w(op::mul), w(op::arg), 2, w(op::mul),
      w(op::arg), 1, w(op::rem),
      w(op::local_get), 1, w(op::literal), 3, w(op::band), w(op::add),
      w(op::literal), 1, w(op::local_get), 1, w(op::bsl), w(op::add),
      w(op::local_get), 0, w(op::literal), 2, w(op::bsr), w(op::sub),
      w(op::local_get), 0, w(op::local_get), 1, w(op::bor), w(op::local_get), 1, w(op::bnot), w(op::bxor), w(op::add),
      w(op::literal), 2, w(op::local_get), 1, w(op::pow), w(op::add), w(op::index), w(op::add),
      w(op::local_set), 0, w(op::loop_end),
      w(op::boolean), 1, t, w(op::local_get), 0, e, w(op::fail), 0, end};
  const kiln::arg args[] = {kiln::arg::of_array({}), kiln::arg::of_scalar(3), kiln::arg::of_scalar(5)};
  auto decoded = kiln::detail::decode_kernel(kiln::kernel{code, 3, 1, 2, 1}, args);
  ASSERT_TRUE(decoded.ok()) << decoded.err().message;
  bool lowered = false;
  for (const auto& ins : decoded->code) lowered |= ins.op == static_cast<i64>(kiln::detail::lowered_op::rem_prod);
  EXPECT_TRUE(lowered) << "rem of a product by a small scalar is lowered";
  const std::string source = kiln::detail::kernel_source(*decoded, kiln::detail::kernel_dialect::cuda);
  for (int arch : {75, 90}) {
    auto cubin = kiln::detail::compile_cubin(source, arch);
    ASSERT_TRUE(cubin.ok()) << "sm_" << arch << ": " << cubin.err().message << "\n" << source;
    ASSERT_GT(cubin->size(), 4u);
    EXPECT_EQ(cubin->substr(0, 4), "\x7f" "ELF") << "sm_" << arch << ": a cubin is an ELF image";
  }
}

TEST(CudaNvrtc, ACompileErrorCarriesTheLog) {
  if (auto s = kiln::detail::nvrtc_available(); !s.ok()) GTEST_SKIP() << s.err().message;
  auto r = kiln::detail::compile_cubin("extern \"C\" __global__ void kiln_program() { undeclared_name = 1; }", 90);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, kiln::errc::device_error);
  EXPECT_NE(r.err().message.find("nvrtcCompileProgram failed"), std::string::npos) << r.err().message;
  EXPECT_NE(r.err().message.find("undeclared_name"), std::string::npos) << r.err().message;
}

// Random kernels (the generator of tests/core/kernel_reference.hpp: every operation, branches,
// loops, locals, exact rem of products, edge literals) compile with NVRTC for the oldest
// architecture this build targets: the CUDA C kernel_source writes for them is valid, GPU or not.
TEST(CudaNvrtc, RandomKernelsCompile) {
  if (auto s = kiln::detail::nvrtc_available(); !s.ok()) GTEST_SKIP() << s.err().message;
  std::mt19937_64 rng(31);
  kernel_generator gen(rng);
  std::size_t lowered = 0;
  for (int round = 0; round < 16; ++round) {
    random_kernel g = gen.make(1, rng() % 3, 1, 2 + round % 3, round % 2 == 0);
    g.iterations = round % 3;
    std::vector<kiln::arg> args;
    for (std::size_t a = 0; a < g.array.size(); ++a)
      args.push_back(g.array[a] ? kiln::arg::of_array({}) : kiln::arg::of_scalar(g.scalars[a]));
    auto decoded = kiln::detail::decode_kernel(g.view(), args);
    ASSERT_TRUE(decoded.ok()) << decoded.err().message;
    for (const auto& ins : decoded->code) lowered += ins.op == static_cast<i64>(kiln::detail::lowered_op::rem_prod);
    const std::string source = kiln::detail::kernel_source(*decoded, kiln::detail::kernel_dialect::cuda);
    auto cubin = kiln::detail::compile_cubin(source, 75);
    ASSERT_TRUE(cubin.ok()) << "round " << round << ": " << cubin.err().message << "\n" << source;
    EXPECT_EQ(cubin->substr(0, 4), "\x7f" "ELF");
  }
  EXPECT_GT(lowered, 0u) << "some kernels hold an exact rem of a product";
}

// A cubin compiled once is read from the disk cache by the next load, GPU or not (the load is
// the caller's: here it only looks at the image). An image the load refuses is dropped,
// compiled afresh and stored again; a compile error stores nothing.
TEST(CudaNvrtc, CompiledCubinsAreKeptOnDisk) {
  if (auto s = kiln::detail::nvrtc_available(); !s.ok()) GTEST_SKIP() << s.err().message;
  std::string pattern = (std::filesystem::temp_directory_path() / "kiln-cubin-cache-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const char* previous = std::getenv("KILN_CACHE_DIR");
  const std::string restore = previous ? previous : "";
  ::setenv("KILN_CACHE_DIR", pattern.c_str(), 1);
  const std::string source = "extern \"C\" __global__ void kiln_program(long long* x) { x[threadIdx.x] += 41; }";
  std::vector<std::string> seen;
  auto take = [&](const std::string& cubin) -> kiln::status {
    seen.push_back(cubin);
    return {};
  };
  const auto c0 = kiln::detail::kernel_cache_stats();
  ASSERT_TRUE(kiln::detail::load_cubin(source, 75, take).ok());
  const auto c1 = kiln::detail::kernel_cache_stats();
  EXPECT_EQ(c1.misses - c0.misses, 1u);
  EXPECT_EQ(c1.stores - c0.stores, 1u);
  ASSERT_TRUE(kiln::detail::load_cubin(source, 75, take).ok());
  const auto c2 = kiln::detail::kernel_cache_stats();
  EXPECT_EQ(c2.hits - c1.hits, 1u) << "the second load comes from the disk";
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], seen[1]);
  EXPECT_EQ(seen[0].substr(0, 4), "\x7f" "ELF");
  ASSERT_TRUE(kiln::detail::load_cubin(source, 90, take).ok());
  EXPECT_EQ(kiln::detail::kernel_cache_stats().misses - c2.misses, 1u) << "another architecture is another entry";

  // The driver refuses the cached image (once): compiled again, loaded, stored again.
  int refusals = 1;
  auto picky = [&](const std::string& cubin) -> kiln::status {
    seen.push_back(cubin);
    if (refusals-- > 0) return kiln::make_error(kiln::errc::device_error, "cudaLibraryLoadData failed: refused");
    return {};
  };
  const auto c3 = kiln::detail::kernel_cache_stats();
  seen.clear();
  ASSERT_TRUE(kiln::detail::load_cubin(source, 75, picky).ok());
  const auto c4 = kiln::detail::kernel_cache_stats();
  EXPECT_EQ(seen.size(), 2u) << "the cached image, then a fresh one";
  EXPECT_EQ(c4.hits - c3.hits, 1u);
  EXPECT_EQ(c4.stores - c3.stores, 1u);
  // A load that fails on a fresh image too fails the call, and stores nothing.
  auto never = [](const std::string&) -> kiln::status { return kiln::make_error(kiln::errc::device_error, "no"); };
  EXPECT_FALSE(kiln::detail::load_cubin(source + " ", 75, never).ok());
  EXPECT_FALSE(kiln::detail::load_cubin("not CUDA C", 75, take).ok());
  EXPECT_EQ(kiln::detail::kernel_cache_stats().stores, c4.stores);

  if (previous) ::setenv("KILN_CACHE_DIR", restore.c_str(), 1);
  else ::unsetenv("KILN_CACHE_DIR");
  std::error_code ec;
  std::filesystem::remove_all(pattern, ec);
}

}  // namespace
