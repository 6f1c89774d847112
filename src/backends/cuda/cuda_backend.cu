// The `cuda` backend: device probing, the chunked pinned-memory transfer pipeline, and device-resident buffers.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/cuda/cuda_resources.cuh"
#include "backends/cuda/logistic_kernel.cuh"
#include "core/backend.hpp"
#include "core/thread_pool.hpp"

namespace kiln::detail {
namespace {

using i64 = std::int64_t;

// Pipeline depth: with 4 slots up to 3 chunks are queued on the GPU (one uploading, one computing,
// one downloading) while the host fills and drains the fourth.
constexpr std::size_t ring_slots = 4;
// 8 MiB per buffer: large enough that per-chunk API and event costs vanish next to PCIe time,
// small enough that the first and last chunks (which cannot overlap) are short.
constexpr std::size_t default_chunk = std::size_t{1} << 20;
// 64 MiB per buffer caps the pinned staging a device keeps cached at 512 MiB (4 slots, in + out),
// whatever chunk_elements a caller asks for (the option is an upper bound, so this is allowed).
constexpr std::size_t max_chunk = std::size_t{1} << 23;
// Slot buffers grow in steps of 64 Ki elements so that slightly different sizes reuse them.
constexpr std::size_t capacity_step = std::size_t{1} << 16;

// The oldest compute capability this build has code for (from nvcc's -arch list), as major*10+minor.
constexpr int oldest_supported_arch() {
#if defined(__CUDA_ARCH_LIST__)
  constexpr int archs[] = {__CUDA_ARCH_LIST__};
  int lowest = archs[0];
  for (int a : archs) lowest = a < lowest ? a : lowest;
  return lowest / 10;
#else
  return 75;
#endif
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One stage of the ring: staging on both sides of the bus, its own stream, and four events that
// bracket the phases of the chunk it carries (before H2D, after H2D, after the kernel, after D2H).
struct slot {
  pinned_memory in_host;
  pinned_memory out_host;
  device_memory in_dev;
  device_memory out_dev;
  stream_handle stream;
  std::array<event_handle, 4> events;
  bool busy = false;  // a chunk was enqueued and not yet finished (drained, timed)
  std::size_t begin = 0;
  std::size_t count = 0;

  i64* in_host_ptr() const { return static_cast<i64*>(in_host.get()); }
  i64* out_host_ptr() const { return static_cast<i64*>(out_host.get()); }
  i64* in_dev_ptr() const { return static_cast<i64*>(in_dev.get()); }
  i64* out_dev_ptr() const { return static_cast<i64*>(out_dev.get()); }
};

// What one pass through the ring does to n elements. A run maps host_in to host_out through the
// slots' device buffers; an upload (host_in and resident) and a download (host_out and resident)
// move data between the host and a resident device buffer through the same pinned staging.
struct transfer_job {
  const i64* host_in = nullptr;        // copied to the device chunk by chunk, if set
  i64* host_out = nullptr;             // copied back chunk by chunk, if set (may equal host_in)
  i64* resident = nullptr;             // device memory the chunks go to / come from, instead of the slots'
  const kernel_params* kp = nullptr;   // the map, applied slot in -> slot out, if set
  std::size_t n = 0;
  std::size_t chunk_elements = 0;      // the caller's upper bound; 0 = default_chunk
  // The caller's memory is page-locked: DMA reaches it directly, no staging copy on that side.
  bool in_pinned = false;
  bool out_pinned = false;
};

// Whether [p, p + bytes) is page-locked host memory (checked at both ends: Kiln's pinned blocks
// are single allocations). Costs a microsecond; saves a copy of the whole array.
bool is_pinned(const void* p, std::size_t bytes) {
  if (!p || bytes == 0) return false;
  auto check = [](const void* q) {
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, q) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return attr.type == cudaMemoryTypeHost;
  };
  return check(p) && check(static_cast<const char*>(p) + bytes - 1);
}

// Everything Kiln keeps per CUDA device. The ring is allocated on first use, reused by every later
// call (pinned allocation costs milliseconds) and grown when a call wants larger chunks.
class device_state {
 public:
  device_state(int index, int sm_count) : index_(index), sm_count_(sm_count) {}
  device_state(const device_state&) = delete;
  device_state& operator=(const device_state&) = delete;

