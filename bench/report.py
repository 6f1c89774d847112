# Report writer for the benchmark (stdlib only): row labels, the Markdown tables, the speed-up summary and the SVG bar chart.
import math
import re
from xml.sax.saxutils import escape

# Families, in table order, with the chart colour of each.
FAMILIES = [
    ("elixir-pure", "pure Elixir", "#7b3294"),
    ("elixir-nif-cpu", "Elixir + NIF, CPU", "#c2a5cf"),
    ("elixir-nif-accel", "Elixir + NIF, OpenCL / CUDA", "#e66101"),
    ("elixir-empty", "Elixir, empty NIF call", "#bababa"),
    ("cpp", "C++ kiln (standalone)", "#2166ac"),
    ("python", "Python (NumPy / CuPy / JAX / torch)", "#1b7837"),
]
FAMILY_NAME = {k: n for k, n, _ in FAMILIES}
FAMILY_COLOR = {k: c for k, _, c in FAMILIES}

# Row order inside the tables: first matching pattern wins.
NAME_ORDER = [r"^elixir\.pure\.loop$", r"^elixir\.pure\.inlined$", r"^elixir\.nif\.cpu\.list$",
              r"^elixir\.nif\.cpu\.windows$", r"^elixir\.nif\.cpu\.binary$", r"^elixir\.nif\.opencl",
              r"^elixir\.nif\.cuda", r"^elixir\.nif", r"^elixir\.empty\.list$", r"^elixir\.empty",
              r"^cpp\.scalar$", r"^cpp\.cpu$", r"^cpp\.opencl", r"^cpp\.cuda", r"^cpp", r"^python\.numpy$",
              r"^python\.cupy", r"^python\.jax", r"^python\.torch", r"."]

# The --kernels rows: the iteration sweep and the bandwidth rows, reported in their own section.
KERNEL_ROW = re.compile(r"^(elixir|python)\.(sweep|bw)\.")
SWEEP_ROW = re.compile(r"^elixir\.sweep\.k(\d+)\.(nif|kernel|kernel_reduce)\.(\w+?)\.(binary|resident)$")
PEER_ROW = re.compile(r"^python\.sweep\.k(\d+)\.(cupy|jax|torch)\.(\w+?)(\.resident)?$")
# The goals: the kernel path within these factors of the built-in map, per backend; Kiln
# at least PEER_GOAL times faster than the peers; the memory-bound kernel at BW_GOAL of a copy's bytes/s.
KERNEL_GOAL = {"cuda": 1.2, "opencl": 1.2, "cpu": 1.5}
PEER_GOAL = 5.0
BW_GOAL = 0.8

STAGED = ["elixir.pure.loop", "elixir.pure.inlined", "elixir.nif.cpu.list", "elixir.nif.cpu.windows"]


def fmt_s(s):
    """Seconds for prose and progress lines, with a unit a person reads at a glance."""
    if s is None:
        return "—"
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3f} ms"
    return f"{s * 1e6:.1f} µs"


def cell(s):
    return "—" if s is None else f"{s:.6f}"


def x(v):
    if v is None:
        return "—"
    return f"{v:.3g}×" if v < 100 else f"{v:,.0f}×"


