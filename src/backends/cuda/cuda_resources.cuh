// RAII owners for CUDA handles and the error mapping of the CUDA backend: every call checked, nothing leaked.
#pragma once

#include <cuda_runtime.h>

#include <string>
#include <utility>

#include "kiln/result.hpp"

namespace kiln::detail {

// "<call> failed: <name>: <description>"; an allocation failure is out_of_memory so callers can
// retry smaller. The thread's last-error slot is cleared so that a non-sticky failure here is not
// reported again by the next kernel launch's cudaGetLastError().
inline error cuda_error(cudaError_t e, const char* call) {
  (void)cudaGetLastError();
  return make_error(e == cudaErrorMemoryAllocation ? errc::out_of_memory : errc::device_error,
                    std::string(call) + " failed: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

inline status cuda_check(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return {};
  return cuda_error(e, call);
}

// Owns one handle and releases it with `release`; errors on release are ignored because a
// destructor cannot report them (and at process exit the runtime may already be unloading).
template <class T, cudaError_t (*release)(T)>
class cuda_handle {
 public:
  cuda_handle() = default;
  explicit cuda_handle(T h) noexcept : h_(h) {}
  ~cuda_handle() { reset(); }
  cuda_handle(cuda_handle&& o) noexcept : h_(std::exchange(o.h_, T{})) {}
  cuda_handle& operator=(cuda_handle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, T{});
    }
    return *this;
  }
  cuda_handle(const cuda_handle&) = delete;
  cuda_handle& operator=(const cuda_handle&) = delete;

  T get() const noexcept { return h_; }
  explicit operator bool() const noexcept { return h_ != T{}; }
  void reset() noexcept {
    if (h_ != T{}) (void)release(std::exchange(h_, T{}));
  }

 private:
  T h_{};
};

using device_memory = cuda_handle<void*, cudaFree>;     // cudaMalloc
using pinned_memory = cuda_handle<void*, cudaFreeHost>; // cudaHostAlloc
using stream_handle = cuda_handle<cudaStream_t, cudaStreamDestroy>;
using event_handle = cuda_handle<cudaEvent_t, cudaEventDestroy>;

inline result<device_memory> allocate_device(std::size_t bytes, const char* what = "cudaMalloc") {
  void* p = nullptr;
  if (bytes == 0) return device_memory{};
  if (cudaError_t e = cudaMalloc(&p, bytes); e != cudaSuccess) return cuda_error(e, what);
  return device_memory{p};
}

inline result<pinned_memory> allocate_pinned(std::size_t bytes) {
  void* p = nullptr;
  if (bytes == 0) return pinned_memory{};
  if (cudaError_t e = cudaHostAlloc(&p, bytes, cudaHostAllocDefault); e != cudaSuccess)
    return cuda_error(e, "cudaHostAlloc");
  return pinned_memory{p};
}

// Non-blocking: never implicitly synchronized with the legacy default stream, which an embedding
// application may be using for its own work.
inline result<stream_handle> create_stream() {
  cudaStream_t s = nullptr;
  if (cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking); e != cudaSuccess)
    return cuda_error(e, "cudaStreamCreateWithFlags");
  return stream_handle{s};
}

// With timing (the default flags), since every event here also measures a phase.
inline result<event_handle> create_event(unsigned flags = cudaEventDefault) {
  cudaEvent_t ev = nullptr;
  if (cudaError_t e = cudaEventCreateWithFlags(&ev, flags); e != cudaSuccess) return cuda_error(e, "cudaEventCreate");
  return event_handle{ev};
}

// Seconds between two completed events.
inline result<double> elapsed_seconds(const event_handle& from, const event_handle& to) {
  float ms = 0;
  if (cudaError_t e = cudaEventElapsedTime(&ms, from.get(), to.get()); e != cudaSuccess)
    return cuda_error(e, "cudaEventElapsedTime");
  return static_cast<double>(ms) * 1e-3;
}

// Makes `device` current on the calling thread for one operation and restores the thread's
// previous device afterwards, so Kiln never changes the device an embedding application chose.
class device_scope {
 public:
  device_scope() = default;
  device_scope(const device_scope&) = delete;
  device_scope& operator=(const device_scope&) = delete;
  ~device_scope() {
    if (previous_ >= 0) (void)cudaSetDevice(previous_);
  }

  status enter(int device) {
    int previous = 0;
    KILN_TRY(cuda_check(cudaGetDevice(&previous), "cudaGetDevice"));
    KILN_TRY(cuda_check(cudaSetDevice(device), "cudaSetDevice"));
    if (previous != device) previous_ = previous;
    return {};
  }

 private:
  int previous_ = -1;
};

}  // namespace kiln::detail
