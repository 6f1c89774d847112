// OpenCL-specific behaviour: device listing, the chunked staging lanes, run_stats, device indices and resident buffers.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "../core/index_kernel_case.hpp"
#include "backend_test_support.hpp"
#include "core/kernel_ir.hpp"
#include "kiln/kiln.hpp"

namespace {

using namespace kiln_test;

std::vector<kiln::device_info> opencl_devices() { return devices_of(kiln::backend_kind::opencl); }

kiln::run_options opencl(std::size_t chunk = 0, int device = 0, bool phase_times = false) {
  return options_for("opencl", chunk, device, phase_times);
}

class OpenCL : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = kiln::resolve(opencl());
    if (!d) GTEST_SKIP() << "opencl unavailable: " << d.err().message;
    device_ = d.value();
  }
  kiln::device_info device_;
};

TEST(OpenCLDevices, ListedWithNamesPlatformsAndGpusFirst) {
  auto ds = opencl_devices();
  ASSERT_FALSE(ds.empty()) << "every backend lists at least one entry";
  bool any_available = false;
  for (const auto& d : ds) any_available |= d.available;
  if (!any_available) GTEST_SKIP() << "no usable OpenCL device: " << ds.front().reason;

  bool seen_non_gpu = false;
  for (std::size_t i = 0; i < ds.size(); ++i) {
    const auto& d = ds[i];
    EXPECT_EQ(d.index, static_cast<int>(i));
    EXPECT_FALSE(d.name.empty());
    EXPECT_FALSE(d.platform.empty()) << d.name;
    if (d.available) {
      EXPECT_TRUE(d.reason.empty()) << d.name << ": " << d.reason;
      EXPECT_GT(d.compute_units, 0) << d.name;
      EXPECT_GT(d.memory_bytes, 0u) << d.name;
    } else {
      EXPECT_FALSE(d.reason.empty()) << d.name;
    }
    // "auto" takes the first available GPU, so GPUs must lead the list.
    if (!d.gpu) seen_non_gpu = true;
    EXPECT_FALSE(d.gpu && seen_non_gpu) << "GPU " << d.name << " listed after a non-GPU device";
  }
  // Probing is once per process: a second listing is identical.
  auto again = opencl_devices();
  ASSERT_EQ(again.size(), ds.size());
  for (std::size_t i = 0; i < ds.size(); ++i) {
    EXPECT_EQ(again[i].name, ds[i].name);
    EXPECT_EQ(again[i].available, ds[i].available);
  }
}

TEST_F(OpenCL, ResolvesToAnOpenCLDevice) {
  EXPECT_EQ(device_.backend, kiln::backend_kind::opencl);
  EXPECT_TRUE(device_.available);
  EXPECT_EQ(device_.index, 0);
}

TEST_F(OpenCL, ManyChunksMatchTheReferenceOnRepeatedCalls) {
  const auto in = random_inputs(100000, 7);
  const kiln::map_params prm{4294967291, -1234567, 9};
  const auto want = reference(in, prm);
  // Repeated calls reuse the device's program and queues; each must still be right and, when
  // asked (every other call), timed phase by phase.
  for (int call = 0; call < 4; ++call) {
    const bool phases = call % 2 == 1;
    std::vector<i64> out(in.size(), -1);
    auto r = kiln::logistic_map(in, out, prm, opencl(1000, 0, phases));
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_EQ(out, want) << "call " << call;
    EXPECT_EQ(r->chunks, 100u);
    EXPECT_EQ(r->backend, "opencl");
    EXPECT_EQ(r->device, device_.name);
    EXPECT_GT(r->total_s, 0.0);
    if (phases) {
      // Every phase of 100 chunks has a measured, positive time.
      EXPECT_GT(r->host_to_device_s, 0.0);
      EXPECT_GT(r->kernel_s, 0.0);
      EXPECT_GT(r->device_to_host_s, 0.0);
    } else {
      EXPECT_EQ(r->host_to_device_s, 0.0);
      EXPECT_EQ(r->kernel_s, 0.0);
      EXPECT_EQ(r->device_to_host_s, 0.0);
    }
  }
}

