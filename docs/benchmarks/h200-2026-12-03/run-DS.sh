#!/usr/bin/env bash
# DS on the H200 machine, first of two calls on the final tree: the CUDA suites, the kernel's shapes,
# `kiln run` resident and end to end on cuda and opencl at k = 100 and 1000, auto against each fixed
# choice where the kernel changed (n = 2^20, 2^25, 2^28; k = 100, 1000). run-DT.sh follows.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DS.sh OUT
out=$1
export KILN_SKIP_APT=1
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 170 ctest --test-dir build -j8 -R "ModMath|HostPool|FeedLane|SharePacing|MapJob|DeviceMemory|Cuda|Conformance" --timeout 150 --output-on-failure > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
timeout 120 build/kiln_kernel_limits > "$out/limits.log" 2>&1; grep -E "^map k = (10|100|1000) .*(backend)|FP64 fused|copy" "$out/limits.log"
{
  for k in 100 1000; do
    for b in cuda opencl; do
      echo "[$b k=$k resident]"; timeout 60 build/kiln run -b $b --n 33554432 -k $k --resident --repeat 9 | grep -E "time|checksum"
    done
  done
  for b in cuda opencl; do
    echo "[$b k=1000 end to end]"; timeout 60 build/kiln run -b $b --n 33554432 -k 1000 --repeat 5 | grep -E "time|checksum"
  done
} > "$out/backends.log" 2>&1
cat "$out/backends.log"
{
  for n in 1048576 33554432 268435456; do
    for k in 100 1000; do
      for cfg in "-b auto" "-b cuda" "-b cuda --gpu-only" "-b cpu"; do
        r=$(timeout 90 build/kiln run $cfg --n $n -k $k --repeat 5)
        t=$(echo "$r" | awk '/^time/ {print $2}'); h=$(echo "$r" | awk '/^host/ {print $3, $8}')
        echo "n=$n k=$k $cfg: $t s${h:+ host $h}"
      done
    done
  done
} > "$out/auto.log" 2>&1
cat "$out/auto.log"
