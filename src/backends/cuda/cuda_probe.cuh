// The CUDA backend's device discovery: what the driver lists, which devices this build can use and why not.
#pragma once

#include <memory>
#include <vector>

#include "backends/cuda/cuda_pipeline.cuh"
#include "kiln/kiln.hpp"

namespace kiln::detail {

// Lists the devices, with one state per entry (null where unavailable); on any failure to reach
// the driver, one unavailable entry that says why.
std::vector<device_info> probe_cuda_devices(std::vector<std::unique_ptr<cuda_device_state>>& states);

}  // namespace kiln::detail
