#!/usr/bin/env bash
# CO on the H200 machine: the CUDA context started by the probe; a process's first jobs and calls again, the CUDA suites.
out=$1
here=docs/benchmarks/h200-2026-12-02
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 150 ctest --test-dir build -j8 -R "Cuda|DeviceMemory|Devices|Conformance|KernelCache" --timeout 100 > "$out/ctest.log" 2>&1
grep -E "staging after|tests passed|Failed|\*\*\*Failed" "$out/ctest.log" | head
timeout 200 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || tail -20 "$out/bench-build.log"
ebin=$(ls -d elixir/_build/*/lib/kiln/ebin | head -1)
export KILN_CACHE_DIR=$(mktemp -d)
{
  for i in 1 2 3; do elixir -pa "$ebin" $here/cold_start.exs; done
  for n in 65536 1048576; do for i in 1 2; do build/kiln run -b cuda --n $n --warmup 0 --repeat 1 | grep time; done; done
} > "$out/cold_start.log" 2>&1
cat "$out/cold_start.log"
cd "$out" && tar czf CO.tar.gz --remove-files build.log ctest.log bench-build.log cold_start.log
