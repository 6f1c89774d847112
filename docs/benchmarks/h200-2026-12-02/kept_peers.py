# Results kept alive against results dropped, for the peers: six calls host array -> GPU map -> host array, each timed.
#   usage (project root, GPU machine): python3 docs/benchmarks/h200-2026-12-02/kept_peers.py [n]
# The same shape as Kiln's elixir.kept / elixir.dropped rows: one input of n int64 on the host,
# six calls of the seed's map (10 iterations) whose results come back to host memory; "kept"
# holds every result, "dropped" lets each go before the next call. Also the download alone
# (device result -> new host array) each way, and a first touch of fresh host memory.
import sys
import time

import numpy as np

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 25
p, mu, k = 6_700_417, 22, 10
host = np.arange(1, n + 1, dtype=np.int64)


def series(label, call, sync):
    for mode in ("kept", "dropped"):
        call(host)  # warm-up
        sync()
        keep, times = [], []
        for _ in range(6):
            t0 = time.perf_counter()
            y = call(host)
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
            if mode == "kept":
                keep.append(y)
            del y
        med = sorted(times)[len(times) // 2]
        print(f"{label} {mode}: " + " ".join(f"{t:.1f}" for t in times) + f" ms (median {med:.1f})", flush=True)
        del keep


def first_touch():
    times = []
    for _ in range(6):
        t0 = time.perf_counter()
        a = np.empty(n, dtype=np.int64)
        a.fill(1)
        times.append((time.perf_counter() - t0) * 1e3)
    print("numpy fresh array filled (one thread): " + " ".join(f"{t:.1f}" for t in times) + " ms", flush=True)


first_touch()

try:
    import cupy as cp

    step = cp.ElementwiseKernel("int64 x, int64 p, int64 mu, int64 k", "int64 y",
                                "long long v = x; for (long long i = 0; i < k; ++i) v = (mu * v * (v + 1)) % p; y = v;",
                                "kiln_kept_map")

    def cupy_call(h):
        return cp.asnumpy(step(cp.asarray(h), p, mu, k))

    d = step(cp.asarray(host), p, mu, k)
    series("cupy map (asarray, ElementwiseKernel, asnumpy)", cupy_call, cp.cuda.Device().synchronize)
    series("cupy asnumpy alone", lambda _h: cp.asnumpy(d), cp.cuda.Device().synchronize)
    got = cupy_call(host)
    print(f"cupy checksum {int(got.sum())} (Kiln's at n = 2^25: 112374114484872)", flush=True)
except Exception as e:  # noqa: BLE001 - report and go on to the next peer
    print(f"cupy: skipped ({e})")

try:
    import torch

    def torch_call(h):
        x = torch.from_numpy(h).to("cuda")
        for _ in range(k):
            x = torch.remainder(mu * x * (x + 1), p)
        return x.cpu().numpy()

    series("torch map (to cuda, 10 steps, cpu().numpy())", torch_call, torch.cuda.synchronize)
    dt = torch.from_numpy(host).to("cuda")
    series("torch .cpu() alone", lambda _h: dt.cpu().numpy(), torch.cuda.synchronize)
    print(f"torch checksum {int(torch_call(host).sum())}", flush=True)
except Exception as e:  # noqa: BLE001
    print(f"torch: skipped ({e})")
