#!/usr/bin/env bash
# CS on the H200 machine: the stop tests alone, the seed's kernel against the built-in map end to end and resident, the peers at the same iteration counts.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-02/run-CS.sh OUT
out=$1
here=docs/benchmarks/h200-2026-12-02
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
date -u > "$out/date.txt"; git log -1 --format=%h >> "$out/date.txt" 2>/dev/null
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
(timeout 250 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || tail -20 "$out/bench-build.log") &
timeout 200 ctest --test-dir build -R "Stop" --timeout 100 --output-on-failure > "$out/ctest-stop.log" 2>&1
grep -E "stopped|tests passed|Failed" "$out/ctest-stop.log" | head -30
wait
(cd elixir && MIX_ENV=prod timeout 240 mix run ../$here/kernel_rows.exs 33554432 cuda opencl cpu > "$out/kernel-rows.txt" 2>&1)
grep -E "k=|three" "$out/kernel-rows.txt"
timeout 200 bench/run --no-build --kernels --rows 'python\.(sweep|bw)' --repeat 3 --out "$out/peers" > "$out/peers.log" 2>&1
grep -h "\[bench\] python" "$out/peers.log"
cd "$out" && tar czf CS.tar.gz --remove-files date.txt build.log bench-build.log ctest-stop.log kernel-rows.txt peers.log peers
