// NVRTC loaded with dlopen: its few entry points, and CUDA C to cubin for one compute capability, through the disk cache.
#include "backends/cuda/nvrtc.hpp"

#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <nvrtc.h>

#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "core/kernel_cache.hpp"

namespace kiln::detail {
namespace {

// The entry points Kiln uses, typed from nvrtc.h (whose declarations only are used: nothing links
// against libnvrtc).
struct nvrtc_api {
  decltype(&nvrtcGetErrorString) error_string = nullptr;
  decltype(&nvrtcVersion) version = nullptr;
  decltype(&nvrtcCreateProgram) create = nullptr;
  decltype(&nvrtcDestroyProgram) destroy = nullptr;
  decltype(&nvrtcCompileProgram) compile = nullptr;
  decltype(&nvrtcGetProgramLogSize) log_size = nullptr;
  decltype(&nvrtcGetProgramLog) log = nullptr;
  decltype(&nvrtcGetCUBINSize) cubin_size = nullptr;
  decltype(&nvrtcGetCUBIN) cubin = nullptr;
  std::string failure;  // empty when every entry point was found
};

const nvrtc_api& api() {
  static const nvrtc_api a = [] {
    nvrtc_api r;
    // The soname of the toolkit this was built with, first as the loader finds it, then from
    // the toolkit's own directory (which is often not on the loader's path).
    const std::string name = KILN_NVRTC_LIBRARY;
    void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    std::string why = h ? "" : dlerror();
    if (!h) h = dlopen((std::string(KILN_NVRTC_DIR) + "/" + name).c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      r.failure = "NVRTC (" + name + ") could not be loaded: " + why;
      return r;
    }
    auto bind = [&](auto& fn, const char* symbol) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, symbol));
      if (!fn && r.failure.empty()) r.failure = std::string("NVRTC (") + name + ") lacks " + symbol;
    };
    bind(r.error_string, "nvrtcGetErrorString");
    bind(r.version, "nvrtcVersion");
    bind(r.create, "nvrtcCreateProgram");
    bind(r.destroy, "nvrtcDestroyProgram");
    bind(r.compile, "nvrtcCompileProgram");
    bind(r.log_size, "nvrtcGetProgramLogSize");
    bind(r.log, "nvrtcGetProgramLog");
    bind(r.cubin_size, "nvrtcGetCUBINSize");
    bind(r.cubin, "nvrtcGetCUBIN");
    return r;  // the library stays loaded for the life of the process
  }();
  return a;
}

error nvrtc_error(const nvrtc_api& a, nvrtcResult e, const char* call) {
  return make_error(errc::device_error, std::string(call) + " failed: " + a.error_string(e));
}

// NVRTC's options for `arch`: sm_XY (not compute_XY), machine code for this GPU, so the driver
// need not JIT-compile PTX, whose version a driver older than this toolkit may not read.
std::vector<std::string> options_for(int arch) { return {"--gpu-architecture=sm_" + std::to_string(arch)}; }

// Everything a cubin depends on besides the source: the options, the compiler, and the driver
// that loads it (a newer driver may reject or mis-handle what an older toolkit wrote, and
// keying on it costs one compile per driver update).
cache_key cubin_key(const nvrtc_api& a, const std::string& source, int arch) {
  cache_key key;
  key.add("backend", "cuda").add("image", "cubin").add("source", source);
  for (const std::string& o : options_for(arch)) key.add("option", o);
  int major = 0, minor = 0;
  if (a.version(&major, &minor) != NVRTC_SUCCESS) major = minor = -1;
  key.add("nvrtc", std::to_string(major) + "." + std::to_string(minor));
  int driver = 0;
  if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = -1;
  key.add("driver", std::to_string(driver));
  return key;
}

}  // namespace

status nvrtc_available() {
  const nvrtc_api& a = api();
  if (!a.failure.empty()) return make_error(errc::backend_unavailable, a.failure);
  return {};
}

result<std::string> compile_cubin(const std::string& source, int arch) {
  KILN_TRY(nvrtc_available());
  const nvrtc_api& a = api();
  nvrtcProgram prog = nullptr;
  if (nvrtcResult e = a.create(&prog, source.c_str(), "kiln_program.cu", 0, nullptr, nullptr); e != NVRTC_SUCCESS)
    return nvrtc_error(a, e, "nvrtcCreateProgram");
  std::unique_ptr<nvrtcProgram, void (*)(nvrtcProgram*)> owner(&prog, [](nvrtcProgram* p) { (void)api().destroy(p); });
  const std::vector<std::string> options = options_for(arch);
  std::vector<const char*> option_ptrs;
  for (const std::string& o : options) option_ptrs.push_back(o.c_str());
  const nvrtcResult compiled = a.compile(prog, static_cast<int>(option_ptrs.size()), option_ptrs.data());
  if (compiled != NVRTC_SUCCESS) {
    std::size_t n = 0;
    std::string log;
    if (a.log_size(prog, &n) == NVRTC_SUCCESS && n > 1) {
      log.resize(n);
      if (a.log(prog, log.data()) != NVRTC_SUCCESS) log.clear();
      while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
    }
    if (log.size() > 2000) log = log.substr(0, 2000) + "...";
    return make_error(errc::device_error, std::string("nvrtcCompileProgram failed: ") + a.error_string(compiled) +
                                              (log.empty() ? "" : "; log: " + log));
  }
  std::size_t size = 0;
  if (nvrtcResult e = a.cubin_size(prog, &size); e != NVRTC_SUCCESS) return nvrtc_error(a, e, "nvrtcGetCUBINSize");
  std::string cubin(size, '\0');
  if (nvrtcResult e = a.cubin(prog, cubin.data()); e != NVRTC_SUCCESS) return nvrtc_error(a, e, "nvrtcGetCUBIN");
  return cubin;
}

status load_cubin(const std::string& source, int arch, const std::function<status(const std::string& cubin)>& load) {
  KILN_TRY(nvrtc_available());
  const kernel_cache cache = kernel_cache::from_environment();
  const cache_key key = cubin_key(api(), source, arch);
  if (auto cached = cache.load(key)) {
    if (load(std::string(cached->begin(), cached->end())).ok()) return {};
    cache.drop(key);
  }
  auto cubin = compile_cubin(source, arch);
  if (!cubin) return cubin.err();
  KILN_TRY(load(*cubin));
  // Only an image the driver took: one it refused would fail every later process the same way.
  (void)cache.store(key, *cubin);
  return {};
}

}  // namespace kiln::detail
