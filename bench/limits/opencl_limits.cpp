// kiln_opencl_limits: measures an OpenCL platform's per-command costs, alone and under contention, and pipeline shapes.
//
// The OpenCL counterpart of kiln_transfer_limits, to find out why end-to-end runs through an
// OpenCL platform are slower than through CUDA for the same pipeline shape. Prints one line per
// figure (median of several runs): pinned transfers each way and both ways at once; the cost of
// one command and of one chunk's round trip (write, kernel, read) on one queue; the same round
// trips and bare enqueues from several host threads at once; and end-to-end pageable runs with
// per-thread pipelines of several shapes, and with one thread making every OpenCL call (each
// checked against the host). The kernel is a trivial one of its own, not the library's: only the
// commands' costs matter here. It is a measuring tool for docs/BENCHMARKS.md, not part of the library.

// opencl.hpp only asks whether CL_HPP_ENABLE_EXCEPTIONS is defined: it must stay undefined, and
// every returned cl_int is checked instead (as in the backend).
#undef CL_HPP_ENABLE_EXCEPTIONS
#include <CL/opencl.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "limits_common.hpp"

namespace {

using namespace kiln_limits;

constexpr const char* kernel_source =
    "__kernel void triple(__global const long* in, __global long* out, ulong n) {\n"
    "  const size_t i = get_global_id(0);\n"
    "  if (i < n) out[i] = in[i] * 3 + 1;\n"
    "}\n";

i64 host_kernel(i64 x) { return x * 3 + 1; }

// The size of the per-command figures: small enough that the command's cost, not its bytes, counts.
constexpr std::size_t small_elements = 512;  // 4 KiB
constexpr std::size_t small_bytes = small_elements * sizeof(i64);
constexpr int commands_per_run = 1000;  // bare enqueues per timed run
constexpr int trips_per_run = 200;      // round trips per timed run (and per thread under contention)
constexpr int slots_per_thread = 3;     // as the backend's lanes

void check(cl_int e, const char* what) {
  if (e != CL_SUCCESS) {
    std::fprintf(stderr, "%s: OpenCL error %d\n", what, e);
    std::exit(1);
  }
}

void report_us(const std::string& name, double us) {
  std::printf("%-58s %9.2f us\n", name.c_str(), us);
  std::fflush(stdout);
}

// Spins briefly, then yields: waiting threads must not starve the driver's own threads of cores.
void relax(int& spins) {
  if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    std::this_thread::yield();
  }
}

// Pinned host memory the way the backend gets it: a CL_MEM_ALLOC_HOST_PTR buffer, mapped once
// (blocking) and kept mapped; transfers use the mapped pointer as their host pointer.
class pinned {
 public:
  // `flags` and `map` select the host-access hints (CL_MEM_HOST_READ_ONLY / WRITE_ONLY with the
  // matching map flag), which a platform may use to pick cached or write-combined memory.
  pinned(const cl::Context& context, const cl::CommandQueue& queue, std::size_t bytes,
         cl_mem_flags flags = CL_MEM_READ_WRITE, cl_map_flags map = CL_MAP_READ | CL_MAP_WRITE)
      : queue_(queue) {
    cl_int e = CL_SUCCESS;
    buffer_ = cl::Buffer(context, flags | CL_MEM_ALLOC_HOST_PTR, bytes, nullptr, &e);
    check(e, "clCreateBuffer (CL_MEM_ALLOC_HOST_PTR)");
    void* p = queue_.enqueueMapBuffer(buffer_, CL_TRUE, map, 0, bytes, nullptr, nullptr, &e);
    check(e, "clEnqueueMapBuffer");
    if (!p) check(CL_MAP_FAILURE, "clEnqueueMapBuffer");
    data_ = static_cast<i64*>(p);
  }
  pinned(const pinned&) = delete;
  pinned& operator=(const pinned&) = delete;
  // Unmapped before the release: a buffer released while mapped is left to the platform's mercy.
  ~pinned() {
    check(queue_.enqueueUnmapMemObject(buffer_, data_), "clEnqueueUnmapMemObject");
    check(queue_.finish(), "clFinish");
  }
  i64* data() const { return data_; }

