#!/usr/bin/env bash
# CD: the final tree on the H200 machine: CTest, the kiln command each way, the kernel rows and the --kernels benchmark with its peers.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-02/run-CD.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null && cmake --build build -j16 > "$out/build.log" 2>&1 || { tail -20 "$out/build.log"; exit 1; }
(cd elixir && MIX_ENV=prod mix compile > "$out/mix-build.log" 2>&1) &
ctest --test-dir build -j6 -E OpenCLCompile --output-on-failure --timeout 300 > "$out/ctest.log" 2>&1
grep -E "tests passed|tests failed|\*\*\*Failed" "$out/ctest.log"
wait
{
  for a in "" "--resident" "--gpu-only"; do build/kiln run -b cuda --n 33554432 --repeat 9 $a --json; done
  for a in "" "--gpu-only" "--resident"; do build/kiln run -b cuda --n 33554432 --repeat 5 --iterations 1000 $a --json; done
} > "$out/kiln-run.json" 2>&1
(cd elixir && MIX_ENV=prod timeout 200 mix run ../docs/benchmarks/h200-2026-12-02/kernel_rows.exs 33554432 cuda opencl cpu > "$out/kernel-rows.txt" 2>&1)
tail -12 "$out/kernel-rows.txt"
timeout 280 bench/run --no-build --full --kernels --rows 'sweep|bw' --repeat 3 --out "$out/bench" > "$out/bench.log" 2>&1
tail -5 "$out/bench.log"
