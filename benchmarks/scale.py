"""Every topometric of ImageNet's ResNet-50 at 224x224 on one machine (issue 29, item 3).

    .venv/bin/python benchmarks/scale.py [--only NAME] [--repeats 3]

Two sets of cases, each in its own subprocess, every network's weights from
``torch.manual_seed(0)`` (1000 classes for ResNet-50, SNIP on 16 Gaussian images with random
labels, seed 0, as ``benchmarks/network_paths.py``):

- ``scale``: ``analysis.analyze_network`` (what ``sparsetopo analyze`` runs) on ResNet-50 at
  3x224x224, uniform and SNIP masks at 0.8 and 0.9, and dense. ``predicted_gb`` is the peak of
  the route ``analyze`` chose, predicted before any work (``analysis.mge_route_bytes``: both MGEs,
  or the MGE alone with the path metrics by passes; without an MGE the largest of the passes',
  the spectra's and, when it fits, the packed undirected graph's own peaks), ``reserved_gb`` what was
  reserved on top of it once counted (``two_hop``'s word rows, checked before allocation);
  ``peak_extra_gb`` the largest RSS seen during the call (sampled every 10 ms) minus the RSS
  before it; ``available_gb`` what the machine had. ``route``: ``both`` (both MGEs),
  ``alone`` (the topometrics' MGE, paths by passes) or ``passes`` (no MGE: passes, and the
  structural topometrics on the packed undirected graph).
- ``reference``: the reference networks at 3x32x32 (10 classes, uniform masks): the MGE's build
  one source partition at a time (``encoding.multipartite``) and the build it replaced (every
  edge of every layer at once, then one ``from_edges``), alternated in one process,
  ``--repeats`` runs each (medians); the graphs must be identical.

Results: ``benchmarks/results/scale.json`` (atomic) and a printed table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from network_paths import _measured, _model, run_child  # noqa: E402

OUT = Path(__file__).parent / "results" / "scale.json"
#: (name, model, pruning, sparsity, input side)
SCALE = [
    ("resnet50-uniform0.9@224", "resnet50", "uniform", 0.9, 224),
    ("resnet50-snip0.9@224", "resnet50", "snip", 0.9, 224),
    ("resnet50-uniform0.8@224", "resnet50", "uniform", 0.8, 224),
    ("resnet50-snip0.8@224", "resnet50", "snip", 0.8, 224),
    ("resnet50-dense@224", "resnet50", None, 0.0, 224),
]
REFERENCE = [
    ("resnet20-uniform0.98@32", "resnet20", "uniform", 0.98, 32),
    ("resnet20-uniform0.9@32", "resnet20", "uniform", 0.9, 32),
    ("resnet20-uniform0.6@32", "resnet20", "uniform", 0.6, 32),
    ("conv6-uniform0.9@32", "conv6", "uniform", 0.9, 32),
    ("wrn28_2-uniform0.98@32", "wrn28_2", "uniform", 0.98, 32),
]


def scale_child(case: str) -> dict:
    import torch

    from sparsetopo import analysis, encoding, metrics
    from sparsetopo._memory import release_freed_memory

    torch.set_num_threads(1)
    name, model, method, sparsity, side = next(c for c in SCALE if c[0] == case)
    shape = (3, side, side)
    t = time.perf_counter()
    net = analysis.Network(_model(model, method, sparsity, side), model, "synthetic",
                           method or "dense", sparsity, 0, shape)
    net.seconds = time.perf_counter() - t
    release_freed_memory()
    plain = encoding.estimate(net.model, shape)
    skips = encoding.estimate(net.model, shape, True)
    both, alone = analysis.mge_route_bytes(skips, plain, plain == skips)
    available = encoding.memory_available()
    packed = metrics.estimate_network_topology(net.model, shape).peak_bytes
    passes = max(metrics.estimate_network_paths(net.model, shape, True).peak_bytes,
                 metrics.estimate_network_spectra(net.model, shape),
                 packed if packed <= available else 0)  # else not run
    load_before = os.getloadavg()[0]
    reserved = _recording_reservations()
    result, seconds, peak = _measured(lambda: analysis.analyze_network(net, progress=False))
    route = ("both" if both <= available else "alone" if alone <= available else "passes")
    predicted = {"both": both, "alone": alone, "passes": passes}[route]
    return {"case": name, "model": model, "pruning": method or "dense", "sparsity": sparsity,
            "input": f"3x{side}x{side}", "nodes": plain.nodes, "edges": plain.edges,
            "edges_with_skips": skips.edges, "route": route, "seconds": seconds,
            "prune_s": net.seconds, "timings": result["timings"],
            "predicted_gb": predicted / 2**30, "both_gb": both / 2**30,
            "alone_gb": alone / 2**30, "passes_gb": passes / 2**30,
            "available_gb": available / 2**30, "peak_extra_gb": peak,
            "reserved_gb": {k: v / 2**30 for k, v in reserved.items()},
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "topometrics": result["topometrics"], "unavailable": sorted(result["unavailable"]),
            "load1": [load_before, os.getloadavg()[0]]}


def _recording_reservations() -> dict[str, int]:
    """What the metrics reserve after the prediction (``BaseView.reserve``: ``two_hop``'s word
    rows, counted when they come), recorded as they are checked."""
    from sparsetopo.metrics._view import BaseView

    reserved: dict[str, int] = {}
    check = BaseView.reserve

    def record(view, what: str, n_bytes: int) -> None:
        reserved[what] = max(reserved.get(what, 0), n_bytes)
        check(view, what, n_bytes)

    BaseView.reserve = record
    return reserved


def _global_build(net, shape):
    """The build before issue 29: every edge of every layer at once, then one ``from_edges``."""
    import numpy as np

    from sparsetopo.encoding import _multipartite as mp
    from sparsetopo.encoding.graph import from_edges

    plan = mp._plan(net, shape, False)
    edges = [mp._job_edges(job) for job in plan.jobs]
    arrays = [np.concatenate([e[i] for e in edges]) for i in range(4)]
    del edges
    return from_edges(*arrays[:3], plan.partitions, weight_ids=arrays[3],
                      merge=plan.may_merge, consume=True)


def reference_child(case: str, repeats: int) -> dict:
    import numpy as np
    import torch

    from sparsetopo import encoding
    from sparsetopo._memory import release_freed_memory

    torch.set_num_threads(1)
    name, model, method, sparsity, side = next(c for c in REFERENCE if c[0] == case)
    shape = (3, side, side)
    net = _model(model, method, sparsity, side)
    encoding.multipartite(net, shape)  # warm caches
    new, old, peaks_new, peaks_old = [], [], [], []
    for _ in range(repeats):
        release_freed_memory()
        g_new, s, p = _measured(lambda: encoding.multipartite(net, shape))
        new.append(s)
        peaks_new.append(p)
        del g_new
        release_freed_memory()
        g_old, s, p = _measured(lambda: _global_build(net, shape))
        old.append(s)
        peaks_old.append(p)
        del g_old
    a, b = encoding.multipartite(net, shape), _global_build(net, shape)
    same = all(np.array_equal(getattr(a.adjacency, k), getattr(b.adjacency, k))
               for k in ("indptr", "indices", "data"))
    return {"case": name, "edges": a.n_edges, "build_s": statistics.median(new),
            "build_runs": new, "global_build_s": statistics.median(old), "global_runs": old,
            "peak_extra_gb": max(peaks_new), "global_peak_extra_gb": max(peaks_old),
            "identical": same, "load1": os.getloadavg()[0]}


def _fmt(row: dict) -> str:
    if "error" in row:
        return f"{row['case']:<26} ERROR {row['error']}"
    if "route" in row:
        t = row["timings"]
        return (f"{row['case']:<26} {row['route']:<6} {row['seconds']:7.1f} s (passes "
                f"{t.get('passes_s', 0):.1f}, spectra {t.get('spectra_s', 0):.1f}, packed "
                f"{t.get('topology_s', 0):.1f}, build {t.get('encode_s', 0):.1f}, topometrics "
                f"{t.get('topometrics_s', 0):.1f})  peak +{row['peak_extra_gb']:.2f} GiB, "
                f"predicted {row['predicted_gb']:.2f} + reserved "
                f"{sum(row.get('reserved_gb', {}).values()):.2f}, available {row['available_gb']:.1f}  "
                f"edges {row['edges']:,}  NaN: {len(row['unavailable'])}")
    return (f"{row['case']:<26} build {row['build_s']:.3f} s vs {row['global_build_s']:.3f} s "
            f"(global), peak +{row['peak_extra_gb']:.2f} vs +{row['global_peak_extra_gb']:.2f} "
            f"GiB, identical {row['identical']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", help="run only the cases whose name contains this")
    ap.add_argument("--repeats", type=int, default=3, help="builds per reference network")
    ap.add_argument("--out", type=Path, default=OUT, help="result file")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        case, repeats = args.child
        row = (scale_child(case) if case.endswith("@224")
               else reference_child(case, int(repeats)))
        print(json.dumps(row, default=float))
        return
    from sparsetopo.io import write_text

    rows = []
    for case, *_ in REFERENCE + SCALE:
        if args.only and args.only not in case:
            continue
        row = run_child(__file__, [case, str(args.repeats)], {"case": case})
        rows.append(row)
        print(_fmt(row), flush=True)
    order = [c[0] for c in REFERENCE + SCALE]
    if args.out.exists():  # a partial run (--only) replaces its rows, keeps the others
        done = {r["case"] for r in rows}
        rows += [r for r in json.loads(args.out.read_text())["rows"]
                 if r["case"] not in done and r["case"] in order]
    rows.sort(key=lambda r: order.index(r["case"]))
    result = {"machine": platform.platform(), "cpus": os.cpu_count(),
              "command": "python benchmarks/scale.py " + " ".join(sys.argv[1:]), "rows": rows}
    write_text(args.out, json.dumps(result, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