  ~device_state() {
    // Streams, events and device memory belong to this device's context.
    device_scope scope;
    (void)scope.enter(index_);
    ring_.clear();
  }

  int index() const { return index_; }
  int sm_count() const { return sm_count_; }

  // Streams one job through the ring. The caller has made this device current.
  result<run_stats> transfer(const transfer_job& job) {
    std::lock_guard<std::mutex> lock(m_);  // one job per device at a time: the ring is shared
    const auto t0 = std::chrono::steady_clock::now();
    run_stats st;
    if (job.n == 0) return st;
    auto r = transfer_locked(job, st);
    if (!r.ok()) {
      // Nothing may still be in flight when the slots are reused or the error is returned.
      quiesce();
      return r.err();
    }
    st.total_s = seconds_since(t0);
    return st;
  }

 private:
  status transfer_locked(const transfer_job& job, run_stats& st) {
    std::size_t chunk = job.chunk_elements ? std::min(job.chunk_elements, max_chunk) : default_chunk;
    chunk = std::min(chunk, job.n);
    auto got = ensure_ring(chunk);
    if (!got) return got.err();
    chunk = *got;
    const std::size_t chunks = (job.n + chunk - 1) / chunk;
    st.chunks = chunks;

    for (std::size_t i = 0; i < chunks; ++i) {
      slot& s = ring_[i % ring_slots];
      const std::size_t begin = i * chunk;
      const std::size_t count = std::min(chunk, job.n - begin);
      if (job.host_in && !job.in_pinned) {
        // The slot's input staging is free once the H2D of its previous chunk is done; its
        // kernel and D2H may still run while we fill.
        if (s.busy) KILN_TRY(cuda_check(cudaEventSynchronize(s.events[1].get()), "cudaEventSynchronize"));
        parallel_copy(s.in_host_ptr(), job.host_in + begin, count);
      }
      // The previous chunk's output staging must be drained before the new D2H is enqueued.
      if (s.busy) KILN_TRY(finish(s, job, st));
      KILN_TRY(submit(s, job, begin, count));
    }
    // Drain the chunks still in flight, oldest first.
    for (std::size_t i = chunks > ring_slots ? chunks - ring_slots : 0; i < chunks; ++i) {
      slot& s = ring_[i % ring_slots];
      if (s.busy) KILN_TRY(finish(s, job, st));
    }
    return {};
  }