def describe(row):
    """Adds seed name, family and a human label to a row, from its name and device fields."""
    name = row["name"]
    dev = row.get("device") or ""
    gpu = row.get("gpu")
    seed, fam, label = None, "cpp", name
    sw, peer = SWEEP_ROW.match(name), PEER_ROW.match(name)
    m = re.match(r"^(elixir\.nif|cpp|python)\.(opencl|cuda|cupy|jax|torch)(\d*)(?:\.(list|binary|resident|pinned|gpu_only|wide))?$", name)
    if sw:
        k, how, target, shape = sw.groups()
        fam = "elixir-nif-cpu" if target == "cpu" else "elixir-nif-accel"
        what = {"nif": "built-in map", "kernel": "seed's map as a kernel (expression, iterations:)",
                "kernel_reduce": "seed's map as a kernel (Enum.reduce, k an argument)"}[how]
        label = f"{what}, {target}" + (f" {dev}" if dev and target != "cpu" else "") + ", " + (
            "binary, end to end" if shape == "binary" else "resident buffer, run only") + f", {k} iterations"
    elif name.startswith("elixir.bw.fma2."):
        fam = "elixir-nif-accel" if ".cpu." not in name else "elixir-nif-cpu"
        label = f"kernel {{a + b * c, a - c}} on 3 resident buffers, {name.split('.')[3]}" + (f" {dev}" if dev else "")
    elif peer:
        k, fw, form, res = peer.groups()
        fam = "python"
        label = f"Python/{ {'cupy': 'CuPy', 'jax': 'JAX', 'torch': 'PyTorch'}[fw]} {form}" + (f" {dev}" if dev else "") + (
            ", device-resident" if res else ", end to end") + f", {k} iterations"
    elif name == "python.bw.cupy.copy.resident":
        fam, label = "python", "CuPy device-to-device copy (cupy.copyto)" + (f" {dev}" if dev else "")
    elif name == "elixir.pure.loop":
        seed, fam, label = "benchmarks1", "elixir-pure", "pure Elixir, loop"
    elif name == "elixir.pure.inlined":
        seed, fam, label = "benchmarks3", "elixir-pure", "pure Elixir, inlined"
    elif name == "elixir.nif.cpu.list":
        seed, fam, label = "benchmarks5", "elixir-nif-cpu", "Elixir+NIF cpu, passing a list"
    elif name == "elixir.nif.cpu.windows":
        seed, fam = "benchmarks8", "elixir-nif-cpu"
        label = f"Elixir+NIF cpu, list in windows of {row.get('window', 65536)}"
    elif name == "elixir.nif.cpu.binary":
        fam, label = "elixir-nif-cpu", "Elixir+NIF cpu, passing a binary"
    elif name == "elixir.empty.list":
        seed, fam, label = "benchmarks_empty", "elixir-empty", "empty NIF call, list (decode + return)"
    elif name == "elixir.empty.binary":
        fam, label = "elixir-empty", "empty NIF call, binary"
    elif name == "elixir.kernel.cpu.binary":
        fam, label = "elixir-nif-cpu", "Elixir kernel (defkernel), cpu, passing a binary"
    elif name in ("elixir.kernel.opencl0.binary", "elixir.kernel.cuda0.binary"):
        where = name.split(".")[2]
        fam, label = "elixir-nif-accel", f"Elixir kernel (defkernel) compiled for {where} {dev}, passing a binary"
    elif name == "elixir.nif.cuda.all.binary":
        fam, label = "elixir-nif-accel", f"Elixir+NIF cuda, every GPU ({dev}), binary, end to end"
    elif name == "elixir.kernel.cuda.all.binary":
        fam, label = "elixir-nif-accel", f"Elixir kernel (defkernel) compiled for cuda, every GPU ({dev}), binary"
    elif name.startswith("cpp.cuda.all"):
        label = f"C++ kiln cuda, every GPU ({dev}), " + {
            "cpp.cuda.all": "end to end (host shares)", "cpp.cuda.all.pinned": "end to end, pinned host memory",
            "cpp.cuda.all.gpu_only": "end to end, devices only (no host sharing)"}.get(name, name)
    elif name == "elixir.cluster.this_node.binary":
        fam, label = "elixir-nif-accel", "Kiln.Cluster, this node only, binary"
    elif name == "elixir.cluster.two_nodes.binary":
        fam, label = "elixir-nif-accel", "Kiln.Cluster, this node and a peer node, binary"
    elif name.startswith("elixir.nif.accelerators"):
        fam, label = "elixir-nif-accel", "Elixir+NIF OpenCL/CUDA (device probe failed)"
    elif name == "cpp.scalar":
        seed, label = "C / Rust CPU", "C++ kiln scalar (1 thread)"
    elif name == "cpp.cpu":
        label = "C++ kiln cpu (all cores, SIMD)"
    elif name == "python.numpy":
        seed, fam, label = "Python", "python", "Python/NumPy (CPU, 1 thread)"
    elif m:
        front, backend, idx, variant = m.groups()
        where = f"{backend}{idx}" + (f" {dev}" if dev else "")
        if front == "elixir.nif":
            fam = "elixir-nif-accel"
            how = {"list": "list, end to end", "binary": "binary, end to end",
                   "resident": "resident buffer, Buffer.run only"}.get(variant, variant or "")
            label = f"Elixir+NIF {where}, {how}"
            if backend == "opencl" and variant == "list" and gpu:
                seed = "benchmarks9"
        elif front == "cpp":
            fam = "cpp"
            label = f"C++ kiln {where}, " + {"resident": "resident, kernel only",
                                             "pinned": "end to end, pinned host memory",
                                             "gpu_only": "end to end, device only (no host sharing)",
                                             "wide": "end to end, inputs beyond 32 bits (host shares)"}.get(
                variant, "end to end (host shares)")
            if backend == "opencl" and variant is None and gpu:
                seed = "Rust OpenCL"
        else:
            fam = "python"
            fw = {"cupy": "CuPy", "jax": "JAX (jit)", "torch": "PyTorch"}[backend]
            label = f"Python/{fw}" + (f" {dev}" if dev else "") + (
                ", device-resident" if variant == "resident" else ", end to end")
    elif name.startswith("elixir.nif"):
        fam = "elixir-nif-cpu"
    elif name.startswith("elixir"):
        fam = "elixir-pure"
    elif name.startswith("python"):
        fam = "python"
    row["seed"], row["family"], row["label"] = seed, fam, label
    return row


