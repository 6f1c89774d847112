# Benchmark driver (stdlib only): runs every row (C++ kiln, Python, Elixir), checks checksums, writes results.json/md and chart.svg.
"""Called by bench/run after the builds; see bench/README.md for the options.

Rows run in groups, each in its own process: `build/kiln run --json` per C++ row, one Python
process per framework (bench/python_rows.py), and one `mix run bench/elixir_rows.exs` for all
Elixir rows (a BEAM start per row would cost more than the small rows themselves).
"""
import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402  (bench/report.py: tables, summary, SVG)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
P, MU, ITERATIONS = 6_700_417, 22, 10
# The wide rows' first input: every input needs more than 32 bits, so no chunk crosses a GPU's bus
# narrowed (only the results do), unlike the seed's 1..n.
WIDE_FIRST = 1 << 32
FULL_N = 0x2000000
DEFAULT_N = 1 << 20  # measured: a whole default run takes about 1 min on the 2-core dev machine (see README)
ALL_STAGES = [1, 2, 4, 8, 16, 32, 64, 128]
MARKER = "@@KILNBENCH@@ "
DEFAULT_SWEEP = "10,100,1000"
# The scaling sweep (--sweep): n = 2^e for these e, at these iteration counts, in four modes.
DEFAULT_SWEEP_N = "10,16,20,25,28"
DEFAULT_SWEEP_K = "1,10,100,1000"
SWEEP_MODES = ["auto", "device_only", "host_share", "cpu"]
SWEEP_PEERS = [("cupy", "elementwise"), ("jax", "fori")]
# Sweep references from NumPy up to this many element-iterations (about 5 s on one core), from
# the kiln cpu backend beyond (NumPy would take minutes at 2^28 x 1000).
SWEEP_NUMPY_MAX = 1 << 30
# The small-call crossover (--crossover): n from 1 to 2^16 against pure Elixir.
DEFAULT_CROSSOVER_N = "1,4,16,64,256,1024,4096,16384,65536"
CROSSOVER_IMPLS = ["auto", "cpu", "pure"]
# The lists rows' large heap: the calling process holds a list of this many elements.
DEFAULT_LISTS_HEAP = 1 << 24

