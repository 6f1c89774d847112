// The OpenCL backend's resident buffers: their segments created, filled and read back through the device's lanes.
#include "backends/opencl/opencl_buffers.hpp"

namespace kiln::detail {

result<std::unique_ptr<resident_buffer>> opencl_buffer::create(std::shared_ptr<opencl_device_state> ds,
                                                               std::span<const std::int64_t> data) {
  auto buf = std::unique_ptr<opencl_buffer>(new opencl_buffer(std::move(ds), data.size()));
  KILN_TRY(buf->fill(data));
  return std::unique_ptr<resident_buffer>(std::move(buf));
}

result<std::unique_ptr<resident_buffer>> opencl_buffer::allocate(std::shared_ptr<opencl_device_state> ds,
                                                                 std::size_t n) {
  auto buf = std::unique_ptr<opencl_buffer>(new opencl_buffer(std::move(ds), n));
  KILN_TRY(buf->create_segments());
  return std::unique_ptr<resident_buffer>(std::move(buf));
}

status opencl_buffer::download(std::span<std::int64_t> out) const {
  return opencl_catching_bad_alloc([&]() -> status { return move_through_lanes(nullptr, out.data()); });
}

status opencl_buffer::create_segments() {
  const std::size_t count = (size_ + segment_ - 1) / segment_;
  segments_.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    cl_int e = CL_SUCCESS;
    cl::Buffer b(ds_->context, CL_MEM_READ_WRITE, segment_length(i) * element_bytes, nullptr, &e);
    if (e != CL_SUCCESS) return cl_error("clCreateBuffer", e);
    segments_.push_back(std::move(b));
  }
  return {};
}

status opencl_buffer::fill(std::span<const std::int64_t> data) {
  KILN_TRY(create_segments());
  // The lanes wait for every chunk: the caller's span may go away as soon as upload returns.
  return move_through_lanes(data.data(), nullptr);
}

status opencl_buffer::move_through_lanes(const std::int64_t* host_in, std::int64_t* host_out) const {
  opencl_transfer_job job;
  job.host_in = host_in;
  job.host_out = host_out;
  job.resident = &segments_;
  job.segment = segment_;
  job.n = size_;
  auto r = transfer(*ds_, job);
  if (!r) return r.err();
  return {};
}

}  // namespace kiln::detail
