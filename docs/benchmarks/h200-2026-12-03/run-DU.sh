#!/usr/bin/env bash
# DU on the H200 machine: the square form's iteration loop unrolled 2, 4 and 8 times (kiln_pipe_mix's
# "unrolled" shapes, a template parameter of logistic_kernel_pairs in this tree: 1485c8f with
# DU/unroll.diff applied), with each kernel's longest loop counted by opcode (cuobjdump,
# sass_loops.py; that loop is the grid-stride loop, the iteration loop inside it).
#   usage (project root, GPU machine, after source .device/setup.sh): docs/benchmarks/h200-2026-12-03/run-DU.sh OUT
out=$1
nvidia-smi -L > "$out/device.txt"; date -u >> "$out/device.txt"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j16 --target kiln_pipe_mix; } > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
timeout 120 build/kiln_pipe_mix > "$out/pipe_mix.log" 2>&1; grep -E "square k = 1000" "$out/pipe_mix.log"
cuobjdump -sass build/kiln_pipe_mix > /tmp/sass.txt 2>&1 && python3 bench/limits/sass_loops.py < /tmp/sass.txt > "$out/sass_loops.log" 2>&1
grep logistic_kernel_pairs "$out/sass_loops.log" | sed -E "s/_ZN[^\t]*logistic_kernel_pairsILi([0-9]+)ELi([0-9]+)ELi([0-9]+)E[^\t]*/pairs<\1,\2,\3>/" | head -40
