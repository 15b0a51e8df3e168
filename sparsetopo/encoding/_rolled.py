"""Rolled encodings, one bipartite graph per conv/linear layer, independent of the input.

- Rolled BGE (SPEC 3.2, Pal et al. 2022): left = ``C_in/groups * kh * kw`` (columns of the
  weight reshaped to ``(C_out, -1)``), right = ``C_out``; one edge per present weight.
- Rolled-channel BGE (SPEC 3.3, Prabhu et al. 2018): left = ``C_in``, right = ``C_out``; an edge
  ``ci -> co`` when ``W[co, ci]`` has a present weight, weighted by the L2 norm of its present
  weights (grouped convs: ``ci`` is in the group of ``co``; depthwise: ``c -> c``).
Linear layers are ``in_features -> out_features`` in both, one edge per present weight of
(signed) weight ``w`` ("Linear as in 3.2").
"""

from __future__ import annotations

import numpy as np
from torch import nn

from ..pruning.masks import prunable_layers
from .graph import LayeredGraph, Partition, from_edges
from .layers import layer_arrays


def _bge(name: str, kind: str, n_left: int, n_right: int, src, dst, w, **kw) -> LayeredGraph:
    left = Partition(f"{name}.in", 0, (n_left,))
    right = Partition(name, n_left, (n_right,))
    return from_edges(src, dst + n_left, w, [left, right], kind=kind, layer=name, **kw)


def rolled(model: nn.Module) -> list[LayeredGraph]:
    """Rolled BGE of every Conv2d/Linear layer (``prunable_layers`` order)."""
    graphs = []
    for name, module in prunable_layers(model):
        weight, mask = layer_arrays(module)
        w2, m2 = weight.reshape(weight.shape[0], -1), mask.reshape(mask.shape[0], -1)
        flat = np.flatnonzero(m2)
        co, col = np.divmod(flat, m2.shape[1])
        graphs.append(_bge(name, "rolled", m2.shape[1], m2.shape[0], col, co,
                           w2.reshape(-1)[flat], weight_ids=np.arange(len(flat)),
                           meta={"n_weights": len(flat)}))
    return graphs


def rolled_channel(model: nn.Module) -> list[LayeredGraph]:
    """Rolled-channel BGE of every Conv2d/Linear layer (``prunable_layers`` order)."""
    graphs = []
    for name, module in prunable_layers(model):
        weight, mask = layer_arrays(module)
        if weight.ndim == 2:
            present, norm, groups = mask, weight, 1
        else:
            present = mask.any(axis=(2, 3))
            norm = np.sqrt((np.where(mask, weight, 0.0) ** 2).sum(axis=(2, 3)))
            groups = module.groups
        c_out, c_in_g = present.shape
        co, cil = np.nonzero(present)
        ci = (co // (c_out // groups)) * c_in_g + cil
        graphs.append(_bge(name, "rolled_channel", c_in_g * groups, c_out, ci, co,
                           norm[co, cil]))
    return graphs