# Sample names per group: a --rows pattern that matches none of a group's names skips starting it.
GROUP_SAMPLES = {
    "cpp": ["cpp.scalar", "cpp.cpu", "cpp.opencl0", "cpp.opencl0.gpu_only", "cpp.opencl0.resident", "cpp.cuda0",
            "cpp.cuda0.gpu_only", "cpp.cuda0.resident", "cpp.cuda0.pinned", "cpp.opencl0.wide", "cpp.cuda0.wide",
            "cpp.cuda.all", "cpp.cuda.all.gpu_only", "cpp.cuda.all.pinned"],
    "python": ["python.numpy", "python.cupy", "python.cupy.resident", "python.jax", "python.jax.resident",
               "python.torch", "python.torch.resident"],
    "elixir": ["elixir.pure.loop", "elixir.pure.inlined", "elixir.nif.cpu.list", "elixir.nif.cpu.windows",
               "elixir.nif.cpu.binary", "elixir.kernel.cpu.binary", "elixir.kernel.opencl0.binary",
               "elixir.kernel.cuda0.binary", "elixir.nif.opencl0.list", "elixir.nif.opencl0.binary",
               "elixir.nif.opencl0.resident", "elixir.nif.cuda0.list", "elixir.nif.cuda0.binary",
               "elixir.nif.cuda0.resident", "elixir.nif.cuda.all.binary", "elixir.kernel.cuda.all.binary", "elixir.cluster.this_node.binary",
               "elixir.cluster.two_nodes.binary", "elixir.empty.list", "elixir.empty.binary"]
              + [f"elixir.lists.{big}{t}" for big in ("", "big_heap.") for t in ("reverse", "empty_call", "cuda0", "cpu")]
              + [f"elixir.{h}.{t}.binary" for h in ("kept", "dropped", "paced", "async16", "sync16") for t in ("cuda0", "cpu")],
}
# The Elixir row sections (elixir_rows.exs --sections) each kind of run asks for: a plain run has
# the seed's rows, the lists rows and the kept-results rows; --kernels adds its rows; --sweep and
# --crossover are runs of their own (see sections()).
KEPT_SAMPLES = [f"elixir.{h}.{t}.binary" for h in ("kept", "dropped", "paced", "async16", "sync16") for t in ("cuda0", "cpu")]
# The rows --kernels adds (their names carry "sweep" or "bw"): the kernel path against the
# built-in map at several iteration counts, the peers at the same counts, and the bandwidth rows.
KERNEL_SAMPLES = {
    "python": ["python.sweep.k10.cupy.elementwise", "python.sweep.k10.cupy.elementwise.resident",
               "python.sweep.k10.jax.fori", "python.sweep.k10.jax.fori.resident", "python.sweep.k10.torch.loop",
               "python.sweep.k10.torch.loop.resident", "python.bw.cupy.copy.resident"],
    "elixir": [f"elixir.sweep.k10.{v}.{t}.{s}" for v in ("nif", "kernel", "kernel_reduce")
               for t in ("cuda0", "opencl0", "cpu") for s in ("binary", "resident")]
              + [f"elixir.bw.fma2.{t}.resident" for t in ("cuda0", "opencl0", "cpu")],
}


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def sh(cmd, timeout=60, **kw):
    """Output of a short informational command, or None (machine info must never fail the run)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
        return r.stdout.strip() if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


class Bench:
    def __init__(self, args):
        self.args = args
        self.rows = []
        self.rx = re.compile(args.rows or "")
        self.python_env = {}    # family -> interpreter that imports it
        self.versions = {}      # collected from the row processes
        self.kiln_devices = None
        self.reference = None
        self.reference_wide = None  # for the inputs WIDE_FIRST.., computed when a wide row first needs it
        self.reference_k = {}       # (n, iterations) -> reference of rows at another n or count

    # ---- plumbing ---------------------------------------------------------------------------------

    def wanted(self, name):
        return bool(self.rx.search(name))

    def samples(self, group):
        a = self.args
        if "main" not in a.sections:  # --sweep / --crossover: their own rows only
            return {"elixir": self.elixir_samples(), "python": self.scale_samples("python")}.get(group, [])
        return GROUP_SAMPLES[group] + (KERNEL_SAMPLES.get(group, []) if a.kernels else [])

    def scale_samples(self, front):
        """Names of the sweep's rows (--sweep), for `front` "elixir" or "python"."""
        a = self.args
        if not a.sweep:
            return []
        if front == "elixir":
            return [f"elixir.scale.n{e}.k{k}.{m}.binary" for e in a.sweep_n for k in a.sweep_k for m in SWEEP_MODES]
        return [f"python.scale.n{e}.k{k}.{fw}.{form}" for e in a.sweep_n for k in a.sweep_k for fw, form in SWEEP_PEERS]

    def elixir_samples(self):
        a = self.args
        names = []
        if "main" in a.sections:
            names += GROUP_SAMPLES["elixir"] + (KERNEL_SAMPLES["elixir"] if a.kernels else [])
        elif "kept" in a.sections:
            names += KEPT_SAMPLES
        names += self.scale_samples("elixir")
        if a.crossover:
            names += [f"elixir.crossover.n{n}.{i}.{shape}" for n in a.crossover_n for i in CROSSOVER_IMPLS
                      for shape in ("list", "binary")]
        return names

    def group_wanted(self, group):
        return any(self.wanted(n) for n in self.samples(group))

    def add(self, row):
        """Checks one finished row against the reference, records it and prints its progress line."""
        row.setdefault("stages", None)
        if row.get("status") == "ok":
            expected = self.expected_checksum(row)
            row["expected_checksum"] = expected
            got = row.get("checksum")
            row["checksum_ok"] = expected is not None and got == expected
            if expected is None:
                row["status"] = "error"
                row["reason"] = "no reference checksum to compare with"
            elif not row["checksum_ok"]:
                row["status"] = "MISMATCH"
                row["reason"] = f"checksum {got} != expected {expected}"
        report.describe(row)
        self.rows.append(row)
        log(self.progress_line(row))

    def expected_checksum(self, row):
        # Rows of the sweep and the crossover carry their own n; every other row runs at --n.
        n = row.get("n") or self.args.n
        if row.get("expected") == "input":  # empty NIF call (a copy): returns its input unchanged
            return n * (n + 1) // 2
        if row.get("expected") == "fma2":  # {a + b * c, a - c} with a = b = c = 1..n: sum x + x^2, and 0
            return n * (n + 1) // 2 + n * (n + 1) * (2 * n + 1) // 6
        k = row.get("iterations", ITERATIONS)
        if row.get("n") is not None and (n, k) != (self.args.n, ITERATIONS):
            return self.reference_for(k, n, numpy_max=SWEEP_NUMPY_MAX)
        if k != ITERATIONS:
            return self.reference_for(k)
        if row.get("first") == WIDE_FIRST:
            if self.reference_wide is None:
                out = self.run_python(self.find_python("numpy") or sys.executable, "reference",
                                      timeout=3600, extra=["--first", str(WIDE_FIRST)])
                self.reference_wide = out if out.get("checksum") is not None else {"checksum": None}
                log(f"reference checksum for inputs from {WIDE_FIRST}: {self.reference_wide['checksum']} "
                    f"({out.get('source') or out.get('reason') or out.get('error')})")
            return self.reference_wide["checksum"]
        if self.reference is None:
            self.compute_reference()
        return self.reference["checksum"]

    def progress_line(self, row):
        st = f" stages={row['stages']}" if row.get("stages") else ""
        head = f"{row['name']}{st}"
        if row["status"] == "ok":
            note = f"  ({row['repeat_note']})" if row.get("repeat_note") else ""
            return (f"{head}: {report.fmt_s(row['seconds'])} median (min {report.fmt_s(row['seconds_min'])}, "
                    f"max {report.fmt_s(row['seconds_max'])}, {row['repeat']} runs), checksum ok{note}")
        if row["status"] == "MISMATCH":
            return f"{head}: *** MISMATCH *** {row['reason']}"
        return f"{head}: {row['status'].upper()}: {row.get('reason', '')}"

    def skip_all(self, names, status, reason):
        for n in names:
            if self.wanted(n):
                self.add({"name": n, "status": status, "reason": reason})

    # ---- reference --------------------------------------------------------------------------------

    def reference_for(self, k, n=None, numpy_max=None):
        """The reference checksum over 1..n at k iterations (rows at another count or n), computed once
        per (n, k) as the main one; with numpy_max, NumPy only up to that many element-iterations."""
        n = self.args.n if n is None else n
        if (n, k) not in self.reference_k:
            ref = None
            py = self.find_python("numpy")
            if py and (numpy_max is None or n * k <= numpy_max):
                out = self.run_python(py, "reference", timeout=3600, extra=["--iterations", str(k)], n=n)
                ref = out if out.get("checksum") is not None else None
            # Pure Python costs about a microsecond per element and iteration.
            if ref is None and n * k <= (1 << 21) * 10:
                out = self.run_python(sys.executable, "reference", timeout=3600, extra=["--iterations", str(k)], n=n)
                ref = out if out.get("checksum") is not None else None
            if ref is None and self.kiln_ok():
                r = self.kiln_run(["--backend", "cpu", "--repeat", "1", "--warmup", "0"], iterations=k, n=n)
                if isinstance(r, dict) and "checksum" in r:
                    why = "no NumPy here" if not py else f"n*k above {numpy_max:,} for NumPy" if numpy_max else "NumPy failed"
                    ref = {"checksum": r["checksum"], "source": f"kiln cpu backend ({why})"}
            self.reference_k[(n, k)] = ref or {"checksum": None, "source": "none: no NumPy, n*k too large for pure Python, no kiln"}
            log(f"reference checksum over 1..{n:,} at {k} iterations: {self.reference_k[(n, k)]['checksum']} "
                f"({self.reference_k[(n, k)]['source']})")
        return self.reference_k[(n, k)]["checksum"]

    def compute_reference(self):
        a = self.args
        py = self.find_python("numpy")
        if py:
            out = self.run_python(py, "reference", timeout=3600)
            if out and out.get("checksum") is not None:
                self.reference = out
        if self.reference is None and a.n <= (1 << 21):
            out = self.run_python(sys.executable, "reference", timeout=3600)  # pure-Python fallback
            if out and out.get("checksum") is not None:
                self.reference = out
        if self.reference is None and self.kiln_ok():
            k = self.kiln_run(["--backend", "cpu", "--repeat", "1", "--warmup", "0"])
            if isinstance(k, dict) and "checksum" in k:
                self.reference = {"checksum": k["checksum"], "source": "kiln cpu backend (no NumPy here)"}
        if self.reference is None:
            self.reference = {"checksum": None, "source": "none: no NumPy, n too large for pure Python, no kiln"}
        log(f"reference checksum {self.reference['checksum']} from {self.reference['source']}")

    # ---- C++ rows ---------------------------------------------------------------------------------

    def kiln_ok(self):
        return os.access(self.args.kiln, os.X_OK) and not os.environ.get("KILN_BENCH_CPP_ERROR")

    def kiln_run(self, extra, iterations=ITERATIONS, n=None):
        a = self.args
        cmd = [a.kiln, "run", "--n", str(a.n if n is None else n), "--iterations", str(iterations), "--p", str(P), "--mu", str(MU),
               *extra, "--json"]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.row_timeout)
        except subprocess.TimeoutExpired:
            return f"timed out after {a.row_timeout} s: {' '.join(cmd)}"
        if r.returncode != 0:
            return f"exit {r.returncode}: {r.stderr.strip()[-800:] or r.stdout.strip()[-800:]}"
        try:
            return json.loads(r.stdout)
        except json.JSONDecodeError as e:
            return f"unparsable output ({e}): {r.stdout[:300]!r}"

    def cpp_rows(self):
        a = self.args
        names = GROUP_SAMPLES["cpp"]
        if os.environ.get("KILN_BENCH_CPP_ERROR"):
            return self.skip_all(names[:2], "error", os.environ["KILN_BENCH_CPP_ERROR"])
        if not os.access(a.kiln, os.X_OK):
            return self.skip_all(names[:2], "error", f"{a.kiln} not built")
        devs = self.load_devices()
        plan = [("cpp.scalar", ["--backend", "scalar"], {"device": "host, 1 thread", "backend": "scalar"}),
                ("cpp.cpu", ["--backend", "cpu"], {"device": "host, all cores (SIMD)", "backend": "cpu"})]
        if isinstance(devs, str):
            self.skip_all(["cpp.opencl", "cpp.cuda"], "error", f"kiln devices --json failed: {devs}")
            devs = []
        for backend in ("opencl", "cuda"):
            listed = [d for d in devs if d.get("backend") == backend]
            if not listed:
                self.skip_all([f"cpp.{backend}"], "skipped", "kiln devices lists no such backend")
            for d in listed:
                i = d.get("index", 0)
                extra = {"device": d.get("name"), "gpu": d.get("gpu"), "backend": backend, "device_index": i,
                         "platform": d.get("platform")}
                if not d.get("available"):
                    self.skip_all([f"cpp.{backend}{i}", f"cpp.{backend}{i}.gpu_only", f"cpp.{backend}{i}.resident",
                                   f"cpp.{backend}{i}.wide"]
                                  + ([f"cpp.{backend}{i}.pinned"] if backend == "cuda" else []), "skipped",
                                  f"{backend} device {i} unavailable: {d.get('reason') or 'no reason given'}")
                    continue
                base = ["--backend", backend, "--device", str(i)]
                # --phases: the H->D / kernel / D->H split from one more run timed with device
                # events; the timed runs go without them (they cost about 15% on the H100).
                plan.append((f"cpp.{backend}{i}", base + ["--phases"], extra))
                # The device computing every element (no host sharing): what compares devices.
                plan.append((f"cpp.{backend}{i}.gpu_only", base + ["--gpu-only", "--phases"], extra))
                plan.append((f"cpp.{backend}{i}.resident", base + ["--resident"], dict(extra, resident=True)))
                # Inputs beyond 32 bits: what the run costs data that cannot cross the bus narrowed.
                plan.append((f"cpp.{backend}{i}.wide", base + ["--first", str(WIDE_FIRST), "--phases"],
                             dict(extra, first=WIDE_FIRST)))
                if backend == "cuda":
                    # Input and output in Kiln's pinned host blocks: transfers without staging copies.
                    plan.append((f"cpp.{backend}{i}.pinned", base + ["--pinned", "--phases"], dict(extra, pinned=True)))
        # One run over every CUDA GPU, where there are several (--device all).
        cuda = [d for d in devs if d.get("backend") == "cuda" and d.get("available")]
        all_names = ["cpp.cuda.all", "cpp.cuda.all.gpu_only", "cpp.cuda.all.pinned"]
        if len(cuda) > 1:
            extra = {"device": " + ".join(d.get("name") or "?" for d in cuda), "gpu": True, "backend": "cuda",
                     "platform": cuda[0].get("platform")}
            base = ["--backend", "cuda", "--device", "all"]
            plan += [("cpp.cuda.all", base + ["--phases"], extra),
                     ("cpp.cuda.all.gpu_only", base + ["--gpu-only", "--phases"], extra),
                     ("cpp.cuda.all.pinned", base + ["--pinned", "--phases"], dict(extra, pinned=True))]
        else:
            self.skip_all(all_names, "skipped", "fewer than two usable CUDA devices")
        for name, flags, extra in plan:
            if not self.wanted(name):
                continue
            k = self.kiln_run(flags + ["--repeat", str(a.repeat), "--warmup", "1"])
            if isinstance(k, str):
                self.add(dict(extra, name=name, status="error", reason=k))
                continue
            row = dict(extra, name=name, status="ok")
            for f in ("seconds", "seconds_min", "seconds_max", "runs", "host_to_device_s", "kernel_s",
                      "device_to_host_s", "checksum", "repeat", "chunks", "host_elements"):
                row[f] = k.get(f)
            row["repeat"] = row["repeat"] or len(row["runs"] or [])
            row["resident"] = bool(k.get("resident", extra.get("resident", False)))
            if k.get("device"):
                row["device"] = k["device"]
            row["kiln"] = {key: k.get(key) for key in ("backend", "device", "n", "first", "iterations", "p", "mu")}
            if k.get("n") not in (None, a.n):
                row.update(status="error", reason=f"kiln ran n={k.get('n')}, asked {a.n}")
            self.add(row)

    def load_devices(self):
        if self.kiln_devices is None:
            try:
                r = subprocess.run([self.args.kiln, "devices", "--json"], capture_output=True, text=True, timeout=120)
                self.kiln_devices = json.loads(r.stdout) if r.returncode == 0 else \
                    f"exit {r.returncode}: {r.stderr.strip()[-400:]}"
            except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as e:
                self.kiln_devices = f"{type(e).__name__}: {e}"
        return self.kiln_devices

    # ---- Python rows ------------------------------------------------------------------------------

    def find_python(self, module):
        """First interpreter that can import `module`: --python, python3, then /usr/bin/python3."""
        if module in self.python_env:
            return self.python_env[module]
        found = None
        cands = [self.args.python] if self.args.python else []
        cands += [shutil.which("python3"), "/usr/bin/python3"]
        for c in cands:
            if c and os.access(c, os.X_OK) and sh([c, "-c", f"import {module}"], timeout=120) is not None:
                found = c
                break
        self.python_env[module] = found
        return found

    def run_python(self, py, family, timeout=None, extra=(), n=None):
        a = self.args
        cmd = [py, os.path.join(HERE, "python_rows.py"), family, "--n", str(a.n if n is None else n), "--p", str(P), "--mu", str(MU),
               "--iterations", str(ITERATIONS), "--repeat", str(a.repeat), "--budget", str(a.budget), *extra]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout or a.row_timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout or a.row_timeout} s"}
        sys.stderr.write("".join(f"[python] {ln}\n" for ln in r.stderr.splitlines()[-20:]))
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            return {"error": f"exit {r.returncode}: {r.stderr.strip()[-600:]}"}

    def python_rows(self):
        for fam in ("numpy", "cupy", "jax", "torch"):
            names = [f"python.{fam}"] + ([f"python.{fam}.resident"] if fam != "numpy" else [])
            if not any(self.wanted(n) for n in names):
                continue
            py = self.find_python(fam)
            if py is None:
                tried = ", ".join(x for x in [self.args.python, "python3", "/usr/bin/python3"] if x)
                self.skip_all(names, "skipped", f"{fam} not importable by {tried}")
                continue
            out = self.run_python(py, fam)
            self.add_python(py, fam, names, out)
        if self.args.kernels:
            self.python_sweep_rows()

    def python_sweep_rows(self):
        """--kernels: CuPy (ElementwiseKernel, and the copy), JAX (fori_loop), torch at every k."""
        sweep = ",".join(map(str, self.args.iterations_sweep))
        for fam, fw, form in (("cupy_sweep", "cupy", "elementwise"), ("jax_sweep", "jax", "fori"),
                              ("torch_sweep", "torch", "loop")):
            names = [f"python.sweep.k{k}.{fw}.{form}{r}" for k in self.args.iterations_sweep for r in ("", ".resident")]
            names += ["python.bw.cupy.copy.resident"] if fw == "cupy" else []
            if not any(self.wanted(n) for n in names):
                continue
            py = self.find_python(fw)
            if py is None:
                tried = ", ".join(x for x in [self.args.python, "python3", "/usr/bin/python3"] if x)
                self.skip_all(names, "skipped", f"{fw} not importable by {tried}")
                continue
            self.add_python(py, fam, names, self.run_python(py, fam, extra=["--sweep", sweep]))

    def sweep_budget(self):
        """Seconds of timed runs a sweep row may take: the heavy points get fewer runs (at least one)."""
        return min(self.args.budget, self.args.sweep_budget)

    def sweep_deadline(self):
        """When the sweep's time limit (--sweep-time-limit) runs out, as Unix time: rows that would start
        later come back skipped."""
        return self.sweep_t0 + self.args.sweep_time_limit

    def python_scale_rows(self):
        """--sweep: CuPy (ElementwiseKernel) and JAX (fori_loop) end to end at every point of the sweep."""
        a = self.args
        for fw, form in SWEEP_PEERS:
            names = [n for n in self.scale_samples("python") if f".{fw}." in n]
            if not any(self.wanted(n) for n in names):
                continue
            py = self.find_python(fw)
            if py is None:
                tried = ", ".join(x for x in [a.python, "python3", "/usr/bin/python3"] if x)
                self.skip_all(names, "skipped", f"{fw} not importable by {tried}")
                continue
            out = self.run_python(py, f"{fw}_scale", extra=[
                "--scale-n", ",".join(map(str, a.sweep_n)), "--sweep", ",".join(map(str, a.sweep_k)),
                "--budget", str(self.sweep_budget()), "--deadline", f"{self.sweep_deadline():.3f}", "--rows", a.rows or ""])
            self.add_python(py, f"{fw}_scale", names, out)

    def sweep_references(self):
        """Every reference of the sweep, before any of its rows runs (a kiln cpu reference running beside
        a timed row would slow it)."""
        a = self.args
        for e in a.sweep_n:
            for k in a.sweep_k:
                point = [f"{front}.scale.n{e}.k{k}." for front in ("elixir", "python")]
                if any(self.wanted(n) for n in self.scale_samples("elixir") + self.scale_samples("python")
                       if n.startswith(tuple(point))):
                    if ((1 << e), k) != (a.n, ITERATIONS):
                        self.reference_for(k, 1 << e, numpy_max=SWEEP_NUMPY_MAX)
                    elif self.reference is None:
                        self.compute_reference()

    def crossover_references(self):
        for n in self.args.crossover_n:
            if any(self.wanted(f"elixir.crossover.n{n}.{i}.{shape}") for i in CROSSOVER_IMPLS for shape in ("list", "binary")):
                if n != self.args.n:
                    self.reference_for(ITERATIONS, n, numpy_max=SWEEP_NUMPY_MAX)
                elif self.reference is None:
                    self.compute_reference()

    def add_python(self, py, fam, names, out):
        if "error" in out:
            self.skip_all(names, "error", f"{py} python_rows.py {fam}: {out['error']}")
        else:
            for row in out["rows"]:
                row["python"] = out.get("python")
                self.versions.update({k: v for k, v in (row.get("versions") or {}).items() if v})
                if self.wanted(row["name"]):
                    self.add(row)

    # ---- Elixir rows ------------------------------------------------------------------------------

    def elixir_rows(self):
        a = self.args
        # Device rows are named by the NIF (what it lists); the others are known in advance.
        names = [n for n in self.elixir_samples() if not re.search(r"\.(opencl|cuda)\d+(\.|$)", n)]
        if os.environ.get("KILN_BENCH_ELIXIR_SKIP"):
            return self.skip_all(names, "skipped", os.environ["KILN_BENCH_ELIXIR_SKIP"])
        if os.environ.get("KILN_BENCH_ELIXIR_ERROR"):
            return self.skip_all(names, "error", os.environ["KILN_BENCH_ELIXIR_ERROR"])
        mix = shutil.which("mix")
        if not mix or not shutil.which("elixir"):
            return self.skip_all(names, "skipped", "elixir/mix not on PATH")
        if not os.path.exists(os.path.join(a.elixir_dir, "mix.exs")):
            return self.skip_all(names, "skipped", f"no Elixir project at {a.elixir_dir} (mix.exs missing)")
        cmd = [mix, "run", os.path.join(HERE, "elixir_rows.exs"), "--n", str(a.n), "--p", str(P), "--mu", str(MU),
               "--iterations", str(ITERATIONS), "--repeat", str(a.repeat), "--budget", str(float(a.budget)),
               "--stages", ",".join(map(str, a.stages)), "--rows", a.rows or ""]
        if a.kernels:
            cmd += ["--kernels", "--sweep", ",".join(map(str, a.iterations_sweep))]
        cmd += ["--sections", ",".join(s for s in a.sections if s != "kernels"),
                "--lists-heap", str(a.lists_heap)]
        if a.sweep:
            cmd += ["--scale-n", ",".join(map(str, a.sweep_n)), "--scale-k", ",".join(map(str, a.sweep_k)),
                    "--scale-budget", str(float(self.sweep_budget())), "--deadline", f"{self.sweep_deadline():.3f}"]
        if a.crossover:
            cmd += ["--crossover-n", ",".join(map(str, a.crossover_n)), "--crossover-reps", str(a.crossover_reps),
                    "--crossover-budget", str(float(a.crossover_budget))]
        env = dict(os.environ, MIX_ENV=os.environ.get("MIX_ENV", "prod"))
        seen = set()
        tail = []
        t0 = time.time()
        proc = subprocess.Popen(cmd, cwd=a.elixir_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, bufsize=1)
        # stderr is drained by a thread so that a chatty BEAM never blocks on a full pipe.
        import threading

        def drain():
            for ln in proc.stderr:
                tail.append(ln.rstrip())
                del tail[:-30]
                print(f"[elixir] {ln.rstrip()}", file=sys.stderr, flush=True)
        th = threading.Thread(target=drain, daemon=True)
        th.start()
        for ln in proc.stdout:
            if not ln.startswith(MARKER):
                print(f"[elixir] {ln.rstrip()}", file=sys.stderr, flush=True)
                continue
            obj = json.loads(ln[len(MARKER):])
            if obj.get("event") == "versions":
                self.versions.update({"elixir": obj.get("elixir"), "otp": obj.get("otp"), "erts": obj.get("erts"),
                                      "erlang_system_version": obj.get("system_version")})
                self.elixir_devices = obj.get("devices")
                if obj.get("devices_error"):
                    log(f"Kiln.devices() failed: {obj['devices_error']}")
                continue
            seen.add(obj["name"])
            self.add(obj)
            if time.time() - t0 > a.row_timeout:
                proc.kill()
        proc.wait()
        th.join(timeout=5)
        if proc.returncode != 0:
            reason = f"mix run exited {proc.returncode}: " + " | ".join(tail[-6:])
            missing = [n for n in names if n not in seen]
            self.skip_all(missing or ["elixir"], "error", reason)

    # ---- machine ----------------------------------------------------------------------------------

    def machine(self):
        m = {"os": platform.platform(), "hostname": platform.node(), "cores": os.cpu_count()}
        try:
            with open("/proc/cpuinfo") as f:
                models = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
            m["cpu_model"] = models[0] if models else platform.processor()
        except OSError:
            m["cpu_model"] = platform.processor()
        try:
            with open("/proc/meminfo") as f:
                m["memory_bytes"] = int(f.readline().split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        if shutil.which("nvidia-smi"):
            g = sh(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
            m["gpus"] = [dict(zip(("name", "driver"), (s.strip() for s in ln.split(",", 1))))
                         for ln in (g or "").splitlines() if ln.strip()]
        cache = os.path.join(os.path.dirname(self.args.kiln), "CMakeCache.txt")
        comp = {}
        if os.path.exists(cache):
            with open(cache, errors="replace") as f:
                for ln in f:
                    for key in ("CMAKE_CXX_COMPILER", "CMAKE_CUDA_COMPILER", "CMAKE_BUILD_TYPE"):
                        if ln.startswith(key + ":"):
                            comp[key] = ln.split("=", 1)[1].strip()
        cxx = comp.get("CMAKE_CXX_COMPILER") or shutil.which("c++")
        m["cxx_compiler"] = ((sh([cxx, "--version"]) or "").splitlines() or [None])[0] if cxx else None
        if comp.get("CMAKE_CUDA_COMPILER"):
            v = sh([comp["CMAKE_CUDA_COMPILER"], "--version"]) or ""
            m["cuda_compiler"] = v.splitlines()[-1] if v else None
        m["cmake_build_type"] = comp.get("CMAKE_BUILD_TYPE")
        m["cmake"] = ((sh(["cmake", "--version"]) or "").splitlines() or [None])[0]
        if "elixir" not in self.versions and shutil.which("elixir"):
            v = sh(["elixir", "--version"]) or ""
            self.versions["elixir_version_text"] = " / ".join(x for x in v.splitlines() if x.strip())
        py = self.find_python("numpy")
        if py and "numpy" not in self.versions:
            v = sh([py, "-c", "import sys, numpy; print(sys.version.split()[0], numpy.__version__)"])
            if v:
                self.versions["python"], self.versions["numpy"] = v.split()
        m["versions"] = self.versions
        m["python_interpreters"] = {k: v for k, v in self.python_env.items()}
        m["kiln_devices"] = self.kiln_devices if not isinstance(self.kiln_devices, str) else {"error": self.kiln_devices}
        m["elixir_devices"] = getattr(self, "elixir_devices", None)
        m["git_commit"] = sh(["git", "-C", ROOT, "rev-parse", "HEAD"])
        return m


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/run", description="Kiln benchmark harness (see bench/README.md)")
    ap.add_argument("--n", type=lambda s: int(s, 0), default=None, help=f"inputs 1..N (default {DEFAULT_N})")
    ap.add_argument("--full", action="store_true", help=f"n = {FULL_N:#x} ({FULL_N:,}), the seed's size")
    ap.add_argument("--out", default=None, help="output folder (default bench/results/<timestamp>)")
    ap.add_argument("--rows", default="", help="only rows whose name matches this regex (re.search)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per row after one warm-up (default 3)")
    ap.add_argument("--stages", default=",".join(map(str, ALL_STAGES)), help="stage counts for staged rows")
    ap.add_argument("--budget", type=float, default=60.0,
                    help="seconds of timed runs per row; slower rows get fewer runs (>=1) and say so")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of an existing --out/results.json that this run does not redo")
    ap.add_argument("--no-build", action="store_true", help="(handled by bench/run) skip cmake and mix compile")
    ap.add_argument("--kiln", default=os.environ.get("KILN_BIN", os.path.join(ROOT, "build", "kiln")))
    ap.add_argument("--elixir-dir", default=os.environ.get("KILN_ELIXIR_DIR", os.path.join(ROOT, "elixir")))
    ap.add_argument("--python", default=os.environ.get("KILN_BENCH_PYTHON"), help="interpreter tried first for NumPy rows")
    ap.add_argument("--report", metavar="DIR", default=None,
                    help="only re-render DIR/results.md and DIR/chart.svg from DIR/results.json")
    ap.add_argument("--row-timeout", type=int, default=3600, help="seconds before a row group is abandoned")
    ap.add_argument("--kernels", action="store_true",
                    help="add the kernel-path rows (elixir.sweep.*, elixir.bw.*) and their peers (python.sweep.*, "
                         "python.bw.*) at every count of --iterations-sweep")
    ap.add_argument("--iterations-sweep", default=DEFAULT_SWEEP,
                    help=f"iteration counts of the --kernels rows (default {DEFAULT_SWEEP})")
    ap.add_argument("--sweep", action="store_true",
                    help="the scaling sweep instead of the default rows: n x iterations x (auto, device_only, host_share, "
                         "cpu) from Elixir, CuPy and JAX end to end, and the kept-results rows at --n")
    ap.add_argument("--sweep-n", default=DEFAULT_SWEEP_N,
                    help=f"the sweep's n as powers of two (default {DEFAULT_SWEEP_N}: 2^10 .. 2^28)")
    ap.add_argument("--sweep-k", default=DEFAULT_SWEEP_K, help=f"the sweep's iteration counts (default {DEFAULT_SWEEP_K})")
    ap.add_argument("--sweep-budget", type=float, default=4.0,
                    help="seconds of timed runs per sweep row (default 4, at most --budget): heavy points get fewer runs")
    ap.add_argument("--sweep-time-limit", type=float, default=480.0,
                    help="seconds for the whole sweep (default 480); rows that would start later are skipped and say so")
    ap.add_argument("--crossover", action="store_true",
                    help="the small-call crossover instead of the default rows: Kiln (auto, cpu) against pure Elixir, "
                         "n from 1 to 2^16, lists and binaries")
    ap.add_argument("--crossover-n", default=DEFAULT_CROSSOVER_N, help=f"the crossover's n (default {DEFAULT_CROSSOVER_N})")
    ap.add_argument("--crossover-reps", type=int, default=1000,
                    help="timed calls per crossover point (default 1000; fewer where --crossover-budget runs out)")
    ap.add_argument("--crossover-budget", type=float, default=1.0,
                    help="seconds of timed calls per crossover point (default 1; at least 10 calls)")
    ap.add_argument("--lists-heap", type=lambda s: int(s, 0), default=DEFAULT_LISTS_HEAP,
                    help=f"elements of the list the elixir.lists.big_heap.* rows' process holds (default {DEFAULT_LISTS_HEAP}; "
                         "0 leaves those rows out)")
    a = ap.parse_args(argv)
    if a.n is None:
        a.n = FULL_N if a.full else DEFAULT_N
    if a.n < 1:
        ap.error("--n must be >= 1")
    if a.repeat < 1:
        ap.error("--repeat must be >= 1")
    a.stages = sorted({int(s) for s in a.stages.split(",") if s.strip()})
    try:
        a.iterations_sweep = sorted({int(s) for s in a.iterations_sweep.split(",") if s.strip()})
    except ValueError:
        ap.error("--iterations-sweep needs integers, e.g. 10,100,1000")
    if not a.iterations_sweep or min(a.iterations_sweep) < 1:
        ap.error("--iterations-sweep needs positive integers")
    if not a.stages or min(a.stages) < 1:
        ap.error("--stages needs positive integers")
    try:
        re.compile(a.rows)
    except re.error as e:
        ap.error(f"--rows: {e}")

    def ints(opt, text, lo, hi):
        try:
            vals = sorted({int(v, 0) for v in text.split(",") if v.strip()})
        except ValueError:
            ap.error(f"{opt} needs integers separated by commas, got {text!r}")
        if not vals or vals[0] < lo or vals[-1] > hi:
            ap.error(f"{opt} needs values in {lo}..{hi}, got {text!r}")
        return vals
    a.sweep_n = ints("--sweep-n", a.sweep_n, 0, 31)  # exponents: n = 2^e
    a.sweep_k = ints("--sweep-k", a.sweep_k, 1, 1_000_000)
    a.crossover_n = ints("--crossover-n", a.crossover_n, 1, 1 << 24)
    if a.crossover_reps < 1:
        ap.error("--crossover-reps must be >= 1")
    if a.lists_heap < 0:
        ap.error("--lists-heap must be >= 0")
    if (a.sweep or a.crossover) and a.kernels:
        ap.error("--kernels and --sweep / --crossover are separate runs (--out DIR --merge puts them in one folder)")
    # What the run measures: the default rows (with --kernels, theirs too), or the sweep and/or the
    # crossover alone. The sweep brings the kept-results rows along (at --n). Rows of a new Elixir
    # API: a section of elixir_rows.exs (sections/3), named here for the runs that should have it,
    # and its row names in Bench.elixir_samples (what --rows is matched against).
    if a.sweep or a.crossover:
        a.sections = (["kept", "scale"] if a.sweep else []) + (["crossover"] if a.crossover else [])
    else:
        a.sections = ["main", "lists", "kept"] + (["kernels"] if a.kernels else [])
    a.out = a.out or os.path.join(HERE, "results", dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    return a


def rerender(folder):
    """Rewrites the Markdown and the chart of a finished run (after editing or merging its JSON)."""
    path = os.path.join(folder, "results.json")
    with open(path) as f:
        doc = json.load(f)
    for r in doc["rows"]:
        report.describe(r)
    report.order(doc["rows"])
    doc["summary"] = report.summary(doc)
    sys.stdout.write(write_outputs(folder, doc))
    return 0


def write_outputs(folder, doc):
    """results.md and chart.svg, and sweep.svg / crossover.svg where the run has those rows; returns the Markdown."""
    md = report.markdown(doc)
    charts = {"results.md": md, "chart.svg": report.svg(doc), "sweep.svg": report.sweep_svg(doc),
              "crossover.svg": report.crossover_svg(doc)}
    for name, text in charts.items():
        if text is not None:
            with open(os.path.join(folder, name), "w") as f:
                f.write(text)
    return md


def main(argv):
    args = parse_args(argv)
    if args.report:
        return rerender(args.report)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    b = Bench(args)
    log(f"n = {args.n:,}, p = {P:,}, mu = {MU}, {ITERATIONS} iterations, repeat {args.repeat}, "
        f"stages {args.stages}, rows /{args.rows}/"
        + (f", --kernels at {args.iterations_sweep} iterations" if args.kernels else "") + f" -> {args.out}")
    b.sweep_t0 = time.time()
    if "main" in args.sections:
        b.compute_reference()
        if b.group_wanted("cpp"):
            b.cpp_rows()
        if b.group_wanted("python"):
            b.python_rows()
    else:
        log(("sweep: n = 2^" + ",2^".join(map(str, args.sweep_n)) + f", {args.sweep_k} iterations, "
             f"{b.sweep_budget():g} s of timed runs per row, {args.sweep_time_limit:g} s in all. " if args.sweep else "")
            + (f"crossover: n = {args.crossover_n}, up to {args.crossover_reps} calls per point" if args.crossover else ""))
        if args.sweep:
            b.sweep_references()
        if args.crossover:
            b.crossover_references()
        if "kept" in args.sections and b.reference is None and any(b.wanted(n) for n in KEPT_SAMPLES):
            b.compute_reference()
    if b.group_wanted("elixir"):
        b.elixir_rows()
    if args.sweep and b.group_wanted("python"):
        b.python_scale_rows()

    prev, prev_rows, prev_machine, prev_refs = {}, [], {}, []
    path = os.path.join(args.out, "results.json")
    if args.merge and os.path.exists(path):
        with open(path) as f:
            prev = json.load(f)
        pp = prev.get("params", {})
        if (pp.get("n"), pp.get("p"), pp.get("mu"), pp.get("iterations")) != (args.n, P, MU, ITERATIONS):
            log(f"--merge: {path} has different parameters {pp}; not merging")
        else:
            redone = {(r["name"], r.get("stages")) for r in b.rows}
            prev_rows = [r for r in prev.get("rows", []) if (r["name"], r.get("stages")) not in redone]
            # Versions seen by the earlier run's row processes (CuPy, OTP...) stay in the machine record.
            prev_machine = prev.get("machine", {})
            prev_refs = [r for r in prev.get("references", []) if (r.get("n"), r.get("iterations")) not in b.reference_k]
            b.versions = {**prev_machine.get("versions", {}), **b.versions}
            log(f"--merge: kept {len(prev_rows)} rows from {path}")
    rows = prev_rows + b.rows
    report.order(rows)

    doc = {
        "format": "kiln-bench/1",
        "created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": ["bench/run"] + argv,
        "params": {"n": args.n, "p": P, "mu": MU, "iterations": ITERATIONS, "repeat": args.repeat,
                   "stages": args.stages, "budget_s": args.budget, "rows": args.rows,
                   "kernels": args.kernels, "iterations_sweep": args.iterations_sweep if args.kernels else None,
                   "sections": args.sections, "lists_heap": args.lists_heap if "lists" in args.sections else None,
                   "sweep": {"n_log2": args.sweep_n, "k": args.sweep_k, "budget_s": b.sweep_budget(),
                             "time_limit_s": args.sweep_time_limit} if args.sweep else None,
                   "crossover": {"n": args.crossover_n, "reps": args.crossover_reps,
                                 "budget_s": args.crossover_budget} if args.crossover else None},
        "reference": b.reference or (prev.get("reference") if prev_rows else None) or {"checksum": None, "source": f"not needed: no row over 1..{args.n:,} at "
                                                                 f"{ITERATIONS} iterations ran"},
        "references": prev_refs + [{"n": n, "iterations": k, **ref} for (n, k), ref in sorted(b.reference_k.items())],
        "machine": b.machine(),
        "rows": rows,
        "wall_s": round(time.time() - t0, 3),
    }
    if prev_rows:  # what the earlier runs measured stays described (the report's title and sections)
        pp, dp = prev.get("params", {}), doc["params"]
        dp["sections"] = [x for x in pp.get("sections") or ["main"] if x not in dp["sections"]] + dp["sections"]
        for key in ("sweep", "crossover", "lists_heap", "iterations_sweep"):
            if dp.get(key) is None and pp.get(key) is not None:
                dp[key] = pp[key]
    for k, v in prev_machine.items():  # e.g. kiln_devices when this part ran no C++ row
        if doc["machine"].get(k) is None:
            doc["machine"][k] = v
    doc["summary"] = report.summary(doc)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    sys.stdout.write(write_outputs(args.out, doc))
    bad = [r for r in rows if r["status"] == "MISMATCH"]
    err = [r for r in rows if r["status"] == "error"]
    log(f"done in {doc['wall_s']:.1f} s: {sum(r['status'] == 'ok' for r in rows)} ok, "
        f"{sum(r['status'] == 'skipped' for r in rows)} skipped, {len(err)} errors, {len(bad)} mismatches -> {args.out}")
    if bad:
        log("CHECKSUM MISMATCH in: " + ", ".join(f"{r['name']}" + (f"@{r['stages']}" if r.get("stages") else "")
                                                 for r in bad))
        return 2
    return 1 if err else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
