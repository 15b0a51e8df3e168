"""``sparsetopo train``: one training run of any method, pruning at initialization or dynamic
sparse training (the work is in :mod:`sparsetopo.training.single_run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sparsetopo.cli._common import one_line_errors, out_console
from sparsetopo.errors import UsageError

Opt = typer.Option
DstOpt = "Dynamic sparse training (default: the method's own; fractions of training)"


@one_line_errors
def train(
    model: Annotated[str, Opt(help="Zoo model (see `sparsetopo models`) or PATH.py:FACTORY.")
                     ] = "resnet20",
    dataset: Annotated[str, Opt(help="Dataset to train and test on.")] = "digits",
    data_dir: Annotated[Path | None, Opt(help="Directory holding the dataset.")] = None,
    pruning: Annotated[str, Opt(help="Method: a pruning-at-initialization method (uniform, er, "
                                     "erk, snip, grasp, synflow, prospr, magnitude) or a dynamic "
                                     "sparse training one (set, rigl, snfs, dsr, itop).")
                       ] = "rigl",
    sparsity: Annotated[float, Opt(help="Fraction of weights removed, in [0, 1).")] = 0.9,
    epochs: Annotated[int | None, Opt(min=1, help="Epochs (default: the paper's; milestones "
                                                  "scale with it).")] = None,
    seed: Annotated[int, Opt(help="Seed of weights, masks, data order and mask updates.")] = 0,
    lr: Annotated[float | None, Opt(help="Learning rate (default 0.1).")] = None,
    momentum: Annotated[float | None, Opt(help="SGD momentum (default 0.9).")] = None,
    weight_decay: Annotated[float | None, Opt(help="Weight decay (default: the paper's).")
                            ] = None,
    batch_size: Annotated[int | None, Opt(help="Batch size (default 128).")] = None,
    augment: Annotated[bool | None, Opt("--augment/--no-augment", help="Random crop + flip "
                                        "(default: on for CIFAR and Tiny-ImageNet).")] = None,
    train_subset: Annotated[int, Opt(min=0, help="Train on a seeded subset of that many "
                                                 "images (0: all).")] = 0,
    test_subset: Annotated[int, Opt(min=0, help="Test on that many images (0: all).")] = 0,
    image_size: Annotated[int, Opt(min=0, help="Resize images to SIZE x SIZE (0: the "
                                               "dataset's).")] = 0,
    device: Annotated[str | None, Opt(help="cpu or cuda (default: cuda when available).")
                      ] = None,
    threads: Annotated[int | None, Opt(min=1, help="CPU threads (torch and BLAS; default: "
                                                   "torch's). On a shared machine 1 can be "
                                                   "many times faster.")] = None,
    drop_fraction: Annotated[float | None, Opt(help="Fraction of a layer's weights dropped "
                                               "at an update.", rich_help_panel=DstOpt)] = None,
    drop_decay: Annotated[str | None, Opt(help="constant or cosine.", rich_help_panel=DstOpt)
                          ] = None,
    drop_fraction_min: Annotated[float | None, Opt(help="Where the cosine decay ends.",
                                                   rich_help_panel=DstOpt)] = None,
    update_interval: Annotated[float | None, Opt(help="Fraction of training between mask "
                                                 "updates.", rich_help_panel=DstOpt)] = None,
    update_end: Annotated[float | None, Opt(help="Fraction of training after which the mask "
                                            "stays.", rich_help_panel=DstOpt)] = None,
    init_density: Annotated[str | None, Opt(help="Initial layer densities: uniform, er, erk.",
                                            rich_help_panel=DstOpt)] = None,
    grow_init: Annotated[str | None, Opt(help="Grown weights start at zeros or at their "
                                         "initial value (initial).", rich_help_panel=DstOpt)
                         ] = None,
    reset_momentum: Annotated[bool | None, Opt(
        "--reset-momentum/--keep-momentum", help="SNFS: grown weights start with zero "
        "momentum, or keep their dense-gradient momentum.", rich_help_panel=DstOpt)] = None,
    redistribution: Annotated[str | None, Opt(help="SNFS: momentum or none.",
                                              rich_help_panel=DstOpt)] = None,
    dsr_threshold: Annotated[float | None, Opt(help="DSR: initial magnitude threshold.",
                                               rich_help_panel=DstOpt)] = None,
    dsr_tolerance: Annotated[float | None, Opt(help="DSR: tolerance of the pruned count.",
                                               rich_help_panel=DstOpt)] = None,
    dsr_prune_target: Annotated[float | None, Opt(help="DSR: weights pruned per update, as a "
                                                  "fraction of the present ones.",
                                                  rich_help_panel=DstOpt)] = None,
    trajectory: Annotated[bool, Opt("--trajectory/--no-trajectory", help="Record the path "
                                    "metrics of the mask at every update.",
                                    rich_help_panel=DstOpt)] = True,
    out: Annotated[Path, Opt(help="Output directory.")] = Path("sparsetopo-out/train"),
    quiet: Annotated[bool, Opt(help="No progress bars.")] = False,
) -> None:
    """Train one sparse network with any method (PaI or dynamic sparse training).

    Writes model.pt (final masked state_dict, prune form), result.json and, for dynamic
    sparse training, trajectory.csv and trajectory.png (the mask's topology at every
    update)."""
    import torch

    from sparsetopo.io import ensure_dir
    from sparsetopo.training.single_run import check_method, dst_config, train_network, write_run

    check_method(pruning, sparsity)
    if device is not None and device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"--device must be cpu or cuda, got {device!r}")
    if device is not None and device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but torch sees no GPU")
    dst = dst_config(pruning, {
        "drop_fraction": drop_fraction, "drop_decay": drop_decay,
        "drop_fraction_min": drop_fraction_min, "update_interval": update_interval,
        "update_end": update_end, "init_density": init_density, "grow_init": grow_init,
        "reset_momentum": reset_momentum, "redistribution": redistribution,
        "dsr_threshold": dsr_threshold, "dsr_tolerance": dsr_tolerance,
        "dsr_prune_target": dsr_prune_target})
    training = {k: v for k, v in (("epochs", epochs), ("lr", lr), ("momentum", momentum),
                                  ("weight_decay", weight_decay), ("batch_size", batch_size),
                                  ("augment", augment)) if v is not None}
    ensure_dir(out)
    if threads is not None:
        from sparsetopo.study.runner import limit_threads

        limit_threads(threads)
    trained = train_network(model, dataset, pruning, sparsity, seed, training, dst,
                            data_dir=None if data_dir is None else str(data_dir),
                            train_subset=train_subset, test_subset=test_subset,
                            image_size=image_size, device=device, trajectory=trajectory,
                            progress=not quiet)
    written = write_run(trained, out)
    if trained.result.trajectory:
        from sparsetopo import plot
        from sparsetopo.study.store import trajectory_frame

        frame = trajectory_frame(trained.result.trajectory)
        frame["method"], frame["sparsity"] = pruning, sparsity
        title = f"{model} / {dataset} / {pruning} at sparsity {sparsity:g}, seed {seed}"
        written["picture"] = plot.trajectory(frame, out / "trajectory.png", title=title)
    _print_summary(trained, written)


def _print_summary(trained, written) -> None:
    summary = trained.summary()
    out_console.print(
        f"{summary['model']} on {summary['dataset']}, {summary['method']} "
        f"({summary['category']}) at sparsity {summary['sparsity']:g}: test accuracy "
        f"{summary['test_accuracy']:.4f} after {len(summary['train_loss_history'])} epochs")
    topology = summary["final_topology"]
    out_console.print(
        f"final mask: {summary['present_weights']:,} of {summary['total_weights']:,} weights, "
        f"effective density {topology.get('effective_density', float('nan')):.4f}, "
        f"log10 paths {topology.get('log10_paths', float('nan')):.2f}")
    if summary["mask_updates"]:
        out_console.print(f"{summary['mask_updates']} mask updates, exploration rate R_s "
                          f"{summary['exploration_rate']:.4f}")
    if summary["collapsed"]:
        out_console.print("the network collapsed: no input->output path is left")
    if summary["diverged"]:
        out_console.print("training diverged: the loss is not finite")
    timings = summary["timings"]
    out_console.print(f"time: {timings['total']:.1f} s (training loop "
                      f"{timings['train_loop']:.1f} s, mask updates "
                      f"{timings['mask_update']:.1f} s, trajectory {timings['trajectory']:.1f} s)")
    out_console.print("wrote " + ", ".join(str(p) for p in written.values()))