TEST_F(OpenCL, UnevenChunksAndDefaultChunking) {
  const auto in = random_inputs(100000, 11);
  const kiln::map_params prm{6700417, 22, 10};
  const auto want = reference(in, prm);

  std::vector<i64> out(in.size());
  auto r = kiln::logistic_map(in, out, prm, opencl(999));  // the last chunk is short
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->chunks, 101u);
  EXPECT_EQ(out, want);

  std::vector<i64> out2(in.size());
  auto r2 = kiln::logistic_map(in, out2, prm, opencl());
  ASSERT_TRUE(r2.ok()) << r2.err().message;
  EXPECT_EQ(r2->chunks, 1u);  // 100000 elements are far below the default chunk
  EXPECT_EQ(out2, want);

  // A chunk larger than the input is one chunk.
  std::vector<i64> out3(in.size());
  auto r3 = kiln::logistic_map(in, out3, prm, opencl(1u << 30));
  ASSERT_TRUE(r3.ok()) << r3.err().message;
  EXPECT_EQ(r3->chunks, 1u);
  EXPECT_EQ(out3, want);
}

TEST_F(OpenCL, InPlaceAcrossManyChunks) {
  auto data = random_inputs(50001, 3);
  const kiln::map_params prm{(i64{1} << 31) - 1, std::numeric_limits<i64>::min(), 4};
  const auto want = reference(data, prm);
  auto r = kiln::logistic_map(data, data, prm, opencl(1000));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->chunks, 51u);
  EXPECT_EQ(data, want);
}

// The staging lanes are cached per device: allocated by the first call that needs them, grown
// when a later call wants larger chunks, and reused otherwise. The chunk counts show the chunk each
// call really used, so staging that failed to grow would show up as more chunks than asked for.
TEST_F(OpenCL, StagingLanesGrowAndAreReused) {
  const auto in = random_inputs(600000, 17);
  const kiln::map_params prm{6700417, 22, 10};
  const auto want = reference(in, prm);
  struct step {
    std::size_t chunk, chunks;
  };
  // Small chunks first, then larger than any slot so far (twice), then small again (the grown
  // slots serve them), then the default (2^18 elements where one thread drives the slots, as for
  // GPUs; 2^19 where each lane has its own, as for CPU devices; KILN_OPENCL_PIPELINE overrides),
  // then a chunk that is the whole input.
  const char* pipeline = std::getenv("KILN_OPENCL_PIPELINE");
  const bool driven = pipeline ? std::string(pipeline) == "driven" : device_.gpu;
  const std::size_t default_chunks = driven ? 3 : 2;
  const step steps[] = {{1000, 600}, {150000, 4}, {250000, 3}, {1000, 600}, {0, default_chunks}, {600000, 1}, {250000, 3}};
  for (const auto& st : steps) {
    std::vector<i64> out(in.size(), -1);
    auto r = kiln::logistic_map(in, out, prm, opencl(st.chunk, 0, true));
    ASSERT_TRUE(r.ok()) << "chunk " << st.chunk << ": " << r.err().message;
    EXPECT_EQ(r->chunks, st.chunks) << "chunk " << st.chunk;
    EXPECT_EQ(out, want) << "chunk " << st.chunk;
    EXPECT_GT(r->host_to_device_s, 0.0);
    EXPECT_GT(r->kernel_s, 0.0);
    EXPECT_GT(r->device_to_host_s, 0.0);
  }
}

// From one chunk to several per lane (up to 16 lanes of 3 slots): every count drains its slots in
// order, out of place and in place.
TEST_F(OpenCL, ChunkCountsAroundTheLaneSizes) {
  const kiln::map_params prm{(i64{1} << 32) - 5, -22, 7};
  for (std::size_t chunks : {1, 2, 3, 4, 5, 7, 9, 16, 17, 47, 48, 49, 97}) {
    const std::size_t chunk = 1000 + chunks;
    const auto in = random_inputs(chunk * (chunks - 1) + 17 + chunks, 40 + chunks);  // the last chunk is short
    const auto want = reference(in, prm);
    std::vector<i64> out(in.size(), -1);
    auto r = kiln::logistic_map(in, out, prm, opencl(chunk));
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_EQ(r->chunks, chunks);
    EXPECT_EQ(out, want) << chunks << " chunks";
    auto data = in;
    ASSERT_TRUE(kiln::logistic_map(data, data, prm, opencl(chunk)).ok());
    EXPECT_EQ(data, want) << chunks << " chunks, in place";
  }
}

