// The OpenCL backend's kernels: programs built per device, arguments and launches, kernel runs and runs over buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "backends/opencl/opencl_handles.hpp"
#include "backends/opencl/opencl_pipeline.hpp"
#include "core/backend.hpp"
#include "core/kernel_ir.hpp"

namespace kiln::detail {

// The built-in map's kernel in the embedded source (logistic.cl).
constexpr const char* map_kernel_name = "kiln_logistic_map";
constexpr const char* map_pairs_kernel_name = "kiln_logistic_map_pairs";

// Builds `program` for `dev`; on failure the error carries the head of the build log. `what`
// ("kernel", "program") begins its message. The build runs on a thread with a deep stack
// (build_thread.hpp): an in-process compiler recurses with the program's length, and the caller
// may be a VM's dirty scheduler with a small stack.
status build_cl_program(cl::Program& program, const cl::Device& dev, const char* what);

// Arguments 3..8 are fixed for a whole call; set them once, under the device lock.
status set_param_args(cl::Kernel& k, const kernel_params& kp);
// modmath.h's Montgomery constants, the lanes on where use_int_lanes says, and the square form's
// switch and constants: the twelve arguments from `first`, the chunks' kernel's 11..22, the pairs kernel's 9..20.
inline constexpr cl_uint map_mont_arg = 11;
inline constexpr cl_uint pairs_mont_arg = 9;
status set_mont_args(cl::Kernel& k, const kernel_params& kp, cl_uint first);

// Launches kernel object `k` (its arguments set) over `n` elements with a global size of `width`
// (at least n) rounded up to the device's work-group size (the kernels guard their last group);
// `call` names it in errors. Every launch of one job takes the same width, the job's chunk, even
// over a short last chunk: PoCL (3.1) keeps a compiled version of a kernel per grid width and
// releases a finished launch against the newest version that matches, not the one it ran, so a
// narrower launch still running when a wider one first appears corrupts its counts and aborts the
// process. Jobs run one at a time per device, so one width per job keeps every launch on one version.
status enqueue_over(const opencl_device_state& ds, cl::Kernel& k, const cl::CommandQueue& q, std::size_t n,
                    std::size_t width, cl::Event* done, const char* call);

// Maps the first `len` elements of `in` into `out` (the same buffer for in-place runs) with kernel
// object `k`, whose fixed arguments are set, launched `width` wide (enqueue_over); in32 / out32:
// the chunk's input / output is int32.
status enqueue_map(const opencl_device_state& ds, cl::Kernel& k, const cl::CommandQueue& q, const cl::Buffer& in,
                   const cl::Buffer& out, std::size_t len, std::size_t width, cl::Event* done, bool in32 = false,
                   bool out32 = false);

// A program's chunk, after its upload: the fault index reset, the kernel over `count` elements
// (faulting ones written with their input, so in-place runs keep it for the fault's report), and
// the fault index read back into the slot. The kernel's fixed arguments are set (transfer).
status enqueue_program(const opencl_device_state& ds, cl::Kernel& k, const cl::CommandQueue& q, opencl_slot& s,
                       std::size_t count, std::size_t width);

// Runs a program over in -> out through the device's pipeline, as the map runs (the same staging,
// lanes or driven slots, chunk sizes), without the host's share; then reports the first fault.
result<run_stats> run_kernel_on(opencl_device_state& ds, const decoded_kernel& dk, std::span<const std::int64_t> in,
                                std::span<std::int64_t> out, const run_options& options);

// A kernel over resident buffers, segment by segment (buffers of one length share their
// segmentation): the map's own kernel where it is the map, else the kernel compiled for buffers
// (kiln_resident). A faulting element writes nothing, so its inputs are read back to say why.
result<run_stats> run_resident_on(opencl_device_state& ds, const decoded_kernel& dk,
                                  std::span<resident_buffer* const> arrays, std::span<resident_buffer* const> outputs,
                                  std::size_t base = 0);

}  // namespace kiln::detail