def order(rows):
    def key(r):
        i = next(i for i, p in enumerate(NAME_ORDER) if re.search(p, r["name"]))
        return (i, r["name"], r.get("stages") or 0)
    rows.sort(key=key)


def ok_rows(doc):
    return [r for r in doc["rows"] if r["status"] == "ok"]


def best_rows(doc):
    """One row per name: the best stage for staged rows (the chart and the 'all rows' table)."""
    best = {}
    for r in ok_rows(doc):
        b = best.get(r["name"])
        if b is None or r["seconds"] < b["seconds"]:
            best[r["name"]] = r
    out = list(best.values())
    order(out)
    return out


def find(doc, name, stages=None):
    rs = [r for r in ok_rows(doc) if r["name"] == name and (stages is None or r.get("stages") == stages)]
    return min(rs, key=lambda r: r["seconds"]) if rs else None


def first(doc, pattern, **fields):
    for r in best_rows(doc):
        if re.search(pattern, r["name"]) and all(r.get(k) == v for k, v in fields.items()):
            return r
    return None


def baselines(doc):
    pure = [r for r in (find(doc, "elixir.pure.loop"), find(doc, "elixir.pure.inlined")) if r]
    return (min(pure, key=lambda r: r["seconds"]) if pure else None), find(doc, "python.numpy")


def ratio(a, b):
    """How many times faster row b is than row a (a.seconds / b.seconds)."""
    if not a or not b or not b.get("seconds"):
        return None
    return a["seconds"] / b["seconds"]


def where(r):
    return f"{r['seed'] or r['name']}" + (f" @ {stages_txt(r['stages'])}" if r.get("stages") else "")


def stages_txt(k):
    return f"{k} stage" + ("" if k == 1 else "s")


def faster(a, b):
    """'N× faster' or 'N× slower': how row b compares with row a."""
    v = ratio(a, b)
    if v is None:
        return "—"
    return f"{x(v)} faster" if v >= 1 else f"{x(1 / v)} slower"


