// Entry points of the `cpu` backend's SIMD kernel (dispatched at run time to the best ISA).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/backend.hpp"

namespace kiln::detail {

// out[i] = the map applied kp.iterations (>= 1) times to in[i]; in may equal out.
void logistic_simd(const std::int64_t* in, std::int64_t* out, std::size_t n, const kernel_params& kp);

// The instruction set the dispatcher chose on this machine, e.g. "AVX3" or "AVX2".
const char* simd_target_name();

}  // namespace kiln::detail
