#!/usr/bin/env bash
# DW on the H200 machine: spare host blocks. Kept, paced (20 ms between calls) and dropped results
# at 2^25 with spares (the default) and without (KILN_SPARE_BLOCKS=0), twice each; then first calls
# in fresh VMs, and the host-pool, settings and CUDA suites.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-04/run-DW.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 300 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
for i in 1 2; do
  for spares in 1 0; do
    KILN_SPARE_BLOCKS=$spares timeout 150 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped|paced)\.' \
      --out /tmp/kept$i$spares > "$out/kept$i-spares$spares.log" 2>&1
    echo "== run $i, KILN_SPARE_BLOCKS=$spares"; grep -A8 "^| row | call 1" /tmp/kept$i$spares/results.md
  done
done
ebin=$(ls -d elixir/_build/prod/lib/kiln/ebin)
export KILN_CACHE_DIR=$(mktemp -d)
{
  for i in 1 2 3; do timeout 60 elixir -pa "$ebin" docs/benchmarks/h200-2026-12-03/first_resident.exs; done
  for i in 1 2 3; do timeout 60 elixir -pa "$ebin" docs/benchmarks/h200-2026-12-02/cold_start.exs; done
} > "$out/first_calls.log" 2>&1
cat "$out/first_calls.log"
timeout 150 ctest --test-dir build -j8 -R "HostPool|HostMemory|Settings|Cuda|Conformance" --timeout 100 --output-on-failure > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
