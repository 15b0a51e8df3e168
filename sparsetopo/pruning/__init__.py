"""Pruning at initialization, mask controls (``METHOD+CONTROL``) and masks in
``torch.nn.utils.prune`` form.

:func:`prune` prunes every Conv2d and Linear weight of a network at initialization with one of
the methods defined in ``docs/pruning.md``; a control (``docs/controls.md``) then moves the
kept weights at random while keeping their count per layer or per output channel. Present
weights, masks and sparsity are defined in ``docs/networks.md``.

Constants:

``METHODS``
    The methods :func:`prune` computes: ``uniform``, ``er``, ``erk``, ``snip``, ``grasp``,
    ``synflow``, ``prospr``, ``magnitude``.
``DATA_METHODS``
    Those that need batches of data: ``snip``, ``grasp``, ``prospr``.
``CONTROLS``
    The mask controls by name (``layer-shuffle``, ``fanin-shuffle``), each a function
    ``(masks, generator) -> masks``.
``PRUNABLE_TYPES``
    The module types whose weights are pruned and encoded: ``Conv2d`` and ``Linear``.
"""

from ._prune import DATA_METHODS, METHODS, check_method, needs_data, prune
from .controls import CONTROLS, apply_control, control_name, split_method
from .masks import (
    PRUNABLE_TYPES,
    LayerDensity,
    WeightsError,
    apply_masks,
    count_weights,
    get_masks,
    layer_densities,
    load_weights,
    masked_state_dict,
    prunable_layers,
    sparsity,
    weight_and_mask,
)

__all__ = [
    "CONTROLS",
    "DATA_METHODS",
    "METHODS",
    "PRUNABLE_TYPES",
    "LayerDensity",
    "WeightsError",
    "apply_control",
    "apply_masks",
    "check_method",
    "control_name",
    "count_weights",
    "get_masks",
    "layer_densities",
    "load_weights",
    "masked_state_dict",
    "needs_data",
    "prunable_layers",
    "prune",
    "sparsity",
    "split_method",
    "weight_and_mask",
]
