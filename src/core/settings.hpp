// The engine's switches from the environment, read in one place, once per process: each one's default and purpose.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

namespace kiln::detail {

// How the OpenCL backend feeds a device's slots (KILN_OPENCL_PIPELINE).
enum class opencl_pipeline_mode {
  by_device,  // unset: driven on GPUs and other accelerators, lanes on CPU devices
  driven,     // "driven": one thread makes every OpenCL call, the others copy (core/lanes.hpp)
  lanes,      // "lanes": each lane fed by its own thread
};

// Every KILN_* variable the engine reads at run time. They tune or switch off pipeline features,
// to measure what a feature saves or to fit one host; none changes a result. The defaults are what
// a run gets without them; how each value is read is noted with its field.
struct settings {
  // KILN_NARROW_TRANSFERS: on unless set to "0". Staged chunks whose values fit in 32 bits cross
  // the bus in 4 bytes (core/lanes.hpp, narrow_transfers); off, every chunk crosses at full width.
  bool narrow_transfers = true;

  // KILN_ZERO_COPY: on unless set to "0". The CUDA kernel of a staged chunk reads and writes the
  // pinned staging itself instead of copy commands around it (the CUDA backend's pipeline).
  bool zero_copy = true;

  // KILN_SQUARE_FORM: on unless set to "0". Kernels beyond a few iterations step in core/modmath.h's
  // square form where it holds (kernel_params::square); off, they keep the fused path and its
  // Montgomery lanes.
  bool square_form = true;

  // KILN_HUGE_PAGES: on unless set to "0". Fresh ordinary blocks of the host pool ask for
  // transparent huge pages (madvise), which makes their first-touch faults fewer (core/host_memory.cpp).
  bool huge_pages = true;

  // KILN_SPARE_BLOCKS: on unless set to "0". After a call takes a fresh host block of a large
  // size class, or the spare prepared before, the host pool prepares one spare block of that class, its
  // pages first touched, while no run is in flight, so that the next call of a caller keeping
  // its results finds one ready (core/host_memory.cpp).
  bool spare_blocks = true;

  // KILN_OPENCL_PIPELINE: "driven" or "lanes"; anything else (or unset) leaves the choice to the
  // device type (the OpenCL backend's device set-up). The tests run both on every machine.
  opencl_pipeline_mode opencl_pipeline = opencl_pipeline_mode::by_device;

  // KILN_STAGING_LANES: 1..64 host threads feeding a GPU backend's staging lanes, for tuning on a
  // given host; 0 (unset, or out of range) means one per worker thread, at most 16 (staging_lanes()).
  std::size_t staging_lanes = 0;

  // KILN_WORKER_NICE: the worker threads' niceness, 19 unless set (0 keeps the caller's), so that
  // latency-sensitive threads sharing the cores (a BEAM's schedulers) win them. Read as atoi does:
  // a value that is not a number is 0.
  int worker_nice = 19;

  // KILN_OPENCL_LIBRARY: the OpenCL library to open (a path or a name); empty (unset or set to
  // "") means the ICD loader's soname (backends/opencl/opencl_library.hpp).
  std::string opencl_library;

  // KILN_DEVICE_POOL_IDLE_MS: milliseconds a GPU device may stay idle before its backend releases
  // the memory it keeps between jobs (staging, slot buffers, pooled buffer bodies; core/
  // idle_release.hpp); 2000 unless set, as the host pool's KILN_HOST_POOL_IDLE_MS; 0 keeps it
  // for the process. A value that is not a non-negative decimal number is ignored; at most about
  // 24 days, so that deadlines computed from it cannot overflow.
  std::chrono::milliseconds device_pool_idle{2000};
};

// The settings of this process, read from the environment on first use and kept: a variable set
// later (setenv) changes nothing, as every switch was always read once.
const settings& current_settings();

// The settings `lookup` gives (a variable's value, or null where it is unset): current_settings()
// with getenv, tests with their own table.
settings read_settings(const std::function<const char*(const char*)>& lookup);

}  // namespace kiln::detail
