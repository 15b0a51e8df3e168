"""Each piece of the metrics' speed machinery of e3d9064, measured with and without it (issue 26).

    .venv/bin/python benchmarks/simplification.py --tree OLD [--rounds 3] [--variants a,b]
                                                  [--only resnet20@0.98] [--out PATH]

``OLD`` is a checkout of e3d9064 (``git worktree add OLD e3d9064``), the code that still has
every piece: each *variant* runs that code with one piece replaced, in the child process, by the
plain numpy / scipy / serial version (``VARIANTS``: what each patch replaces). Every network of
``benchmarks/metrics.py`` (same models, masks, seeds and inputs) runs in a fresh process per
variant; variants alternate within each round so that all of them see the same machine. A child
builds the MGE once, computes ``topometrics`` on it once untimed (the numba kernels compiled or
loaded; ``ru_maxrss`` read after it: the peak of one build and one ``topometrics``), then
``--repeats`` timed times; the figure is the median. Results: ``--out`` (JSON), and a printed
table of the medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from metrics import NETWORKS  # noqa: E402  (the benchmark's own list of networks)

#: variant -> what its patch does to the old code (the piece it removes)
VARIANTS = {
    "base": "e3d9064 as it is",
    "no-switch": "the spectra's products stay serial when the other task thread goes idle "
                 "(no parallel twin, no idle event)",
    "no-records": "the paired products on four plain vectors instead of 48-byte per-node "
                  "records (lockstep kept)",
    "no-lockstep": "gap and radius solved one after the other, single products (no paired "
                   "passes, no records, no mmap scratch)",
    "serial-tasks": "the task scheduler on one thread: structures, two_hop and spectra in turn",
    "serial-kernels": "every parallel=True kernel (two_hop's three, motifs, relabel, products) "
                      "compiled serial",
    "blas-lanczos": "the Lanczos vector kernels (four-way unrolled sums, blocked "
                    "orthogonalization) replaced by numpy / BLAS",
    "plain-lanczos": "the Lanczos vector kernels as plain numba loops (one running sum, one "
                     "basis row at a time)",
    "arpack": "both spectra by ARPACK (eigsh), solved apart, instead of the own Lanczos",
    "no-gram": "the gap's Lanczos on S (three magnitudes) instead of B^T B on one colour class",
    "no-blas-limit": "BLAS not held to one thread during the precompute",
    "no-trim": "no malloc_trim after two_hop",
    "malloc-scratch": "the records' scratch from np.empty instead of its own mmap",
    "new": "the simplified code (--new TREE), unpatched",
    "new-conc": "the simplified code with the spectra on a second thread (--conc TREE)",
}


def _patch(variant: str) -> None:  # noqa: C901 (one branch per variant)
    if variant in ("base", "new", "new-conc"):
        return
    import numba as nb
    import numpy as np
    import sparsetopo.metrics._csr_kernels as K

    import sparsetopo.metrics._lanczos as L
    import sparsetopo.metrics._topometrics as tm

    if variant == "no-switch":
        shared = tm._shared_spectra
        tm._shared_spectra = lambda v, seed, idle=None: shared(v, seed, None)
    elif variant == "no-records":

        @nb.njit(nogil=True)
        def pair(indptr, indices, data, x1, x2, y1, y2, lo, hi):
            for u in range(lo, hi):
                s1 = 0.0
                s2 = 0.0
                for e in range(indptr[u], indptr[u + 1]):
                    v = indices[e]
                    w = abs(np.float64(data[e]))
                    s1 += w * x1[v]
                    y1[v] += w * x1[u]
                    s2 += w * x2[v]
                    y2[v] += w * x2[u]
                y1[u] += s1
                y2[u] += s2

        def matvec2(indptr, indices, data, x1, y1, lap1, x2, y2, lap2, diag, split, q):
            y1[:] = 0.0
            y2[:] = 0.0
            pair(indptr, indices, data, x1, x2, y1, y2, 0, indptr.size - 1)
            if lap1:
                y1[:] = diag * x1 - y1
            if lap2:
                y2[:] = diag * x2 - y2

        K.sym_abs_matvec2_into = K.sym_abs_matvec2_into_parallel = matvec2
    elif variant == "no-lockstep":
        tm._shared_spectra = lambda v, seed, idle=None: (tm.spectral_gap(v, seed=seed),
                                                         tm.spectral_radius(v, seed=seed))
    elif variant == "serial-tasks":
        run = tm.run_tasks
        tm.run_tasks = lambda tasks, n_threads=2, idle=None: run(tasks, 1, idle)
    elif variant == "serial-kernels":
        def serial(f):
            return nb.njit(nogil=True)(f.py_func)

        for name in ("_word_counts", "_word_rows", "_two_hop_sum", "motif_root_counts",
                     "relabel_rows"):
            setattr(K, name, serial(getattr(K, name)))
        K.sym_abs_matvec_into_parallel = K.sym_abs_matvec_into
        K.sym_abs_matvec2_into_parallel = K.sym_abs_matvec2_into
    elif variant == "blas-lanczos":

        def three_term(r, v, v_prev, beta):
            r -= beta * v_prev
            a = float(v @ r)
            r -= a * v
            return a, float(r @ r)

        def orthogonalize(basis, m, r, h):
            h[:m] = basis[:m] @ r
            r -= h[:m] @ basis[:m]
            return float(r @ r)

        def scale_into(r, c, out):
            np.multiply(r, c, out=out)

        L.K = type("K", (), {"lanczos_three_term": staticmethod(three_term),
                             "orthogonalize": staticmethod(orthogonalize),
                             "scale_into": staticmethod(scale_into)})
    elif variant == "plain-lanczos":

        @nb.njit(nogil=True)
        def three_term(r, v, v_prev, beta):
            a = 0.0
            for i in range(r.size):
                r[i] -= beta * v_prev[i]
                a += v[i] * r[i]
            s = 0.0
            for i in range(r.size):
                r[i] -= a * v[i]
                s += r[i] * r[i]
            return a, s

        @nb.njit(nogil=True)
        def orthogonalize(basis, m, r, h):
            for i in range(m):
                acc = 0.0
                for q in range(r.size):
                    acc += basis[i, q] * r[q]
                h[i] = acc
            for i in range(m):
                for q in range(r.size):
                    r[q] -= h[i] * basis[i, q]
            s = 0.0
            for q in range(r.size):
                s += r[q] * r[q]
            return s

        @nb.njit(nogil=True)
        def scale_into(r, c, out):
            for i in range(r.size):
                out[i] = c * r[i]

        L.K = type("K", (), {"lanczos_three_term": staticmethod(three_term),
                             "orthogonalize": staticmethod(orthogonalize),
                             "scale_into": staticmethod(scale_into)})
    elif variant == "arpack":

        def fail(*args, **kwargs):
            raise L.LanczosNoConvergence("measured without")

        tm.largest_eigenvalue = tm.extreme_eigenvalues = fail
        tm._shared_spectra = lambda v, seed, idle=None: (tm.spectral_gap(v, seed=seed),
                                                         tm.spectral_radius(v, seed=seed))
    elif variant == "no-gram":
        tm._SymOperators.gram_side = lambda self: None
    elif variant == "no-blas-limit":
        tm._blas_controller = lambda: type("C", (), {"limit": lambda self, **k: nullcontext()})()
    elif variant == "no-trim":
        tm.release_freed_memory = lambda: False
    elif variant == "malloc-scratch":
        tm._unpooled_empty = lambda shape: np.empty(shape)
    elif variant != "base":
        raise SystemExit(f"unknown variant {variant}")


def child(variant: str, model: str, sparsity: float, repeats: int) -> dict:
    import torch

    import sparsetopo.metrics._topometrics as tm
    from sparsetopo import encoding, models, pruning

    _patch(variant)
    torch.manual_seed(0)
    net = models.create(model, num_classes=10)
    pruning.prune(net, "uniform", sparsity, seed=0)
    t = time.perf_counter()
    g = encoding.multipartite(net, (3, 32, 32), force=True)
    build = time.perf_counter() - t
    first = tm.topometrics(g, seed=0)  # kernels compiled or loaded; the one-run peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    runs, cpu = [], []
    for _ in range(repeats):
        c = time.process_time()
        t = time.perf_counter()
        values = tm.topometrics(g, seed=0)
        runs.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        assert values == first, "not reproducible"
    return {"build_s": build, "metrics_runs": runs, "metrics_s": statistics.median(runs),
            "cpu_runs": cpu, "peak_gb": peak, "values": first}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tree", type=Path, help="checkout of e3d9064")
    ap.add_argument("--new", type=Path, help="checkout of the simplified code (variant new)")
    ap.add_argument("--conc", type=Path, help="checkout of the variant new-conc")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--only", help="MODEL or MODEL@SPARSITY")
    ap.add_argument("--out", type=Path, default=Path("/tmp/simplification.json"))
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        v, m, s, r = args.child
        print(json.dumps(child(v, m, float(s), int(r)), default=float))
        return
    variants = args.variants.split(",")
    env = {**os.environ, "PYTHONPATH": str(args.tree.resolve())}
    env.pop("NUMBA_THREADING_LAYER", None)
    trees = {"new": args.new, "new-conc": args.conc}
    envs = {v: {**env, "PYTHONPATH": str(t.resolve())} for v, t in trees.items() if t}
    results: dict = {"tree": str(args.tree), "variants": {v: VARIANTS[v] for v in variants},
                     "rows": []}
    nets = [(m, s) for m, s, *_ in NETWORKS
            if not args.only or args.only in (m, f"{m}@{s}")]
    for rnd in range(args.rounds):
        for model, s in nets:
            for v in variants[rnd % len(variants):] + variants[:rnd % len(variants)]:
                load = os.getloadavg()[0]
                cmd = [sys.executable, __file__, "--child", v, model, str(s), str(args.repeats)]
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      env=envs.get(v, env))
                if proc.returncode:
                    raise SystemExit(f"{v} {model}@{s}: {proc.stderr.strip()[-800:]}")
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                row.update(variant=v, model=model, sparsity=s, round=rnd, load1=load)
                results["rows"].append(row)
                print(f"r{rnd} {model}@{s} {v:<15} build {row['build_s']:.2f} metrics "
                      f"{row['metrics_s']:.3f} peak {row['peak_gb']:.3f} load {load:.2f}",
                      flush=True)
                args.out.write_text(json.dumps(results, default=float))
    print(table(results))


def table(results: dict) -> str:
    rows = results["rows"]
    lines = []
    for model, s in dict.fromkeys((r["model"], r["sparsity"]) for r in rows):
        mine = [r for r in rows if (r["model"], r["sparsity"]) == (model, s)]
        base = [r for r in mine if r["variant"] == "base"]
        b_m = statistics.median(r["metrics_s"] for r in base)
        b_t = b_m + statistics.median(r["build_s"] for r in base)
        for v in dict.fromkeys(r["variant"] for r in mine):
            rs = [r for r in mine if r["variant"] == v]
            m = statistics.median(r["metrics_s"] for r in rs)
            t = m + statistics.median(r["build_s"] for r in rs)
            same = all(r["values"] == base[0]["values"] for r in rs)
            lines.append(f"{model}@{s} {v:<15} metrics {m:6.3f} ({m / b_m - 1:+.0%}) total "
                         f"{t:6.3f} ({t / b_t - 1:+.0%}) peak "
                         f"{statistics.median(r['peak_gb'] for r in rs):.3f}"
                         f"{'' if same else '  values differ'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
