"""The checks of ``scripts/gpu-check.sh`` that need Python: what the machine is, whether a
study on the GPU did what it should, whether masks stay exactly fixed when training on the GPU.
Each subcommand writes one JSON file to ``--out`` and exits 1 when a check fails.

    python scripts/gpu_check.py environment --out DIR
    python scripts/gpu_check.py study --out DIR A.sqlite [B.sqlite ...]
    python scripts/gpu_check.py masks --out DIR [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from datetime import datetime
from pathlib import Path


def _write(out: Path, name: str, payload: dict) -> bool:
    out.mkdir(parents=True, exist_ok=True)
    from sparsetopo.io import json_value  # NaN as null

    text = json.dumps(json_value(payload), indent=2, default=str)
    (out / f"{name}.json").write_text(text + "\n")
    failed = payload.get("failed_checks", [])
    print(f"{name}: {'FAILED ' + '; '.join(failed) if failed else 'ok'}")
    return not failed


def environment(out: Path) -> bool:
    import torch

    smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout \
        if Path("/usr/bin/nvidia-smi").exists() else None
    cuda = torch.cuda.is_available()
    return _write(out, "environment", {
        "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cuda_available": cuda,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "nvidia_smi": smi, "failed_checks": [] if cuda else ["torch sees no GPU"]})


def _overlap(starts: list[datetime], ends: list[datetime]) -> int:
    """Largest number of runs running at the same moment."""
    events = sorted([(s, 1) for s in starts] + [(e, -1) for e in ends])
    best = now = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def study(out: Path, results: list[Path]) -> bool:
    from sparsetopo.study.store import load_runs

    report, failed = {}, []
    for path in results:
        runs = load_runs(path, status="all")
        ok = runs[runs["status"] == "ok"]
        starts = [datetime.fromisoformat(s) for s in runs["started"]]
        ends = [datetime.fromisoformat(s) for s in runs["finished"]]
        devices = sorted(set(runs["device"].astype(str)))
        row = {"runs": len(runs), "ok": len(ok), "devices": devices,
               "max_concurrent_runs": _overlap(starts, ends),
               "images_per_second": ok["images_per_second"].round(1).tolist(),
               "peak_accelerator_memory_mb": ok["peak_accelerator_memory_mb"].round(1).tolist(),
               "accuracy": ok["accuracy"].round(4).tolist(),
               "errors": runs.loc[runs["status"] != "ok", "error"].str[:300].tolist()}
        report[path.name] = row
        if len(ok) != len(runs):
            failed.append(f"{path.name}: {len(runs) - len(ok)} failed run(s)")
        if not all(d.startswith("cuda") for d in devices):
            failed.append(f"{path.name}: runs trained on {devices}")
        if ok["peak_accelerator_memory_mb"].isna().any():
            failed.append(f"{path.name}: peak accelerator memory missing")
        if row["max_concurrent_runs"] < 4:
            failed.append(f"{path.name}: at most {row['max_concurrent_runs']} runs at once")
    return _write(out, "study", {"results": report, "failed_checks": failed})


def masks(out: Path, device: str = "cuda") -> bool:
    """Prune resnet20 (SNIP on synthetic data), train it on the GPU in float32 and in bfloat16
    + channels-last, and check that every mask is unchanged and every masked weight exactly 0."""
    import torch

    from sparsetopo import data, models, pruning
    from sparsetopo.pruning.masks import get_masks
    from sparsetopo.training import TrainConfig, train

    failed, rows = [], []
    device = torch.device(device)
    for fast in (False, True):
        model = models.create("resnet20", seed=0)
        loader = data.make_loader("synthetic", "train", 64, seed=0, shape=(3, 32, 32), n=512)
        pruning.prune(model, "snip", 0.95, data=loader, seed=0)
        before = {k: v.clone() for k, v in get_masks(model).items()}
        gpu_loader = data.make_loader("synthetic", "train", 64, augment=True, seed=0,
                                      shape=(3, 32, 32), n=512, device=device)
        test = data.make_loader("synthetic", "test", 256, shape=(3, 32, 32), n=256,
                                device=device)
        config = TrainConfig(epochs=2, milestones=(), lr=0.1, amp=fast, channels_last=fast)
        result = train(model, gpu_loader, test, config, device=device, progress=False)
        after = get_masks(model)
        same = all(torch.equal(before[k].cpu(), after[k].cpu()) for k in before)
        nonzero = sum(int((dict(model.named_modules())[k.rsplit(".", 1)[0]].weight.detach()
                           [~after[k].to(device)] != 0).sum()) for k in after)
        rows.append({"amp_channels_last": fast, "device": result.device,
                     "masks_unchanged": same, "nonzero_masked_weights": nonzero,
                     "peak_memory_mb": result.peak_memory_mb,
                     "accuracy": result.test_accuracy})
        if not same or nonzero:
            failed.append(f"amp={fast}: masks changed ({not same}) or {nonzero} masked weights "
                          "non-zero")
    return _write(out, "masks", {"runs": rows, "failed_checks": failed})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=("environment", "study", "masks"))
    parser.add_argument("results", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda", help="masks: where to train")
    args = parser.parse_intermixed_args(argv)
    if args.check == "environment":
        ok = environment(args.out)
    elif args.check == "study":
        ok = study(args.out, args.results)
    else:
        ok = masks(args.out, args.device)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
