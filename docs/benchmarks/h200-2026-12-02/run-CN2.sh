#!/usr/bin/env bash
# CN, second call: the traced engine (CN/first_job_trace.patch, with the backend's own points) on a process's first CUDA job from ordinary memory.
out=$1
here=docs/benchmarks/h200-2026-12-02
rm -rf /tmp/trace && mkdir -p /tmp/trace && cp -r CMakeLists.txt cmake include src bench /tmp/trace/ && (cd /tmp/trace && patch -p1 < "$OLDPWD/$here/CN/first_job_trace.patch") > "$out/trace-build.log" 2>&1
(cd /tmp/trace && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_NIF=OFF && cmake --build build -j16 --target kiln) >> "$out/trace-build.log" 2>&1 || tail -20 "$out/trace-build.log"
for i in 1 2; do KILN_TRACE_FIRST=1 /tmp/trace/build/kiln run -b cuda --n 1048576 --warmup 0 --repeat 2 --gpu-only 2>&1 | grep -E "trace b|run_decoded|transfer|ensure|run_lanes|time"; done