  // Enqueues one chunk on the slot's stream. Stream order makes device-buffer reuse safe: the H2D
  // into in_dev follows the previous chunk's kernel, and the kernel writing out_dev follows the
  // previous D2H; pinned reuse is the host's job (see transfer_locked).
  status submit(slot& s, const transfer_job& job, std::size_t begin, std::size_t count) {
    cudaStream_t stream = s.stream.get();
    const std::size_t bytes = count * sizeof(i64);
    s.busy = true;  // from here on something may be in flight
    s.begin = begin;
    s.count = count;
    KILN_TRY(cuda_check(cudaEventRecord(s.events[0].get(), stream), "cudaEventRecord"));
    if (job.host_in) {
      i64* dst = job.resident ? job.resident + begin : s.in_dev_ptr();
      const i64* src = job.in_pinned ? job.host_in + begin : s.in_host_ptr();
      KILN_TRY(cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream),
                          "cudaMemcpyAsync (host to device)"));
    }
    KILN_TRY(cuda_check(cudaEventRecord(s.events[1].get(), stream), "cudaEventRecord"));
    if (job.kp)
      KILN_TRY(cuda_check(launch_logistic(s.in_dev_ptr(), s.out_dev_ptr(), count, *job.kp, sm_count_, stream),
                          "logistic_kernel launch"));
    KILN_TRY(cuda_check(cudaEventRecord(s.events[2].get(), stream), "cudaEventRecord"));
    if (job.host_out) {
      const i64* src = job.resident ? job.resident + begin : s.out_dev_ptr();
      i64* dst = job.out_pinned ? job.host_out + begin : s.out_host_ptr();
      KILN_TRY(cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream),
                          "cudaMemcpyAsync (device to host)"));
    }
    KILN_TRY(cuda_check(cudaEventRecord(s.events[3].get(), stream), "cudaEventRecord"));
    return {};
  }

  // Waits for the slot's chunk, adds its phase times and copies its output to the caller. The
  // sums are per chunk: phases of different chunks overlap, so together they can exceed total_s,
  // and each interval also holds any time the chunk queued behind another slot's copy or kernel.
  status finish(slot& s, const transfer_job& job, run_stats& st) {
    KILN_TRY(cuda_check(cudaEventSynchronize(s.events[3].get()), "cudaEventSynchronize"));
    auto h2d = elapsed_seconds(s.events[0], s.events[1]);
    auto kernel = elapsed_seconds(s.events[1], s.events[2]);
    auto d2h = elapsed_seconds(s.events[2], s.events[3]);
    if (!h2d) return h2d.err();
    if (!kernel) return kernel.err();
    if (!d2h) return d2h.err();
    st.host_to_device_s += *h2d;
    st.kernel_s += *kernel;
    st.device_to_host_s += *d2h;
    if (job.host_out && !job.out_pinned) parallel_copy(job.host_out + s.begin, s.out_host_ptr(), s.count);
    s.busy = false;
    return {};
  }

  // After a failure: wait out every stream (errors ignored: the first one is being reported) so
  // no copy still reads or writes staging that the next call will reuse.
  void quiesce() {
    for (auto& s : ring_) {
      if (s.stream) (void)cudaStreamSynchronize(s.stream.get());
      s.busy = false;
    }
    (void)cudaGetLastError();
  }

  // Makes sure every slot holds at least `chunk` elements; returns the chunk to use, which is
  // smaller when free device memory does not allow the requested one.
  result<std::size_t> ensure_ring(std::size_t chunk) {
    if (!ring_.empty() && (chunk <= capacity_ || chunk <= clamped_request_)) return std::min(chunk, capacity_);
    // The ring is idle here (every call drains it), so it can be freed before the larger one is
    // allocated; that also returns its device memory to the free count below.
    ring_.clear();
    capacity_ = 0;
    clamped_request_ = 0;
    std::size_t free_bytes = 0, total_bytes = 0;
    KILN_TRY(cuda_check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo"));
    // Take at most half of what is free (in + out per slot), leaving room for resident buffers
    // and other users of the device.
    const std::size_t per_element = ring_slots * 2 * sizeof(i64);
    const std::size_t fits = free_bytes / 2 / per_element;
    if (fits == 0)
      return make_error(errc::out_of_memory, "CUDA device " + std::to_string(index_) + " has only " +
                                                 std::to_string(free_bytes) + " bytes free, too few for staging");
    std::size_t capacity = std::min((chunk + capacity_step - 1) / capacity_step * capacity_step, max_chunk);
    if (capacity > fits) {
      clamped_request_ = chunk;  // don't reallocate on every call while memory stays short
      capacity = std::min(chunk, fits);
    }
    std::vector<slot> ring(ring_slots);
    for (auto& s : ring) {
      const std::size_t bytes = capacity * sizeof(i64);
      auto in_host = allocate_pinned(bytes);
      if (!in_host) return in_host.err();
      auto out_host = allocate_pinned(bytes);
      if (!out_host) return out_host.err();
      auto in_dev = allocate_device(bytes);
      if (!in_dev) return in_dev.err();
      auto out_dev = allocate_device(bytes);
      if (!out_dev) return out_dev.err();
      auto stream = create_stream();
      if (!stream) return stream.err();
      s.in_host = std::move(in_host).value();
      s.out_host = std::move(out_host).value();
      s.in_dev = std::move(in_dev).value();
      s.out_dev = std::move(out_dev).value();
      s.stream = std::move(stream).value();
      for (auto& ev : s.events) {
        auto e = create_event();
        if (!e) return e.err();
        ev = std::move(e).value();
      }
    }
    ring_ = std::move(ring);
    capacity_ = capacity;
    return std::min(chunk, capacity_);
  }

  int index_;
  int sm_count_;
  std::mutex m_;
  std::vector<slot> ring_;
  std::size_t capacity_ = 0;         // elements per slot buffer
  std::size_t clamped_request_ = 0;  // the chunk that free memory cut down to capacity_, if any
};

// A buffer in device memory: runs in place on its own stream, timed by events around the kernel
// alone (the benchmark's kernel-only number); uploads and downloads go through the device's ring.
class cuda_buffer final : public resident_buffer {
 public:
  cuda_buffer(device_state& dev, std::size_t n) : dev_(dev), n_(n) {}

