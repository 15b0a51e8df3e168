"""Training throughput (images/s) of one resnet20 study run, on CPU and, when there is one, a GPU.

    .venv/bin/python benchmarks/training.py [--images 256] [--epochs 2] [--batch-size 128]
        [--sparsity 0.9] [--parallel 1 2] [--gpu-images 16384] [--gpu-epochs 3]
        [--packed 1 2 4] [--out FILE]

Data: the ``synthetic`` dataset (Gaussian 3x32x32 images, 10 classes), augmented with the study
runs' random crop + flip. Model: resnet20 pruned with ``uniform`` at ``--sparsity`` (masks in
``torch.nn.utils.prune`` form, as in a study). Each measurement is ``training.train`` (the
study's training loop): one warm-up epoch, then ``--epochs`` timed epochs; images/s = training
images / training seconds (evaluation excluded).

- CPU: ``--parallel`` runs at once in separate processes, each with ``cpu_count // runs``
  torch threads (1: one run with every core; 2: two runs side by side, as ``study run
  --workers 2``); "total" is the sum of the runs' images/s.
- GPU (only ``if torch.cuda.is_available()``): 1, 2 and 4 runs (``--packed``) at once on GPU 0,
  as ``--gpus-per-run 1``, ``0.5`` and ``0.25`` pack them, data on the device, in float32 and
  with ``amp`` + ``channels_last``; peak memory is ``torch.cuda.max_memory_allocated`` per run.

Runs that go together start their timed epochs together (a barrier after the warm-up). Results:
``benchmarks/results/training.json`` (atomically) and a printed table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "training.json"


def one_run(job: dict) -> dict:
    """Build, prune and train one resnet20 as ``job`` says (in its own process); after the
    warm-up epoch, wait on ``job["barrier"]`` so that runs measured together overlap."""
    if job["device"] == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    from sparsetopo import models, pruning
    from sparsetopo.data import make_loader
    from sparsetopo.training import TrainConfig, train

    torch.set_num_threads(job["threads"])
    device = torch.device(job["device"])
    torch.manual_seed(job["seed"])
    model = models.create("resnet20", seed=job["seed"])
    pruning.prune(model, "uniform", job["sparsity"], seed=job["seed"])
    loader = make_loader("synthetic", "train", job["batch_size"], augment=True, seed=job["seed"],
                         shape=(3, 32, 32), n=job["images"], device=device)
    test = make_loader("synthetic", "test", 512, shape=(3, 32, 32), n=512, device=device)
    options = {"amp": job["amp"], "channels_last": job["channels_last"]}
    warm = TrainConfig(epochs=1, milestones=(), augment=True, batch_size=job["batch_size"],
                       **options)
    train(model, loader, test, warm, device=device, progress=False)
    job["barrier"].wait()
    timed = TrainConfig(epochs=job["epochs"], milestones=(), augment=True,
                        batch_size=job["batch_size"], **options)
    result = train(model, loader, test, timed, device=device, progress=False)
    return {"images_per_second": result.images_per_second, "train_seconds": result.train_seconds,
            "images": result.images, "device": result.device, "device_name": result.device_name,
            "peak_accelerator_memory_mb": result.peak_memory_mb,
            "torch_threads": torch.get_num_threads()}


def measure(runs: int, base: dict) -> dict:
    """``runs`` copies of ``base`` at once in spawned processes (seeds 0..runs-1)."""
    context = get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(runs, timeout=600)
        jobs = [{**base, "seed": k, "barrier": barrier} for k in range(runs)]
        pool = context.Pool(runs)
        try:
            per_run = pool.map(one_run, jobs)
        except BaseException:
            pool.terminate()
            raise
        pool.close()
        pool.join()
    total = sum(r["images_per_second"] for r in per_run)
    row = {k: v for k, v in base.items() if k != "barrier"}
    row.update(runs=runs, total_images_per_second=round(total, 1),
               per_run_images_per_second=[round(r["images_per_second"], 1) for r in per_run],
               peak_accelerator_memory_mb=[r["peak_accelerator_memory_mb"] for r in per_run],
               device_name=per_run[0]["device_name"], torch_threads=per_run[0]["torch_threads"])
    return row


def _print(row: dict) -> None:
    mode = "amp+channels_last" if row["amp"] else "float32"
    memory = row["peak_accelerator_memory_mb"][0]
    shown = f"  peak {memory:,.0f} MiB/run" if memory is not None else ""
    print(f"{row['device']:<5} {mode:<18} {row['runs']} run(s) x {row['torch_threads']} thr  "
          f"{row['total_images_per_second']:>10,.1f} images/s total  "
          f"(per run {', '.join(f'{v:,.1f}' for v in row['per_run_images_per_second'])})"
          f"{shown}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="training images (CPU)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (CPU)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2],
                        help="CPU runs at once")
    parser.add_argument("--gpu-images", type=int, default=16384)
    parser.add_argument("--gpu-epochs", type=int, default=3)
    parser.add_argument("--packed", type=int, nargs="+", default=[1, 2, 4],
                        help="GPU runs at once on one GPU")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    from sparsetopo.io import write_text

    cpus = os.cpu_count() or 1
    rows = []
    for runs in args.parallel:
        base = {"device": "cpu", "threads": max(1, cpus // runs), "images": args.images,
                "epochs": args.epochs, "batch_size": args.batch_size,
                "sparsity": args.sparsity, "amp": False, "channels_last": False}
        rows.append(measure(runs, base))
        _print(rows[-1])
    gpu = torch.cuda.is_available()
    if gpu:
        for fast in (False, True):
            for runs in args.packed:
                base = {"device": "cuda:0", "threads": max(1, cpus // runs),
                        "images": args.gpu_images, "epochs": args.gpu_epochs,
                        "batch_size": args.batch_size, "sparsity": args.sparsity,
                        "amp": fast, "channels_last": fast}
                rows.append(measure(runs, base))
                _print(rows[-1])
    else:
        print("no GPU visible to torch: GPU measurements skipped", flush=True)
    payload = {
        "benchmark": "training throughput of resnet20 study runs (images/s, training only)",
        "model": "resnet20",
        "pruning": f"uniform {args.sparsity}",
        "data": "synthetic 3x32x32, 10 classes, random crop + flip",
        "gpu": torch.cuda.get_device_name(0) if gpu else None,
        "torch": torch.__version__,
        "cpu_count": cpus,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "results": rows,
    }
    write_text(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
