#!/usr/bin/env bash
# DX on the H200 machine: spare host blocks with the last run's end waking the pool thread. Kept,
# paced and dropped results at 2^25 twice; kept CUDA and cpu calls against the pause between them
# (kept_pace.exs), with spares and without (KILN_SPARE_BLOCKS=0); the host-pool suites.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-04/run-DX.sh OUT
out=$1
here=docs/benchmarks/h200-2026-12-04
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 300 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
for i in 1 2; do
  timeout 150 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped|paced)\.' --out /tmp/kept$i > "$out/kept$i.log" 2>&1
  echo "== run $i"; grep -A8 "^| row | call 1" /tmp/kept$i/results.md
done
ebin=$(ls -d elixir/_build/prod/lib/kiln/ebin)
{
  for b in cuda cpu; do
    for spares in 1 0; do
      echo "== $b, KILN_SPARE_BLOCKS=$spares"
      KILN_SPARE_BLOCKS=$spares timeout 90 elixir -pa "$ebin" $here/kept_pace.exs $b 0 1 2 5 10 20
    done
  done
} > "$out/kept_pace.log" 2>&1
cat "$out/kept_pace.log"
timeout 100 ctest --test-dir build -j8 -R "HostPool|HostMemory|Settings" --timeout 60 --output-on-failure > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
