// The OpenCL backend's device discovery: platforms and devices listed, checked for what Kiln needs, the map's kernel built.
#include "backends/opencl/opencl_probe.hpp"
#include "backends/opencl/opencl_program_cache.hpp"

#include <algorithm>
#include <sstream>
#include <string>
#include <utility>

#include "backends/opencl/opencl_kernels.hpp"
#include "backends/opencl/opencl_library.hpp"
#include "core/settings.hpp"

namespace kiln::detail {

// core/modmath.h followed by logistic.cl, generated at build time (cmake/embed_source.cmake).
extern const char* const opencl_kernel_source;

namespace {

// Goes ahead of opencl_kernel_source: the fp64 pragma must precede modmath.h's first double,
// and FP_CONTRACT OFF keeps every rounding that modmath.h's exactness argument counts.
constexpr const char* kernel_prelude =
    "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n"
    "#pragma OPENCL FP_CONTRACT OFF\n";

// A multiple of every GPU's SIMD width (32 or 64); the kernel uses no local memory, so larger
// groups gain nothing. Capped by what the device and the built kernel allow.
constexpr std::size_t preferred_local_size = 256;

bool has_extension(const std::string& extensions, const std::string& name) {
  std::istringstream words(extensions);
  std::string w;
  while (words >> w)
    if (w == name) return true;
  return false;
}

// Reads one device property, remembering the first failure as the device's reason.
template <cl_device_info Name>
auto query(const cl::Device& dev, const char* what, std::string& failure) {
  cl_int e = CL_SUCCESS;
  auto v = dev.getInfo<Name>(&e);
  if (e != CL_SUCCESS && failure.empty()) failure = cl_error(std::string("clGetDeviceInfo(") + what + ")", e).message;
  return v;
}

// Creates the context, queues and kernel for a usable device; the reason otherwise.
result<std::shared_ptr<opencl_device_state>> set_up(const cl::Device& dev, std::size_t max_alloc,
                                                    std::uint64_t global_mem) {
  auto ds = std::make_shared<opencl_device_state>();
  ds->device = dev;
  cl_device_type type = 0;
  // Driven unless the device is the host's own cores (see lane_slots), or KILN_OPENCL_PIPELINE says.
  ds->driven = !(dev.getInfo(CL_DEVICE_TYPE, &type) == CL_SUCCESS && (type & CL_DEVICE_TYPE_CPU) != 0);
  if (current_settings().opencl_pipeline == opencl_pipeline_mode::driven) ds->driven = true;
  if (current_settings().opencl_pipeline == opencl_pipeline_mode::lanes) ds->driven = false;
  cl_int e = CL_SUCCESS;
  ds->context = cl::Context(dev, nullptr, nullptr, nullptr, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateContext", e);
  ds->queue = cl::CommandQueue(ds->context, dev, CL_QUEUE_PROFILING_ENABLE, &e);
  if (e != CL_SUCCESS) return cl_error("clCreateCommandQueue", e);
  auto program = build_cached(ds->context, dev, std::string(kernel_prelude) + opencl_kernel_source, "",
                              [](cl::Program& p, const cl::Device& d) { return build_cl_program(p, d, "kernel"); });
  if (!program) return program.err();
  ds->program = std::move(*program);
  ds->kernel = cl::Kernel(ds->program, map_kernel_name, &e);
  if (e == CL_INVALID_KERNEL_NAME)  // the program built, so the embedded source lacks logistic.cl
    return make_error(errc::device_error, "clCreateKernel failed: " + cl_code(e) + ": the embedded source has no " +
                                              map_kernel_name + " (is logistic.cl among embed_source.cmake's INPUTS?)");
  if (e != CL_SUCCESS) return cl_error("clCreateKernel", e);
  ds->pairs_kernel = cl::Kernel(ds->program, map_pairs_kernel_name, &e);
  if (e != CL_SUCCESS) return cl_error(std::string("clCreateKernel (") + map_pairs_kernel_name + ")", e);

  // One work-group size serves every launch: the smaller of the two kernels' limits.
  std::size_t kernel_group = SIZE_MAX;
  for (const cl::Kernel* k : {&ds->kernel, &ds->pairs_kernel}) {
    kernel_group = std::min(kernel_group, k->getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(dev, &e));
    if (e != CL_SUCCESS) return cl_error("clGetKernelWorkGroupInfo(CL_KERNEL_WORK_GROUP_SIZE)", e);
  }
  const auto item_sizes = dev.getInfo<CL_DEVICE_MAX_WORK_ITEM_SIZES>(&e);
  if (e != CL_SUCCESS) return cl_error("clGetDeviceInfo(CL_DEVICE_MAX_WORK_ITEM_SIZES)", e);
  std::size_t local = std::min(preferred_local_size, kernel_group);
  if (!item_sizes.empty()) local = std::min<std::size_t>(local, item_sizes[0]);
  ds->local_size = std::max<std::size_t>(local, 1);

  ds->max_alloc_elements = std::max<std::size_t>(max_alloc / element_bytes, 1);
  ds->global_mem = global_mem;
  return ds;
}

opencl_probed_device probe_device(const cl::Device& dev, const std::string& platform) {
  opencl_probed_device r;
  device_info& d = r.info;
  d.backend = backend_kind::opencl;
  d.platform = platform;
  std::string failure;
  d.name = opencl_trim(query<CL_DEVICE_NAME>(dev, "CL_DEVICE_NAME", failure));
  if (d.name.empty()) d.name = "unnamed OpenCL device";
  d.gpu = (query<CL_DEVICE_TYPE>(dev, "CL_DEVICE_TYPE", failure) & CL_DEVICE_TYPE_GPU) != 0;
  d.compute_units = static_cast<int>(query<CL_DEVICE_MAX_COMPUTE_UNITS>(dev, "CL_DEVICE_MAX_COMPUTE_UNITS", failure));
  d.memory_bytes = query<CL_DEVICE_GLOBAL_MEM_SIZE>(dev, "CL_DEVICE_GLOBAL_MEM_SIZE", failure);
  const auto max_alloc = query<CL_DEVICE_MAX_MEM_ALLOC_SIZE>(dev, "CL_DEVICE_MAX_MEM_ALLOC_SIZE", failure);
  const bool available = query<CL_DEVICE_AVAILABLE>(dev, "CL_DEVICE_AVAILABLE", failure);
  const bool compiler = query<CL_DEVICE_COMPILER_AVAILABLE>(dev, "CL_DEVICE_COMPILER_AVAILABLE", failure);
  const std::string extensions = query<CL_DEVICE_EXTENSIONS>(dev, "CL_DEVICE_EXTENSIONS", failure);

  if (!failure.empty())
    d.reason = failure;
  else if (!available)
    d.reason = "the device reports CL_DEVICE_AVAILABLE = false";
  else if (!compiler)
    d.reason = "the platform has no OpenCL C compiler for this device (CL_DEVICE_COMPILER_AVAILABLE = false)";
  else if (!has_extension(extensions, "cl_khr_fp64"))
    d.reason = "the device lacks cl_khr_fp64 (double precision), which Kiln's exact arithmetic needs";
  else if (auto st = set_up(dev, static_cast<std::size_t>(max_alloc), d.memory_bytes); !st)
    d.reason = st.err().message;
  else
    r.state = std::move(st).value();
  d.available = r.state != nullptr;
  return r;
}

opencl_probed_device unavailable(std::string reason) {
  return {unavailable_device(backend_kind::opencl, std::move(reason)), nullptr};
}

}  // namespace

std::vector<opencl_probed_device> probe_opencl_devices() {
  if (status library = opencl_library_available(); !library) return {unavailable(library.err().message)};
  std::vector<opencl_probed_device> found;
  std::vector<cl::Platform> platforms;
  const cl_int e = cl::Platform::get(&platforms);
  if (e == CL_PLATFORM_NOT_FOUND_KHR || (e == CL_SUCCESS && platforms.empty()))
    return {unavailable("no OpenCL platform is installed (install an ICD such as pocl-opencl-icd or the GPU "
                        "vendor's driver)")};
  if (e != CL_SUCCESS) return {unavailable(cl_error("clGetPlatformIDs", e).message)};
  for (const auto& platform : platforms) {
    cl_int ne = CL_SUCCESS, ve = CL_SUCCESS;
    std::string name = opencl_trim(platform.getInfo<CL_PLATFORM_NAME>(&ne));
    const std::string version = opencl_trim(platform.getInfo<CL_PLATFORM_VERSION>(&ve));
    if (ne != CL_SUCCESS || name.empty()) name = "unnamed OpenCL platform";
    const std::string desc = ve == CL_SUCCESS ? name + " (" + version + ")" : name;
    std::vector<cl::Device> devs;
    const cl_int de = platform.getDevices(CL_DEVICE_TYPE_ALL, &devs);
    if (de == CL_DEVICE_NOT_FOUND) continue;  // a platform without devices is no device
    if (de != CL_SUCCESS) {
      // Listed, so that the user sees why a whole platform is missing.
      opencl_probed_device p = unavailable(cl_error("clGetDeviceIDs", de).message);
      p.info.platform = desc;
      found.push_back(std::move(p));
      continue;
    }
    for (const auto& dev : devs) found.push_back(probe_device(dev, desc));
  }
  if (found.empty())
    return {unavailable("the OpenCL platforms (" + std::to_string(platforms.size()) + ") list no devices")};
  return found;
}

}  // namespace kiln::detail
