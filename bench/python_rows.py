# Python benchmark rows (NumPy on the CPU; CuPy, JAX, PyTorch on a CUDA GPU) and the NumPy reference checksum; prints JSON.
"""Run one Python row family and print its result rows as one JSON object on stdout.

Usage: python_rows.py (numpy|cupy|jax|torch|reference|cupy_sweep|jax_sweep|torch_sweep|cupy_scale|jax_scale)
                      --n N [--p P] [--mu MU] [--iterations K] [--repeat R] [--budget S] [--first F]
                      [--sweep 10,100,1000] [--scale-n 10,16,20] [--deadline T] [--rows REGEX]

The inputs are 1..N; for the reference, F..F+N-1 with --first (F >= 0). The *_sweep families
(bench/run --kernels) run the map at each iteration count of --sweep, the whole loop inside one
kernel where the framework allows it (CuPy ElementwiseKernel, JAX lax.fori_loop), and cupy_sweep
also measures a device-to-device copy's bytes per second (python.bw.cupy.copy.resident).
The *_scale families (bench/run --sweep) run the same two kernels end to end at n = 2^e for each e
of --scale-n and each count of --sweep, skipping the rows --rows does not match and, from the
Unix time --deadline on, the rest (skipped, saying so).

Each family is run in its own process by bench/driver.py: JAX and PyTorch both grab GPU
memory and CUDA state at import, and a crash in one framework must not take the others down.
Rows that cannot run (framework missing, no GPU) come back with status "skipped" and a reason.
"""
import argparse
import json
import os
import statistics
import sys
import time

INT64_MAX = 2**63 - 1
FAMILIES = ("numpy", "cupy", "jax", "torch", "reference", "cupy_sweep", "jax_sweep", "torch_sweep", "cupy_scale",
            "jax_scale")


def int64_bound(n, p, mu):
    """Largest |intermediate| of mu*x*(x+1) over the run.

    The first iteration sees the inputs 1..n; every later one sees remainders in [0, p).
    Both products (mu*x, then *(x+1)) are bounded by |mu|*m*(m+1) with m the largest |x|.
    """
    m = max(n, p - 1)
    return abs(mu) * m * (m + 1)


def overflow_reason(n, p, mu):
    b = int64_bound(n, p, mu)
    if b > INT64_MAX:
        return f"int64 would overflow: max |mu*x*(x+1)| = {b:.3e} > 2^63-1; NumPy-style rows need exact int64"
    return None


def bound_note(n, p, mu):
    return f"int64 exact: max |mu*x*(x+1)| = {int64_bound(n, p, mu):.3e} < 2^63-1 = {INT64_MAX:.3e}"


