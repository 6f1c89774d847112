#!/usr/bin/env bash
# CJ on the H200 machine: kept results and 16 jobs with pins held back beside GPU runs (and with no pinning at all), the cold start by phase, the sweep's small points at 100 and 1000 iterations.
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
timeout 200 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || { tail -20 "$out/bench-build.log"; exit 1; }
rows='elixir\.(kept|dropped|async16|sync16)\.'
timeout 120 bench/run --no-build --n 33554432 --rows "$rows" --out "$out/kept" > "$out/kept.log" 2>&1
KILN_PINNED_LIMIT=0 timeout 120 bench/run --no-build --n 33554432 --rows "$rows" --out "$out/kept-unpinned" > "$out/kept-unpinned.log" 2>&1
grep -h "\[bench\] elixir" "$out/kept.log" "$out/kept-unpinned.log"
grep -h "^| elixir.kept.cuda0\|^| elixir.dropped.cuda0" "$out/kept.log" "$out/kept-unpinned.log"
timeout 100 bench/run --no-build --sweep --sweep-n 10,16 --sweep-k 100,1000 --n 4096 --sweep-time-limit 60 --out "$out/sweep" > "$out/sweep.log" 2>&1
sed -n '/### Auto against/,/^auto missed\|^auto was/p' "$out/sweep.log"
ebin=$(ls -d elixir/_build/*/lib/kiln/ebin | head -1)
export KILN_CACHE_DIR=$(mktemp -d)
for i in 1 2 3; do elixir -pa "$ebin" docs/benchmarks/h200-2026-12-02/cold_start.exs; done > "$out/cold_start.log" 2>&1
cat "$out/cold_start.log"
cd "$out" && tar czf CJ.tar.gz --remove-files bench-build.log kept.log kept-unpinned.log sweep.log cold_start.log kept kept-unpinned sweep
