// The CUDA backend's kernels: map and program launches, the NVRTC kernel cache, kernel runs and runs over buffers.
#include "backends/cuda/cuda_kernels.cuh"

#include <algorithm>

#include "backends/cuda/cuda_buffers.cuh"
#include "backends/cuda/logistic_kernel.cuh"
#include "backends/cuda/nvrtc.hpp"

namespace kiln::detail {
namespace {

using i64 = std::int64_t;

}  // namespace

cudaError_t cuda_launch_map(const void* in, bool in32, void* out, bool out32, std::size_t n, const kernel_params& kp,
                            int sm_count, cudaStream_t stream) {
  return launch_logistic(in, in32, out, out32, n, kp, sm_count, stream);
}

// ---- programs in the pipeline --------------------------------------------------------------------

status cuda_device_state::begin_program(const cuda_program_launch& p) {
  std::vector<std::uint64_t> words(1 + p.params.size(), no_fault);
  std::copy(p.params.begin(), p.params.end(), words.begin() + 1);
  const std::size_t bytes = words.size() * sizeof(std::uint64_t);
  if (bytes > program_bytes_) {
    program_mem_.reset();
    program_bytes_ = 0;
    auto mem = allocate_device(bytes, "cudaMalloc (program parameters)");
    if (!mem) return mem.err();
    program_mem_ = std::move(mem).value();
    program_bytes_ = bytes;
  }
  if (!aux_) {
    auto stream = create_stream();
    if (!stream) return stream.err();
    aux_ = std::move(stream).value();
  }
  // Waited for here, so every lane's stream sees the words (and no older job's).
  KILN_TRY(cuda_check(cudaMemcpyAsync(program_mem_.get(), words.data(), bytes, cudaMemcpyHostToDevice, aux_.get()),
                      "cudaMemcpyAsync (program parameters)"));
  return cuda_check(cudaStreamSynchronize(aux_.get()), "cudaStreamSynchronize");
}

result<std::uint64_t> cuda_device_state::program_fault() {
  std::uint64_t first = 0;
  KILN_TRY(cuda_check(cudaMemcpyAsync(&first, program_mem_.get(), sizeof first, cudaMemcpyDeviceToHost, aux_.get()),
                      "cudaMemcpyAsync (program fault)"));
  KILN_TRY(cuda_check(cudaStreamSynchronize(aux_.get()), "cudaStreamSynchronize"));
  return first;
}

status cuda_device_state::launch_program(const void* in_elements, void* out_elements, bool narrow_in,
                                         const cuda_program_launch& p, std::size_t begin, std::size_t count,
                                         cudaStream_t stream) {
  const i64* in = static_cast<const i64*>(in_elements);
  i64* out = static_cast<i64*>(out_elements);
  auto* fault = static_cast<unsigned long long*>(program_mem_.get());
  const i64* params = reinterpret_cast<const i64*>(fault + 1);
  long long n = static_cast<long long>(count), iterations = p.iterations;
  unsigned long long base = begin;
  int in32 = narrow_in;
  void* args[] = {&in, &out, &params, &n, &iterations, &fault, &base, &in32};
  constexpr unsigned threads = 256;
  const dim3 blocks(static_cast<unsigned>((count + threads - 1) / threads));
  // A cudaKernel_t is launched as is, in place of a __global__ function's address.
  return cuda_check(cudaLaunchKernel(reinterpret_cast<const void*>(p.kernels[static_cast<std::size_t>(index_)]), blocks,
                                     dim3(threads), args, 0, stream),
                    "cudaLaunchKernel (kiln_program)");
}

// ---- compiled kernels ----------------------------------------------------------------------------

result<cudaKernel_t> cuda_kernel_cache::kernel_for(const std::string& source, int arch, const char* name) {
  std::lock_guard<std::mutex> lock(m_);
  auto key = std::make_pair(source, arch);
  if (auto it = kernels_.find(key); it != kernels_.end()) return it->second;
  cudaLibrary_t lib = nullptr;
  KILN_TRY(load_cubin(source, arch, [&](const std::string& cubin) {
    return cuda_check(cudaLibraryLoadData(&lib, cubin.data(), nullptr, nullptr, 0, nullptr, nullptr, 0),
                      "cudaLibraryLoadData (kiln_program)");
  }));
  library_handle owner(lib);
  cudaKernel_t kernel = nullptr;
  KILN_TRY(cuda_check(cudaLibraryGetKernel(&kernel, lib, name), (std::string("cudaLibraryGetKernel (") + name + ")").c_str()));
  libraries_.push_back(std::move(owner));
  kernels_.emplace(std::move(key), kernel);
  return kernel;
}

// ---- kernel runs -------------------------------------------------------------------------------

result<run_stats> cuda_run_kernel(cuda_kernel_cache& kernels, std::span<cuda_device_state* const> devs,
                                  std::size_t device_count, const decoded_kernel& dk, std::span<const i64> in,
                                  std::span<i64> out, const run_options& options) {
  const std::string source = kernel_source(dk, kernel_dialect::cuda);
  cuda_program_launch launch;
  launch.kernels.resize(device_count);
  for (cuda_device_state* d : devs) {
    auto k = kernels.kernel_for(source, d->arch());
    if (!k) return k.err();
    launch.kernels[static_cast<std::size_t>(d->index())] = *k;
  }
  launch.params = dk.scalars;
  launch.iterations = dk.iterations;
  device_scope scope;
  KILN_TRY(scope.enter(devs.front()->index()));
  cuda_transfer_job job;
  job.set_arrays(in, out, options);
  job.program = &launch;
  job.set_pinned(in, out);
  auto r = cuda_device_state::transfer(devs, job);
  if (!r) return r.err();
  KILN_TRY(device_outcome(dk, in, launch.first_fault, "CUDA"));
  return r;
}

result<run_stats> cuda_run_resident(cuda_kernel_cache& kernels, cuda_device_state& ds, const decoded_kernel& dk,
                                    std::span<resident_buffer* const> arrays,
                                    std::span<resident_buffer* const> outputs, std::size_t base) {
  auto* first = static_cast<cuda_buffer*>(arrays.front());
  const std::size_t n = first->size();
  if (dk.builtin) {
    auto* in = static_cast<cuda_buffer*>(arrays[0]);
    auto* out = static_cast<cuda_buffer*>(outputs[0]);
    const kernel_params kp = prepare(dk.builtin->params);
    return out->timed([&](cudaStream_t stream) {
      return cuda_check(launch_logistic(in->data(), out->data(), n, kp, ds.sm_count(), stream),
                        "logistic_kernel launch");
    });
  }
  KILN_TRY(nvrtc_available());
  auto kernel = kernels.kernel_for(kernel_source(dk, kernel_dialect::cuda, true), ds.arch(), "kiln_resident");
  if (!kernel) return kernel.err();
  // The fault word, then the scalars.
  std::vector<i64> words(1 + std::max<std::size_t>(dk.scalars.size(), 1), 0);
  words[0] = -1;  // no_fault, as unsigned
  std::copy(dk.scalars.begin(), dk.scalars.end(), words.begin() + 1);
  auto mem = allocate_device(words.size() * sizeof(i64), "cudaMalloc (kernel parameters)");
  if (!mem) return mem.err();
  auto* fault = static_cast<unsigned long long*>(mem->get());
  const i64* params = reinterpret_cast<const i64*>(fault + 1);
  std::vector<const i64*> ins;
  std::vector<i64*> outs;
  for (auto* a : arrays) ins.push_back(static_cast<cuda_buffer*>(a)->data());
  for (auto* o : outputs) outs.push_back(static_cast<cuda_buffer*>(o)->data());
  long long count = static_cast<long long>(n), iterations = dk.iterations;
  long long first_index = static_cast<long long>(base);  // the kernel's base: `index` and faults count from it
  std::vector<void*> launch_args;
  for (auto& p : ins) launch_args.push_back(&p);
  for (auto& p : outs) launch_args.push_back(&p);
  launch_args.push_back(&params);
  launch_args.push_back(&count);
  launch_args.push_back(&iterations);
  launch_args.push_back(&fault);
  launch_args.push_back(&first_index);
  constexpr unsigned threads = 256;
  const dim3 blocks(static_cast<unsigned>((n + threads - 1) / threads));
  auto* out0 = static_cast<cuda_buffer*>(outputs[0]);
  std::uint64_t first_fault = no_fault;
  auto r = out0->timed(
      [&](cudaStream_t stream) {
        return cuda_check(cudaMemcpyAsync(mem->get(), words.data(), words.size() * sizeof(i64),
                                          cudaMemcpyHostToDevice, stream),
                          "cudaMemcpyAsync (kernel parameters)");
      },
      [&](cudaStream_t stream) {
        return cuda_check(cudaLaunchKernel(reinterpret_cast<const void*>(*kernel), blocks, dim3(threads),
                                           launch_args.data(), 0, stream),
                          "cudaLaunchKernel (kiln_resident)");
      },
      [&](cudaStream_t stream) {
        return cuda_check(cudaMemcpyAsync(&first_fault, fault, sizeof first_fault, cudaMemcpyDeviceToHost, stream),
                          "cudaMemcpyAsync (kernel fault)");
      });
  if (!r) return r.err();
  if (first_fault != no_fault) {
    if (first_fault < base || first_fault - base >= n)
      return make_error(errc::internal, "a CUDA device reported a fault at element " + std::to_string(first_fault) +
                                            ", outside the buffers");
    std::vector<i64> element(ins.size());
    for (std::size_t j = 0; j < ins.size(); ++j)
      KILN_TRY(cuda_check(cudaMemcpy(&element[j], ins[j] + (first_fault - base), sizeof(i64), cudaMemcpyDeviceToHost),
                          "cudaMemcpy (faulting element)"));
    std::vector<const i64*> at;
    for (auto& v : element) at.push_back(&v);
    return device_fault(dk, at, static_cast<std::size_t>(first_fault), "CUDA", static_cast<std::size_t>(first_fault));
  }
  return r;
}

}  // namespace kiln::detail
