#!/usr/bin/env bash
# EA on the H200 machine: the final tree (spares; background pins only once CUDA is started).
# kiln_kept_calls for cuda and cpu at 2^25 (pauses 0, 5 and 20 ms with spares, 20 without); the
# Elixir kept, paced and dropped rows twice; the host-pool, settings, CUDA and conformance suites.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-04/run-EA.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"; git log --oneline -1 >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
{
  for b in cuda cpu; do
    for run in "1 0" "1 5" "1 20" "0 20"; do
      set -- $run
      echo "== KILN_SPARE_BLOCKS=$1"; KILN_SPARE_BLOCKS=$1 timeout 30 build/kiln_kept_calls $b 33554432 8 $2 1
    done
  done
} > "$out/kept_calls.log" 2>&1
cat "$out/kept_calls.log"
timeout 300 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
for i in 1 2; do
  timeout 150 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped|paced)\.' --out /tmp/kept$i > "$out/kept$i.log" 2>&1
  echo "== run $i"; grep -A8 "^| row | call 1" /tmp/kept$i/results.md
done
timeout 200 ctest --test-dir build -j8 -R "HostPool|HostMemory|Settings|Cuda|Conformance" --timeout 100 --output-on-failure > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
