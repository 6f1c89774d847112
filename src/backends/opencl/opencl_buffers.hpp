// The OpenCL backend's resident buffers: data kept on one device, in segments no larger than its allocation limit.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "backends/opencl/opencl_handles.hpp"
#include "backends/opencl/opencl_pipeline.hpp"
#include "core/backend.hpp"

namespace kiln::detail {

// Data resident on one device, split into buffers no larger than the device's allocation limit.
// Kernels run in place on the device's resident queue; uploads and downloads go through the lanes.
class opencl_buffer final : public resident_buffer {
 public:
  static result<std::unique_ptr<resident_buffer>> create(std::shared_ptr<opencl_device_state> ds,
                                                         std::span<const std::int64_t> data);

  std::size_t size() const override { return size_; }

  // `n` elements, contents unspecified.
  static result<std::unique_ptr<resident_buffer>> allocate(std::shared_ptr<opencl_device_state> ds, std::size_t n);

  const std::vector<cl::Buffer>& segments() const { return segments_; }
  std::size_t segment() const { return segment_; }
  std::size_t segment_length(std::size_t i) const { return std::min(segment_, size_ - i * segment_); }

  status download(std::span<std::int64_t> out) const override;

 private:
  opencl_buffer(std::shared_ptr<opencl_device_state> ds, std::size_t size)
      : ds_(std::move(ds)), size_(size), segment_(ds_->max_alloc_elements) {}

  status create_segments();

  status fill(std::span<const std::int64_t> data);

  // Host -> segments (host_in set) or segments -> host (host_out set), through the device's lanes.
  status move_through_lanes(const std::int64_t* host_in, std::int64_t* host_out) const;

  std::shared_ptr<opencl_device_state> ds_;  // shared: a buffer may outlive the backend's registry
  std::size_t size_;
  std::size_t segment_;  // elements per buffer; the last one may be shorter
  std::vector<cl::Buffer> segments_;
};

}  // namespace kiln::detail
