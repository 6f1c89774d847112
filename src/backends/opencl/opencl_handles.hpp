// The OpenCL backend's view of OpenCL: opencl.hpp without exceptions, errors by call and code, event waits, mapped staging.
#pragma once

// opencl.hpp only asks whether CL_HPP_ENABLE_EXCEPTIONS is defined (even as 0 it switches
// exceptions on); the backend checks every returned cl_int instead, so it must stay undefined.
#undef CL_HPP_ENABLE_EXCEPTIONS
#include <CL/opencl.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <new>
#include <string>

#include "kiln/result.hpp"

namespace kiln::detail {

constexpr std::size_t element_bytes = sizeof(std::int64_t);

// "CL_NAME (code)".
std::string cl_code(cl_int code);

// "<call> failed: CL_NAME (code)"; allocation failures become out_of_memory so callers can
// retry with smaller data, everything else is a device error.
error cl_error(const std::string& call, cl_int code);

// `s` without leading and trailing blanks.
std::string opencl_trim(std::string s);

// Seconds a completed command took on the device; 0 where the queue could not time it.
double event_seconds(const cl::Event& e);

struct opencl_named_event {
  const cl::Event* event;
  const char* call;
};

// Waits for `last` (which completes after every earlier command on its in-order queue) and, if
// something failed, names the first command whose execution status is an error. Null events
// (phases a chunk does not have) are skipped.
status wait_for(const cl::Event& last, std::initializer_list<opencl_named_event> commands);

// Host allocation failures (event lists, messages) become errors rather than escaping the API.
template <class F>
auto opencl_catching_bad_alloc(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return make_error(errc::out_of_memory, "the OpenCL backend ran out of host memory");
  }
}

// Host memory the device reaches by DMA: a CL_MEM_ALLOC_HOST_PTR buffer, mapped once and kept
// mapped for its whole life (NVIDIA's documented way to get pinned memory in OpenCL). Transfers
// then use the mapped pointer as their host pointer, so the driver needs no staging of its own.
class opencl_mapped_staging {
 public:
  opencl_mapped_staging() = default;
  opencl_mapped_staging(const opencl_mapped_staging&) = delete;
  opencl_mapped_staging& operator=(const opencl_mapped_staging&) = delete;
  ~opencl_mapped_staging() { reset(); }

  status create(const cl::Context& context, const cl::CommandQueue& queue, std::size_t elements);

  // Unmaps before the release: a buffer released while mapped is left to the platform's mercy.
  void reset();

  std::int64_t* data() const { return data_; }

 private:
  cl::Buffer buffer_;
  cl::CommandQueue queue_;  // the queue that mapped it, which unmaps it
  std::int64_t* data_ = nullptr;
};

}  // namespace kiln::detail
