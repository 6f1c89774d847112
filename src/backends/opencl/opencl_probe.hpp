// The OpenCL backend's device discovery: every device of every platform, set up where usable, the reason where not.
#pragma once

#include <memory>
#include <vector>

#include "backends/opencl/opencl_pipeline.hpp"
#include "kiln/kiln.hpp"

namespace kiln::detail {

// One device as probed: what the listing shows, and its state where it is usable.
struct opencl_probed_device {
  device_info info;
  std::shared_ptr<opencl_device_state> state;  // null when !info.available
};

// Every device of every OpenCL platform, in platform and device order, with its state or the
// reason it is unusable; one unavailable entry that says why where there is no OpenCL library,
// platform or device at all.
std::vector<opencl_probed_device> probe_opencl_devices();

}  // namespace kiln::detail
