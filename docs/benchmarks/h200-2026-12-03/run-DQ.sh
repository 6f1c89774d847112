#!/usr/bin/env bash
# DQ on the H200 machine: what the first touch of fresh host memory costs (kiln_first_touch), whether
# the GPU's pipes overlap and the square form's split of lanes (kiln_pipe_mix), kept results with
# larger cpu grains (KILN_EXPERIMENT_CPU_GRAIN) and with fresh blocks populated in parallel
# (KILN_EXPERIMENT_POPULATE), both switches of this tree only; then the CUDA suites on 9690504's fixes.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DQ.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"; uname -r >> "$out/device.txt"
cat /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/mm/transparent_hugepage/defrag >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 60 build/kiln_first_touch 256 7 > "$out/first_touch.log" 2>&1; cat "$out/first_touch.log"
timeout 60 build/kiln_pipe_mix > "$out/pipe_mix.log" 2>&1; cat "$out/pipe_mix.log"
timeout 300 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
{
  for cfg in "X=1" "KILN_EXPERIMENT_CPU_GRAIN=262144" "KILN_EXPERIMENT_POPULATE=1" "KILN_EXPERIMENT_CPU_GRAIN=262144 KILN_EXPERIMENT_POPULATE=1" "X=1"; do
    echo "[$cfg]"
    env $cfg timeout 120 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped)\.' --out /tmp/kept > /tmp/kept.log 2>&1
    grep -E "^\[bench\] elixir\.(kept|dropped)" /tmp/kept.log; grep -A6 "^| row | call 1" /tmp/kept/results.md
  done
} > "$out/kept.log" 2>&1
cat "$out/kept.log"
timeout 170 ctest --test-dir build -j8 -R "FeedLane|SharePacing|MapJob|DeviceMemory|HostPool|Cuda|Conformance" --timeout 150 --output-on-failure > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
