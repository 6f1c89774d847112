#!/usr/bin/env bash
# CU on the H200 machine: the stop tests alone with their latencies printed (a stop during a process's first GPU run among them).
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-02/run-CU.sh OUT
out=$1
date -u > "$out/date.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DKILN_BUILD_NIF=OFF && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 150 ctest --test-dir build -R "Stop|ThreadPool" -V --timeout 100 > "$out/ctest-stop.log" 2>&1
grep -E "stopped|tests passed|Failed" "$out/ctest-stop.log" | head -40
cd "$out" && tar czf CU.tar.gz --remove-files date.txt build.log ctest-stop.log