 private:
  cl::CommandQueue queue_;
  cl::Buffer buffer_;
  i64* data_ = nullptr;
};

cl::Buffer device_buffer(const cl::Context& context, std::size_t bytes) {
  cl_int e = CL_SUCCESS;
  cl::Buffer b(context, CL_MEM_READ_WRITE, bytes, nullptr, &e);
  check(e, "clCreateBuffer");
  return b;
}

cl::CommandQueue make_queue(const cl::Context& context, const cl::Device& device) {
  cl_int e = CL_SUCCESS;
  cl::CommandQueue q(context, device, 0, &e);
  check(e, "clCreateCommandQueue");
  return q;
}

struct platform_env {
  cl::Context context;
  cl::Device device;
  cl::Program program;
  std::size_t local_size = 1;

  cl::Kernel kernel() const {
    cl_int e = CL_SUCCESS;
    cl::Kernel k(program, "triple", &e);
    check(e, "clCreateKernel");
    return k;
  }
};

// Sets the arguments on every launch, as the backend does (a kernel object per queue, since
// clSetKernelArg on one object from several threads is not safe).
void launch(const platform_env& env, const cl::CommandQueue& q, cl::Kernel& k, const cl::Buffer& in,
            const cl::Buffer& out, std::size_t count, cl::Event* done) {
  check(k.setArg(0, in), "clSetKernelArg");
  check(k.setArg(1, out), "clSetKernelArg");
  check(k.setArg(2, static_cast<cl_ulong>(count)), "clSetKernelArg");
  const std::size_t global = (count + env.local_size - 1) / env.local_size * env.local_size;
  check(q.enqueueNDRangeKernel(k, cl::NullRange, cl::NDRange(global), cl::NDRange(env.local_size), nullptr, done),
        "clEnqueueNDRangeKernel");
}

// One queue with 4 KiB of pinned and device memory each way, for the per-command figures.
struct small_lane {
  cl::CommandQueue queue;
  cl::Kernel kernel;
  cl::Buffer din, dout;
  std::unique_ptr<pinned> hin, hout;

  explicit small_lane(const platform_env& env)
      : queue(make_queue(env.context, env.device)),
        kernel(env.kernel()),
        din(device_buffer(env.context, small_bytes)),
        dout(device_buffer(env.context, small_bytes)),
        hin(std::make_unique<pinned>(env.context, queue, small_bytes)),
        hout(std::make_unique<pinned>(env.context, queue, small_bytes)) {
    for (std::size_t i = 0; i < small_elements; ++i) hin->data()[i] = static_cast<i64>(i);
  }
};

enum class trip_kind {
  all_events,  // an event for each command, as the backend asks for
  last_event,  // an event for the read only
  no_flush,    // all events, no clFlush: the wait alone submits
};

// One chunk's round trip: write, kernel, read, flush, wait for the read.
void round_trip(const platform_env& env, small_lane& l, trip_kind kind) {
  cl::Event w, k, r;
  const bool each = kind != trip_kind::last_event;
  check(l.queue.enqueueWriteBuffer(l.din, CL_FALSE, 0, small_bytes, l.hin->data(), nullptr, each ? &w : nullptr),
        "clEnqueueWriteBuffer");
  launch(env, l.queue, l.kernel, l.din, l.dout, small_elements, each ? &k : nullptr);
  check(l.queue.enqueueReadBuffer(l.dout, CL_FALSE, 0, small_bytes, l.hout->data(), nullptr, &r),
        "clEnqueueReadBuffer");
  if (kind != trip_kind::no_flush) check(l.queue.flush(), "clFlush");
  check(r.wait(), "clWaitForEvents");
}

// Runs body(t) on `threads` threads that start together; returns the wall time in ms from the
// start to the last one's end (thread creation excluded).
double run_together(int threads, const std::function<void(int)>& body) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      int spins = 0;
      while (!go.load(std::memory_order_acquire)) relax(spins);
      body(t);
    });
  int spins = 0;
  while (ready.load() < threads) relax(spins);
  const auto t0 = clock_type::now();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  return ms_since(t0);
}

