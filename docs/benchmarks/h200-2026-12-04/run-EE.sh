#!/usr/bin/env bash
# EE on the H200 machine: as ED, after allocate_output takes a spare cut short as it is. Kept
# results back to back into allocate_output blocks (the tree), into blocks mapped before the call
# (`touched`) and on the tree before the change (from base.tar); paced and dropped calls on both;
# `kiln run` on both; the suites touched; the Elixir kept, paced and dropped rows.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-04/run-EE.sh OUT BASE_TAR
out=$1
base_tar=$2
export KILN_SKIP_APT=1
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"; cat tree.txt >> "$out/device.txt" 2>/dev/null
rm -rf /tmp/base && mkdir -p /tmp/base && tar -xf "$base_tar" -C /tmp/base
{ cmake -S /tmp/base -B /tmp/base/build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 &&
  cmake --build /tmp/base/build -j6 --target kiln kiln_kept_calls; } > "$out/build-base.log" 2>&1 &
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j10; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
wait
kc() { timeout 30 "$@"; }
{
  for round in 1 2; do
    echo "== round $round: tree"; kc build/kiln_kept_calls cuda 33554432 8 0 1 output
    echo "== round $round: tree, touched"; kc build/kiln_kept_calls cuda 33554432 8 0 1 touched
    echo "== round $round: base tree"; kc /tmp/base/build/kiln_kept_calls cuda 33554432 8 0 1
  done
  echo "== tree, 20 ms"; kc build/kiln_kept_calls cuda 33554432 8 20 1 output
  echo "== base tree, 20 ms"; kc /tmp/base/build/kiln_kept_calls cuda 33554432 8 20 1
  echo "== tree, dropped"; kc build/kiln_kept_calls cuda 33554432 8 0 0 output
  echo "== base tree, dropped"; kc /tmp/base/build/kiln_kept_calls cuda 33554432 8 0 0
  echo "== tree, cpu"; kc build/kiln_kept_calls cpu 33554432 8 0 1 output
} > "$out/kept_calls.log" 2>&1
cat "$out/kept_calls.log"
{
  for t in build /tmp/base/build build; do
    for k in 10 1000; do echo "== $t k = $k"; timeout 60 $t/kiln run -b cuda --n 33554432 --repeat 9 --iterations $k; done
  done
} > "$out/kiln_run.log" 2>&1
grep -E "^==|median" "$out/kiln_run.log" | head -24
timeout 150 ctest --test-dir build -j8 -R "HostPool|HostMemory|Settings|Cuda|Conformance|Run\.|FeedLane|LaneShare" --timeout 120 --output-on-failure > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
export KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
timeout 240 bench/run --n 33554432 --rows 'elixir\.(kept|dropped|paced)\.' --out /tmp/kept > "$out/kept.log" 2>&1
cp /tmp/kept/results.md "$out/kept-results.md" 2>/dev/null
grep -A8 "^| row | call 1" /tmp/kept/results.md
