"""One training run of any method, pruning at initialization or dynamic sparse training, from
plain options (``sparsetopo train``), and the files it leaves.

:func:`train_network` builds the model, gives it its initial mask (the pruning method's, or the
dynamic sparse training method's random one), trains it and measures the topology of its final
mask; :func:`write_run` writes ``model.pt`` (the final ``state_dict`` in
``torch.nn.utils.prune`` form, loadable with ``weights_only=True``), ``result.json`` and, for
dynamic sparse training, ``trajectory.csv`` (one row per mask update).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparsetopo import data, models, pruning
from sparsetopo.errors import UsageError
from sparsetopo.io import atomic_path, ensure_dir, write_text

from .categories import category
from .dst import DST_METHODS, DSTConfig, DynamicSparsity, is_dst, parameters, sparse_init
from .loop import TrainConfig, TrainResult, default_device, train
from .trajectory import TopologyRecorder

SUBSET_SEED = 0  # the same training/test subset whatever the run's seed (as in a study)


@dataclass
class TrainedNetwork:
    """What :func:`train_network` returns.

    Parameters
    ----------
    model : torch.nn.Module
        The trained network, its final masks in ``torch.nn.utils.prune`` form.
    result : TrainResult
        Accuracy, curves, timings and (dynamic sparse training) the trajectory.
    config : dict
        The run's configuration as plain data: ``model``, ``dataset``, ``method``,
        ``category``, ``sparsity``, ``seed``, ``training``, ``dst``, ``data``.
    topology : dict of str to float
        ``training.mask_topology`` of the final mask.
    input_shape : tuple of int
        ``(C, H, W)`` of one input.
    timings : dict of str to float
        Seconds of each phase (``prune``, ``train``, ``topology``, ``total``).
    """

    model: nn.Module
    result: TrainResult
    config: dict[str, Any]
    topology: dict[str, float]
    input_shape: tuple[int, int, int]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def dynamic(self) -> bool:
        """Whether the run's method is a dynamic sparse training method."""
        return is_dst(self.config["method"])

    def summary(self) -> dict[str, Any]:
        """The content of ``result.json``."""
        present, total = pruning.count_weights(self.model)
        losses = self.result.train_loss_history
        return {
            **{k: self.config[k] for k in ("model", "dataset", "method", "category",
                                           "sparsity", "seed")},
            "test_accuracy": self.result.test_accuracy,
            "measured_sparsity": 1.0 - present / total,
            "present_weights": present,
            "total_weights": total,
            "train_loss_history": losses,
            "train_accuracy_history": self.result.train_accuracy_history,
            "diverged": any(not math.isfinite(v) for v in losses),
            "collapsed": not self.topology.get("alive_edges", 1) > 0,
            "final_topology": self.topology,
            "mask_updates": self.result.mask_updates,
            "exploration_rate": (self.result.trajectory[-1]["exploration_rate"]
                                 if self.result.trajectory else present / total),
            "device": self.result.device,
            "device_name": self.result.device_name,
            "timings": {**self.timings, "train_loop": self.result.train_seconds,
                        "mask_update": self.result.mask_update_seconds,
                        "trajectory": self.result.record_seconds},
            "config": {k: self.config[k] for k in ("training", "dst", "data")},
        }


def check_method(method: str, sparsity: float) -> None:
    """Check a method and a sparsity before any work.

    Parameters
    ----------
    method : str
        A pruning-at-initialization or dynamic sparse training method.
    sparsity : float
        Target sparsity.

    Raises
    ------
    UsageError
        An unknown method or a sparsity outside [0, 1) (one line, with what is supported).
    """
    known = (*pruning.METHODS, *DST_METHODS)
    if method not in known:
        raise UsageError(f"unknown method {method!r}; valid: {', '.join(known)}")
    if not (0.0 <= sparsity < 1.0) or math.isnan(sparsity):
        raise UsageError(f"sparsity must be in [0, 1), got {sparsity}")


