#!/usr/bin/env bash
# CR on the H200 machine: ExUnit with CUDA and NVIDIA's OpenCL (the million element checks per backend included), lists both ways after conversions became jobs.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-02/run-CR.sh OUT
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
date -u > "$out/date.txt"; git log -1 --format=%h >> "$out/date.txt" 2>/dev/null
(timeout 250 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || tail -20 "$out/bench-build.log") &
(cd elixir && MIX_ENV=test timeout 400 mix test > "$out/exunit.log" 2>&1)
grep -E "element checks|tests, .* failures|^  [0-9]+\) test" "$out/exunit.log"
wait
for n in 4194304 33554432; do
  timeout 170 bench/run --no-build --n $n --rows 'elixir\.lists\.' --lists-heap $n --repeat 3 --out "$out/lists-$n" > "$out/lists-$n.log" 2>&1
  grep -h "\[bench\] elixir" "$out/lists-$n.log"
done
cd "$out" && tar czf CR.tar.gz --remove-files date.txt bench-build.log exunit.log lists-*