def summary(doc):
    """Bullets in the spirit of the seed's closing text, each only when its rows ran."""
    s = []
    n = doc["params"]["n"]
    pure, numpy = baselines(doc)
    rows = doc["rows"]
    bad = [r for r in rows if r["status"] == "MISMATCH"]
    ok = ok_rows(doc)
    if bad:
        s.append(f"**CHECKSUM MISMATCH** in {len(bad)} row(s): "
                 + ", ".join(where(r) for r in bad) + f"; expected {doc['reference']['checksum']}.")
    elif ok:
        s.append(f"All {len(ok)} timed rows returned the reference checksum {doc['reference']['checksum']} "
                 f"({doc['reference']['source']}).")
    seed_scaling = {"elixir.pure.loop": "53.2 s → 12.8 s at 8 stages", "elixir.pure.inlined": "44.1 s → 11.5 s at 32 stages"}
    for nm in ("elixir.pure.loop", "elixir.pure.inlined"):
        one, best = find(doc, nm, 1), find(doc, nm)
        if one and best and best.get("stages", 1) != 1:
            s.append(f"{best['label']} ({best['seed']}): best at {stages_txt(best['stages'])}, "
                     f"{fmt_s(best['seconds'])}, {faster(one, best)} than 1 stage ({fmt_s(one['seconds'])}) on "
                     f"{doc['machine'].get('cores')} logical cores (the seed, on a 4-core Mac Pro: {seed_scaling[nm]}).")
        elif one and best:
            s.append(f"{best['label']} ({best['seed']}): 1 stage is its best ({fmt_s(best['seconds'])}); splitting "
                     f"over Tasks did not pay on {doc['machine'].get('cores')} logical cores at this n.")
    br = best_rows(doc)
    if br:
        f = min(br, key=lambda r: r["seconds"])
        s.append(f"Fastest row: {f['label']}, {fmt_s(f['seconds'])}"
                 + (f"; {faster(pure, f)} than pure Elixir's best ({where(pure)}, {fmt_s(pure['seconds'])})"
                    if pure and f is not pure else "")
                 + (f"; {faster(numpy, f)} than NumPy ({fmt_s(numpy['seconds'])})" if numpy and f is not numpy else "")
                 + ".")
    lst, binr, win = find(doc, "elixir.nif.cpu.list"), find(doc, "elixir.nif.cpu.binary"), find(doc, "elixir.nif.cpu.windows")
    empty_l, empty_b = find(doc, "elixir.empty.list"), find(doc, "elixir.empty.binary")
    if lst and pure:
        s.append(f"Elixir+NIF cpu passing a list ({where(lst)}, {fmt_s(lst['seconds'])}) is {faster(pure, lst)} than "
                 "pure Elixir's best (in the seed, Rustler with a list was about as fast as pure Elixir's best: "
                 "12.0 s vs 11.5 s).")
    if lst and binr:
        s.append(f"Passing a binary instead of a list: {fmt_s(binr['seconds'])} vs {fmt_s(lst['seconds'])}, "
                 f"{faster(lst, binr)}"
                 + (f"; the empty NIF call alone (decode and encode, no arithmetic) takes {fmt_s(empty_l['seconds'])} "
                    f"with a list and {fmt_s(empty_b['seconds'])} with a binary" if empty_l and empty_b else "") + ".")
    if lst and win:
        s.append(f"Windows of {win.get('window', 65536)} ({where(win)}, {fmt_s(win['seconds'])}) are "
                 f"{faster(lst, win)} than one call with the whole list ({fmt_s(lst['seconds'])}).")
    cpu_cpp, scalar = find(doc, "cpp.cpu"), find(doc, "cpp.scalar")
    if scalar and cpu_cpp:
        s.append(f"C++ kiln: the cpu backend (all cores, SIMD, {fmt_s(cpu_cpp['seconds'])}) is {faster(scalar, cpu_cpp)} "
                 f"than scalar (1 thread, {fmt_s(scalar['seconds'])}; the seed's C and Rust CPU rows)"
                 + (f"; scalar is {faster(pure, scalar)} than pure Elixir's best" if pure else "") + ".")
    if binr and cpu_cpp:
        s.append(f"NIF cost on the cpu backend: Elixir with a binary takes {fmt_s(binr['seconds'])}, the standalone "
                 f"C++ command {fmt_s(cpu_cpp['seconds'])} ({x(ratio(binr, cpu_cpp))} the time).")
    for r in best_rows(doc):
        m = re.match(r"^elixir\.nif\.(opencl|cuda)(\d+)\.list$", r["name"])
        if not m:
            continue
        dev = f"{m.group(1)}{m.group(2)}"
        b, res = find(doc, f"elixir.nif.{dev}.binary"), find(doc, f"elixir.nif.{dev}.resident")
        cpp_e2e, cpp_res = find(doc, f"cpp.{dev}"), find(doc, f"cpp.{dev}.resident")
        parts = [f"list {fmt_s(r['seconds'])}"]
        if b:
            parts.append(f"binary {fmt_s(b['seconds'])} (H→D {fmt_s(b.get('host_to_device_s'))}, kernel "
                         f"{fmt_s(b.get('kernel_s'))}, D→H {fmt_s(b.get('device_to_host_s'))})")
        if res:
            parts.append(f"resident buffer {fmt_s(res['seconds'])}")
        if cpp_e2e:
            parts.append(f"C++ end to end {fmt_s(cpp_e2e['seconds'])}")
        if cpp_res:
            parts.append(f"C++ kernel only {fmt_s(cpp_res['seconds'])}")
        vs = ([f"{faster(pure, r)} than pure Elixir's best"] if pure else []) + \
             ([f"{faster(numpy, r)} than NumPy"] if numpy else [])
        tail = f"; the list row is {' and '.join(vs)}" if vs else ""
        if res and b:
            k = ratio(b, res)
            tail += (f"; resident, the same work takes {x(k)} less time than the binary round trip"
                     + (", so transfers and conversion dominate, as the seed suspected" if k >= 2 else
                        ", so the computation itself dominates here"))
        s.append(f"Elixir+NIF on {dev} ({r.get('device') or '?'}): " + ", ".join(parts) + tail + ".")
    for r in best_rows(doc):
        m = re.match(r"^cpp\.(opencl|cuda)(\d+)\.gpu_only$", r["name"])
        shared = find(doc, f"cpp.{m.group(1)}{m.group(2)}") if m else None
        if shared:
            he, n = shared.get("host_elements"), (doc.get("params") or {}).get("n")
            share = f" (the host computed {100 * he / n:.1f}% of the elements)" if he is not None and n else ""
            s.append(f"{r['label']}: {fmt_s(r['seconds'])}; with the host sharing the chunks "
                     f"{fmt_s(shared['seconds'])}{share}.")
    if numpy and pure:
        s.append(f"Pure Elixir's best ({fmt_s(pure['seconds'])}) is {faster(numpy, pure)} than Python/NumPy "
                 f"({fmt_s(numpy['seconds'])}); the seed found pure Elixir 1.39–1.54× faster.")
    if numpy and cpu_cpp:
        s.append(f"C++ kiln cpu is {faster(numpy, cpu_cpp)} than NumPy.")
    accel = [r for r in best_rows(doc) if re.search(r"(cuda|opencl|cupy|jax|torch)", r["name"])
             and r.get("gpu") is not False and not KERNEL_ROW.match(r["name"])]
    e2e = [r for r in accel if not r["name"].endswith((".resident", ".pinned"))]
    if numpy and e2e:
        g = min(e2e, key=lambda r: r["seconds"])
        s.append(f"Best end-to-end accelerator row: {g['label']}, {fmt_s(g['seconds'])}, {faster(numpy, g)} than "
                 "NumPy (the seed: Rust OpenCL 9.54×, Elixir/Rustler OpenCL 2.7×).")
    kern = [r for r in accel if r["name"].endswith(".resident")]
    if kern:
        g = min(kern, key=lambda r: r["seconds"])
        s.append(f"Best device-resident row: {g['label']}, {fmt_s(g['seconds'])}"
                 + (f", {faster(numpy, g)} than NumPy" if numpy else "") + ".")
    not_run = [r for r in rows if r["status"] in ("skipped", "error")]
    if not_run:
        s.append(f"{len(not_run)} row(s) did not run; see 'Rows not run'.")
    reduced = [r for r in ok if r.get("repeat_note")]
    if reduced:
        s.append(f"{len(reduced)} slow row(s) had fewer timed runs than asked: "
                 + "; ".join(f"{where(r)}: {r['repeat_note']}" for r in reduced) + ".")
    s.append(f"All rows map 1..{n:,} through {doc['params']['iterations']} iterations; times are medians of the "
             "timed runs after one warm-up, wall clock, from the data already in memory (list, binary or NumPy "
             "array) to the result in memory.")
    return s