def dst_config(method: str, given: dict[str, Any]) -> DSTConfig | None:
    """The dynamic sparse training hyper-parameters of command-line options.

    Parameters
    ----------
    method : str
        The run's method.
    given : dict
        Option name (a :class:`DSTConfig` field) -> value, ``None`` = not given.

    Returns
    -------
    DSTConfig or None
        The options given; ``None`` for a pruning-at-initialization method.

    Raises
    ------
    UsageError
        An option given for a pruning-at-initialization method, or one that is not a parameter
        of ``method``.
    """
    given = {k: v for k, v in given.items() if v is not None}
    if not is_dst(method):
        if given:
            name = sorted(given)[0].replace("_", "-")
            raise UsageError(f"--{name} is a dynamic sparse training option; {method!r} prunes "
                             f"at initialization (dynamic methods: {', '.join(DST_METHODS)})")
        return None
    foreign = sorted(set(given) - set(parameters(method)))
    if foreign:
        own = ", ".join("--" + p.replace("_", "-") for p in parameters(method))
        raise UsageError(f"--{foreign[0].replace('_', '-')} is not a parameter of {method} "
                         f"(its parameters: {own})")
    return DSTConfig(**given)


def _model(name: str, info, seed: int) -> nn.Module:
    """The zoo model ``name`` built for the dataset (weights seeded by ``seed``, as in a study),
    or the user's ``FACTORY()`` (under ``torch.manual_seed(seed)``)."""
    if models.is_factory(name):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return models.from_factory(name)
    if name not in models.names():
        raise UsageError(f"unknown model {name!r}; valid models: {', '.join(models.names())}, "
                         "or your own as PATH.py:FACTORY or package.module:FACTORY")
    return models.create(name, num_classes=int(info.num_classes),
                         in_channels=int(info.in_channels), seed=seed,
                         image_size=int(info.image_size))


