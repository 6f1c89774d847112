// The CUDA backend's resident buffers: device memory kept between runs, and the pool of freed buffers' bodies.
#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "backends/cuda/cuda_resources.cuh"
#include "core/backend.hpp"

namespace kiln::detail {

class cuda_device_state;

// What a resident buffer holds on its device: its memory, and the stream and events its kernels
// run and are timed on. Kept for reuse by the device when a buffer dies (cuda_buffer_pool).
struct cuda_buffer_body {
  device_memory data;
  std::size_t bytes = 0;
  stream_handle stream;
  event_handle start, stop;
};

// Freed buffers' bodies, for the next buffers of the same size: cudaMalloc, a stream and two
// events cost far more than a kernel over resident data, and a kernel over buffers makes a new
// output each call (chained calls free as many as they make). At most `max_bodies` bodies and
// a quarter of the device's memory are kept; the rest is freed at once.
class cuda_buffer_pool {
 public:
  explicit cuda_buffer_pool(std::size_t limit_bytes) : limit_(limit_bytes) {}

  // A body of exactly `bytes` (the device must be current), from the pool or made now.
  result<cuda_buffer_body> take(std::size_t bytes);

  // Keeps `b` for reuse, or frees it (the device must be current).
  void give(cuda_buffer_body&& b);

  void clear();

  // Every kept body, handed over to be freed (in the device's context) outside the pool's lock.
  std::vector<cuda_buffer_body> take_all();

  // Device bytes of the kept bodies.
  std::size_t cached_bytes();

 private:
  static constexpr std::size_t max_bodies = 8;
  const std::size_t limit_;
  std::mutex m_;
  std::vector<cuda_buffer_body> free_;
  std::size_t cached_ = 0;
};

// A buffer in device memory: runs in place on its own stream, timed by events around the kernel
// alone (the benchmark's kernel-only number); uploads and downloads go through the device's lanes.
class cuda_buffer final : public resident_buffer {
 public:
  cuda_buffer(cuda_device_state& dev, std::size_t n) : dev_(dev), n_(n) {}

  ~cuda_buffer() override;

  // Takes the memory, stream and events (from the device's pool when it has a body this size);
  // the caller has made the device current.
  status init();

  std::int64_t* data() const { return static_cast<std::int64_t*>(body_.data.get()); }
  std::size_t size() const override { return n_; }

  // Runs `launch(stream)` on the buffer's stream, timed by events around it alone (the
  // benchmark's kernel-only number); the caller has made the device current.
  template <class Launch>
  result<run_stats> timed(Launch&& launch) {
    auto nothing = [](cudaStream_t) -> status { return {}; };
    return timed(nothing, launch, nothing);
  }

  // The same with `before(stream)` and `after(stream)` enqueued around the timed launch, outside
  // the events: a kernel's parameter upload and its fault word's download are not its run.
  template <class Before, class Launch, class After>
  result<run_stats> timed(Before&& before, Launch&& launch, After&& after) {
    const auto t0 = std::chrono::steady_clock::now();
    run_stats st;
    cudaStream_t stream = body_.stream.get();
    KILN_TRY(before(stream));
    KILN_TRY(cuda_check(cudaEventRecord(body_.start.get(), stream), "cudaEventRecord"));
    status launched = launch(stream);
    status recorded = cuda_check(cudaEventRecord(body_.stop.get(), stream), "cudaEventRecord");
    status finished = launched && recorded ? after(stream) : status{};
    // Whatever was enqueued must finish before we return, even on failure.
    status synced = cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    KILN_TRY(launched);
    KILN_TRY(recorded);
    KILN_TRY(finished);
    KILN_TRY(synced);
    auto kernel = elapsed_seconds(body_.start, body_.stop);
    if (!kernel) return kernel.err();
    st.kernel_s = *kernel;
    st.chunks = 1;
    st.total_s = seconds_since(t0);
    return st;
  }

  status download(std::span<std::int64_t> out) const override;

 private:
  cuda_device_state& dev_;
  std::size_t n_;
  cuda_buffer_body body_;
};

}  // namespace kiln::detail
