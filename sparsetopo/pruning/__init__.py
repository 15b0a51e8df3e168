"""Pruning at initialization (SPEC 2.1) and masks in ``torch.nn.utils.prune`` form (SPEC 2)."""

from ._prune import DATA_METHODS, METHODS, prune
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
    "DATA_METHODS",
    "METHODS",
    "PRUNABLE_TYPES",
    "LayerDensity",
    "WeightsError",
    "apply_masks",
    "count_weights",
    "get_masks",
    "layer_densities",
    "load_weights",
    "masked_state_dict",
    "prunable_layers",
    "prune",
    "sparsity",
    "weight_and_mask",
]
