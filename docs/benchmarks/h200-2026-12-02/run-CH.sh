#!/usr/bin/env bash
# CH on the H200 machine: the stop tests alone, the CUDA suites, the sweep's small points, the kept/async rows, the cold start, idle memory.
out=$1
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
git log -1 --format=%h > "$out/tree.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 150 ctest --test-dir build -R "Stop" -V --timeout 60 > "$out/ctest-stop.log" 2>&1
grep -E "stopped  \]|tests passed|Failed" "$out/ctest-stop.log"
timeout 150 ctest --test-dir build -j8 -R "Cuda|Conformance|KernelCache|HostPool|Devices|DeviceMemory|IdleRelease|device_memory" --timeout 100 > "$out/ctest.log" 2>&1
tail -4 "$out/ctest.log"
timeout 150 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || tail -20 "$out/bench-build.log"
timeout 150 bench/run --no-build --sweep --sweep-n 10,16,20 --n 33554432 --sweep-time-limit 100 --out "$out/sweep" > "$out/sweep.log" 2>&1
grep -E "async16|sync16|kept|dropped" "$out/sweep.log" | grep "\[bench\]"
ebin=$(ls -d elixir/_build/*/lib/kiln/ebin | head -1)
export KILN_CACHE_DIR=$(mktemp -d)
for i in 1 2 3; do elixir -pa "$ebin" docs/benchmarks/h200-2026-12-02/cold_start.exs; done > "$out/cold_start.log" 2>&1
cat "$out/cold_start.log"
elixir -pa "$ebin" docs/benchmarks/h200-2026-12-02/idle_memory.exs 2>&1 | tee "$out/idle_memory.log"
cd "$out" && tar czf CH.tar.gz --remove-files build.log ctest-stop.log ctest.log bench-build.log sweep.log cold_start.log idle_memory.log sweep tree.txt