// ---- pipelines ------------------------------------------------------------------------------------

// One slot of a pipeline: its own queue, kernel, mapped pinned staging and device buffers.
struct slot {
  cl::CommandQueue queue;
  cl::Kernel kernel;
  cl::Buffer din, dout;
  std::unique_ptr<pinned> hin, hout;
  cl::Event write, kernel_done, read;
  std::size_t begin = 0, count = 0;
  bool busy = false;
  // The single-submitter variant's hand-over (see run_single_submitter), on its own cache line.
  alignas(64) std::atomic<int> state{0};

  slot(const platform_env& env, std::size_t capacity)
      : queue(make_queue(env.context, env.device)),
        kernel(env.kernel()),
        din(device_buffer(env.context, capacity * sizeof(i64))),
        dout(device_buffer(env.context, capacity * sizeof(i64))),
        hin(std::make_unique<pinned>(env.context, queue, capacity * sizeof(i64))),
        hout(std::make_unique<pinned>(env.context, queue, capacity * sizeof(i64))) {}

  // The three commands of a chunk, each with an event as the backend asks for, then a flush.
  void submit(const platform_env& env) {
    const std::size_t bytes = count * sizeof(i64);
    check(queue.enqueueWriteBuffer(din, CL_FALSE, 0, bytes, hin->data(), nullptr, &write), "clEnqueueWriteBuffer");
    launch(env, queue, kernel, din, dout, count, &kernel_done);
    check(queue.enqueueReadBuffer(dout, CL_FALSE, 0, bytes, hout->data(), nullptr, &read), "clEnqueueReadBuffer");
    check(queue.flush(), "clFlush");
  }
};

struct pipeline_shape {
  int threads;
  std::size_t chunk;
};

// Where the pipeline threads' time goes, summed over threads (the last timed run).
struct thread_phases {
  std::atomic<long long> copy_in{0}, enqueue{0}, wait{0}, copy_out{0}, poll{0};
  void clear() { copy_in = enqueue = wait = copy_out = poll = 0; }
};
thread_phases g_phases;

// Pageable in -> pageable out through per-thread slots. Threads take chunks from a shared counter;
// thread t uses slots t * 3 .. t * 3 + 2 in turn.
void run_pipeline(const platform_env& env, const pipeline_shape& sh, std::vector<std::unique_ptr<slot>>& slots,
                  const i64* in, i64* out, std::size_t n) {
  const std::size_t chunks = (n + sh.chunk - 1) / sh.chunk;
  std::atomic<std::size_t> next{0};
  g_phases.clear();
  std::vector<std::thread> pool;
  for (int t = 0; t < sh.threads; ++t) {
    pool.emplace_back([&, t] {
      long long ci = 0, eq = 0, wt = 0, co = 0;
      auto drain = [&](slot& s) {
        auto t0 = clock_type::now();
        check(s.read.wait(), "clWaitForEvents");
        wt += ns_since(t0);
        t0 = clock_type::now();
        std::memcpy(out + s.begin, s.hout->data(), s.count * sizeof(i64));
        co += ns_since(t0);
        s.busy = false;
      };
      int k = 0;
      for (std::size_t c; (c = next.fetch_add(1)) < chunks; k = (k + 1) % slots_per_thread) {
        slot& s = *slots[static_cast<std::size_t>(t * slots_per_thread + k)];
        if (s.busy) drain(s);
        s.begin = c * sh.chunk;
        s.count = std::min(sh.chunk, n - s.begin);
        auto t0 = clock_type::now();
        std::memcpy(s.hin->data(), in + s.begin, s.count * sizeof(i64));
        ci += ns_since(t0);
        t0 = clock_type::now();
        s.submit(env);
        eq += ns_since(t0);
        s.busy = true;
      }
      for (int j = 0; j < slots_per_thread; ++j) {
        slot& s = *slots[static_cast<std::size_t>(t * slots_per_thread + (k + j) % slots_per_thread)];
        if (s.busy) drain(s);
      }
      g_phases.copy_in += ci;
      g_phases.enqueue += eq;
      g_phases.wait += wt;
      g_phases.copy_out += co;
    });
  }
  for (auto& th : pool) th.join();
}

