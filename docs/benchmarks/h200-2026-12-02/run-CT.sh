#!/usr/bin/env bash
# CT on the H200 machine: a resident kernel's time without its parameter upload and fault read; the CUDA and conformance suites.
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-02/run-CT.sh OUT
out=$1
here=docs/benchmarks/h200-2026-12-02
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
date -u > "$out/date.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DKILN_BUILD_NIF=OFF && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
(cd elixir && MIX_ENV=prod timeout 200 mix compile > "$out/mix.log" 2>&1 || tail -20 "$out/mix.log") &
timeout 120 ctest --test-dir build -j8 -R "Cuda|Conformance" --timeout 100 > "$out/ctest.log" 2>&1
grep -E "tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head
wait
(cd elixir && MIX_ENV=prod timeout 60 mix run ../$here/three_rows.exs 33554432) > "$out/three.log" 2>&1; tail -3 "$out/three.log"
build/kiln_kernel_limits 2>&1 | head -3 | tee "$out/limits.log"
cd "$out" && tar czf CT.tar.gz --remove-files date.txt build.log mix.log ctest.log three.log limits.log
