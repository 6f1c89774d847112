// The `cpu` backend: the SIMD kernel on every hardware thread through the shared worker pool.
#include <algorithm>
#include <fstream>
#include <string>
#include <unistd.h>

#include "backends/cpu/cpu_simd.hpp"
#include "backends/host/host_backend.hpp"
#include "core/thread_pool.hpp"

namespace kiln::detail {
namespace {

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      auto pos = line.find(':');
      if (pos != std::string::npos) return line.substr(line.find_first_not_of(' ', pos + 1));
    }
  return "host CPU";
}

device_info cpu_device() {
  device_info d;
  d.backend = backend_kind::cpu;
  d.name = cpu_model() + " (" + std::to_string(worker_count()) + " threads, " + simd_target_name() + ")";
  d.platform = "host";
  d.compute_units = static_cast<int>(worker_count());
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  d.memory_bytes = pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page) : 0;
  return d;
}

class cpu_backend final : public host_backend {
 public:
  cpu_backend() : host_backend(cpu_device()) {}

 protected:
  std::size_t compute(std::span<const std::int64_t> in, std::span<std::int64_t> out, const kernel_params& kp,
                      std::size_t chunk_elements, const std::stop_token& stop) override {
    // 16 Ki elements (128 KiB in + out) per grain: small enough to balance across threads and
    // to stay in L2, large enough that the queue costs nothing.
    const std::size_t grain = chunk_elements ? chunk_elements : std::size_t{1} << 14;
    const bool stream = stream_output(in.size());
    parallel_for(
        in.size(), grain,
        [&](std::size_t b, std::size_t e) {
          // Many iterations go in rounds over the range, in place after the first, so that a stop
          // is seen between two rounds; the map applied a then b times is the map applied a + b.
          kernel_params round = kp;
          const std::int64_t* from = in.data() + b;
          for (std::int64_t left = kp.iterations; left > 0 && !stop.stop_requested(); left -= round.iterations) {
            round.iterations = std::min(left, host_stop_round);
            logistic_simd(from, out.data() + b, e - b, round, stream && left == round.iterations);
            from = out.data() + b;
          }
        },
        stop);
    return (in.size() + grain - 1) / grain;
  }
};

}  // namespace

std::unique_ptr<backend> make_cpu_backend() { return std::make_unique<cpu_backend>(); }

}  // namespace kiln::detail
