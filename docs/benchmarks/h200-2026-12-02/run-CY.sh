#!/usr/bin/env bash
# CY on the H200 machine: CX again after auto keeps less work on the host beyond 10 iterations.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-02/run-CY.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"; git log -1 --format=%h >> "$out/device.txt" 2>/dev/null
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 200 ctest --test-dir build -j8 -R "DeviceMemory|Cuda|Conformance|MapJob" --timeout 150 > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
{
  for n in 1024 65536 1048576 33554432 268435456; do
    for k in 1 10 100 1000; do
      [ $n = 268435456 ] && [ $k != 10 ] && [ $k != 100 ] && continue
      for cfg in "-b auto" "-b cuda" "-b cuda --gpu-only" "-b cpu"; do
        t=$(timeout 90 build/kiln run $cfg --n $n -k $k --repeat 5 | awk '/^time/ {print $2}')
        echo "n=$n k=$k $cfg: $t s"
      done
    done
  done
} > "$out/auto.log" 2>&1
cat "$out/auto.log"
cd "$out" && tar czf CY.tar.gz --remove-files build.log ctest.log auto.log
