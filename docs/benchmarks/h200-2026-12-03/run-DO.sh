#!/usr/bin/env bash
# DO on the H200 machine: the final tree. Kept results twice (no background pin beside a large
# host run now), then first calls in fresh VMs: the resident map at 1000 iterations (its kernel's
# one-time occupancy query) and cold_start.exs (a defkernel's first call, from the disk cache).
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DO.sh OUT
out=$1
here=docs/benchmarks/h200-2026-12-03
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
timeout 300 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
for i in 1 2; do
  timeout 120 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped)\.' --out /tmp/kept$i > "$out/kept$i.log" 2>&1
  grep -E "^\[bench\] elixir\.(kept|dropped)" "$out/kept$i.log"; grep -A6 "^| row | call 1" /tmp/kept$i/results.md
done
ebin=$(ls -d elixir/_build/prod/lib/kiln/ebin)
export KILN_CACHE_DIR=$(mktemp -d)
{
  for i in 1 2 3; do timeout 60 elixir -pa "$ebin" $here/first_resident.exs; done
  for i in 1 2 3; do timeout 60 elixir -pa "$ebin" docs/benchmarks/h200-2026-12-02/cold_start.exs; done
} > "$out/first_calls.log" 2>&1
cat "$out/first_calls.log"