def exact_sum(np, arr):
    """Exact Python-int sum of an int64 array (summed in int64 only when it provably cannot wrap)."""
    a = np.asarray(arr)
    if a.size == 0:
        return 0
    lo, hi = int(a.min()), int(a.max())
    if max(abs(lo), abs(hi)) * a.size <= INT64_MAX:
        return int(a.sum(dtype=np.int64))
    return sum(int(c.sum(dtype=np.int64)) for c in np.array_split(a, max(1, a.size // (1 << 20))))


def summarize(name, runs, parts, result_checksum, extra, repeat_asked, warmup_s):
    """Turns per-run timings into the row record the driver expects."""
    row = {
        "name": name,
        "status": "ok",
        "repeat": len(runs),
        "runs": runs,
        "seconds": statistics.median(runs),
        "seconds_min": min(runs),
        "seconds_max": max(runs),
        "warmup_s": warmup_s,
        "host_to_device_s": statistics.median(parts["h2d"]) if parts.get("h2d") else 0.0,
        "kernel_s": statistics.median(parts["kernel"]) if parts.get("kernel") else 0.0,
        "device_to_host_s": statistics.median(parts["d2h"]) if parts.get("d2h") else 0.0,
        "checksum": result_checksum,
    }
    if len(runs) < repeat_asked:
        row["repeat_note"] = (f"{len(runs)} timed run(s) instead of {repeat_asked}: "
                              f"the warm-up took {warmup_s:.1f} s")
    row.update(extra)
    return row


def effective_repeat(warmup_s, repeat, budget):
    # Rows slower than the budget allows get fewer timed runs (at least one), and say so.
    if warmup_s * repeat <= budget:
        return repeat
    return max(1, min(repeat, int(budget // max(warmup_s, 1e-9))))


def measure(name, one_run, repeat, budget, checksum_of, extra):
    """one_run() -> (parts dict of seconds, result); the wall time around it is the row's time."""
    t0 = time.perf_counter()
    _, result = one_run()
    warmup_s = time.perf_counter() - t0
    del result
    runs, parts = [], {"h2d": [], "kernel": [], "d2h": []}
    last = None
    for _ in range(effective_repeat(warmup_s, repeat, budget)):
        last = None  # free the previous result before timing the next run
        t0 = time.perf_counter()
        p, last = one_run()
        runs.append(time.perf_counter() - t0)
        for k, v in p.items():
            parts[k].append(v)
    return summarize(name, runs, parts, checksum_of(last), extra, repeat, warmup_s)


def skipped(name, reason, **extra):
    row = {"name": name, "status": "skipped", "reason": reason}
    row.update(extra)
    return row


# ---- NumPy -------------------------------------------------------------------------------------

def numpy_map(np, a, p, mu, iterations):
    # In-place ufuncs: the idiomatic fast NumPy form, one temporary instead of four per iteration.
    x = a.copy()
    t = np.empty_like(x)
    for _ in range(iterations):
        np.add(x, 1, out=t)
        np.multiply(x, mu, out=x)
        np.multiply(x, t, out=x)
        np.remainder(x, p, out=x)  # operands are >= 0 for mu > 0, so NumPy's mod equals rem
    return x


def sign_reason(mu):
    # NumPy/CuPy/JAX/torch remainder follows the divisor's sign (floor mod); Elixir's rem follows
    # the dividend. They agree only when mu*x*(x+1) >= 0, i.e. mu >= 0 (x*(x+1) >= 0 always).
    return None if mu >= 0 else "mu < 0: floor-mod frameworks differ from rem/2; row would not be exact"


def row_numpy(args):
    try:
        import numpy as np
    except ImportError as e:
        return [skipped("python.numpy", f"numpy not importable in {sys.executable}: {e}")]
    why = overflow_reason(args.n, args.p, args.mu) or sign_reason(args.mu)
    if why:
        return [skipped("python.numpy", why)]
    a = np.arange(1, args.n + 1, dtype=np.int64)

    def one_run():
        return {}, numpy_map(np, a, args.p, args.mu, args.iterations)

    extra = {"device": "host CPU (1 thread, NumPy ufuncs)", "note": bound_note(args.n, args.p, args.mu),
             "versions": {"python": sys.version.split()[0], "numpy": np.__version__}}
    return [measure("python.numpy", one_run, args.repeat, args.budget, lambda r: exact_sum(np, r), extra)]


def pure_sum(args, first, last):
    """The map's exact checksum over first..last in pure Python: unbounded ints, rem semantics."""
    total = 0
    for x in range(first, last + 1):
        for _ in range(args.iterations):
            v = args.mu * x * (x + 1)
            x = abs(v) % args.p * (1 if v >= 0 else -1)
        total += x
    return total


def numpy_sum(np, args, first, last, reduce):
    """The same with NumPy in chunks; with `reduce`, each input taken mod p first (see reference_from)."""
    total = 0
    chunk = 1 << 22
    for start in range(first, last + 1, chunk):
        a = np.arange(start, min(last, start + chunk - 1) + 1, dtype=np.int64)
        total += exact_sum(np, numpy_map(np, np.remainder(a, args.p) if reduce else a, args.p, args.mu,
                                         args.iterations))
    return total


def reference(args):
    """The reference checksum, from NumPy in chunks (independent of Kiln's own code)."""
    if args.first != 1:
        return reference_from(args)
    why = overflow_reason(args.n, args.p, args.mu) or sign_reason(args.mu)
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is None or why:
        if args.n > (1 << 21):
            return {"checksum": None, "reason": why or "numpy missing and n too large for pure Python"}
        return {"checksum": pure_sum(args, 1, args.n), "source": "pure Python (unbounded ints)"}
    return {"checksum": numpy_sum(np, args, 1, args.n, reduce=False),
            "source": f"NumPy {np.__version__} int64 (chunked)",
            "note": bound_note(args.n, args.p, args.mu)}


def reference_from(args):
    """The reference checksum for the inputs first..first+n-1 (first >= 0, mu >= 0, k >= 1).

    With every operand >= 0, rem(mu*x*(x+1), p) = rem(mu*r*(r+1), p) for r = rem(x, p): the
    first iteration of the map from r is the map's from x. So inputs of any size reduce first,
    and every product stays within int64 (r < p).
    """
    first, last = args.first, args.first + args.n - 1
    why = ("first < 0: the reduction needs inputs >= 0" if first < 0 else
           "last input beyond int64" if last > INT64_MAX else
           "iterations < 1: the reduction needs one" if args.iterations < 1 else
           overflow_reason(1, args.p, args.mu) or sign_reason(args.mu))
    if why:
        return {"checksum": None, "reason": why}
    try:
        import numpy as np
    except ImportError:
        if args.n > (1 << 21):
            return {"checksum": None, "reason": "numpy missing and n too large for pure Python"}
        return {"checksum": pure_sum(args, first, last), "source": "pure Python (unbounded ints)", "first": first}
    return {"checksum": numpy_sum(np, args, first, last, reduce=True),
            "source": f"NumPy {np.__version__} int64 (chunked, inputs reduced mod p first)",
            "first": first}


# ---- GPU frameworks ----------------------------------------------------------------------------

def gpu_rows(family, args, setup, names=None, more=None, host=None):
    """Common shape of the GPU rows: end to end from a host NumPy array, and device-resident.

    names: (end-to-end name, resident name), default python.<family>[.resident], a resident name
    None for the end-to-end row alone; more: fields added to both rows (e.g. the iteration count
    of a sweep row); host: the input 1..n already built (np.arange), shared by several calls.

    setup() returns (name of the device, versions, to_device, compute, to_host, sync), or raises
    RuntimeError(reason) to skip. The end-to-end row is timed as H2D + compute + D2H with a
    synchronisation after each phase so that the split is real; the resident row times compute
    alone on data already on the device.
    """
    e2e, res = names or (f"python.{family}", f"python.{family}.resident")

    def skip_both(reason):
        return [skipped(name, reason, **(more or {})) for name in (e2e, res) if name]
    try:
        import numpy as np
    except ImportError as e:
        return skip_both(f"numpy not importable: {e}")
    why = overflow_reason(args.n, args.p, args.mu) or sign_reason(args.mu)
    if why:
        return skip_both(why)
    try:
        device, versions, to_device, compute, to_host, sync = setup()
    except RuntimeError as e:
        return skip_both(str(e))
    except Exception as e:  # a broken install is a skip with its message, not a harness crash
        return skip_both(f"{family} unusable: {type(e).__name__}: {e}")
    a = np.arange(1, args.n + 1, dtype=np.int64) if host is None else host
    extra = {"device": device, "versions": versions, "note": bound_note(args.n, args.p, args.mu), **(more or {})}

    def end_to_end():
        t0 = time.perf_counter()
        d = to_device(a)
        sync()
        t1 = time.perf_counter()
        y = compute(d)
        sync()
        t2 = time.perf_counter()
        h = to_host(y)
        t3 = time.perf_counter()
        return {"h2d": t1 - t0, "kernel": t2 - t1, "d2h": t3 - t2}, h

    rows = [measure(e2e, end_to_end, args.repeat, args.budget, lambda r: exact_sum(np, r),
                    dict(extra, timing="end to end from a host NumPy array (H2D + compute + D2H)"))]
    if res is None:
        return rows
    d = to_device(a)
    sync()

    def resident():
        t0 = time.perf_counter()
        y = compute(d)
        sync()
        return {"kernel": time.perf_counter() - t0}, y

    rows.append(measure(res, resident, args.repeat, args.budget, lambda r: exact_sum(np, to_host(r)),
                        dict(extra, timing="device-resident input; compute + synchronize only", resident=True)))
    return rows


def setup_cupy(args):
    try:
        import cupy as cp
    except ImportError as e:
        raise RuntimeError(f"cupy not importable: {e}")
    if cp.cuda.runtime.getDeviceCount() < 1:
        raise RuntimeError("CuPy sees no CUDA device")
    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    p, mu, k = args.p, args.mu, args.iterations

    def compute(x):
        # Plain NumPy-compatible CuPy array code: what a NumPy user gets by swapping the import.
        x = x.copy()
        t = cp.empty_like(x)
        for _ in range(k):
            cp.add(x, 1, out=t)
            cp.multiply(x, mu, out=x)
            cp.multiply(x, t, out=x)
            cp.remainder(x, p, out=x)
        return x

    return (name, {"cupy": cp.__version__}, cp.asarray, compute, cp.asnumpy,
            cp.cuda.Device().synchronize)


def jax_rows(args, step_loop):
    """JAX on its first GPU, int64 (x64), the map compiled with jit by `step_loop(jnp, x)`."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # don't take 75% of the GPU
    try:
        import jax
    except ImportError as e:
        raise RuntimeError(f"jax not importable: {e}")
    jax.config.update("jax_enable_x64", True)  # without it jnp.int64 silently becomes int32
    import jax.numpy as jnp
    import numpy as np
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        raise RuntimeError(f"JAX has no GPU backend here (devices: {jax.devices()})")
    dev = gpus[0]
    compute = jax.jit(lambda x: step_loop(jnp, x))

    probe = compute(jax.device_put(np.arange(1, 3, dtype=np.int64), dev))
    if probe.dtype != jnp.int64:
        raise RuntimeError(f"JAX x64 not in effect (got {probe.dtype})")
    state = {}

    def sync():
        y = state.pop("last", None)
        if y is not None:
            y.block_until_ready()

    def to_device(a):
        state["last"] = d = jax.device_put(a, dev)
        return d

    def run(x):
        state["last"] = y = compute(x)
        return y

    return (str(getattr(dev, "device_kind", dev)), {"jax": jax.__version__, "jaxlib": _version("jaxlib")},
            to_device, run, np.asarray, sync)


def setup_jax(args):
    """JAX jit with the steps unrolled at trace time: XLA fuses the 10 steps into one kernel."""
    p, mu, k = args.p, args.mu, args.iterations

    def steps(jnp, x):
        for _ in range(k):
            x = jnp.remainder(mu * x * (x + 1), p)
        return x

    return jax_rows(args, steps)


def setup_torch(args):
    try:
        import torch
    except ImportError as e:
        raise RuntimeError(f"torch not importable: {e}")
    if not torch.cuda.is_available():
        raise RuntimeError("torch.cuda.is_available() is False")
    p, mu, k = args.p, args.mu, args.iterations

    def compute(x):
        x = x.clone()
        t = torch.empty_like(x)
        for _ in range(k):
            torch.add(x, 1, out=t)
            x.mul_(mu)
            x.mul_(t)
            torch.remainder(x, p, out=x)
        return x

    return (torch.cuda.get_device_name(0), {"torch": torch.__version__, "torch_cuda": torch.version.cuda},
            lambda a: torch.from_numpy(a).to("cuda"), compute, lambda y: y.cpu().numpy(),
            torch.cuda.synchronize)


# ---- the iteration sweep (bench/run --kernels) -------------------------------------------------

def setup_cupy_elementwise(args):
    """CuPy's fastest form of the map: one ElementwiseKernel running the k iterations in a loop."""
    try:
        import cupy as cp
    except ImportError as e:
        raise RuntimeError(f"cupy not importable: {e}")
    if cp.cuda.runtime.getDeviceCount() < 1:
        raise RuntimeError("CuPy sees no CUDA device")
    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    # Exact in int64 by overflow_reason's bound (checked by gpu_rows): every x is an input or a
    # remainder in [0, p), so mu*x*(x+1) never wraps, and with mu >= 0 C's % equals rem.
    kern = cp.ElementwiseKernel(
        "int64 x0, int64 p, int64 mu, int64 k", "int64 y",
        "long long x = x0; for (long long step = 0; step < k; ++step) x = mu * x * (x + 1) % p; y = x;",
        "kiln_bench_logistic_k")
    p, mu, k = args.p, args.mu, args.iterations

    def compute(x):
        return kern(x, cp.int64(p), cp.int64(mu), cp.int64(k))

    return (name, {"cupy": cp.__version__}, cp.asarray, compute, cp.asnumpy, cp.cuda.Device().synchronize)


def setup_jax_fori(args):
    """JAX jit with lax.fori_loop: the loop stays a loop in XLA (no unrolling of 1000 steps)."""
    p, mu, k = args.p, args.mu, args.iterations

    def steps(jnp, x):
        from jax import lax
        return lax.fori_loop(0, k, lambda _, x: jnp.remainder(mu * x * (x + 1), p), x)

    return jax_rows(args, steps)


SWEEP_FORMS = {"cupy_sweep": ("cupy", "elementwise", setup_cupy_elementwise),
               "jax_sweep": ("jax", "fori", setup_jax_fori),
               "torch_sweep": ("torch", "loop", setup_torch)}


def sweep_rows(family, args):
    """The map at every iteration count of --sweep (each row carries its count for the check)."""
    fw, form, setup = SWEEP_FORMS[family]
    rows = []
    for k in args.sweep:
        a = argparse.Namespace(**{**vars(args), "iterations": k})
        base = f"python.sweep.k{k}.{fw}.{form}"
        rows += gpu_rows(fw, a, lambda a=a: setup(a), names=(base, base + ".resident"),
                         more={"iterations": k, "form": form})
    if family == "cupy_sweep":
        rows.append(row_cupy_copy(args))
    return rows


SCALE_FORMS = {"cupy_scale": ("cupy", "elementwise", setup_cupy_elementwise),
               "jax_scale": ("jax", "fori", setup_jax_fori)}


def scale_rows(family, args):
    """The scaling sweep (bench/run --sweep): end to end at n = 2^e for every e and iteration count."""
    import re
    fw, form, setup = SCALE_FORMS[family]
    wanted = re.compile(args.rows or "")
    rows = []
    for e in args.scale_n:
        n = 1 << e
        host = None
        for k in args.sweep:
            name = f"python.scale.n{e}.k{k}.{fw}.{form}"
            more = {"n": n, "n_log2": e, "iterations": k, "mode": fw, "form": form}
            if not wanted.search(name):
                continue
            if args.deadline is not None and time.time() > args.deadline:
                rows.append(skipped(name, "the sweep's time limit (--sweep-time-limit) ran out before this row", **more))
                continue
            if host is None:
                try:
                    import numpy as np
                    host = np.arange(1, n + 1, dtype=np.int64)
                except ImportError:
                    pass  # gpu_rows says why
            a = argparse.Namespace(**{**vars(args), "n": n, "iterations": k})
            rows += gpu_rows(fw, a, lambda a=a: setup(a), names=(name, None), more=more, host=host)
        host = None  # free 1..n before the next n's
    return rows


def row_cupy_copy(args):
    """A device-to-device copy of n int64 (cupy.copyto): the bytes/s a memory-bound kernel can hope for."""
    name = "python.bw.cupy.copy.resident"
    try:
        import cupy as cp
        import numpy as np
        if cp.cuda.runtime.getDeviceCount() < 1:
            return skipped(name, "CuPy sees no CUDA device")
        props = cp.cuda.runtime.getDeviceProperties(0)
        device = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        src = cp.arange(1, args.n + 1, dtype=cp.int64)
        dst = cp.empty_like(src)
        cp.cuda.Device().synchronize()
    except ImportError as e:
        return skipped(name, f"cupy not importable: {e}")
    except Exception as e:
        return skipped(name, f"cupy unusable: {type(e).__name__}: {e}")

    def one_run():
        t0 = time.perf_counter()
        cp.copyto(dst, src)
        cp.cuda.Device().synchronize()
        return {"kernel": time.perf_counter() - t0}, dst

    # Copies are microseconds: many timed runs, so that the median is not one launch's noise.
    row = measure(name, one_run, max(args.repeat, 20), args.budget, lambda r: exact_sum(np, cp.asnumpy(r)),
                  {"device": device, "versions": {"cupy": cp.__version__}, "resident": True, "expected": "input",
                   "bytes_per_call": 2 * 8 * args.n,
                   "timing": "cupy.copyto(dst, src) of n int64 on the device, then synchronize"})
    return row


def _version(dist):
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("family", choices=FAMILIES)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--p", type=int, default=6_700_417)
    ap.add_argument("--mu", type=int, default=22)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--sweep", default="10,100,1000", help="iteration counts of the *_sweep and *_scale families")
    ap.add_argument("--scale-n", default="10,16,20", help="the *_scale families' n, as powers of two")
    ap.add_argument("--deadline", type=float, default=None, help="Unix time from which *_scale rows are skipped")
    ap.add_argument("--rows", default="", help="only the *_scale rows whose name matches (re.search)")
    args = ap.parse_args()
    args.sweep = [int(k) for k in args.sweep.split(",") if k.strip()]
    args.scale_n = [int(e) for e in args.scale_n.split(",") if e.strip()]
    if args.family == "reference":
        out = reference(args)
    elif args.family == "numpy":
        out = {"rows": row_numpy(args)}
    elif args.family in SWEEP_FORMS:
        out = {"rows": sweep_rows(args.family, args)}
    elif args.family in SCALE_FORMS:
        out = {"rows": scale_rows(args.family, args)}
    else:
        setup = {"cupy": setup_cupy, "jax": setup_jax, "torch": setup_torch}[args.family]
        out = {"rows": gpu_rows(args.family, args, lambda: setup(args))}
    out["python"] = sys.executable
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
