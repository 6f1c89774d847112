#!/usr/bin/env bash
# DY on the H200 machine: kept CUDA and cpu calls against the pause between them, one pause per
# fresh VM (DX's sweep ran them in one VM, where blocks left by one pause served the next), with
# spares and without; then part of the scaling sweep (auto against the fixed choices) with spares.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-04/run-DY.sh OUT
out=$1
here=docs/benchmarks/h200-2026-12-04
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"; git log --oneline -1 >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 300 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
ebin=$(ls -d elixir/_build/prod/lib/kiln/ebin)
{
  for b in cuda cpu; do
    for spares in 1 0; do
      echo "== $b, KILN_SPARE_BLOCKS=$spares"
      for pause in 0 1 2 5 10 20 50; do
        KILN_SPARE_BLOCKS=$spares timeout 60 elixir -pa "$ebin" $here/kept_pace.exs $b $pause
      done
    done
  done
} > "$out/kept_pace.log" 2>&1
cat "$out/kept_pace.log"
timeout 260 bench/run --no-build --sweep --sweep-n 20,25,28 --sweep-k 10,1000 --n 33554432 --sweep-time-limit 220 \
  --out "$out/sweep" > "$out/sweep.log" 2>&1
grep -A30 "^## Scaling sweep" "$out/sweep/results.md" | head -60
