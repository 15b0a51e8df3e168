"""``prune``: pruning at initialization over every Conv2d/Linear weight (``docs/pruning.md``)."""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from sparsetopo._torch_state import seeded, spare_threads
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

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    .. [2] J. Frankle, G. K. Dziugaite, D. M. Roy, M. Carbin. "Pruning Neural Networks at
       Initialization: Why are We Missing the Mark?" ICLR 2021.
    """
    return _check_name(method, METHODS if known is None else tuple(known))


def needs_data(method: str) -> bool:
    """Whether pruning with ``method`` needs batches of data.

    Parameters
    ----------
    method : str
        A method name, ``METHOD`` or ``METHOD+CONTROL`` (case-insensitive).

    Returns
    -------
    bool
        True when the base method is one of :data:`DATA_METHODS` (``snip``, ``grasp``,
        ``prospr``).

    References
    ----------
    .. [1] N. Lee, T. Ajanthan, P. H. S. Torr. "SNIP: Single-shot Network Pruning based on
       Connection Sensitivity." ICLR 2019.
    .. [2] C. Wang, G. Zhang, R. Grosse. "Picking Winning Tickets Before Training by Preserving
       Gradient Flow." ICLR 2020.
    .. [3] M. Alizadeh, S. A. Tailor, L. M. Zintgraf, J. van Amersfoort, S. Farquhar, N. D. Lane,
       Y. Gal. "Prospect Pruning: Finding Trainable Weights at Initialization using
       Meta-Gradients." ICLR 2022.
    """
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
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    # batch-1 passes: a thread beyond the idle cores only stalls them on a busy machine
    with spare_threads() if on_cpu else contextlib.nullcontext():
        for k in tqdm(range(1, SYNFLOW_ROUNDS + 1), desc="synflow",
                      disable=not show_progress(progress)):
            count = (keep if k == SYNFLOW_ROUNDS
                     else round(total * (1 - sparsity) ** (k / SYNFLOW_ROUNDS)))
            scores = score(current)
            # weights already removed rank below every present one (scores are >= 0)
            scores = {key: torch.where(current[key].to(s.device), s, -1.0)
                      for key, s in scores.items()}
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
    r"""Prune every Conv2d and Linear weight of ``model`` at initialization, in place.

    Keeps exactly :math:`k = \mathrm{round}((1 - s)\,T)` of the network's :math:`T` conv and
    linear weights (definitions in ``docs/pruning.md``):

    - layer-density methods give each layer a density and keep that many weights of the layer
      at uniformly random positions: ``uniform`` (:math:`1 - s` everywhere), ``er``
      (:math:`\varepsilon (C_{in} + C_{out}) / (C_{in} C_{out})`) and ``erk``
      (:math:`\varepsilon (C_{in} + C_{out} + k_h + k_w) / (C_{in} C_{out} k_h k_w)`), with
      :math:`\varepsilon` solved so that the total is :math:`k`, layers that would exceed
      density 1 made dense, and counts rounded by largest remainders;
    - score methods keep the :math:`k` highest scores over the whole network: ``magnitude``
      (:math:`|w|`), ``snip`` (:math:`|g \odot w|`), ``grasp`` (keeps the :math:`k` lowest
      :math:`S = -w \odot Hg`), ``synflow`` (100 rounds, round :math:`r` keeping
      :math:`\mathrm{round}(T (1 - s)^{r/100})` weights) and ``prospr`` (the meta-gradient
      with respect to the mask through 3 SGD steps); ties are broken by a random permutation
      drawn from ``seed``.

    ``METHOD+CONTROL`` (e.g. ``snip+layer-shuffle``) computes the method's masks, then moves
    them with the control (:func:`apply_control`: the same count per layer, or per output
    channel, at random positions drawn from a generator of its own). The masks are applied in
    ``torch.nn.utils.prune`` form, replacing any existing mask: a pruned network pruned again
    is scored on its initialization (``weight_orig``), so methods can be compared on one
    initialization. Weight values are not changed, and scores are computed on a copy, so the
    model's weights and train/eval mode stay as they were.

    Parameters
    ----------
    model : torch.nn.Module
        An initialised network with at least one Conv2d or Linear layer.
    method : str
        A name of :data:`METHODS`, or ``METHOD+CONTROL`` with a control of :data:`CONTROLS`
        (case-insensitive).
    sparsity : float
        The share :math:`s \in [0, 1)` of conv and linear weights to remove.
    data : iterable of (Tensor, Tensor) or None, optional
        ``(inputs, labels)`` batches (e.g. a ``DataLoader``), required by ``snip``, ``grasp``
        and ``prospr`` (random data must be asked for explicitly, e.g. with the ``synthetic``
        dataset). ``synflow`` takes its input shape from the first batch when given.
    seed : int, default 0
        Drives the random positions, the tie-breaking among equal scores, a control's draw
        and any randomness of the forward passes: the same seed gives bit-identical masks.
    input_shape : sequence of int or None, optional
        Sample shape ``(C, H, W)`` of SynFlow's all-ones input when ``data`` is not given;
        default ``(3, 32, 32)``.
    progress : bool, default False
        Show progress bars (SynFlow's rounds, ProsPr's inner steps) when stderr is a
        terminal.

    Returns
    -------
    dict of str to bool Tensor
        ``{"<module path>.weight": mask}`` for every Conv2d and Linear layer, True where a
        weight is kept.

    Raises
    ------
    InputError
        An unknown method or control, a sparsity outside ``[0, 1)``, a seed that is not an
        integer, a model without Conv2d or Linear layers, a data method without ``data``,
        ``data`` that yields no ``(inputs, labels)`` batches (or labels outside the model's
        classes), or scores that are NaN.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    .. [2] N. Lee, T. Ajanthan, P. H. S. Torr. "SNIP: Single-shot Network Pruning based on
       Connection Sensitivity." ICLR 2019.
    .. [3] C. Wang, G. Zhang, R. Grosse. "Picking Winning Tickets Before Training by Preserving
       Gradient Flow." ICLR 2020.
    .. [4] H. Tanaka, D. Kunin, D. L. K. Yamins, S. Ganguli. "Pruning neural networks without
       any data by iteratively conserving synaptic flow." NeurIPS 2020.
    .. [5] M. Alizadeh, S. A. Tailor, L. M. Zintgraf, J. van Amersfoort, S. Farquhar, N. D. Lane,
       Y. Gal. "Prospect Pruning: Finding Trainable Weights at Initialization using
       Meta-Gradients." ICLR 2022.
    .. [6] U. Evci, T. Gale, J. Menick, P. S. Castro, E. Elsen. "Rigging the Lottery: Making All
       Tickets Winners." ICML 2020.
    .. [7] D. C. Mocanu, E. Mocanu, P. Stone, P. H. Nguyen, M. Gibescu, A. Liotta. "Scalable
       training of artificial neural networks with adaptive sparse connectivity inspired by
       network science." Nature Communications 9, 2018.
    .. [8] S. Liu, T. Chen, X. Chen, L. Shen, D. C. Mocanu, Z. Wang, M. Pechenizkiy. "The
       Unreasonable Effectiveness of Random Pruning: Return of the Most Naive Baseline for
       Sparse Training." ICLR 2022.
    .. [9] J. Frankle, G. K. Dziugaite, D. M. Roy, M. Carbin. "Pruning Neural Networks at
       Initialization: Why are We Missing the Mark?" ICLR 2021.
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
