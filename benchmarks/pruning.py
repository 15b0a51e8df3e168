"""Time every pruning-at-initialization method on a zoo model (CPU).

    .venv/bin/python benchmarks/pruning.py [--model resnet20] [--sparsity 0.98] [--seed 0]
        [--methods ...] [--threads N] [--out FILE]

Data: the ``synthetic`` dataset (Gaussian 3x32x32 images, 10 classes, 512 samples) in batches
of 128. Each method prunes a fresh model built with ``torch.manual_seed(seed)``; the time of one
``prune`` call (wall and process CPU) is written to ``benchmarks/results/pruning.json``
(atomically) and printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from sparsetopo import models
from sparsetopo.data import make_loader
from sparsetopo.pruning import METHODS, count_weights, prune

RESULTS = Path(__file__).resolve().parent / "results" / "pruning.json"


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write ``payload`` as JSON to ``path`` via a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def time_method(model_name: str, method: str, sparsity: float, seed: int, loader) -> dict:
    """Prune a fresh ``model_name`` with ``method`` once; wall/CPU seconds and the result."""
    torch.manual_seed(seed)
    model = models.create(model_name)
    wall, cpu = time.perf_counter(), time.process_time()
    prune(model, method, sparsity, data=loader, seed=seed)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    present, total = count_weights(model)
    return {
        "method": method,
        "wall_s": round(wall, 4),
        "cpu_s": round(cpu, 4),
        "present": present,
        "total": total,
        "sparsity": 1 - present / total,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--sparsity", type=float, default=0.98)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    loader = make_loader(
        "synthetic", "train", batch_size=128, seed=args.seed, shape=(3, 32, 32), n=512
    )
    rows = []
    for method in args.methods:
        rows.append(time_method(args.model, method, args.sparsity, args.seed, loader))
        r = rows[-1]
        print(
            f"{r['method']:<10} {r['wall_s']:>9.3f} s wall {r['cpu_s']:>9.3f} s cpu "
            f"{r['present']:>8d}/{r['total']} kept (sparsity {r['sparsity']:.6f})",
            flush=True,
        )
    payload = {
        "benchmark": "pruning at initialization, one prune() call per method",
        "model": args.model,
        "sparsity": args.sparsity,
        "seed": args.seed,
        "data": "synthetic 3x32x32, 10 classes, 512 samples, batch 128",
        "device": "cpu",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "results": rows,
    }
    write_json_atomic(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
