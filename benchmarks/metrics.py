"""MGE build plus all topometrics, against 20x the paper's public code (speed issue).

    .venv/bin/python benchmarks/metrics.py [--only resnet20] [--repeats 3] [--out PATH]

The seven networks the paper's public code was timed on: resnet20 @0.98/0.9/0.6, conv6
@0.98/0.9, resnet32 @0.98, wrn28_2 @0.98; 32x32 inputs, 10 classes, uniform masks
(``prune(model, "uniform", s, seed=0)``, weights from ``torch.manual_seed(0)``).

Each network runs in its own subprocesses. The timing child first computes every metric of a
tiny graph (numba kernels loaded from their cache or compiled: ``warmup_s``, not counted), then
``--repeats`` times builds the MGE (``encoding.multipartite``) and computes ``topometrics`` on
it; ``build_s``, ``metrics_s`` and ``total_s`` are the medians over the repeats (``*_runs`` keep
every run), ``timings_s`` the per-metric seconds of the median run (``build:*``: shared
structures: undirected CSR, DFS, coreness, spectral operator, path sweeps). ``peak_rss_gb`` is
the peak RSS (``ru_maxrss``) of a second child that does the same once (one build, one
``topometrics``: the protocol of the earlier figures; repeats in one process raise the peak by
heap fragmentation). ``load1`` is the 1-minute load average before and after the timing runs
(the machine is shared).
Results: ``benchmarks/results/metrics.json`` (written atomically; a partial run replaces only
its own rows) and a printed table.
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
import time
from pathlib import Path

#: (model, sparsity, paper's code seconds (the issue's figures), target = paper / 20)
NETWORKS = [
    ("resnet20", 0.98, 8.1, 0.40),
    ("resnet20", 0.9, 25.4, 1.3),
    ("resnet20", 0.6, 106.0, 5.3),
    ("conv6", 0.98, 47.6, 2.4),
    ("conv6", 0.9, 204.0, 10.0),
    ("resnet32", 0.98, 14.6, 0.73),
    ("wrn28_2", 0.98, 34.8, 1.75),
]
OUT = Path(__file__).parent / "results" / "metrics.json"


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def child(model: str, sparsity: float, repeats: int) -> dict:
    """Timing child (``repeats`` >= 1) or, with ``repeats == 0``, the peak-RSS child (one run)."""
    import torch

    import sparsetopo.metrics._topometrics as tm
    from sparsetopo import encoding, models, pruning

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from random_graphs import random_layered_graph

    load_before = os.getloadavg()[0]
    t = time.perf_counter()  # load every compiled kernel (sparse spectra included)
    small = random_layered_graph(2000, 6, 60, density=0.08)
    tm.topometrics(small)
    tm.spectral_gap(small, dense_max=0)
    tm.spectral_radius(small, dense_max=0)
    warmup = time.perf_counter() - t
    torch.manual_seed(0)
    net = models.create(model, num_classes=10)
    pruning.prune(net, "uniform", sparsity, seed=0)
    runs = []
    for _ in range(max(repeats, 1)):
        t = time.perf_counter()
        g = encoding.multipartite(net, (3, 32, 32), force=True)
        build = time.perf_counter() - t
        timings: dict[str, float] = {}
        cpu = time.process_time()
        t = time.perf_counter()
        values = tm.topometrics(g, seed=0, timings=timings)
        metrics_s = time.perf_counter() - t
        cpu = time.process_time() - cpu
        runs.append({"build_s": build, "metrics_s": metrics_s, "total_s": build + metrics_s,
                     "metrics_cpu_s": cpu, "timings_s": timings, "values": values,
                     "nodes": g.n_nodes, "edges": g.n_edges})
        del g
    med = sorted(runs, key=lambda r: r["total_s"])[len(runs) // 2]
    return {
        "model": model, "sparsity": sparsity, "input": "3x32x32", "nodes": med["nodes"],
        "edges": med["edges"], "warmup_s": warmup,
        "build_s": statistics.median(r["build_s"] for r in runs),
        "metrics_s": statistics.median(r["metrics_s"] for r in runs),
        "total_s": statistics.median(r["total_s"] for r in runs),
        "build_runs": [r["build_s"] for r in runs],
        "metrics_runs": [r["metrics_s"] for r in runs],
        "metrics_cpu_s": med["metrics_cpu_s"], "peak_rss_gb": _peak_gb(),
        "timings_s": med["timings_s"], "values": med["values"],
        "load1": [load_before, os.getloadavg()[0]],
    }  # fmt: skip


def _fmt(row: dict) -> str:
    if "error" in row:
        return f"{row['model']:<9} {row['sparsity']:<5} ERROR {row['error']}"
    top = sorted(row["timings_s"].items(), key=lambda kv: -kv[1])[:5]
    verdict = "met" if row["total_s"] <= row["target_s"] else "MISSED"
    return (
        f"{row['model']:<9} {row['sparsity']:<5} edges {row['edges']:>11,}  build "
        f"{row['build_s']:6.2f}s  metrics {row['metrics_s']:6.2f}s (cpu {row['metrics_cpu_s']:.2f})"
        f"  total {row['total_s']:6.2f}s / target {row['target_s']} s ({verdict}, "
        f"{row['paper_s'] / row['total_s']:.1f}x paper)  peak {row['peak_rss_gb']:.2f} GB"
        f"  load {row['load1'][0]:.2f}-{row['load1'][1]:.2f}\n      slowest: "
        + ", ".join(f"{k} {v:.3f}s" for k, v in top)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", help="run only this model (or MODEL@SPARSITY)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per network (median reported)")
    ap.add_argument("--out", type=Path, default=OUT, help="result file")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        m, s, repeats = args.child
        print(json.dumps(child(m, float(s), int(repeats))))
        return
    rows = []
    for model, s, paper, target in NETWORKS:
        if args.only and args.only not in (model, f"{model}@{s}"):
            continue
        row = {}
        for repeats in (args.repeats, 0):  # timing child, then the single-run peak-RSS child
            cmd = [sys.executable, __file__, "--child", model, str(s), str(repeats)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                lines = (proc.stderr.strip() or f"exit code {proc.returncode}").splitlines()
                row = {"model": model, "sparsity": s, "error": lines[-1]}
                break
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            if repeats:
                row = got
                row.update(target_s=target, paper_s=paper)
            else:
                row["peak_rss_repeats_gb"] = row["peak_rss_gb"]
                row["peak_rss_gb"] = got["peak_rss_gb"]
        rows.append(row)
        print(_fmt(row), flush=True)
    order = [(m, s) for m, s, *_ in NETWORKS]
    if args.out.exists():  # a partial run (--only) replaces its rows, keeps the others
        done = {(r["model"], r["sparsity"]) for r in rows}
        rows += [r for r in json.loads(args.out.read_text())["rows"]
                 if (r["model"], r["sparsity"]) not in done and (r["model"], r["sparsity"]) in order]  # fmt: skip
    rows.sort(key=lambda r: order.index((r["model"], r["sparsity"])))
    result = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "command": "python benchmarks/metrics.py " + " ".join(sys.argv[1:]),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
