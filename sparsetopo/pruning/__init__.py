"""Pruning at initialization (SPEC 2.1), mask controls (``METHOD+CONTROL``) and masks in
``torch.nn.utils.prune`` form (SPEC 2)."""

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
