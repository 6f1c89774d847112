#!/usr/bin/env bash
# CW on the H200 machine: CV again after the shapes chosen from it (three pairs a thread, integer lanes only beyond 16 iterations).
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-02/run-CW.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"; git log -1 --format=%h >> "$out/device.txt" 2>/dev/null
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
build/kiln_lane_mix > "$out/lane_mix.log" 2>&1 &
timeout 200 ctest --test-dir build -j8 -R "DeviceMemory|Cuda|Conformance|ModMath" --timeout 150 > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
wait
cat "$out/lane_mix.log"
build/kiln_kernel_limits > "$out/limits.log" 2>&1; cat "$out/limits.log"
{
  for k in 10 100 1000; do
    for b in cuda opencl; do
      echo "[$b k=$k resident]"; timeout 60 build/kiln run -b $b --n 33554432 -k $k --resident --repeat 9 | grep -E "time|checksum"
    done
  done
  for k in 10 1000; do
    for b in cuda opencl; do
      echo "[$b k=$k end to end]"; timeout 60 build/kiln run -b $b --n 33554432 -k $k --repeat 9 | grep -E "time|checksum"
    done
  done
} > "$out/backends.log" 2>&1
cat "$out/backends.log"
# auto's misses of CJ, again: auto against each fixed choice at the same points.
{
  for nk in "1024 1000" "33554432 100" "268435456 100"; do
    set -- $nk
    for cfg in "-b auto" "-b cuda" "-b cuda --gpu-only" "-b cpu"; do
      echo "[n=$1 k=$2 $cfg]"; timeout 90 build/kiln run $cfg --n $1 -k $2 --repeat 5 | grep -E "^(backend|time)"
    done
  done
} > "$out/auto.log" 2>&1
cat "$out/auto.log"
cd "$out" && tar czf CW.tar.gz --remove-files build.log ctest.log lane_mix.log limits.log backends.log auto.log
