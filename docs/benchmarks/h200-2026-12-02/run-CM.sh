#!/usr/bin/env bash
# CM on the H200 machine: lanes sized by the first job, the probe after a warm-up, small calls through the pure path and cached atoms, OpenCL against CUDA, runs beyond 4096 iterations.
out=$1
here=docs/benchmarks/h200-2026-12-02
export KILN_SKIP_APT=1 KILN_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 120 ctest --test-dir build -j8 -R "DeviceMemory|Cuda|Conformance" --timeout 100 > "$out/ctest.log" 2>&1
grep -E "staging after|tests passed|Failed|\*\*\*" "$out/ctest.log" | head -20
timeout 200 bench/run --n 4096 --repeat 1 --out /tmp/warm > "$out/bench-build.log" 2>&1 || tail -20 "$out/bench-build.log"
ebin=$(ls -d elixir/_build/*/lib/kiln/ebin | head -1)
export KILN_CACHE_DIR=$(mktemp -d)
{
  for i in 1 2 3; do elixir -pa "$ebin" $here/cold_start.exs; done
  for n in 65536 1048576; do for i in 1 2; do build/kiln run -b cuda --n $n --warmup 0 --repeat 1 | grep time; done; done
} > "$out/cold_start.log" 2>&1
probe=elixir/test/support/responsiveness_probe.exs
{
  for m in opencl cuda cpu jobs16; do for i in 1 2 3; do echo "[$m]"; timeout 60 elixir -pa "$ebin" $probe $m; done; done
  for m in opencl cuda; do for i in 1 2; do echo "[$m cold]"; KILN_PROBE_COLD=1 timeout 60 elixir -pa "$ebin" $probe $m; done; done
} > "$out/probe.log" 2>&1
timeout 120 bench/run --no-build --crossover --out "$out/crossover" > "$out/crossover.log" 2>&1
{
  build/kiln devices
  for k in 10 1000 10000; do
    for b in cuda opencl; do
      echo "[$b k=$k resident]"; timeout 60 build/kiln run -b $b --n 33554432 -k $k --resident --repeat 5 | grep -E "time|checksum"
      echo "[$b k=$k end to end]"; timeout 60 build/kiln run -b $b --n 33554432 -k $k --repeat 5 | grep -E "time|checksum"
      echo "[$b k=$k end to end, gpu only]"; timeout 60 build/kiln run -b $b --n 33554432 -k $k --repeat 5 --gpu-only | grep -E "time|checksum"
    done
  done
} > "$out/backends.log" 2>&1
timeout 100 bench/run --no-build --n 33554432 --rows 'elixir\.(kept|dropped)\.' --out "$out/kept" > "$out/kept.log" 2>&1
grep -h "\[bench\] elixir" "$out/kept.log"
cat "$out/cold_start.log"
grep -E "ticks=|^\[" "$out/probe.log"
sed -n '/| n |/,/^$/p' "$out/crossover.log" | head -30
cat "$out/backends.log"
cd "$out" && tar czf CM.tar.gz --remove-files build.log ctest.log bench-build.log cold_start.log probe.log crossover.log backends.log kept.log crossover kept