// A slot's state in the single-submitter variant. A worker owns a free, ready-to-copy-out slot;
// the submitter owns a slot from ready to done.
enum slot_state : int {
  slot_free = 0,    // nothing in it
  slot_ready = 1,   // input staged: the submitter may enqueue it
  slot_flight = 2,  // enqueued: the submitter polls its read event
  slot_done = 3,    // output staged: the worker copies it out
};

// Like run_pipeline, but T - 1 workers only copy (slots w * 3 .. w * 3 + 2 are worker w's) and
// one submitter makes every OpenCL call: it enqueues ready slots and polls in-flight ones, so no
// two threads ever call into the platform at once.
void run_single_submitter(const platform_env& env, const pipeline_shape& sh,
                          std::vector<std::unique_ptr<slot>>& slots, const i64* in, i64* out, std::size_t n) {
  const int workers = sh.threads - 1;
  const std::size_t used = static_cast<std::size_t>(workers * slots_per_thread);
  const std::size_t chunks = (n + sh.chunk - 1) / sh.chunk;
  std::atomic<std::size_t> next{0};
  std::atomic<int> finished{0};
  g_phases.clear();
  for (std::size_t i = 0; i < used; ++i) slots[i]->state.store(slot_free);

  std::thread submitter([&] {
    long long eq = 0, pl = 0;
    int spins = 0;
    // Once every worker has drained its slots, nothing is ready or in flight.
    while (finished.load(std::memory_order_acquire) < workers) {
      bool progress = false;
      for (std::size_t i = 0; i < used; ++i) {
        slot& s = *slots[i];
        const int st = s.state.load(std::memory_order_acquire);
        if (st == slot_ready) {
          const auto t0 = clock_type::now();
          s.submit(env);
          eq += ns_since(t0);
          s.state.store(slot_flight, std::memory_order_relaxed);
          progress = true;
        } else if (st == slot_flight) {
          const auto t0 = clock_type::now();
          cl_int status = CL_QUEUED;
          check(s.read.getInfo(CL_EVENT_COMMAND_EXECUTION_STATUS, &status), "clGetEventInfo");
          pl += ns_since(t0);
          if (status < 0) check(status, "clEnqueueReadBuffer (execution status)");
          if (status == CL_COMPLETE) {
            s.state.store(slot_done, std::memory_order_release);
            progress = true;
          }
        }
      }
      if (progress)
        spins = 0;
      else
        relax(spins);
    }
    g_phases.enqueue += eq;
    g_phases.poll += pl;
  });

  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w) {
    pool.emplace_back([&, w] {
      long long ci = 0, wt = 0, co = 0;
      // Waits until the submitter hands the slot back, then copies out what it holds.
      auto reclaim = [&](slot& s) {
        auto t0 = clock_type::now();
        int spins = 0, st;
        while ((st = s.state.load(std::memory_order_acquire)) == slot_ready || st == slot_flight) relax(spins);
        wt += ns_since(t0);
        if (st == slot_done) {
          t0 = clock_type::now();
          std::memcpy(out + s.begin, s.hout->data(), s.count * sizeof(i64));
          co += ns_since(t0);
          s.state.store(slot_free, std::memory_order_relaxed);
        }
      };
      int k = 0;
      for (std::size_t c; (c = next.fetch_add(1)) < chunks; k = (k + 1) % slots_per_thread) {
        slot& s = *slots[static_cast<std::size_t>(w * slots_per_thread + k)];
        reclaim(s);
        s.begin = c * sh.chunk;
        s.count = std::min(sh.chunk, n - s.begin);
        const auto t0 = clock_type::now();
        std::memcpy(s.hin->data(), in + s.begin, s.count * sizeof(i64));
        ci += ns_since(t0);
        s.state.store(slot_ready, std::memory_order_release);
      }
      for (int j = 0; j < slots_per_thread; ++j)
        reclaim(*slots[static_cast<std::size_t>(w * slots_per_thread + (k + j) % slots_per_thread)]);
      g_phases.copy_in += ci;
      g_phases.wait += wt;
      g_phases.copy_out += co;
      finished.fetch_add(1, std::memory_order_release);
    });
  }
  for (auto& th : pool) th.join();
  submitter.join();
}

