"""``prune``: pruning at initialization over every Conv2d/Linear weight (SPEC 2.1)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from sparsetopo._torch_state import seeded
from sparsetopo.errors import InputError

from . import scores as sc
from .controls import apply_control, split_method
from .controls import check_method as _check_name
from .density import (
    LAYER_DENSITY_METHODS,
    allocate_counts,
    keep_count,
    random_masks,
    target_densities,
)
from .masks import apply_masks, prunable_layers

METHODS = ["uniform", "er", "erk", "snip", "grasp", "synflow", "prospr", "magnitude"]
DATA_METHODS = ("snip", "grasp", "prospr")
SYNFLOW_ROUNDS = 100
DEFAULT_INPUT_SHAPE = (3, 32, 32)


def global_topk_masks(
    scores: dict[str, torch.Tensor], keep: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Bool masks keeping exactly the ``keep`` highest scores over all layers together.

    Ties are broken by a random permutation drawn from ``generator`` (stable sort of the
    permuted scores), so the result is a deterministic function of the scores and the seed.
    """
    flat = torch.cat([s.detach().reshape(-1).cpu().to(torch.float64) for s in scores.values()])
    if torch.isnan(flat).any():
        raise InputError("pruning scores contain NaN (the network's output is not finite?)")
    perm = torch.randperm(flat.numel(), generator=generator)
    order = torch.sort(flat[perm], descending=True, stable=True).indices[:keep]
    kept = torch.zeros(flat.numel(), dtype=torch.bool)
    kept[perm[order]] = True
    sizes = [s.numel() for s in scores.values()]
    return {
        k: part.reshape(s.shape)
        for (k, s), part in zip(scores.items(), torch.split(kept, sizes), strict=True)
    }


def check_method(method: object, known: Sequence[str] | None = None) -> str:
    """The one validation of a method name: ``METHOD`` or ``METHOD+CONTROL`` (a mask control
    of :data:`sparsetopo.pruning.controls.CONTROLS`), stripped and lower-cased.

    Parameters
    ----------
    method : str
        The name to check.
    known : sequence of str, optional
        Base methods accepted (default :data:`METHODS`, what :func:`prune` computes); a caller
        that runs other methods (e.g. trained ones) passes its own list.

    Returns
    -------
    str
        The normalised name.

    Raises
    ------
    InputError
        One line naming the unknown method or control and listing the supported ones.
    """
    return _check_name(method, METHODS if known is None else tuple(known))


def needs_data(method: str) -> bool:
    """Whether pruning with ``method`` (or its control) needs data batches."""
    return split_method(str(method).strip().lower())[0] in DATA_METHODS


def _check_sparsity(sparsity: object) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real):
        raise InputError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    value = float(sparsity)
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise InputError(f"sparsity must be in [0, 1), got {sparsity!r}")
    return value


def _synflow_masks(
    model: nn.Module,
    keep: int,
    sparsity: float,
    input_shape: Sequence[int],
    generator: torch.Generator,
    progress: bool,
) -> dict[str, torch.Tensor]:
    """Iterative SynFlow: at round ``k = 1..100`` keep the top ``round(total * (1-s)^(k/100))``
    scores among the weights still present (the last round keeps exactly ``keep``)."""
    from tqdm.auto import tqdm

    from sparsetopo.io import show_progress

    score = sc.synflow_scorer(model, input_shape)
    current = {
        f"{n}.weight": torch.ones_like(m.weight, dtype=torch.bool, device="cpu")
        for n, m in prunable_layers(model)
    }
    total = sum(v.numel() for v in current.values())
    for k in tqdm(range(1, SYNFLOW_ROUNDS + 1), desc="synflow", disable=not show_progress(progress)):
        count = (
            keep if k == SYNFLOW_ROUNDS else round(total * (1 - sparsity) ** (k / SYNFLOW_ROUNDS))
        )
        scores = score(current)
        # weights already removed rank below every present one (scores are >= 0)
        scores = {key: torch.where(current[key].to(s.device), s, -1.0) for key, s in scores.items()}
        current = global_topk_masks(scores, count, generator)
    return current


