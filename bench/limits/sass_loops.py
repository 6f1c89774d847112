#!/usr/bin/env python3
"""sass_loops: each kernel's longest loop in `cuobjdump -sass` output, its instructions counted by opcode.

Usage: cuobjdump -sass build/kiln_lane_mix | bench/limits/sass_loops.py
A loop is the span from a backward branch's target to the branch. docs/BENCHMARKS.md quotes these
counts beside the times they explain; a measuring aid, not part of the library.
"""
import re
import sys

INSTR = re.compile(r"/\*([0-9a-f]{4,5})\*/\s+(@!?U?P\w+\s+)?([A-Z0-9_.]+)([^;]*);")


def kernels(text):
    lines = text.split("\n")
    starts = [(i, l.split(":", 1)[1].strip()) for i, l in enumerate(lines) if "Function :" in l]
    starts.append((len(lines), None))
    for (a, name), (b, _) in zip(starts, starts[1:]):
        body = []
        for line in lines[a:b]:
            m = INSTR.search(line)
            if m:
                body.append((int(m.group(1), 16), m.group(3), m.group(4)))
        yield name, body


def longest_loop(body):
    where = {addr: i for i, (addr, _, _) in enumerate(body)}
    best = []
    for i, (addr, op, args) in enumerate(body):
        m = re.search(r"0x([0-9a-f]+)", args) if op == "BRA" else None
        if m and int(m.group(1), 16) < addr and int(m.group(1), 16) in where:
            seg = body[where[int(m.group(1), 16)] : i + 1]
            if len(seg) > len(best):
                best = seg
    return best


def main():
    for name, body in kernels(sys.stdin.read()):
        loop = longest_loop(body)
        if not loop:
            continue
        ops = {}
        for _, op, _ in loop:
            ops[op] = ops.get(op, 0) + 1
        counts = " ".join(f"{k}:{v}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1]))
        print(f"{name}\t{len(loop)}\t{counts}")


if __name__ == "__main__":
    main()
