"""Time and peak memory of the MGE picture (``sparsetopo.plot._mge``; issue 6 targets: a
5M-edge graph in <= 15 s and <= 4 GB).

    .venv/bin/python benchmarks/plot.py [--only CASE ...] [--quick] [--check] [--out PATH]

Each case runs in its own subprocess so that its peak RSS (``ru_maxrss``) is its own; building
the graph is not timed, drawing (``mge`` to PNG) is: wall and CPU seconds. Results go to
``benchmarks/results/plot.json`` (written atomically) and a printed table. ``--check`` exits 1
when a case with a target misses it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# name: (graph, max_edges, target seconds, target GB)
CASES = {
    "random-5M": ("random:5000000", None, 15.0, 4.0),
    "resnet20-0.98-uniform": ("resnet20:0.98", None, None, None),
    "resnet20-0.6-uniform-sampled-5M": ("resnet20:0.6", 5_000_000, 15.0, 4.0),
    "resnet20-0.6-uniform-full": ("resnet20:0.6", None, None, 4.0),
}
QUICK = ("random-5M", "resnet20-0.98-uniform")
OUT = Path(__file__).parent / "results" / "plot.json"
# ResNet-20's MGE partition shapes (input, 19 convolutions, classifier).
RESNET20_SHAPES = ([(3, 32, 32)] + [(16, 32, 32)] * 7 + [(32, 16, 16)] * 6 + [(64, 8, 8)] * 6
                   + [(10,)])


def random_layered_graph(n_edges: int, seed: int = 0, skip_fraction: float = 0.05):
    """A layered DAG with ResNet-20's partitions and ``n_edges`` random edges: each edge goes
    to a partition drawn with probability proportional to its size (so the 10-node classifier
    gets few duplicates) from the partition before it, or, with ``skip_fraction``, from two
    partitions before (a skip edge); endpoints uniform inside the partitions."""
    from sparsetopo.encoding.graph import Partition, from_edges

    rng = np.random.default_rng(seed)
    partitions, offset = [], 0
    for i, shape in enumerate(RESNET20_SHAPES):
        partitions.append(Partition("input" if i == 0 else f"layer{i}", offset, shape))
        offset += int(np.prod(shape))
    starts = np.array([p.offset for p in partitions])
    sizes = np.array([p.size for p in partitions])
    weights = sizes[1:] / sizes[1:].sum()
    dst_part = 1 + rng.choice(len(partitions) - 1, size=n_edges, p=weights)
    jump = np.where((rng.random(n_edges) < skip_fraction) & (dst_part >= 2), 2, 1)
    src_part = dst_part - jump
    src = starts[src_part] + (rng.random(n_edges) * sizes[src_part]).astype(np.int64)
    dst = starts[dst_part] + (rng.random(n_edges) * sizes[dst_part]).astype(np.int64)
    weight = rng.standard_normal(n_edges).astype(np.float32)
    return from_edges(src, dst, weight, partitions)


def real_mge(model: str, sparsity: float):
    import torch

    from sparsetopo import encoding, models, pruning

    torch.manual_seed(0)
    net = models.create(model, num_classes=10)
    pruning.prune(net, "uniform", sparsity, seed=0)
    return encoding.multipartite(net, (3, 32, 32))


def child(case: str) -> dict:
    from sparsetopo.plot import mge

    spec, max_edges, _, _ = CASES[case]
    kind, arg = spec.split(":")
    graph = random_layered_graph(int(arg)) if kind == "random" else real_mge(kind, float(arg))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu = time.perf_counter(), time.process_time()
        mge(graph, Path(tmp) / "mge.png", max_edges=max_edges, title=case, progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        png_bytes = (Path(tmp) / "mge.png").stat().st_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    drawn = graph.n_edges if max_edges is None else min(max_edges, graph.n_edges)
    return {"case": case, "nodes": graph.n_nodes, "edges": graph.n_edges, "edges_drawn": drawn,
            "wall_s": wall, "cpu_s": cpu, "peak_rss_gb": peak / 1e9,
            "rss_before_draw_gb": rss_before / 1e9, "png_bytes": png_bytes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CASES))
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    cases = args.only or (QUICK if args.quick else list(CASES))
    rows, missed = [], []
    for case in cases:
        done = subprocess.run([sys.executable, __file__, "--child", case], capture_output=True,
                              text=True)
        if done.returncode != 0:
            print(f"{case}: failed\n{done.stderr[-3000:]}", file=sys.stderr)
            missed.append(f"{case}: failed")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        _, _, target_s, target_gb = CASES[case]
        row.update(target_s=target_s, target_gb=target_gb)
        if target_s is not None and row["wall_s"] > target_s:
            missed.append(f"{case}: {row['wall_s']:.1f} s > {target_s} s")
        if target_gb is not None and row["peak_rss_gb"] > target_gb:
            missed.append(f"{case}: {row['peak_rss_gb']:.2f} GB > {target_gb} GB")
        rows.append(row)
    header = f"{'case':34} {'edges':>11} {'drawn':>11} {'wall s':>7} {'cpu s':>7} {'peak GB':>8}"
    print(header)
    for r in rows:
        print(f"{r['case']:34} {r['edges']:>11,} {r['edges_drawn']:>11,} {r['wall_s']:>7.2f} "
              f"{r['cpu_s']:>7.2f} {r['peak_rss_gb']:>8.2f}")
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "load_avg_1m": os.getloadavg()[0]},
              "results": rows, "missed": missed}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    for line in missed:
        print(f"missed: {line}", file=sys.stderr)
    return 1 if (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
