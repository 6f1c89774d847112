// The `kiln` command: argument parsing for `kiln devices` and `kiln run`.
#include <CLI/CLI.hpp>

#include <string>

#include "cli/commands.hpp"
#include "kiln/kiln.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Kiln: the exact integer logistic map on CPU cores, OpenCL and CUDA devices"};
  app.require_subcommand(1);

  bool devices_json = false;
  auto* devices = app.add_subcommand("devices", "List every backend and device, usable or not (and why)");
  devices->add_flag("--json", devices_json, "Print a JSON array");

  kiln::cli::run_args ra;
  auto* run = app.add_subcommand("run", "Run the map over 1..N and print the time and checksum");
  run->add_option("--backend,-b", ra.backend, "auto, scalar, cpu, opencl or cuda")
      ->check(CLI::IsMember({"auto", "scalar", "cpu", "opencl", "cuda"}));
  std::string device = "0";
  run->add_option("--device,-d", device, "Device index within the backend, or all (cuda: every GPU shares the run)")
      ->check([](const std::string& v) {
        const bool index = !v.empty() && v.size() < 10 && v.find_first_not_of("0123456789") == std::string::npos;
        return v == "all" || index ? std::string() : "must be a device index (0, 1, ...) or all";
      });
  run->add_option("--n,-n", ra.n, "Number of elements (inputs are 1..N, or FIRST..FIRST+N-1)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 34));
  run->add_option("--first", ra.first, "First input (default 1); e.g. 4294967296 for inputs wider than 32 bits");
  run->add_option("--iterations,-k", ra.iterations, "Iterations of the map (>= 0)")->check(CLI::NonNegativeNumber);
  run->add_option("--p", ra.p, "Modulus, 1..4294967295");
  run->add_option("--mu", ra.mu, "Multiplier (any int64)");
  run->add_option("--chunk", ra.chunk, "Elements per device chunk (0 = backend's choice)");
  run->add_option("--repeat", ra.repeat, "Timed runs (the median is reported)")->check(CLI::PositiveNumber);
  run->add_option("--warmup", ra.warmup, "Untimed runs first")->check(CLI::NonNegativeNumber);
  run->add_flag("--resident", ra.resident, "Upload once; time only the run on the device");
  run->add_flag("--pinned", ra.pinned, "Input and output in Kiln's host blocks (page-locked where CUDA runs)");
  run->add_flag("--phases", ra.phases,
                "Also report the host->device / kernel / device->host split, from one more run timed with device "
                "events (they slow a GPU run down, so the timed runs go without)");
  run->add_flag("--gpu-only", ra.gpu_only,
                "GPU backends: the device computes every element (by default, staging threads that would wait "
                "compute chunks on the host)");
  run->add_flag("--json", ra.json, "Print one JSON object");

  CLI11_PARSE(app, argc, argv);
  if (*devices) return kiln::cli::devices(devices_json);
  ra.device = device == "all" ? kiln::all_devices : std::stoi(device);
  return kiln::cli::run(ra);
}