def prune(
    model: nn.Module,
    method: str,
    sparsity: float,
    data: Iterable | None = None,
    seed: int = 0,
    *,
    input_shape: Sequence[int] | None = None,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Prune every Conv2d/Linear weight of ``model`` at initialization (SPEC 2.1), in place.

    Keeps exactly ``round((1 - sparsity) * total)`` weights overall. Layer-density methods
    (``uniform``, ``er``, ``erk``; see ``density``) keep random positions inside each layer;
    score methods keep the global top-k of a score (``scores``): ``magnitude`` |w|, ``snip``,
    ``grasp`` (kept set = lowest ``S = -w * Hg``), ``synflow`` (100 rounds, exponential
    schedule), ``prospr``. ``METHOD+CONTROL`` (e.g. ``snip+layer-shuffle``) computes the
    method's masks, then moves them with the control (:mod:`sparsetopo.pruning.controls`:
    same count per layer, or per output channel, at random positions drawn from a generator
    of its own). The masks are applied in ``torch.nn.utils.prune`` form (replacing any
    existing mask; weight values are not changed) and returned as
    ``{"<module_path>.weight": bool tensor}``.

    ``data``: iterable of ``(inputs, labels)`` batches, required by ``snip``, ``grasp`` and
    ``prospr`` (random data must be asked for explicitly, e.g. the ``synthetic`` dataset).
    ``input_shape``: sample shape ``(C, H, W)`` of SynFlow's all-ones input; taken from the first
    batch of ``data`` when given, else defaults to ``(3, 32, 32)``.
    ``seed``: drives the random positions, the tie-breaking among equal scores and any
    randomness of the forward pass; the same seed gives bit-identical masks.
    Scores are computed on a copy, so the model's weights and train/eval mode are unchanged.
    """
    name, control = split_method(check_method(method))
    s = _check_sparsity(sparsity)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InputError(f"seed must be an integer, got {seed!r}")
    layers = prunable_layers(model)
    if not layers:
        raise InputError("the model has no Conv2d or Linear layer to prune")
    if name in DATA_METHODS and data is None:
        raise InputError(
            f"pruning method {name!r} needs data: pass data=<DataLoader or iterable of "
            "(inputs, labels) batches>; for random inputs use the 'synthetic' dataset explicitly"
        )
    keys = [f"{n}.weight" for n, _ in layers]
    shapes = [tuple(m.weight.shape) for _, m in layers]
    total = int(sum(np.prod(s_, dtype=np.int64) for s_ in shapes))
    keep = keep_count(total, s)
    generator = torch.Generator().manual_seed(int(seed))
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})

    if keep == total:
        masks = {
            k: torch.ones(shape, dtype=torch.bool) for k, shape in zip(keys, shapes, strict=True)
        }
    elif name in LAYER_DENSITY_METHODS:
        counts = allocate_counts(
            target_densities(shapes, s, name), [math.prod(x) for x in shapes], keep
        )
        masks = dict(zip(keys, random_masks(shapes, counts, generator), strict=True))
    else:
        with seeded(seed, devices=cuda):  # the forward passes' randomness, if any
            if name == "synflow":
                shape = sc.input_shape_of(data) if data is not None else input_shape
                masks = _synflow_masks(
                    model, keep, s, shape or DEFAULT_INPUT_SHAPE, generator, progress
                )
            else:
                if name == "magnitude":
                    scores = sc.magnitude_scores(model)
                elif name == "snip":
                    scores = sc.snip_scores(model, data)
                elif name == "grasp":
                    scores = {k: -v for k, v in sc.grasp_scores(model, data).items()}
                else:
                    scores = sc.prospr_scores(model, data, progress=progress)
                masks = global_topk_masks(scores, keep, generator)
    if control is not None:
        masks = apply_control(masks, control, int(seed))
    apply_masks(model, masks)
    return masks