// Uploads and downloads of resident buffers larger than the default chunk go through the lanes in
// several chunks, also after the staging has grown in between.
TEST_F(OpenCL, LargeResidentBufferThroughTheLanes) {
  const auto in = random_inputs((std::size_t{1} << 20) * 2 + 12345, 23);
  auto buf = kiln::device_buffer::upload(in, opencl());
  ASSERT_TRUE(buf.ok()) << buf.err().message;
  std::vector<i64> out(in.size(), 0);
  ASSERT_TRUE(buf->download(out).ok());
  EXPECT_EQ(out, in);

  // A run with other data in between uses the same staging; the resident data stays.
  const auto other = random_inputs(300000, 29);
  std::vector<i64> other_out(other.size());
  const kiln::map_params prm{1000003, 5, 3};
  ASSERT_TRUE(kiln::logistic_map(other, other_out, prm, opencl(300000)).ok());
  EXPECT_EQ(other_out, reference(other, prm));

  ASSERT_TRUE(buf->run(prm).ok());
  ASSERT_TRUE(buf->download(out).ok());
  EXPECT_EQ(out, reference(in, prm));
}

TEST_F(OpenCL, InvalidDeviceIndexIsInvalidArgument) {
  std::vector<i64> in = {1, 2, 3}, out(3);
  const int count = static_cast<int>(opencl_devices().size());
  for (int bad : {-2, count, count + 100}) {
    auto r = kiln::logistic_map(in, out, {61, 22, 10}, opencl(0, bad));
    ASSERT_FALSE(r.ok()) << "device " << bad;
    EXPECT_EQ(r.err().code, kiln::errc::invalid_argument) << r.err().message;
    auto b = kiln::device_buffer::upload(in, opencl(0, bad));
    ASSERT_FALSE(b.ok()) << "device " << bad;
    EXPECT_EQ(b.err().code, kiln::errc::invalid_argument) << b.err().message;
  }
}

// all_devices runs on the one usable device, or is refused where there are several (only CUDA
// spreads one run over several devices).
TEST_F(OpenCL, AllDevicesRunsOnTheOnlyDeviceOrIsRefused) {
  std::size_t usable = 0;
  for (const auto& d : opencl_devices()) usable += d.available;
  const kiln::map_params prm{6'700'417, 22, 10};
  auto in = random_inputs(100'003, 17);
  std::vector<i64> out(in.size());
  auto r = kiln::logistic_map(in, out, prm, opencl(1000, kiln::all_devices));
  if (usable > 1) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, kiln::errc::invalid_argument);
    EXPECT_NE(r.err().message.find("only the cuda backend"), std::string::npos) << r.err().message;
  } else {
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_EQ(r->device, device_.name);
    EXPECT_TRUE(out == reference(in, prm)) << first_difference(out, reference(in, prm));
  }
}

TEST_F(OpenCL, ResidentBufferRoundTrip) {
  const auto in = random_inputs(70001, 5);
  auto buf = kiln::device_buffer::upload(in, opencl());
  ASSERT_TRUE(buf.ok()) << buf.err().message;
  EXPECT_EQ(buf->size(), in.size());
  EXPECT_EQ(buf->device().backend, kiln::backend_kind::opencl);
  EXPECT_EQ(buf->device().name, device_.name);

  // Untouched data comes back bit for bit.
  std::vector<i64> out(in.size(), 0);
  ASSERT_TRUE(buf->download(out).ok());
  EXPECT_EQ(out, in);

  const kiln::map_params prm{1000003, -7, 6};
  auto r = buf->run(prm);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->backend, "opencl");
  EXPECT_GE(r->chunks, 1u);
  EXPECT_GT(r->kernel_s, 0.0);
  EXPECT_EQ(r->host_to_device_s, 0.0);  // the data stays on the device
  EXPECT_EQ(r->device_to_host_s, 0.0);
  ASSERT_TRUE(buf->download(out).ok());
  EXPECT_EQ(out, reference(in, prm));

  // Zero iterations leave the device data alone.
  ASSERT_TRUE(buf->run({1000003, -7, 0}).ok());
  std::vector<i64> again(in.size(), 0);
  ASSERT_TRUE(buf->download(again).ok());
  EXPECT_EQ(again, out);
}

TEST_F(OpenCL, EmptyResidentBuffer) {
  auto buf = kiln::device_buffer::upload({}, opencl());
  ASSERT_TRUE(buf.ok()) << buf.err().message;
  EXPECT_EQ(buf->size(), 0u);
  EXPECT_TRUE(buf->run({61, 22, 10}).ok());
  std::vector<i64> none;
  EXPECT_TRUE(buf->download(none).ok());
}

