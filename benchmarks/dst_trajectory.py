"""What recording the topology trajectory adds to a dynamic sparse training run, on the digits
preset's settings.

    .venv/bin/python benchmarks/dst_trajectory.py [--models resnet20 conv6] [--sparsity 0.98]
        [--intervals default 0.05] [--repeats 1] [--threads 1] [--paths passes graph]
        [--out FILE]
    .venv/bin/python benchmarks/dst_trajectory.py --records [--sizes 8 32] [--models ...]

Each run is the digits preset's training (8 epochs, lr 0.05, batch 64, the whole digits training
set at 8x8, seed 0), with a dynamic sparse training method at ``--sparsity``, its update
interval the method's default or the one given; run with the trajectory computed each way of
``--paths`` and without it (``DynamicSparsity(input_shape=...)`` or ``None``), alternated,
``--threads`` torch threads (1: a study worker with ``--workers 2`` on two cores). The ways:
``passes``, the library's ``training.mask_topology`` (passes of the network); ``graph``, the
computation it replaced (the MGE with identity skips built, then ``metrics.topometrics``),
swapped in for the comparison. Reported per run: the number of mask updates, the training time
with each way and without recording, and the time the run itself spent recording
(``TrainResult.record_seconds``) as a share of the run's training time (the least noisy figure
on a busy machine). Results: ``benchmarks/results/dst_trajectory.json`` (atomically) and a
printed table.

``--records``: the cost of one record alone, each way, on a network (RigL's ERK mask at
``--sparsity``, one input channel, 10 classes) at each input size of ``--sizes`` (8: digits;
32: CIFAR-sized): the median over ``--blocks`` alternated blocks of 5 records each way.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "dst_trajectory.json"
RECORDS = RESULTS.with_name("dst_trajectory_records.json")
PATHS = ("passes", "graph")


def graph_topology(model, input_shape, dag=None) -> dict:
    """The trajectory's path metrics by the graph: the MGE with identity skips, then
    ``metrics.topometrics`` (the computation ``mask_topology`` did before the passes)."""
    from sparsetopo import encoding, metrics
    from sparsetopo.training.trajectory import TRAJECTORY_METRICS

    graph = encoding.multipartite(model, tuple(input_shape), identity_skips=True, dag=dag)
    return metrics.topometrics(graph, keys=TRAJECTORY_METRICS)


def use_paths(way: str) -> None:
    """Make every recorder compute its metrics the ``way`` of :data:`PATHS`."""
    from sparsetopo.training import trajectory

    if not hasattr(trajectory, "_passes"):
        trajectory._passes = trajectory.mask_topology
    trajectory.mask_topology = graph_topology if way == "graph" else trajectory._passes


def one(model_name: str, method: str, sparsity: float, interval: float | None,
        record: bool) -> dict:
    from sparsetopo import data, models
    from sparsetopo.training import DSTConfig, DynamicSparsity, TrainConfig, sparse_init, train

    config = DSTConfig(update_interval=interval) if interval is not None else DSTConfig()
    net = models.create(model_name, num_classes=10, in_channels=1, seed=0, image_size=8)
    sparse_init(net, method, sparsity, seed=0, config=config)
    train_loader = data.make_loader("digits", "train", 64, seed=0, image_size=8)
    test_loader = data.make_loader("digits", "test", 256, image_size=8)
    training = TrainConfig.paper_defaults(model_name, "digits", epochs=8, lr=0.05,
                                          batch_size=64)
    start = time.perf_counter()
    result = train(net, train_loader, test_loader, training, device="cpu", seed=0,
                   progress=False, dst=DynamicSparsity(method, config,
                                                       (1, 8, 8) if record else None))
    return {"seconds": time.perf_counter() - start, "train_seconds": result.train_seconds,
            "record_seconds": result.record_seconds, "updates": result.mask_updates,
            "accuracy": result.test_accuracy}


def records(models: list[str], sizes: list[int], sparsity: float, blocks: int) -> list[dict]:
    """Median milliseconds of one record, each way of :data:`PATHS`, alternated in blocks."""
    import statistics

    from sparsetopo import models as zoo
    from sparsetopo.training import DSTConfig, TopologyRecorder, sparse_init

    rows = []
    for model_name in models:
        for size in sizes:
            net = zoo.create(model_name, num_classes=10, in_channels=1, seed=0, image_size=size)
            sparse_init(net, "rigl", sparsity, seed=0, config=DSTConfig())
            recorder = TopologyRecorder(net, (1, size, size))
            times: dict[str, list[float]] = {way: [] for way in PATHS}
            values = {}
            for b in range(blocks):
                for way in PATHS if b % 2 == 0 else PATHS[::-1]:
                    use_paths(way)
                    for _ in range(5):
                        start = time.perf_counter()
                        values[way] = recorder(net)
                        times[way].append(time.perf_counter() - start)
            row = {"model": model_name, "size": size,
                   **{f"{way}_ms": 1e3 * statistics.median(times[way]) for way in PATHS},
                   "equal": values["passes"] == values["graph"]}
            rows.append(row)
            print(f"{model_name:9s} {size:3d}x{size:<3d} passes {row['passes_ms']:7.1f} ms  "
                  f"graph {row['graph_ms']:7.1f} ms  same values: {row['equal']}", flush=True)
    use_paths("passes")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "conv6"])
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--sparsity", type=float, default=0.98)
    parser.add_argument("--intervals", nargs="+", default=["default", "0.05"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--records", action="store_true")
    parser.add_argument("--sizes", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from sparsetopo.io import write_text
    from sparsetopo.training import DST_METHODS

    torch.set_num_threads(args.threads)
    meta = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": sys.version.split()[0], "torch": torch.__version__,
            "machine": platform.node(), "threads": args.threads, "sparsity": args.sparsity}
    if args.records:
        rows = records(args.models, args.sizes, args.sparsity, args.blocks)
        write_text(args.out or RECORDS, json.dumps({**meta, "rows": rows}, indent=2) + "\n")
        return
    for way in args.paths:  # warm-up: imports, numba compiles
        use_paths(way)
        one(args.models[0], "rigl", args.sparsity, 0.5, True)
    rows = []
    for model_name in args.models:
        for interval_text in args.intervals:
            interval = None if interval_text == "default" else float(interval_text)
            for method in args.methods or DST_METHODS:
                on: dict[str, list] = {way: [] for way in args.paths}
                off = []
                for r in range(args.repeats):  # alternated: each way, then without
                    for way in args.paths if r % 2 == 0 else args.paths[::-1]:
                        use_paths(way)
                        on[way].append(one(model_name, method, args.sparsity, interval, True))
                    off.append(one(model_name, method, args.sparsity, interval, False))
                without_s = min(r["seconds"] for r in off)
                row = {"model": model_name, "method": method, "interval": interval_text,
                       "updates": off[0]["updates"], "without_s": without_s}
                text = ""
                for way, runs in on.items():
                    with_s = min(r["seconds"] for r in runs)
                    row[way] = {
                        "with_s": with_s, "added": (with_s - without_s) / without_s,
                        "record_s": min(r["record_seconds"] for r in runs),
                        "record_share": min(r["record_seconds"] / r["seconds"] for r in runs),
                    }
                    text += (f" {way}: with={with_s:6.1f}s recording={row[way]['record_s']:6.2f}s"
                             f" ({100 * row[way]['record_share']:5.1f}%)")
                rows.append(row)
                print(f"{model_name:9s} {method:5s} interval={interval_text:8s} "
                      f"updates={row['updates']:4d} without={without_s:6.1f}s{text}", flush=True)
    write_text(args.out or RESULTS, json.dumps({**meta, "paths": args.paths, "rows": rows},
                                               indent=2) + "\n")


if __name__ == "__main__":
    main()
