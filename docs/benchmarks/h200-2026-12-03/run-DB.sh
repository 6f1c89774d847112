#!/usr/bin/env bash
# DB on the H200 machine: the tree after DA (the unsigned Montgomery form again, the host's share
# cut back beyond 10 iterations, small calls without the clock or the host_share lookup): the map
# against its floors, `kiln run` on both GPU backends, auto at the points DA
# found noisy (more repeats), small calls from Elixir and the 16-job responsiveness probe.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DB.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 200 ctest --test-dir build -j8 -R "DeviceMemory|Cuda|Conformance|ModMath|MapJob" --timeout 150 > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
build/kiln_kernel_limits > "$out/limits.log" 2>&1; grep -E "^map k = (10|1000) |as the backend|FP64 fused|integer" "$out/limits.log"
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
grep -E "^\[|^time" "$out/backends.log"
{
  for nk in "1048576 10 15" "1048576 100 15" "1048576 1000 15" "33554432 10 7" "33554432 100 7" "33554432 1000 5"; do
    set -- $nk
    for cfg in "-b auto" "-b cuda" "-b cuda --gpu-only" "-b cpu"; do
      t=$(timeout 90 build/kiln run $cfg --n $1 -k $2 --repeat $3 | awk '/^time/ {print $2}')
      echo "n=$1 k=$2 repeat=$3 $cfg: $t s"
    done
  done
} > "$out/auto.log" 2>&1
cat "$out/auto.log"
timeout 200 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || tail -20 "$out/bench-build.log"
ebin=$(ls -d elixir/_build/*/lib/kiln/ebin | head -1)
probe=elixir/test/support/responsiveness_probe.exs
{ for i in 1 2 3; do echo "[jobs16]"; timeout 60 elixir -pa "$ebin" $probe jobs16; done; } > "$out/probe.log" 2>&1
grep -E "ticks=|^\[" "$out/probe.log"
timeout 120 bench/run --no-build --crossover --crossover-n 1,2,4,8,16,64,256,1024 --out "$out/crossover" > "$out/crossover.log" 2>&1
sed -n '/| n |/,/^$/p' "$out/crossover.log" | head -14
cd "$out" && tar czf DB.tar.gz --remove-files build.log ctest.log limits.log backends.log auto.log bench-build.log probe.log crossover.log crossover
