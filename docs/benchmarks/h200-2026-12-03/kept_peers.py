#!/usr/bin/env python3
"""kept_peers: six end-to-end calls of the map (n = 2^25, 10 iterations) from a host NumPy array in
CuPy (one ElementwiseKernel) and torch (the loop), each result kept alive or only the last, with a
garbage collection before each call, as bench/elixir_rows.exs times Kiln's kept rows.
Milliseconds per call. Usage: kept_peers.py [n]"""
import gc
import statistics
import sys
import time

import numpy as np

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 25
p, mu, k = 6700417, 22, 10
a = np.arange(1, n + 1, dtype=np.int64)
want = None


def series(name, to_dev, compute, to_host, sync):
    global want
    for keep in (True, False):
        h = to_host(compute(to_dev(a)))  # warm-up, untimed
        sync()
        if want is None:
            want = int(h.sum())
        held, times = [], []
        for _ in range(6):
            gc.collect()
            t0 = time.perf_counter()
            h = to_host(compute(to_dev(a)))
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
            held = held + [h] if keep else [h]
        ok = all(int(x.sum()) == want for x in held)
        print(f"{name} {'kept' if keep else 'dropped'}: " + " ".join(f"{t:.3f}" for t in times)
              + f"  median {statistics.median(times):.3f} ms, {'checksum ok' if ok else 'CHECKSUM MISMATCH'}",
              flush=True)


try:
    import cupy as cp
    kern = cp.ElementwiseKernel(
        "int64 x0, int64 p, int64 mu, int64 k", "int64 y",
        "long long x = x0; for (long long s = 0; s < k; ++s) x = mu * x * (x + 1) % p; y = x;",
        "kept_peers_logistic")
    series(f"cupy {cp.__version__}", cp.asarray, lambda x: kern(x, cp.int64(p), cp.int64(mu), cp.int64(k)),
           cp.asnumpy, cp.cuda.Device().synchronize)
except Exception as e:  # report and go on to the next peer
    print(f"cupy: skipped ({type(e).__name__}: {e})")

try:
    import torch

    def torch_map(x):
        for _ in range(k):
            x = torch.remainder(mu * x * (x + 1), p)
        return x

    series(f"torch {torch.__version__}", lambda v: torch.from_numpy(v).to("cuda"), torch_map,
           lambda y: y.cpu().numpy(), torch.cuda.synchronize)
except Exception as e:
    print(f"torch: skipped ({type(e).__name__}: {e})")