  ~cuda_buffer() override {
    device_scope scope;
    (void)scope.enter(dev_.index());
    data_.reset();
    start_.reset();
    stop_.reset();
    stream_.reset();
  }

  // Allocates the memory, stream and events; the caller has made the device current.
  status init() {
    auto data = allocate_device(n_ * sizeof(i64), "cudaMalloc (resident buffer)");
    if (!data) return data.err();
    data_ = std::move(data).value();
    auto stream = create_stream();
    if (!stream) return stream.err();
    stream_ = std::move(stream).value();
    auto start = create_event();
    if (!start) return start.err();
    start_ = std::move(start).value();
    auto stop = create_event();
    if (!stop) return stop.err();
    stop_ = std::move(stop).value();
    return {};
  }

  i64* data() const { return static_cast<i64*>(data_.get()); }
  std::size_t size() const override { return n_; }

  result<run_stats> run(const kernel_params& kp) override {
    const auto t0 = std::chrono::steady_clock::now();
    run_stats st;
    if (n_ == 0) return st;
    device_scope scope;
    KILN_TRY(scope.enter(dev_.index()));
    cudaStream_t stream = stream_.get();
    KILN_TRY(cuda_check(cudaEventRecord(start_.get(), stream), "cudaEventRecord"));
    status launched = cuda_check(launch_logistic(data(), data(), n_, kp, dev_.sm_count(), stream),
                                 "logistic_kernel launch");
    status recorded = cuda_check(cudaEventRecord(stop_.get(), stream), "cudaEventRecord");
    // Whatever was enqueued must finish before we return, even on failure.
    status synced = cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    KILN_TRY(launched);
    KILN_TRY(recorded);
    KILN_TRY(synced);
    auto kernel = elapsed_seconds(start_, stop_);
    if (!kernel) return kernel.err();
    st.kernel_s = *kernel;
    st.chunks = 1;
    st.total_s = seconds_since(t0);
    return st;
  }

  status download(std::span<i64> out) const override {
    if (n_ == 0) return {};
    device_scope scope;
    KILN_TRY(scope.enter(dev_.index()));
    transfer_job job;
    job.host_out = out.data();
    job.out_pinned = is_pinned(out.data(), out.size_bytes());
    job.resident = data();
    job.n = n_;
    auto r = dev_.transfer(job);
    if (!r) return r.err();
    return {};
  }

 private:
  device_state& dev_;
  std::size_t n_;
  device_memory data_;
  stream_handle stream_;
  event_handle start_;
  event_handle stop_;
};

