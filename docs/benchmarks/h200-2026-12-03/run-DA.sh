#!/usr/bin/env bash
# DA on the H200 machine: the Montgomery step in signed words (forms and lane mixes, their SASS),
# the built-in map against its floors, `kiln run` on both GPU backends, auto where the host's
# share was cut back beyond 10 iterations.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DA.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
cuobjdump -sass build/kiln_lane_mix > "$out/lane_mix.sass" 2>&1
cuobjdump -sass build/kiln_kernel_limits > "$out/kernel_limits.sass" 2>&1
build/kiln_lane_mix > "$out/lane_mix.log" 2>&1 &
timeout 200 ctest --test-dir build -j8 -R "DeviceMemory|Cuda|Conformance|ModMath|MapJob" --timeout 150 > "$out/ctest.log" 2>&1
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
{
  for nk in "1048576 10" "1048576 100" "1048576 1000" "33554432 100" "33554432 1000" "268435456 100"; do
    set -- $nk
    for cfg in "-b auto" "-b cuda" "-b cuda --gpu-only" "-b cpu"; do
      t=$(timeout 90 build/kiln run $cfg --n $1 -k $2 --repeat 5 | awk '/^time/ {print $2}')
      echo "n=$1 k=$2 $cfg: $t s"
    done
  done
} > "$out/auto.log" 2>&1
cat "$out/auto.log"
cd "$out" && tar czf DA.tar.gz --remove-files build.log ctest.log lane_mix.log limits.log backends.log auto.log
