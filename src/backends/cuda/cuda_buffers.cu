// The CUDA backend's resident buffers and their pool: bodies taken, kept and freed; downloads through the lanes.
#include "backends/cuda/cuda_buffers.cuh"

#include <utility>

#include "backends/cuda/cuda_pipeline.cuh"

namespace kiln::detail {

result<cuda_buffer_body> cuda_buffer_pool::take(std::size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(m_);
    for (auto it = free_.begin(); it != free_.end(); ++it)
      if (it->bytes == bytes) {
        cuda_buffer_body b = std::move(*it);
        free_.erase(it);
        cached_ -= bytes;
        return result<cuda_buffer_body>(std::move(b));
      }
  }
  cuda_buffer_body b;
  b.bytes = bytes;
  auto data = allocate_device(bytes, "cudaMalloc (resident buffer)");
  if (!data) return data.err();
  b.data = std::move(data).value();
  auto stream = create_stream();
  if (!stream) return stream.err();
  b.stream = std::move(stream).value();
  auto start = create_event();
  if (!start) return start.err();
  b.start = std::move(start).value();
  auto stop = create_event();
  if (!stop) return stop.err();
  b.stop = std::move(stop).value();
  return result<cuda_buffer_body>(std::move(b));
}

void cuda_buffer_pool::give(cuda_buffer_body&& b) {
  std::lock_guard<std::mutex> lock(m_);
  if (free_.size() >= max_bodies || cached_ + b.bytes > limit_) {
    // The oldest bodies go first, so that the pool follows the sizes in use now.
    while (!free_.empty() && (free_.size() >= max_bodies || cached_ + b.bytes > limit_)) {
      cached_ -= free_.front().bytes;
      free_.erase(free_.begin());
    }
    if (cached_ + b.bytes > limit_) return;  // too large to keep at all: freed here
  }
  cached_ += b.bytes;
  free_.push_back(std::move(b));
}

void cuda_buffer_pool::clear() {
  std::lock_guard<std::mutex> lock(m_);
  free_.clear();
  cached_ = 0;
}

std::vector<cuda_buffer_body> cuda_buffer_pool::take_all() {
  std::lock_guard<std::mutex> lock(m_);
  cached_ = 0;
  return std::exchange(free_, {});
}

std::size_t cuda_buffer_pool::cached_bytes() {
  std::lock_guard<std::mutex> lock(m_);
  return cached_;
}

cuda_buffer::~cuda_buffer() {
  device_scope scope;
  if (scope.enter(dev_.index()).ok() && body_.data.get()) {
    dev_.buffers().give(std::move(body_));
    // The kept body goes with the device's other memory once the device has been idle. Armed
    // after the give and outside the pool's lock: a release that takes the pool's bodies before
    // this arm frees this one a little early, which costs the next buffer a cudaMalloc, no more.
    dev_.idle().arm();
  }
}

status cuda_buffer::init() {
  auto body = dev_.buffers().take(n_ * sizeof(std::int64_t));
  if (!body) return body.err();
  body_ = std::move(body).value();
  return {};
}

status cuda_buffer::download(std::span<std::int64_t> out) const {
  if (n_ == 0) return {};
  device_scope scope;
  KILN_TRY(scope.enter(dev_.index()));
  cuda_transfer_job job;
  job.host_out = out.data();
  job.out_pinned = cuda_is_pinned(out.data(), out.size_bytes());
  job.resident = data();
  job.n = n_;
  auto r = dev_.transfer(job);
  if (!r) return r.err();
  return {};
}

}  // namespace kiln::detail
