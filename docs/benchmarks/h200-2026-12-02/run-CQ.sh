#!/usr/bin/env bash
# CQ on the H200 machine (after CP, same build): kept results against the peers', lists both ways at 2^22 and 2^25, a process's first GPU run under the probe.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-02/run-CQ.sh OUT
out=$1
here=docs/benchmarks/h200-2026-12-02
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
date -u > "$out/date.txt"
timeout 120 python3 $here/kept_peers.py > "$out/kept_peers.log" 2>&1; cat "$out/kept_peers.log"
timeout 100 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped)\.' --out "$out/kept" > "$out/kept.log" 2>&1
grep -h "\[bench\] elixir" "$out/kept.log"
for n in 4194304 33554432; do
  timeout 170 bench/run --no-build --n $n --rows 'elixir\.lists\.' --lists-heap $n --repeat 3 --out "$out/lists-$n" > "$out/lists-$n.log" 2>&1
  grep -h "\[bench\] elixir" "$out/lists-$n.log"
done
ebin=$(ls -d elixir/_build/prod/lib/kiln/ebin | head -1)
probe=elixir/test/support/responsiveness_probe.exs
for m in opencl cuda; do for i in 1 2; do echo "[$m cold]"; KILN_PROBE_COLD=1 timeout 60 elixir -pa "$ebin" $probe $m; done; done > "$out/probe.log" 2>&1
grep -E "ticks=|^\[" "$out/probe.log"
cd "$out" && tar czf CQ.tar.gz --remove-files date.txt kept_peers.log kept.log kept lists-* probe.log