def machine_line(m, split=False):
    """One line describing the machine; with split=True, (hardware, software) for the chart's two lines."""
    v = m.get("versions", {})
    parts = [f"{m.get('cpu_model')} ({m.get('cores')} logical cores)"]
    for g in m.get("gpus") or []:
        parts.append(f"{g.get('name')} (driver {g.get('driver')})")
    hw = len(parts)
    if m.get("cxx_compiler"):
        parts.append(m["cxx_compiler"])
    if m.get("cuda_compiler"):
        parts.append(m["cuda_compiler"])
    if v.get("elixir"):
        parts.append(f"Elixir {v['elixir']} / OTP {v.get('otp')}")
    if v.get("numpy"):
        parts.append(f"Python {v.get('python')} / NumPy {v['numpy']}")
    for k in ("cupy", "jax", "torch"):
        if v.get(k):
            parts.append(f"{k} {v[k]}")
    if split:
        return "; ".join(map(str, parts[:hw])), "; ".join(map(str, parts[hw:]))
    return "; ".join(str(p) for p in parts)


def markdown(doc):
    p = doc["params"]
    n = p["n"]
    pw = f" (2^{n.bit_length() - 1})" if n & (n - 1) == 0 else ""
    out = [f"# Kiln benchmark: logistic map over 1..{n:,}{pw}, {p['iterations']} iterations, "
           f"p = {p['p']:,}, mu = {p['mu']}", "",
           f"Machine: {machine_line(doc['machine'])}.  ",
           f"Run {doc['created']}, {doc['wall_s']:.0f} s in all; seconds are medians of {p['repeat']} timed runs "
           f"after one warm-up. Reference checksum {doc['reference']['checksum']} ({doc['reference']['source']}).", ""]

    # Table 1: the seed's shape. Staged rows down the stages, single rows in the stages = 1 line.
    singles = [("benchmarks9", "Elixir/NIF", "OpenCL(GPU), list", first(doc, r"^elixir\.nif\.opencl\d+\.list$", gpu=True)),
               ("benchmarks_empty", "Elixir/NIF", "empty call, list", find(doc, "elixir.empty.list")),
               ("C / Rust CPU", "C++ kiln", "scalar, 1 thread", find(doc, "cpp.scalar")),
               ("Rust OpenCL", "C++ kiln", "OpenCL(GPU)", first(doc, r"^cpp\.opencl\d+$", gpu=True)),
               ("Python", "Python", "NumPy, CPU", find(doc, "python.numpy"))]
    staged = [("benchmarks1", "pure Elixir", "loop", "elixir.pure.loop"),
              ("benchmarks3", "pure Elixir", "inlined", "elixir.pure.inlined"),
              ("benchmarks5", "Elixir/NIF", "CPU, passing a list", "elixir.nif.cpu.list"),
              ("benchmarks8", "Elixir/NIF", "CPU, list with windows", "elixir.nif.cpu.windows")]
    out += ["## The seed's table (seconds)", ""]
    out.append("|stages|" + "|".join(s[0] for s in staged) + "|" + "|".join(s[0] for s in singles) + "|")
    out.append("|-----:|" + "|".join("---:" for _ in staged + singles) + "|")
    out.append("|      |" + "|".join(s[1] for s in staged) + "|" + "|".join(s[1] for s in singles) + "|")
    out.append("|      |" + "|".join(s[2] for s in staged) + "|" + "|".join(s[2] for s in singles) + "|")
    # Stage lines: those asked for plus any kept from an earlier run by --merge.
    stage_list = sorted(set(p["stages"]) | {r["stages"] for r in doc["rows"] if r.get("stages")})
    mism = {(r["name"], r.get("stages")) for r in doc["rows"] if r["status"] == "MISMATCH"}
    for st in stage_list:
        cells = []
        for s in staged:
            r = find(doc, s[3], st)
            cells.append(cell(r["seconds"]) if r else ("MISMATCH" if (s[3], st) in mism else "—"))
        if st == stage_list[0]:
            cells += [cell(s[3]["seconds"]) if s[3] else "—" for s in singles]  # (mismatches: see below)
        else:
            cells += [""] * len(singles)
        out.append(f"|{st:>6}|" + "|".join(cells) + "|")
    out.append("")

    # Table 2: every row, best stage for staged rows, with the transfer split and speed-ups.
    pure, numpy = baselines(doc)
    out += ["## All rows (best stage for staged rows)", "",
            f"× columns: how many times faster than pure Elixir's best ({where(pure) if pure else 'not run'}) "
            f"and than NumPy ({'python.numpy' if numpy else 'not run'}). H→D / kernel / D→H: for GPU end-to-end rows from "
            "one extra run timed with device events (the timed runs go without them), summed over chunks "
            "(CUDA's chunks from ordinary memory have no copies: their kernel reads and writes the pinned "
            "staging itself, so all their time is kernel time); "
            "for resident rows the kernel's median by events; for host rows the medians.", "",
            "| row | seed | what | device | median s | min s | max s | runs | H→D s | kernel s | D→H s "
            "| × pure Elixir | × NumPy | checksum |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in main_rows(doc):
        split = [r.get("host_to_device_s"), r.get("kernel_s"), r.get("device_to_host_s")]
        split = [cell(v) if v else "" for v in split]
        runs = str(r.get("repeat")) + ("*" if r.get("repeat_note") else "")
        out.append(f"| {r['name']}{'@' + str(r['stages']) if r.get('stages') else ''} | {r['seed'] or ''} | "
                   f"{r['label']} | {r.get('device') or ''} | {cell(r['seconds'])} | {cell(r['seconds_min'])} | "
                   f"{cell(r['seconds_max'])} | {runs} | {' | '.join(split)} | {x(ratio(pure, r))} | "
                   f"{x(ratio(numpy, r))} | ok |")
    for r in [r for r in doc["rows"] if r["status"] == "MISMATCH"]:
        out.append(f"| {r['name']}{'@' + str(r['stages']) if r.get('stages') else ''} | {r['seed'] or ''} | "
                   f"{r['label']} | {r.get('device') or ''} | {cell(r.get('seconds'))} | | | | | | | | | "
                   f"**MISMATCH** {r['checksum']} |")
    out.append("")
    if any(r.get("repeat_note") for r in ok_rows(doc)):
        out += ["\\* fewer timed runs than asked (slow row); see the summary.", ""]

    out += kernel_section(doc)
    out += ["## Summary", ""] + [f"{i}. {b}" for i, b in enumerate(doc["summary"], 1)] + [""]
    not_run = [r for r in doc["rows"] if r["status"] in ("skipped", "error")]
    if not_run:
        out += ["## Rows not run", "", "| row | status | reason |", "|---|---|---|"]
        for r in not_run:
            reason = str(r.get("reason", "")).replace("|", "\\|").replace("\n", " ")
            out.append(f"| {r['name']}{'@' + str(r['stages']) if r.get('stages') else ''} | {r['status']} | {reason} |")
        out.append("")
    return "\n".join(out)


def main_rows(doc):
    """The rows of the main table and the chart: those at the run's iteration count."""
    k = doc["params"]["iterations"]
    return [r for r in best_rows(doc) if r.get("iterations", k) == k]


def bytes_per_s(r):
    if not r or not r.get("bytes_per_call") or not r.get("seconds"):
        return None
    return r["bytes_per_call"] / r["seconds"]


def gbs(v):
    return "—" if v is None else f"{v / 1e9:,.1f} GB/s"


def slower_ratio(kernel, builtin):
    """kernel time / built-in time (1.0: as fast; above: the kernel path is slower)."""
    if not kernel or not builtin or not builtin.get("seconds"):
        return None
    return kernel["seconds"] / builtin["seconds"]


def verdict(v, ok):
    return "" if v is None else (" ✓" if ok else " ✗")


def kernel_section(doc):
    """--kernels: per k, the kernel path against the built-in map and Kiln against CuPy/JAX/torch,
    then the memory-bound kernel's bytes/s against a device copy's."""
    rows = [r for r in doc["rows"] if KERNEL_ROW.match(r["name"])]
    if not rows:
        return []
    sweep = {}
    for r in ok_rows(doc):
        m = SWEEP_ROW.match(r["name"])
        if m:
            sweep[(int(m.group(1)), m.group(2), m.group(3), m.group(4))] = r
    peers = {}
    for r in ok_rows(doc):
        m = PEER_ROW.match(r["name"])
        if m:
            peers[(int(m.group(1)), m.group(2), bool(m.group(4)))] = r
    ks = sorted({k for k, *_ in sweep} | {k for k, *_ in peers})
    targets = sorted({t for _, _, t, _ in sweep}, key=lambda t: (not t.startswith("cuda"), not t.startswith("opencl"), t))
    out = ["## Kernel path and peers by iteration count (--kernels)", "",
           "Kernel / built-in: the time of the seed's map written as a kernel over the built-in map's, same "
           f"target and shape (goal: at most {KERNEL_GOAL['cuda']}× on CUDA and NVIDIA OpenCL, "
           f"{KERNEL_GOAL['cpu']}× on cpu; ✓/✗ against it; OpenCL on a CPU (PoCL) is held to the cpu goal). "
           f"Kiln vs peer: how many times faster Kiln's fastest cuda0 row of the same shape is (goal: at least {PEER_GOAL:g}×).", ""]
    for k in ks:
        out += [f"### {k} iterations", "",
                "| target | shape | built-in s | kernel s | kernel / built-in | Enum.reduce kernel s | reduce / built-in |",
                "|---|---|---:|---:|---:|---:|---:|"]
        for t in targets:
            dev_row = next((sweep[key] for key in sweep if key[0] == k and key[2] == t), None)
            gpu = bool(dev_row and dev_row.get("gpu"))
            # OpenCL on a GPU is held to the GPU goal, OpenCL on the host's cores (PoCL) to the cpu one.
            goal = KERNEL_GOAL["cuda"] if t.startswith("cuda") else \
                KERNEL_GOAL["opencl"] if t.startswith("opencl") and gpu else KERNEL_GOAL["cpu"]
            for shape in ("binary", "resident"):
                b, e, rd = (sweep.get((k, how, t, shape)) for how in ("nif", "kernel", "kernel_reduce"))
                if not (b or e or rd):
                    continue
                re1, re2 = slower_ratio(e, b), slower_ratio(rd, b)
                out.append(f"| {t} | {shape} | {cell(b and b['seconds'])} | {cell(e and e['seconds'])} | "
                           f"{'—' if re1 is None else f'{re1:.2f}×'}{verdict(re1, re1 is not None and re1 <= goal)} | "
                           f"{cell(rd and rd['seconds'])} | "
                           f"{'—' if re2 is None else f'{re2:.2f}×'}{verdict(re2, re2 is not None and re2 <= goal)} |")
        out.append("")
        # Kiln on cuda0 against each peer, resident against resident and end to end against end to end.
        lines = []
        for resident, shape in ((True, "resident"), (False, "binary")):
            kiln = [sweep.get((k, how, "cuda0", shape)) for how in ("nif", "kernel", "kernel_reduce")]
            kiln = [r for r in kiln if r]
            best = min(kiln, key=lambda r: r["seconds"]) if kiln else None
            ker = sweep.get((k, "kernel", "cuda0", shape))
            for fw in ("cupy", "jax", "torch"):
                pr = peers.get((k, fw, resident))
                if not pr:
                    continue
                v1, v2 = ratio(pr, ker), ratio(pr, best)
                lines.append(f"| {'resident' if resident else 'end to end'} | {pr['label']} | {cell(pr['seconds'])} | "
                             f"{cell(ker and ker['seconds'])} | {x(v1)}{verdict(v1, v1 is not None and v1 >= PEER_GOAL)} | "
                             f"{cell(best and best['seconds'])} | {x(v2)}{verdict(v2, v2 is not None and v2 >= PEER_GOAL)} |")
        if lines:
            out += ["| shape | peer | peer s | Kiln kernel cuda0 s | Kiln kernel × faster | Kiln best cuda0 s | "
                    "Kiln best × faster |", "|---|---|---:|---:|---:|---:|---:|"] + lines + [""]
        else:
            out += ["(no peer row ran at this count: CuPy / JAX / torch absent, or no cuda0 row)", ""]
    bw = sorted((r for r in ok_rows(doc) if r["name"].startswith("elixir.bw.fma2.")),
                key=lambda r: (".cuda" not in r["name"], ".opencl" not in r["name"], r["name"]))
    copy = find(doc, "python.bw.cupy.copy.resident")
    if bw or copy:
        out += ["### Memory-bound kernel against a device copy", "",
                f"`{{a + b * c, a - c}}` on three resident int64 buffers, returning two new ones: 5 × n × 8 bytes a call; "
                f"a device-to-device copy (CuPy `copyto`): 2 × n × 8 bytes (goal: the kernel at least {BW_GOAL:.0%} of "
                "the copy's bytes/s on the same GPU).", "",
                "bytes/s from the call's wall time (the NIF call, the kernel and two new buffers' allocation); "
                "by kernel: from the engine's kernel time where it reports one.", "",
                "| row | target | median s | bytes/s | kernel / copy | kernel s | bytes/s by kernel |",
                "|---|---|---:|---:|---:|---:|---:|"]
        cb = bytes_per_s(copy)
        for r in bw:
            v = bytes_per_s(r)
            t = r["name"].split(".")[3]
            share = v / cb if v and cb and t.startswith("cuda") else None
            dev = r.get("device") if r.get("device") not in (None, t) else ""
            out.append(f"| {r['name']} | {t} {dev} | {cell(r['seconds'])} | {gbs(v)} | "
                       f"{'—' if share is None else f'{share:.0%}'}{verdict(share, share is not None and share >= BW_GOAL)} | "
                       f"{cell(r['kernel_s']) if r.get('kernel_s') else '—'} | "
                       f"{gbs(r['bytes_per_call'] / r['kernel_s']) if r.get('kernel_s') else '—'} |")
        if copy:
            out.append(f"| {copy['name']} | {copy.get('device') or ''} | {cell(copy['seconds'])} | {gbs(cb)} | 100% | | |")
        out.append("")
    return out


def svg(doc):
    """Horizontal bars on a log time axis, fastest on top, coloured by family, one bar per row."""
    rows = sorted(main_rows(doc), key=lambda r: r["seconds"])
    p = doc["params"]
    W, left, right, bar_h, gap, top = 1100, 470, 110, 20, 6, 110
    plot_w = W - left - right
    H = top + max(1, len(rows)) * (bar_h + gap) + 60
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">'
         f'Kiln logistic map: 1..{p["n"]:,}, {p["iterations"]} iterations — median wall time (log scale, shorter is faster)</text>',
         *(f'<text x="{W / 2}" y="{44 + 16 * i}" text-anchor="middle" fill="#444">{escape(t[:160])}</text>'
           for i, t in enumerate(machine_line(doc["machine"], split=True)))]
    # Legend: only the families present.
    fams = [f for f in FAMILIES if any(r["family"] == f[0] for r in rows)]
    lx = 20
    for key, name, color in fams:
        o.append(f'<rect x="{lx}" y="76" width="12" height="12" fill="{color}"/>')
        o.append(f'<text x="{lx + 16}" y="87">{escape(name)}</text>')
        lx += 24 + 7 * len(name)
    if not rows:
        o.append(f'<text x="{W / 2}" y="{top + 20}" text-anchor="middle">no rows ran</text></svg>')
        return "\n".join(o) + "\n"
    lo = math.floor(math.log10(min(r["seconds"] for r in rows)))
    hi = math.ceil(math.log10(max(r["seconds"] for r in rows)))
    if hi == lo:
        hi += 1

    def px(s):
        return left + (math.log10(s) - lo) / (hi - lo) * plot_w

    axis_y = top + len(rows) * (bar_h + gap)
    names = {-6: "1 µs", -5: "10 µs", -4: "100 µs", -3: "1 ms", -2: "10 ms", -1: "100 ms", 0: "1 s", 1: "10 s",
             2: "100 s", 3: "1000 s"}
    for d in range(lo, hi + 1):
        gx = px(10.0 ** d)
        o.append(f'<line x1="{gx:.1f}" y1="{top - 6}" x2="{gx:.1f}" y2="{axis_y}" stroke="#ccc"/>')
        o.append(f'<text x="{gx:.1f}" y="{axis_y + 16}" text-anchor="middle" fill="#333">{names.get(d, f"1e{d} s")}</text>')
        if d < hi:
            for k in range(2, 10):  # minor ticks: 2..9 x 10^d
                mx = px(k * 10.0 ** d)
                o.append(f'<line x1="{mx:.1f}" y1="{axis_y}" x2="{mx:.1f}" y2="{axis_y + 4}" stroke="#999"/>')
    o.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#333"/>')
    o.append(f'<text x="{left + plot_w / 2}" y="{axis_y + 36}" text-anchor="middle">seconds (log scale)</text>')
    for i, r in enumerate(rows):
        y = top + i * (bar_h + gap)
        label = (r["seed"] + ": " if r["seed"] else "") + r["label"]
        if r.get("stages"):
            label += f" [best: {stages_txt(r['stages'])}]"
        w = max(1.0, px(r["seconds"]) - left)
        o.append(f'<text x="{left - 8}" y="{y + bar_h * 0.72:.1f}" text-anchor="end">{escape(label[:72])}</text>')
        o.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{FAMILY_COLOR.get(r["family"], "#888")}">'
                 f'<title>{escape(r["name"])}: {r["seconds"]:.6f} s</title></rect>')
        o.append(f'<text x="{left + w + 5:.1f}" y="{y + bar_h * 0.72:.1f}">{fmt_s(r["seconds"])}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"
