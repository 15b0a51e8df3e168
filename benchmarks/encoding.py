"""MGE build time and peak memory (issue 3 targets).

    .venv/bin/python benchmarks/encoding.py [--only resnet20] [--quick]

Each network runs in its own subprocess so that its peak RSS (``ru_maxrss``) is its own.
Results: ``benchmarks/results/encoding.json`` (written atomically) and a printed table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

NETWORKS = [  # (model, sparsity, input size, num_classes, target seconds, target GB)
    ("resnet20", 0.98, 32, 10, None, None),
    ("resnet20", 0.9, 32, 10, None, None),
    ("resnet20", 0.6, 32, 10, 2.0, None),
    ("conv6", 0.9, 32, 10, None, None),
    ("conv6", 0.6, 32, 10, None, 8.0),
    ("wrn28_2", 0.98, 32, 10, None, None),
    ("wrn28_2", 0.6, 32, 10, None, 8.0),
    ("mobilenetv2", 0.98, 32, 10, None, None),
    ("resnet50", 0.98, 224, 1000, 60.0, 12.0),
]
QUICK = {("resnet20", 0.98), ("resnet20", 0.6), ("conv6", 0.9)}
OUT = Path(__file__).parent / "results" / "encoding.json"


def child(model: str, sparsity: float, size: int, classes: int) -> dict:
    import torch

    from sparsetopo import encoding, models, pruning

    torch.manual_seed(0)
    net = models.create(model, num_classes=classes)
    pruning.prune(net, "uniform", sparsity, seed=0)
    shape = (3, size, size)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    est = encoding.estimate(net, shape)
    t_est = time.perf_counter() - t
    t = time.perf_counter()
    g = encoding.multipartite(net, shape, force=True)
    t_build = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "model": model, "sparsity": sparsity, "input": f"3x{size}x{size}",
        "nodes": g.n_nodes, "edges": g.n_edges, "estimated_edges": est.edges,
        "estimate_exact": est.exact, "estimate_s": t_est, "build_s": t_build,
        "peak_rss_gb": peak / 1e9, "rss_before_build_gb": rss0 * 1024 / 1e9,
        "estimated_peak_gb": est.peak_bytes / 1e9, "graph_gb": g.nbytes() / 1e9,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", help="run only this model")
    ap.add_argument("--quick", action="store_true", help="a small subset")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        m, s, size, classes = args.child
        print(json.dumps(child(m, float(s), int(size), int(classes))))
        return
    rows = []
    for model, s, size, classes, t_target, gb_target in NETWORKS:
        if args.only and model != args.only or args.quick and (model, s) not in QUICK:
            continue
        proc = subprocess.run(
            [sys.executable, __file__, "--child", model, str(s), str(size), str(classes)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            row = {"model": model, "sparsity": s, "error": proc.stderr.strip().splitlines()[-1]}
        else:
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["target_s"], row["target_gb"] = t_target, gb_target
        rows.append(row)
        print(_line(row), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps({"machine": platform.platform(), "cpus": _cpus(),
                               "command": "python benchmarks/encoding.py", "rows": rows},
                              indent=2))
    tmp.replace(OUT)
    print(f"wrote {OUT}")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _line(r: dict) -> str:
    if "error" in r:
        return f"{r['model']:12s} {r['sparsity']:.2f}  ERROR {r['error']}"
    return (f"{r['model']:12s} {r['sparsity']:.2f} {r['input']:>9s} nodes {r['nodes']:>11,} "
            f"edges {r['edges']:>12,}  build {r['build_s']:7.2f}s  peak {r['peak_rss_gb']:6.2f} GB"
            f"  (estimated peak {r['estimated_peak_gb']:.2f} GB over {r['rss_before_build_gb']:.2f})")


if __name__ == "__main__":
    main()