// Every device of every platform, GPUs first (as the backend numbers them).
struct listed_device {
  cl::Platform platform;
  cl::Device device;
  bool gpu;
};

std::vector<listed_device> list_devices() {
  std::vector<cl::Platform> platforms;
  const cl_int e = cl::Platform::get(&platforms);
  if (e == CL_PLATFORM_NOT_FOUND_KHR) return {};
  check(e, "clGetPlatformIDs");
  std::vector<listed_device> found;
  for (const auto& p : platforms) {
    std::vector<cl::Device> devs;
    // A platform that cannot list its devices is skipped, as the backend lists none of them.
    if (p.getDevices(CL_DEVICE_TYPE_ALL, &devs) != CL_SUCCESS) continue;
    for (const auto& d : devs) {
      cl_device_type type = 0;
      check(d.getInfo(CL_DEVICE_TYPE, &type), "clGetDeviceInfo");
      found.push_back({p, d, (type & CL_DEVICE_TYPE_GPU) != 0});
    }
  }
  std::stable_partition(found.begin(), found.end(), [](const listed_device& d) { return d.gpu; });
  return found;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : std::size_t{1} << 25;
  const long index = argc > 2 ? std::strtol(argv[2], nullptr, 0) : 0;
  if (n == 0) {
    std::fprintf(stderr, "usage: kiln_opencl_limits [n > 0] [device]\n");
    return 2;
  }
  const int runs = 7;
  const std::size_t bytes = n * sizeof(i64);
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  const std::vector<listed_device> devices = list_devices();
  if (devices.empty()) {
    std::printf("no OpenCL device: nothing to measure\n");
    return 0;
  }
  if (index < 0 || static_cast<std::size_t>(index) >= devices.size()) {
    std::fprintf(stderr, "device %ld is out of range: %zu device(s)\n", index, devices.size());
    return 2;
  }
  const listed_device& chosen = devices[static_cast<std::size_t>(index)];
  std::string platform_name, device_name;
  check(chosen.platform.getInfo(CL_PLATFORM_NAME, &platform_name), "clGetPlatformInfo");
  check(chosen.device.getInfo(CL_DEVICE_NAME, &device_name), "clGetDeviceInfo");
  std::printf("platform: %s, device %ld: %s\n", platform_name.c_str(), index, device_name.c_str());
  std::printf("n = %zu (%zu MiB each way), %d hardware threads\n", n, bytes >> 20, hw);

  platform_env env;
  env.device = chosen.device;
  cl_int e = CL_SUCCESS;
  env.context = cl::Context(chosen.device, nullptr, nullptr, nullptr, &e);
  check(e, "clCreateContext");
  env.program = cl::Program(env.context, std::string(kernel_source), false, &e);
  check(e, "clCreateProgramWithSource");
  if (const cl_int be = env.program.build(std::vector<cl::Device>{env.device}); be != CL_SUCCESS) {
    std::string log;
    (void)env.program.getBuildInfo(env.device, CL_PROGRAM_BUILD_LOG, &log);
    std::fprintf(stderr, "%s\n", log.c_str());
    check(be, "clBuildProgram");
  }
  {
    // The backend's group size: 256 where the kernel allows it (a power of two, so it divides).
    cl::Kernel k = env.kernel();
    std::size_t max_group = 1;
    check(k.getWorkGroupInfo(env.device, CL_KERNEL_WORK_GROUP_SIZE, &max_group), "clGetKernelWorkGroupInfo");
    while (env.local_size * 2 <= std::min<std::size_t>(256, max_group)) env.local_size *= 2;
  }

  std::vector<i64> in(n), out(n, 0), expect(n);
  for (std::size_t i = 0; i < n; ++i) {
    in[i] = static_cast<i64>(i + 1);
    expect[i] = host_kernel(in[i]);
  }

  // ---- pinned transfers -----------------------------------------------------------------------------
  {
    cl::CommandQueue q1 = make_queue(env.context, env.device), q2 = make_queue(env.context, env.device);
    pinned pin_a(env.context, q1, bytes), pin_b(env.context, q2, bytes);
    cl::Buffer dev_a = device_buffer(env.context, bytes), dev_b = device_buffer(env.context, bytes);
    std::memcpy(pin_a.data(), in.data(), bytes);
    report("pinned write (clEnqueueWriteBuffer from mapped)", median_ms(runs, [&] {
             check(q1.enqueueWriteBuffer(dev_a, CL_TRUE, 0, bytes, pin_a.data()), "clEnqueueWriteBuffer");
           }), bytes);
    report("pinned read (clEnqueueReadBuffer to mapped)", median_ms(runs, [&] {
             check(q1.enqueueReadBuffer(dev_a, CL_TRUE, 0, bytes, pin_b.data()), "clEnqueueReadBuffer");
           }), bytes);
    report("pinned write + read at once, two queues (bytes one way)", median_ms(runs, [&] {
             check(q1.enqueueWriteBuffer(dev_a, CL_FALSE, 0, bytes, pin_a.data()), "clEnqueueWriteBuffer");
             check(q2.enqueueReadBuffer(dev_b, CL_FALSE, 0, bytes, pin_b.data()), "clEnqueueReadBuffer");
             check(q1.flush(), "clFlush");
             check(q2.flush(), "clFlush");
             check(q1.finish(), "clFinish");
             check(q2.finish(), "clFinish");
           }), bytes);
    check(q1.finish(), "clFinish");
    check(q2.finish(), "clFinish");
  }

  // ---- host copies into and out of mapped staging ----------------------------------------------------
  // Every staged chunk is copied into mapped memory and its result out of it: whether the
  // platform maps that memory cached decides what those copies cost. T threads, each copying its
  // own 4 MiB piece 16 times, against ordinary memory as the baseline.
  {
    const std::size_t piece = std::min<std::size_t>(bytes, std::size_t{4} << 20);
    struct staging_kind {
      const char* name;
      cl_mem_flags flags;
      cl_map_flags map;
      bool ordinary;
    };
    const staging_kind kinds[] = {{"ordinary memory", 0, 0, true},
                                  {"mapped, read-write (the backend's)", CL_MEM_READ_WRITE, CL_MAP_READ | CL_MAP_WRITE, false},
                                  {"mapped, host read only", CL_MEM_HOST_READ_ONLY, CL_MAP_READ, false},
                                  {"mapped, host write only", CL_MEM_HOST_WRITE_ONLY, CL_MAP_WRITE, false}};
    for (int threads : {1, hw}) {
      if (static_cast<std::size_t>(threads) * piece > bytes) continue;
      for (const auto& kind : kinds) {
        cl::CommandQueue q = make_queue(env.context, env.device);
        std::vector<std::unique_ptr<pinned>> bufs;
        std::vector<std::vector<i64>> plain;
        std::vector<i64*> staging;
        for (int t = 0; t < threads; ++t) {
          if (kind.ordinary) {
            plain.emplace_back(piece / sizeof(i64), 1);
            staging.push_back(plain.back().data());
          } else {
            bufs.push_back(std::make_unique<pinned>(env.context, q, piece, kind.flags, kind.map));
            staging.push_back(bufs.back()->data());
          }
        }
        auto copies = [&](bool into) {
          std::vector<std::thread> pool;
          for (int t = 0; t < threads; ++t)
            pool.emplace_back([&, t] {
              char* user = reinterpret_cast<char*>(into ? in.data() : out.data()) + t * piece;
              for (int r = 0; r < 16; ++r) {
                if (into)
                  std::memcpy(staging[t], user, piece);
                else
                  std::memcpy(user, staging[t], piece);
              }
            });
          for (auto& th : pool) th.join();
        };
        const double moved = 16.0 * static_cast<double>(piece) * threads;
        const std::string tag = std::string(kind.name) + ", " + std::to_string(threads) + " threads";
        if (kind.map & CL_MAP_WRITE || kind.ordinary)
          report("host copy into " + tag, median_ms(runs, [&] { copies(true); }), moved);
        if (kind.map & CL_MAP_READ || kind.ordinary)
          report("host copy out of " + tag, median_ms(runs, [&] { copies(false); }), moved);
        bufs.clear();
        check(q.finish(), "clFinish");
      }
    }
  }

  // ---- per-command costs, one thread, one in-order queue, 4 KiB -----------------------------------
  std::vector<int> thread_counts;
  for (int t : {1, 2, 4, 8, 16})
    if (t <= hw) thread_counts.push_back(t);
  std::vector<std::unique_ptr<small_lane>> small;
  for (int t = 0; t < thread_counts.back(); ++t) small.push_back(std::make_unique<small_lane>(env));
  {
    small_lane& l = *small[0];
    report_us("4 KiB write + flush + wait, round trip", median_of(runs, [&] {
                const auto t0 = clock_type::now();
                for (int i = 0; i < trips_per_run; ++i) {
                  cl::Event w;
                  check(l.queue.enqueueWriteBuffer(l.din, CL_FALSE, 0, small_bytes, l.hin->data(), nullptr, &w),
                        "clEnqueueWriteBuffer");
                  check(l.queue.flush(), "clFlush");
                  check(w.wait(), "clWaitForEvents");
                }
                return ms_since(t0) * 1e3 / trips_per_run;
              }));
    report_us("4 KiB write, enqueue only (no event, 1000 queued)", median_of(runs, [&] {
                const auto t0 = clock_type::now();
                for (int i = 0; i < commands_per_run; ++i)
                  check(l.queue.enqueueWriteBuffer(l.din, CL_FALSE, 0, small_bytes, l.hin->data()),
                        "clEnqueueWriteBuffer");
                const double us = ms_since(t0) * 1e3 / commands_per_run;
                check(l.queue.finish(), "clFinish");
                return us;
              }));
    report_us("kernel launch, enqueue only (no event, 1000 queued)", median_of(runs, [&] {
                const auto t0 = clock_type::now();
                for (int i = 0; i < commands_per_run; ++i)
                  launch(env, l.queue, l.kernel, l.din, l.dout, small_elements, nullptr);
                const double us = ms_since(t0) * 1e3 / commands_per_run;
                check(l.queue.finish(), "clFinish");
                return us;
              }));
    const struct {
      trip_kind kind;
      const char* name;
    } trips[] = {{trip_kind::all_events, "chunk round trip (write+kernel+read+flush+wait)"},
                 {trip_kind::last_event, "chunk round trip, event on the read only"},
                 {trip_kind::no_flush, "chunk round trip, no clFlush (wait only)"}};
    for (const auto& tr : trips)
      report_us(tr.name, median_of(runs, [&] {
                  const auto t0 = clock_type::now();
                  for (int i = 0; i < trips_per_run; ++i) round_trip(env, l, tr.kind);
                  return ms_since(t0) * 1e3 / trips_per_run;
                }));
  }

  // ---- contention: T threads, one queue each, one context ------------------------------------------
  for (int t : thread_counts) {
    std::vector<double> per_thread(static_cast<std::size_t>(t));
    const double wall = median_of(runs, [&] {
      return run_together(t, [&](int i) {
        const auto t0 = clock_type::now();
        for (int r = 0; r < trips_per_run; ++r) round_trip(env, *small[static_cast<std::size_t>(i)], trip_kind::all_events);
        per_thread[static_cast<std::size_t>(i)] = ms_since(t0);
      });
    });
    double mean = 0;
    for (double ms : per_thread) mean += ms / t;  // the last run's
    std::printf("%-58s %9.0f /s  %8.2f us each\n",
                ("chunk round trips, " + std::to_string(t) + " threads at once").c_str(),
                t * trips_per_run / wall * 1e3, mean * 1e3 / trips_per_run);
    std::fflush(stdout);
  }
  for (int t : thread_counts) {
    std::vector<double> per_thread(static_cast<std::size_t>(t));
    // The enqueue phase only: each thread times its enqueues, then waits for its queue.
    const double slowest = median_of(runs, [&] {
      run_together(t, [&](int i) {
        small_lane& l = *small[static_cast<std::size_t>(i)];
        const auto t0 = clock_type::now();
        for (int r = 0; r < trips_per_run; ++r) {
          cl::Event w, k, rd;
          check(l.queue.enqueueWriteBuffer(l.din, CL_FALSE, 0, small_bytes, l.hin->data(), nullptr, &w),
                "clEnqueueWriteBuffer");
          launch(env, l.queue, l.kernel, l.din, l.dout, small_elements, &k);
          check(l.queue.enqueueReadBuffer(l.dout, CL_FALSE, 0, small_bytes, l.hout->data(), nullptr, &rd),
                "clEnqueueReadBuffer");
          check(l.queue.flush(), "clFlush");
        }
        per_thread[static_cast<std::size_t>(i)] = ms_since(t0);
        check(l.queue.finish(), "clFinish");
      });
      return *std::max_element(per_thread.begin(), per_thread.end());
    });
    double mean = 0;
    for (double ms : per_thread) mean += ms / t;
    std::printf("%-58s %9.0f /s  %8.2f us each\n",
                ("chunk enqueues (3 commands + flush), " + std::to_string(t) + " threads").c_str(),
                t * trips_per_run / slowest * 1e3, mean * 1e3 / trips_per_run);
    std::fflush(stdout);
  }
  small.clear();

  // ---- per-thread pageable pipelines ----------------------------------------------------------------
  // Chunks larger than n are clamped to n; a shape that then repeats an earlier one is skipped.
  std::vector<pipeline_shape> shapes;
  for (int t : {4, 8, 16})
    for (std::size_t chunk : {std::size_t{1} << 17, std::size_t{1} << 19, std::size_t{1} << 21}) {
      const pipeline_shape sh{t, std::min(chunk, n)};
      if (std::none_of(shapes.begin(), shapes.end(),
                       [&](const pipeline_shape& o) { return o.threads == sh.threads && o.chunk == sh.chunk; }))
        shapes.push_back(sh);
    }
  std::size_t capacity = 0;
  int most_threads = 0;
  for (const auto& sh : shapes) {
    capacity = std::max(capacity, sh.chunk);
    most_threads = std::max(most_threads, sh.threads);
  }
  // One set of slots for every shape, sized for the largest: each shape uses the first ones.
  std::vector<std::unique_ptr<slot>> slots;
  for (int i = 0; i < most_threads * slots_per_thread; ++i) slots.push_back(std::make_unique<slot>(env, capacity));
  for (bool single : {false, true})
    for (const auto& sh : shapes) {
      std::fill(out.begin(), out.end(), 0);
      const double ms = median_ms(runs, [&] {
        if (single)
          run_single_submitter(env, sh, slots, in.data(), out.data(), n);
        else
          run_pipeline(env, sh, slots, in.data(), out.data(), n);
      });
      const bool ok = out == expect;
      char name[160];
      std::snprintf(name, sizeof name, "%s %2d threads, chunk %5zu KiB, %d slots%s",
                    single ? "single submitter" : "pipeline", sh.threads, sh.chunk * sizeof(i64) >> 10,
                    slots_per_thread, ok ? "" : " MISMATCH");
      report(name, ms, bytes);
      if (single) {
        const int w = sh.threads - 1;
        std::printf("    per worker: copy in %.3f, wait %.3f, copy out %.3f ms; submitter: enqueue %.3f, poll %.3f ms\n",
                    g_phases.copy_in / 1e6 / w, g_phases.wait / 1e6 / w, g_phases.copy_out / 1e6 / w,
                    g_phases.enqueue / 1e6, g_phases.poll / 1e6);
      } else {
        std::printf("    per thread: copy in %.3f, enqueue %.3f, wait %.3f, copy out %.3f ms\n",
                    g_phases.copy_in / 1e6 / sh.threads, g_phases.enqueue / 1e6 / sh.threads,
                    g_phases.wait / 1e6 / sh.threads, g_phases.copy_out / 1e6 / sh.threads);
      }
      std::fflush(stdout);
    }
  return 0;
}
