// OpenCL program binaries kept in the disk cache: looked up before a build from source, stored after one.
#include "backends/opencl/opencl_program_cache.hpp"

#include <optional>
#include <utility>
#include <vector>

#include "backends/opencl/build_thread.hpp"
#include "core/kernel_cache.hpp"

namespace kiln::detail {
namespace {

// What a program binary depends on. The device's name carries its architecture (PoCL names the
// CPU's, "pthread-skylake-avx512-..."; GPU drivers the GPU's), the driver's version its compiler.
// Nothing when a query fails: a key without the device would be unsafe, so then no caching.
std::optional<cache_key> program_key(const cl::Device& device, const std::string& source, const char* options) {
  cl_int e = CL_SUCCESS;
  // The C query: opencl.hpp's getInfo<CL_DEVICE_PLATFORM> returns a cl_platform_id in some
  // versions of the header and a cl::Platform in others.
  cl_platform_id platform_id = nullptr;
  e = clGetDeviceInfo(device(), CL_DEVICE_PLATFORM, sizeof platform_id, &platform_id, nullptr);
  if (e != CL_SUCCESS) return std::nullopt;
  const cl::Platform platform(platform_id, true);
  cache_key key;
  key.add("backend", "opencl").add("image", "program binary").add("source", source).add("options", options);
  const std::pair<const char*, cl_device_info> device_parts[] = {{"device name", CL_DEVICE_NAME},
                                                                 {"device vendor", CL_DEVICE_VENDOR},
                                                                 {"device version", CL_DEVICE_VERSION},
                                                                 {"driver version", CL_DRIVER_VERSION}};
  for (const auto& [name, info] : device_parts) {
    std::string value;
    if (device.getInfo(info, &value) != CL_SUCCESS) return std::nullopt;
    key.add(name, value);
  }
  const std::pair<const char*, cl_platform_info> platform_parts[] = {{"platform name", CL_PLATFORM_NAME},
                                                                     {"platform version", CL_PLATFORM_VERSION}};
  for (const auto& [name, info] : platform_parts) {
    std::string value;
    if (platform.getInfo(info, &value) != CL_SUCCESS) return std::nullopt;
    key.add(name, value);
  }
  return key;
}

// The built program's binary for `device`, if the driver gives one (a program may have been
// built for several devices: the binaries come in the order of CL_PROGRAM_DEVICES).
std::optional<std::vector<char>> binary_of(const cl::Program& program, const cl::Device& device) {
  cl_uint count = 0;
  if (clGetProgramInfo(program(), CL_PROGRAM_NUM_DEVICES, sizeof count, &count, nullptr) != CL_SUCCESS || count == 0)
    return std::nullopt;
  std::vector<cl_device_id> devices(count);
  std::vector<std::size_t> sizes(count);
  if (clGetProgramInfo(program(), CL_PROGRAM_DEVICES, count * sizeof(cl_device_id), devices.data(), nullptr) !=
          CL_SUCCESS ||
      clGetProgramInfo(program(), CL_PROGRAM_BINARY_SIZES, count * sizeof(std::size_t), sizes.data(), nullptr) !=
          CL_SUCCESS)
    return std::nullopt;
  std::vector<std::vector<char>> binaries(count);
  std::vector<char*> pointers(count);
  std::optional<std::size_t> mine;
  for (cl_uint i = 0; i < count; ++i) {
    binaries[i].resize(sizes[i]);
    pointers[i] = binaries[i].data();
    if (devices[i] == device()) mine = i;
  }
  if (!mine || sizes[*mine] == 0) return std::nullopt;
  if (clGetProgramInfo(program(), CL_PROGRAM_BINARIES, count * sizeof(char*), pointers.data(), nullptr) != CL_SUCCESS)
    return std::nullopt;
  return std::move(binaries[*mine]);
}

}  // namespace

result<cl::Program> build_cached(const cl::Context& context, const cl::Device& device, const std::string& source,
                                 const char* options, const program_build& build) {
  const kernel_cache cache = kernel_cache::from_environment();
  std::optional<cache_key> key;
  if (cache.enabled()) key = program_key(device, source, options);
  if (key) {
    if (auto binary = cache.load(*key)) {
      const unsigned char* bytes = reinterpret_cast<const unsigned char*>(binary->data());
      const std::size_t size = binary->size();
      cl_int binary_status = CL_SUCCESS;
      cl_int e = CL_INVALID_OPERATION;
      cl_program made = nullptr;
      // On the build thread, as builds are: a driver may compile while it reads a binary.
      (void)run_on_build_thread(
          [&] { made = clCreateProgramWithBinary(context(), 1, &device(), &size, &bytes, &binary_status, &e); });
      if (e == CL_SUCCESS && binary_status == CL_SUCCESS) {
        cl::Program program(made);  // takes the reference clCreateProgramWithBinary returned
        if (build(program, device).ok()) return program;
      } else if (made) {
        clReleaseProgram(made);
      }
      // A binary this driver no longer takes (the key missed a change): built afresh below,
      // and the entry replaced.
      cache.drop(*key);
    }
  }
  cl_int e = CL_SUCCESS;
  cl::Program program(context, source, false, &e);
  if (e != CL_SUCCESS)
    return make_error(e == CL_OUT_OF_HOST_MEMORY ? errc::out_of_memory : errc::device_error,
                      "clCreateProgramWithSource failed: error " + std::to_string(e));
  KILN_TRY(build(program, device));
  if (key) {
    // PoCL compiles the program's kernels to produce its binary, which recurses as deep as a
    // build does: so on the build thread too.
    std::optional<std::vector<char>> binary;
    if (run_on_build_thread([&] { binary = binary_of(program, device); }).ok() && binary)
      (void)cache.store(*key, *binary);
  }
  return program;
}

}  // namespace kiln::detail