def train_network(
    model: str,
    dataset: str,
    method: str,
    sparsity: float,
    seed: int = 0,
    training: dict[str, Any] | None = None,
    dst: DSTConfig | None = None,
    data_dir: str | None = None,
    train_subset: int = 0,
    test_subset: int = 0,
    image_size: int = 0,
    device: torch.device | str | None = None,
    trajectory: bool = True,
    progress: bool = True,
) -> TrainedNetwork:
    """One training run of any method, from plain options (``sparsetopo train``).

    Builds ``model`` for ``dataset`` (weights seeded by ``seed``), gives it the initial mask of
    ``method`` at ``sparsity`` (pruning at initialization with the training data, or the
    dynamic method's random mask), trains it with the paper's settings and measures its final
    mask's topology (``training.mask_topology``).

    Parameters
    ----------
    model : str
        Zoo name, or ``PATH.py:FACTORY`` / ``package.module:FACTORY``.
    dataset : str
        One of ``sparsetopo.data.DATASETS``.
    method : str
        Pruning-at-initialization or dynamic sparse training method.
    sparsity : float
        Global sparsity in [0, 1).
    seed : int
        Seed of the initialization, the mask, the data order and training.
    training : dict, optional
        Overrides of ``TrainConfig.paper_defaults`` (``epochs`` scales the milestones).
    dst : DSTConfig, optional
        The dynamic method's hyper-parameters (``None``: its defaults).
    data_dir : str, optional
        Folder holding the dataset.
    train_subset, test_subset : int
        > 0: a seeded random subset of that many images (the same whatever ``seed``).
    image_size : int
        > 0: images resized to ``image_size x image_size``.
    device : torch.device or str, optional
        Where to train; default: a GPU when there is one.
    trajectory : bool
        Record the topology at every mask update (dynamic sparse training).
    progress : bool
        Show progress bars.

    Returns
    -------
    TrainedNetwork
        The trained network, its result, configuration, final topology and timings.

    Raises
    ------
    UsageError
        An unknown model, dataset or method, a bad sparsity, or ``dst`` for a method that
        prunes at initialization.
    InputError
        Data or settings that cannot be used (their own error).
    """
    check_method(method, sparsity)
    if dataset not in data.DATASETS:
        raise UsageError(f"unknown dataset {dataset!r}; valid: {', '.join(data.DATASETS)}")
    if dst is not None and not is_dst(method):
        raise UsageError(f"dynamic sparse training options given for {method!r}, which prunes "
                         "at initialization")
    overrides = dict(training or {})
    epochs = overrides.pop("epochs", None)
    name = model
    config = TrainConfig.paper_defaults(name, dataset, epochs=epochs, **overrides)
    device = torch.device(device) if device is not None else default_device()
    timings: dict[str, float] = {}
    start = time.perf_counter()

    options = {"data_dir": data_dir, "image_size": image_size, "quiet": not progress}
    info = data.dataset_info(dataset, image_size=image_size)
    n_train = len(data.get_dataset(dataset, "train", **options))
    n_test = len(data.get_dataset(dataset, "test", **options))
    train_idx = data.subset_indices(n_train, train_subset, SUBSET_SEED)
    test_idx = data.subset_indices(n_test, test_subset, SUBSET_SEED)
    shape = (int(info.in_channels), int(info.image_size), int(info.image_size))

    torch.manual_seed(seed)
    net = _model(name, info, seed)
    recorder = TopologyRecorder(net, shape)  # an op it cannot encode fails here, not after
    if is_dst(method):
        sparse_init(net, method, sparsity, seed=seed, config=dst)
    else:
        prune_loader = data.make_loader(dataset, "train", config.batch_size, shuffle=True,
                                        augment=False, seed=seed, indices=train_idx, **options)
        pruning.prune(net, method, sparsity, data=prune_loader, seed=seed, input_shape=shape,
                      progress=progress)
    timings["prune"] = time.perf_counter() - start

    on = device if device.type != "cpu" else None
    train_loader = data.make_loader(dataset, "train", config.batch_size, shuffle=True,
                                    augment=config.augment, seed=seed, indices=train_idx,
                                    device=on, **options)
    test_loader = data.make_loader(dataset, "test", max(config.batch_size, 256), shuffle=False,
                                   augment=False, indices=test_idx, device=on, **options)
    sparse = (DynamicSparsity(method, dst or DSTConfig(), shape if trajectory else None)
              if is_dst(method) else None)
    result = train(net, train_loader, test_loader, config, device=device, seed=seed,
                   progress=progress, dst=sparse)
    timings["train"] = result.seconds
    t = time.perf_counter()
    topology = recorder(net)
    timings["topology"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    run_config = {
        "model": name, "dataset": dataset, "method": method, "category": category(method),
        "sparsity": float(sparsity), "seed": int(seed), "training": config.to_dict(),
        "dst": sparse.config.to_dict() if sparse is not None else None,
        "data": {"data_dir": data_dir, "train_subset": int(train_subset),
                 "test_subset": int(test_subset), "image_size": int(image_size)},
    }
    return TrainedNetwork(net, result, run_config, topology, shape, timings)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def trajectory_rows(trajectory: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """A trajectory as a table (``trajectory.csv``).

    Parameters
    ----------
    trajectory : list of dict
        ``TrainResult.trajectory``.

    Returns
    -------
    header : list of str
        The scalar fields, then one ``density.<layer>`` column per layer.
    rows : list of list
        One row per record (``None``, an empty CSV cell, where a record lacks a field).
    """
    scalars = list(dict.fromkeys(k for r in trajectory for k in r if k != "density"))
    layers = list(dict.fromkeys(k for r in trajectory for k in (r.get("density") or {})))
    header = scalars + [f"density.{layer}" for layer in layers]
    rows = [[r.get(k) for k in scalars] + [(r.get("density") or {}).get(layer)
                                           for layer in layers] for r in trajectory]
    return header, rows


def write_run(trained: TrainedNetwork, out: str | Path) -> dict[str, Path]:
    """Write the files of a training run, each atomically.

    ``model.pt`` is the final ``state_dict`` in ``torch.nn.utils.prune`` form (load it with
    ``torch.load(..., weights_only=True)``), ``result.json`` :meth:`TrainedNetwork.summary`
    (non-finite numbers as null), ``trajectory.csv`` :func:`trajectory_rows` (dynamic sparse
    training only).

    Parameters
    ----------
    trained : TrainedNetwork
        :func:`train_network`.
    out : str or Path
        Folder (created if missing).

    Returns
    -------
    dict of str to Path
        ``model``, ``result`` and (dynamic sparse training) ``trajectory``.

    Raises
    ------
    OutputError
        A folder or file that cannot be written.
    """
    import csv
    import io

    out = ensure_dir(out)
    written: dict[str, Path] = {}
    state = {k: v.detach().cpu() for k, v in trained.model.state_dict().items()}
    with atomic_path(out / "model.pt") as tmp:
        torch.save(state, tmp)
    written["model"] = out / "model.pt"
    text = json.dumps(_finite(trained.summary()), indent=2, allow_nan=False)
    written["result"] = write_text(out / "result.json", text + "\n")
    if trained.result.trajectory:
        header, rows = trajectory_rows(trained.result.trajectory)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        written["trajectory"] = write_text(out / "trajectory.csv", buffer.getvalue())
    return written
