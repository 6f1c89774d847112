// Entry points of the `cpu` backend's SIMD kernel (dispatched at run time to the best ISA).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/backend.hpp"

namespace kiln::detail {

// out[i] = the map applied kp.iterations (>= 1) times to in[i]; in may equal out. `stream` writes
// a separate `out` with non-temporal stores (for outputs far larger than the caches: no read for
// ownership, no cache pollution), fenced before returning.
void logistic_simd(const std::int64_t* in, std::int64_t* out, std::size_t n, const kernel_params& kp,
                   bool stream = false);

// Whole outputs at least this large are written with non-temporal stores: far larger than the
// caches, so caching them only costs reads for ownership and evicts what else is there. With the
// kernel's sixteen chains this shortens the cpu backend's runs and pinned CUDA runs in which the
// host computes a share (docs/BENCHMARKS.md); with four chains, when the arithmetic took longer
// than the memory traffic, it changed nothing.
constexpr std::size_t stream_output_bytes = std::size_t{32} << 20;

inline bool stream_output(std::size_t elements) { return elements * sizeof(std::int64_t) >= stream_output_bytes; }

// The instruction set the dispatcher chose on this machine, e.g. "AVX3" or "AVX2".
const char* simd_target_name();

}  // namespace kiln::detail
