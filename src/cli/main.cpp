// The `kiln` command: argument parsing for `kiln devices` and `kiln run`.
#include <CLI/CLI.hpp>

#include <optional>
#include <string>

#include "cli/commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Kiln: the exact integer logistic map on CPU cores, OpenCL and CUDA devices"};
  app.require_subcommand(1);

  bool devices_json = false;
  auto* devices = app.add_subcommand("devices", "List every backend and device, usable or not (and why)");
  devices->add_flag("--json", devices_json, "Print a JSON array");

  kiln::cli::run_request rq;
  auto* run = app.add_subcommand(
      "run",
      "Run the map over 1..N and print the time and checksum. Numbers are decimal integers; one outside its "
      "option's range, or an option the chosen backend would not honour, is refused (exit 2) and nothing runs.");
  run->add_option("--backend,-b", rq.backend,
                  "auto, scalar, cpu, opencl or cuda; auto takes a GPU (CUDA, then OpenCL), else cpu, and the "
                  "options below are checked against the backend it chose")
      ->check(CLI::IsMember({"auto", "scalar", "cpu", "opencl", "cuda"}));
  // Numbers are kept as text and parsed exactly by kiln::cli::run (CLI11's conversion clamps).
  auto text = [&](const char* names, std::optional<std::string>& slot, const std::string& help,
                  const char* type = "INT") {
    run->add_option_function<std::string>(names, [&slot](const std::string& v) { slot = v; }, help)->type_name(type);
  };
  text("--device,-d", rq.device,
       "Device index within the backend (0..devices-1), or all (cuda: every GPU shares the run); with auto, an "
       "index among the chosen backend's devices (default 0; auto: its own choice)",
       "INDEX|all");
  text("--n,-n", rq.n, "Number of elements, 0..2^34, default 2^20 (inputs are 1..N, or FIRST..FIRST+N-1)");
  text("--first", rq.first,
       "First input (default 1), any int64 with FIRST+N-1 still an int64; e.g. 4294967296 for inputs wider than "
       "32 bits");
  text("--iterations,-k", rq.iterations, "Iterations of the map, 0..2^63-1, default 10");
  text("--p", rq.p, "Modulus, 1..4294967295 (2^32-1), default 6700417");
  text("--mu", rq.mu, "Multiplier, any int64, default 22");
  text("--chunk", rq.chunk,
       "Elements per chunk, 0..2^34, default 0 (the backend's choice; an upper bound on GPUs): cpu, opencl and cuda, not "
       "scalar, and not with --resident");
  text("--repeat", rq.repeat, "Timed runs, 1..2^31-1, default 3 (the median is reported)");
  text("--warmup", rq.warmup, "Untimed runs first, 0..2^31-1, default 1");
  run->add_flag("--resident", rq.resident,
                "Upload once; time only the run on the device (scalar, cpu: the data stays in host memory)");
  run->add_flag("--pinned", rq.pinned,
                "Input and output in Kiln's host blocks (page-locked where CUDA runs); not with --resident, which "
                "times no transfers");
  run->add_flag("--phases", rq.phases,
                "GPU backends (opencl, cuda), not with --resident: also report the host->device / kernel / "
                "device->host split, from one more run timed with device events (they slow a GPU run down, so "
                "the timed runs go without)");
  run->add_flag("--gpu-only", rq.gpu_only,
                "GPU backends (opencl, cuda), not with --resident: the device computes every element (by default, "
                "staging threads that would wait compute chunks on the host)");
  run->add_flag("--json", rq.json, "Print one JSON object");

  CLI11_PARSE(app, argc, argv);
  if (*devices) return kiln::cli::devices(devices_json);
  return kiln::cli::run(rq);
}