TEST_F(OpenCL, ConcurrentChunkedRunsAndResidentBuffers) {
  // Runs on one device are serialised and share the device's staging lanes: no call may see
  // another's chunks, whatever chunk sizes they ask for (the staging grows between them).
  constexpr int threads = 8;
  std::vector<int> ok(threads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      const auto in = random_inputs(20000 + static_cast<std::size_t>(t) * 331, 100 + static_cast<std::uint64_t>(t));
      const kiln::map_params prm{97 + t * 100003, 22 - 5 * t, 1 + t % 7};
      const auto want = reference(in, prm);
      bool good = true;
      for (int rep = 0; rep < 3; ++rep) {
        std::vector<i64> out(in.size());
        auto r = kiln::logistic_map(in, out, prm, opencl(777 + static_cast<std::size_t>(t)));
        good = good && r.ok() && out == want;
      }
      auto buf = kiln::device_buffer::upload(in, opencl());
      good = good && buf.ok() && buf->run(prm).ok();
      std::vector<i64> out(in.size());
      good = good && buf.ok() && buf->download(out).ok() && out == want;
      ok[t] = good;
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) EXPECT_TRUE(ok[t]) << "thread " << t;
}

}  // namespace

// Jobs that each bring a chunk wider than any before, with a short last chunk that may run first:
// the launch pattern that aborted PoCL (3.1) when a job's launches had different widths (see
// enqueue_over in the backend); the race is rare, so beyond surviving, every result is checked.
TEST_F(OpenCL, ChunksOfGrowingWidthsWithShortLastChunks) {
  for (std::size_t chunk = 300; chunk < 300 + 60 * 97; chunk += 97) {
    std::vector<i64> in(2 * chunk + 1 + chunk % 7);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<i64>(i * 2654435761u % 100000) - 50000;
    const kiln::map_params prm{6700417, 22, 3};
    std::vector<i64> out(in.size());
    ASSERT_TRUE(kiln::logistic_map(in, out, prm, opencl(chunk)).ok()) << chunk;
    ASSERT_EQ(out, reference(in, prm)) << chunk;
  }
}

namespace {

// A kernel over resident buffers counts `index` and its faults from the buffers' place in the run
// (run_over_devices' slices): here two slices of one OpenCL device give the one run's results,
// and faults as one device names them (the lower of two in the second slice, then one in the
// first).
TEST_F(OpenCL, SlicesOfARunCountIndexFromTheirPlace) {
  using kiln::op;
  auto w = [](op o) { return static_cast<i64>(o); };
  const std::size_t n = 50'021;
  const auto c = make_index_kernel_case(n);
  const auto& x = c.x;
  const auto& want0 = c.want0;
  const auto& want1 = c.want1;
  const auto args = c.args();
  auto dk = kiln::detail::decode_kernel(c.kernel(), args);
  ASSERT_TRUE(dk.ok()) << dk.err().message;
  const std::vector<kiln::device_info> twice(2, device_);
  std::vector<i64> got0(n, -1), got1(n, -1);
  bool placed = false;
  auto r = kiln::detail::run_over_devices(*dk, args, std::vector<std::span<i64>>{got0, got1}, opencl(0, device_.index),
                                          kiln::backend_kind::opencl, twice, placed);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_TRUE(placed);
  EXPECT_TRUE(got0 == want0) << first_difference(got0, want0);
  EXPECT_TRUE(got1 == want1) << first_difference(got1, want1);
  const std::vector<i64> div{w(op::arg), 0, w(op::arg), 1, w(op::div)};
  const kiln::kernel kd{div, 2, 1, 0, 1};
  std::vector<i64> nonzero(n, 3);
  nonzero[40'000] = 0;
  std::vector<i64> out(n);
  for (const std::size_t first : {std::size_t{30'000}, std::size_t{10'000}}) {  // slices [0, 25010), [25010, 50021)
    nonzero[first] = 0;
    const std::vector<kiln::arg> div_args{kiln::arg::of_array(x), kiln::arg::of_array(nonzero)};
    auto dd = kiln::detail::decode_kernel(kd, div_args);
    ASSERT_TRUE(dd.ok());
    r = kiln::detail::run_over_devices(*dd, div_args, std::vector<std::span<i64>>{out}, opencl(0, device_.index),
                                       kiln::backend_kind::opencl, twice, placed);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().message, "element " + std::to_string(first) + ": division by zero");
  }
}

}  // namespace
