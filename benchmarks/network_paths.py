"""Path and degree topometrics by passes of the network (``metrics.network_path_metrics``).

    .venv/bin/python benchmarks/network_paths.py [--only NAME] [--repeats 3] [--threads 1 2]

Two sets of cases, each in its own subprocesses, every network's weights from
``torch.manual_seed(0)``:

- ``scale``: ResNet-50 (1000 classes) at 3x224x224, dense, uniform 0.8 and 0.9, and SNIP 0.9 on
  synthetic data (16 Gaussian images with random labels, seed 0): the passes only (their MGE
  would need 70-280 GiB). ``predicted_gb`` is the peak the function predicts before any pass
  (it refuses above the available memory); ``peak_extra_gb`` the largest RSS seen during the
  call (sampled every 10 ms) minus the RSS before it, ``peak_rss_gb`` the child's ``ru_maxrss``
  (pruning included).
- ``reference``: the reference networks at 3x32x32, 10 classes, uniform masks (resnet20 @0.98,
  @0.9, conv6 @0.9): the passes side by side with today's route, ``encoding.multipartite`` +
  ``topometrics(keys=NETWORK_PATH_METRICS)``, alternated in one process (``--repeats`` runs
  each, medians), the same metrics on the MGE with identity skips; their values must agree.
  ``peak_extra_gb`` / ``mge_peak_extra_gb``: the largest of each route's own peaks.

``--threads`` runs every case once per torch intra-op thread count (the machine is shared: on a
loaded 2-core host one thread is often faster). ``load1`` is the 1-minute load average before
and after. Results: ``benchmarks/results/network_paths.json`` (atomic) and a printed table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "network_paths.json"
#: (name, model, pruning, sparsity, input side)
SCALE = [
    ("resnet50-dense@224", "resnet50", None, 0.0, 224),
    ("resnet50-uniform0.8@224", "resnet50", "uniform", 0.8, 224),
    ("resnet50-uniform0.9@224", "resnet50", "uniform", 0.9, 224),
    ("resnet50-snip0.9@224", "resnet50", "snip", 0.9, 224),
]
REFERENCE = [
    ("resnet20-uniform0.98@32", "resnet20", "uniform", 0.98, 32),
    ("resnet20-uniform0.9@32", "resnet20", "uniform", 0.9, 32),
    ("conv6-uniform0.9@32", "conv6", "uniform", 0.9, 32),
]


class _PeakSampler:
    """Largest RSS of this process while running (sampled every 10 ms)."""

    def __init__(self):
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _model(model: str, method: str | None, sparsity: float, side: int):
    import torch

    from sparsetopo import models, pruning

    torch.manual_seed(0)
    classes = 1000 if side == 224 else 10
    net = models.create(model, num_classes=classes)
    if method:
        data = None
        if method == "snip":
            gen = torch.Generator().manual_seed(0)
            data = [(torch.randn((16, 3, side, side), generator=gen),
                     torch.randint(0, classes, (16,), generator=gen))]
        pruning.prune(net, method, sparsity, seed=0, data=data)
    return net


def child(case: str, threads: int, repeats: int) -> dict:
    import torch

    from sparsetopo import encoding
    from sparsetopo._memory import release_freed_memory
    from sparsetopo.metrics import (
        NETWORK_PATH_METRICS,
        estimate_network_paths,
        network_path_metrics,
        topometrics,
    )

    torch.set_num_threads(threads)
    name, model, method, sparsity, side = next(c for c in SCALE + REFERENCE if c[0] == case)
    shape = (3, side, side)
    net = _model(model, method, sparsity, side)
    release_freed_memory()
    load_before = os.getloadavg()[0]
    row = {"case": name, "model": model, "pruning": method or "dense", "sparsity": sparsity,
           "input": f"3x{side}x{side}", "threads": threads}
    est = estimate_network_paths(net, shape, identity_skips=True)
    row.update(nodes=est.nodes, present_weights=est.weights, merged_pairs=est.merged_pairs,
               predicted_gb=est.peak_bytes / 2**30)
    passes, mge, values, ref = [], [], None, None
    peak_passes = peak_mge = 0.0

    def mge_route():
        g = encoding.multipartite(net, shape, identity_skips=True)
        return topometrics(g, keys=NETWORK_PATH_METRICS)

    for _ in range(repeats):  # alternated: passes, then today's route
        values, seconds, peak = _measured(
            lambda: network_path_metrics(net, shape, identity_skips=True))
        passes.append(seconds)
        peak_passes = max(peak_passes, peak)
        release_freed_memory()
        if side == 224:
            continue
        ref, seconds, peak = _measured(mge_route)
        mge.append(seconds)
        peak_mge = max(peak_mge, peak)
        release_freed_memory()
    row.update(passes_s=statistics.median(passes), passes_runs=passes, values=values,
               peak_extra_gb=peak_passes,
               peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
               load1=[load_before, os.getloadavg()[0]])
    if mge:
        row.update(mge_topometrics_s=statistics.median(mge), mge_runs=mge,
                   mge_peak_extra_gb=peak_mge,
                   speedup=statistics.median(mge) / statistics.median(passes),
                   equal=_equal(values, ref), edges_mge=ref["edges"])
    return row


def _measured(fn):
    """``(fn(), seconds, GiB of RSS above the RSS before the call at its peak)``."""
    import psutil

    before = psutil.Process().memory_info().rss
    with _PeakSampler() as sampler:
        t = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t
    return out, seconds, (sampler.peak - before) / 2**30


def _equal(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] or abs(a[k] - b[k]) <= 1e-9 * max(abs(a[k]), abs(b[k])) for k in b)


def run_child(script: str, args: list[str], failed: dict) -> dict:
    """The row a ``script --child ARGS...`` process prints last (its stdout's last line, JSON),
    or ``failed`` with the last line of its stderr under ``error``."""
    cmd = [sys.executable, script, "--child", *args]
    env = {**os.environ, "SPARSETOPO_PROGRESS": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or f"exit code {proc.returncode}").splitlines()
        return {**failed, "error": lines[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(row: dict) -> str:
    if "error" in row:
        return f"{row['case']:<26} threads {row['threads']}  ERROR {row['error']}"
    s = (f"{row['case']:<26} threads {row['threads']}  nodes {row['nodes']:>10,}  edges "
         f"{row['values']['edges']:>14,}  passes {row['passes_s']:7.2f}s  peak +"
         f"{row['peak_extra_gb']:.2f} GiB (predicted {row['predicted_gb']:.2f})")
    if "mge_topometrics_s" in row:
        s += (f"  MGE+topometrics {row['mge_topometrics_s']:6.2f}s, peak +"
              f"{row['mge_peak_extra_gb']:.2f} GiB ({row['speedup']:.1f}x, equal: {row['equal']})")
    return s + f"  load {row['load1'][0]:.1f}-{row['load1'][1]:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", help="run only the cases whose name contains this")
    ap.add_argument("--repeats", type=int, default=3, help="runs per case (median reported)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads")
    ap.add_argument("--out", type=Path, default=OUT, help="result file")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        case, threads, repeats = args.child
        print(json.dumps(child(case, int(threads), int(repeats)), default=float))
        return
    from sparsetopo.io import write_text

    rows = []
    for case, *_ in SCALE + REFERENCE:
        if args.only and args.only not in case:
            continue
        for threads in args.threads:
            repeats = 1 if case.endswith("@224") else args.repeats
            row = run_child(__file__, [case, str(threads), str(repeats)],
                            {"case": case, "threads": threads})
            rows.append(row)
            print(_fmt(row), flush=True)
    order = [c[0] for c in SCALE + REFERENCE]
    if args.out.exists():  # a partial run (--only) replaces its rows, keeps the others
        done = {(r["case"], r["threads"]) for r in rows}
        rows += [r for r in json.loads(args.out.read_text())["rows"]
                 if (r["case"], r["threads"]) not in done and r["case"] in order]
    rows.sort(key=lambda r: (order.index(r["case"]), r["threads"]))
    result = {"machine": platform.platform(), "cpus": os.cpu_count(),
              "command": "python benchmarks/network_paths.py " + " ".join(sys.argv[1:]),
              "rows": rows}
    write_text(args.out, json.dumps(result, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
