#!/usr/bin/env bash
# DZ on the H200 machine: spares after the fix that a spare not begun is asked for again by the
# next call (so it waits for that call's run). kiln_kept_calls (each call's result block and run
# timed apart, the pool's spares beside) for cuda and cpu at 2^25, pauses 0, 2, 5 and 20 ms, with
# spares and without; the Elixir kept, paced and dropped rows twice; kept_pace.exs one pause per
# VM; the host-pool suites.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-04/run-DZ.sh OUT
out=$1
here=docs/benchmarks/h200-2026-12-04
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"; git log --oneline -1 >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
{
  for b in cuda cpu; do
    for pause in 0 2 5 20; do
      for spares in 1 0; do
        echo "== KILN_SPARE_BLOCKS=$spares"; KILN_SPARE_BLOCKS=$spares timeout 30 build/kiln_kept_calls $b 33554432 8 $pause 1
      done
    done
  done
} > "$out/kept_calls.log" 2>&1
cat "$out/kept_calls.log"
timeout 300 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
for i in 1 2; do
  timeout 150 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped|paced)\.' --out /tmp/kept$i > "$out/kept$i.log" 2>&1
  echo "== run $i"; grep -A8 "^| row | call 1" /tmp/kept$i/results.md
done
ebin=$(ls -d elixir/_build/prod/lib/kiln/ebin)
{
  for pause in 0 5 20; do timeout 60 elixir -pa "$ebin" $here/kept_pace.exs cuda $pause; done
} > "$out/kept_pace.log" 2>&1
cat "$out/kept_pace.log"
timeout 100 ctest --test-dir build -j8 -R "HostPool|HostMemory|Settings" --timeout 60 --output-on-failure > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head -20
