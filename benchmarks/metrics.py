"""Topometrics time and peak memory on zoo MGEs (issue 4 targets, MGE build included).

    .venv/bin/python benchmarks/metrics.py [--only resnet20] [--quick] [--igraph-max-edges N]

Each network runs in its own subprocess (uniform masks, ``prune(model, "uniform", s, seed=0)``)
so that its peak RSS (``ru_maxrss``) is its own. The child first computes the metrics of a tiny
graph (loading the compiled kernels, reported as ``warmup_s``), then builds the MGE and times
every metric separately (``timings_s``), plus the shared structures (``build:*``: undirected CSR, DFS, coreness,
path sweeps). For graphs up to ``--igraph-max-edges`` edges it also times what igraph would cost:
the CSR -> ``igraph.Graph`` conversion and igraph's coreness / bridges / articulation points on
the converted graph (the measurement behind computing these on the CSR directly).
Results: ``benchmarks/results/metrics.json`` (written atomically; a partial run replaces only
its own rows) and a printed table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

NETWORKS = [  # (model, sparsity, input size, num_classes, target seconds, target GB)
    ("resnet20", 0.98, 32, 10, 0.4, None),
    ("resnet20", 0.9, 32, 10, 1.5, None),
    ("resnet20", 0.6, 32, 10, 6.0, 2.0),
    ("conv6", 0.9, 32, 10, 10.0, 3.0),
    ("conv6", 0.6, 32, 10, 90.0, 12.0),
    ("wrn28_2", 0.98, 32, 10, 2.0, None),
    ("wrn28_2", 0.6, 32, 10, 90.0, 12.0),
    ("mobilenetv2", 0.98, 32, 10, 3.0, None),
    ("resnet50", 0.98, 224, 1000, 180.0, 16.0),
]
QUICK = {("resnet20", 0.98), ("resnet20", 0.9), ("mobilenetv2", 0.98)}
OUT = Path(__file__).parent / "results" / "metrics.json"


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def igraph_costs(graph) -> dict:
    """Seconds to convert the CSR into an undirected igraph Graph and to run igraph's
    coreness, bridges and articulation points on it."""
    import igraph as ig
    import numpy as np

    a = graph.adjacency
    out = {}
    t = time.perf_counter()
    rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    edges = np.column_stack([rows, a.indices]).astype(np.int64)
    g = ig.Graph(n=a.shape[0], edges=edges, directed=False)
    out["igraph_convert_s"] = time.perf_counter() - t
    del edges, rows
    for name, fn in (("coreness", g.coreness), ("bridges", g.bridges),
                     ("articulation_points", g.articulation_points)):  # fmt: skip
        t = time.perf_counter()
        fn()
        out[f"igraph_{name}_s"] = time.perf_counter() - t
    return out


def child(model: str, sparsity: float, size: int, classes: int, igraph_max: int) -> dict:
    import torch

    import sparsetopo.metrics._topometrics as tm
    from sparsetopo import encoding, models, pruning
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from random_graphs import random_layered_graph

    t = time.perf_counter()  # load every compiled kernel (sparse spectra included)
    small = random_layered_graph(2000, 6, 60, density=0.08)
    tm.topometrics(small)
    tm.spectral_gap(small, dense_max=0)
    tm.spectral_radius(small, dense_max=0)
    warmup = time.perf_counter() - t
    torch.manual_seed(0)
    net = models.create(model, num_classes=classes)
    pruning.prune(net, "uniform", sparsity, seed=0)
    shape = (3, size, size)
    t = time.perf_counter()
    g = encoding.multipartite(net, shape, force=True)
    build = time.perf_counter() - t
    del net
    timings: dict[str, float] = {}
    cpu = time.process_time()
    t = time.perf_counter()
    values = tm.topometrics(g, seed=0, timings=timings)
    metrics_s = time.perf_counter() - t
    cpu = time.process_time() - cpu
    row = {
        "model": model, "sparsity": sparsity, "input": f"3x{size}x{size}",
        "nodes": g.n_nodes, "edges": g.n_edges, "warmup_s": warmup, "build_s": build,
        "metrics_s": metrics_s, "metrics_cpu_s": cpu, "total_s": build + metrics_s,
        "peak_rss_gb": _peak_gb(), "timings_s": timings, "values": values,
    }  # fmt: skip
    if g.n_edges <= igraph_max:
        row.update(igraph_costs(g))
    return row


def _fmt(row: dict) -> str:
    if "error" in row:
        return f"{row['model']:<12} {row['sparsity']:<5} ERROR {row['error']}"
    t = row["timings_s"]
    top = sorted(t.items(), key=lambda kv: -kv[1])[:4]
    ig = f" igraph convert {row['igraph_convert_s']:.2f}s" if "igraph_convert_s" in row else ""
    return (
        f"{row['model']:<12} {row['sparsity']:<5} edges {row['edges']:>11,}  build "
        f"{row['build_s']:6.2f}s  metrics {row['metrics_s']:6.2f}s (cpu {row['metrics_cpu_s']:.2f})"
        f"  total {row['total_s']:6.2f}s / {row['target_s']}  peak {row['peak_rss_gb']:.2f} GB"
        f" / {row['target_gb']}{ig}\n      slowest: "
        + ", ".join(f"{k} {v:.2f}s" for k, v in top)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", help="run only this model")
    ap.add_argument("--quick", action="store_true", help="a small subset")
    ap.add_argument("--igraph-max-edges", type=int, default=5_000_000,
                    help="time the igraph route on graphs up to this many edges")  # fmt: skip
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        m, s, size, classes, igraph_max = args.child
        print(json.dumps(child(m, float(s), int(size), int(classes), int(igraph_max))))
        return
    rows = []
    for model, s, size, classes, t_target, gb_target in NETWORKS:
        if args.only and model != args.only or args.quick and (model, s) not in QUICK:
            continue
        cmd = [sys.executable, __file__, "--child", model, str(s), str(size), str(classes),
               str(args.igraph_max_edges)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = (proc.stderr.strip() or f"exit code {proc.returncode}").splitlines()
            row = {"model": model, "sparsity": s, "error": lines[-1]}
        else:
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row.update(target_s=t_target, target_gb=gb_target)
        rows.append(row)
        print(_fmt(row), flush=True)
    order = [(m, s) for m, s, *_ in NETWORKS]
    if OUT.exists():  # a partial run (--only, --quick) replaces its rows, keeps the others
        done = {(r["model"], r["sparsity"]) for r in rows}
        rows += [r for r in json.loads(OUT.read_text())["rows"]
                 if (r["model"], r["sparsity"]) not in done]  # fmt: skip
    rows.sort(key=lambda r: order.index((r["model"], r["sparsity"])))
    result = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "command": "python benchmarks/metrics.py " + " ".join(sys.argv[1:]),
        "rows": rows,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float))
    os.replace(tmp, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