std::string cuda_version_string(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

// Lists the devices, with one state per entry (null where unavailable); on any failure to reach
// the driver, one unavailable entry that says why.
std::vector<device_info> probe_devices(std::vector<std::unique_ptr<device_state>>& states) {
  int count = 0;
  if (cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess) {
    (void)cudaGetLastError();
    std::string what = e == cudaErrorNoDevice            ? "no CUDA-capable device was found"
                       : e == cudaErrorInsufficientDriver ? "no CUDA driver was found, or it is older than this CUDA runtime"
                                                          : "the CUDA driver could not be initialized";
    states.push_back(nullptr);
    return {unavailable_device(backend_kind::cuda, what + " (cudaGetDeviceCount: " + cudaGetErrorString(e) + ")")};
  }
  if (count <= 0) {
    states.push_back(nullptr);
    return {unavailable_device(backend_kind::cuda, "no CUDA-capable device was found (cudaGetDeviceCount returned 0)")};
  }

  int runtime = 0, driver = 0;
  (void)cudaRuntimeGetVersion(&runtime);
  (void)cudaDriverGetVersion(&driver);
  const std::string platform = "CUDA " + cuda_version_string(runtime) + " / driver " + cuda_version_string(driver);

  std::vector<device_info> list;
  for (int i = 0; i < count; ++i) {
    device_info d;
    d.backend = backend_kind::cuda;
    d.index = i;
    d.platform = platform;
    d.gpu = true;
    d.name = "CUDA device " + std::to_string(i);
    cudaDeviceProp prop{};
    int mode = cudaComputeModeDefault;
    if (cudaError_t e = cudaGetDeviceProperties(&prop, i); e != cudaSuccess) {
      d.reason = cuda_error(e, "cudaGetDeviceProperties").message;
    } else if (cudaError_t e2 = cudaDeviceGetAttribute(&mode, cudaDevAttrComputeMode, i); e2 != cudaSuccess) {
      d.reason = cuda_error(e2, "cudaDeviceGetAttribute").message;
    } else {
      d.name = prop.name;
      d.compute_units = prop.multiProcessorCount;
      d.memory_bytes = prop.totalGlobalMem;
      const int arch = prop.major * 10 + prop.minor;
      if (arch < oldest_supported_arch())
        d.reason = "compute capability " + std::to_string(prop.major) + "." + std::to_string(prop.minor) +
                   " is older than this build supports (" + std::to_string(oldest_supported_arch() / 10) + "." +
                   std::to_string(oldest_supported_arch() % 10) + ")";
      else if (mode == cudaComputeModeProhibited)
        d.reason = "the device is in compute-prohibited mode";
      else
        d.available = true;
    }
    states.push_back(d.available ? std::make_unique<device_state>(i, d.compute_units) : nullptr);
    list.push_back(std::move(d));
  }
  return list;
}

class cuda_backend final : public backend {
 public:
  backend_kind kind() const override { return backend_kind::cuda; }

  const std::vector<device_info>& devices() override {
    probe();
    return devices_;
  }

  result<run_stats> run(int device, std::span<const i64> in, std::span<i64> out, const kernel_params& kp,
                        std::size_t chunk_elements) override {
    auto ds = state_of(device);
    if (!ds) return ds.err();
    device_scope scope;
    KILN_TRY(scope.enter(device));
    transfer_job job;
    job.host_in = in.data();
    job.host_out = out.data();
    job.kp = &kp;
    job.n = std::min(in.size(), out.size());
    job.chunk_elements = chunk_elements;
    job.in_pinned = is_pinned(in.data(), in.size_bytes());
    job.out_pinned = is_pinned(out.data(), out.size_bytes());
    return (*ds)->transfer(job);
  }

  // Portable page-locked memory (every device sees it as pinned), only where CUDA can run.
  void* allocate_pinned(std::size_t bytes) override {
    probe();
    bool usable = false;
    for (const auto& st : states_) usable = usable || st != nullptr;
    void* p = nullptr;
    if (!usable || cudaHostAlloc(&p, bytes, cudaHostAllocPortable) != cudaSuccess) {
      (void)cudaGetLastError();
      return nullptr;
    }
    return p;
  }

  void free_pinned(void* p) override { (void)cudaFreeHost(p); }

  result<std::unique_ptr<resident_buffer>> upload(int device, std::span<const i64> data) override {
    auto ds = state_of(device);
    if (!ds) return ds.err();
    device_scope scope;
    KILN_TRY(scope.enter(device));
    auto buf = std::make_unique<cuda_buffer>(**ds, data.size());
    KILN_TRY(buf->init());
    if (!data.empty()) {
      transfer_job job;
      job.host_in = data.data();
      job.in_pinned = is_pinned(data.data(), data.size_bytes());
      job.resident = buf->data();
      job.n = data.size();
      auto r = (*ds)->transfer(job);
      if (!r) return r.err();
    }
    return std::unique_ptr<resident_buffer>(std::move(buf));
  }

 private:
  void probe() {
    std::call_once(probed_, [this] { devices_ = probe_devices(states_); });
  }

  result<device_state*> state_of(int device) {
    probe();
    if (device < 0 || static_cast<std::size_t>(device) >= states_.size())
      return make_error(errc::invalid_argument, "CUDA device index " + std::to_string(device) + " is out of range (" +
                                                    std::to_string(states_.size()) + " device(s))");
    if (!states_[static_cast<std::size_t>(device)])
      return make_error(errc::backend_unavailable, devices_[static_cast<std::size_t>(device)].reason);
    return states_[static_cast<std::size_t>(device)].get();
  }

  std::once_flag probed_;
  std::vector<device_info> devices_;
  std::vector<std::unique_ptr<device_state>> states_;  // per entry of devices_; null where unavailable
};

}  // namespace

std::unique_ptr<backend> make_cuda_backend() { return std::make_unique<cuda_backend>(); }

}  // namespace kiln::detail
