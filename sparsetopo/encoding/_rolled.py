"""Rolled encodings, one bipartite graph per conv/linear layer, independent of the input
(``docs/encodings.md``).

- Rolled BGE (Pal et al., ICML 2022): left = ``C_in/groups * kh * kw`` (columns of the
  weight reshaped to ``(C_out, -1)``), right = ``C_out``; one edge per present weight.
- Rolled-channel BGE (Prabhu et al., ECCV 2018): left = ``C_in``, right = ``C_out``; an edge
  ``ci -> co`` when ``W[co, ci]`` has a present weight, weighted by the L2 norm of its present
  weights (grouped convs: ``ci`` is in the group of ``co``; depthwise: ``c -> c``).

Linear layers are ``in_features -> out_features`` in both, one edge per present weight, of
its (signed) weight.
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
    """The rolled bipartite graph (rolled BGE) of every Conv2d and Linear layer.

    The weight tensor of a layer, reshaped to ``(C_out, C_in/groups * kh * kw)``, read as a
    biadjacency: left node ``j`` is column ``j`` (input channel within the group, kernel row,
    kernel column, in C order), right node ``co`` is output channel ``co``, and every present
    weight ``W[co, j]`` is an edge ``j -> co`` of weight ``W[co, j]``. A depthwise convolution
    thus has ``kh * kw`` left nodes, shared by all its output channels. A linear layer is its
    ``(out_features, in_features)`` weight read the same way. The input size plays no part.

    Parameters
    ----------
    model : torch.nn.Module
        The network; present weights are those of its masks (``weight_mask``), or its non-zero
        weights in a layer without a mask.

    Returns
    -------
    list of LayeredGraph
        One graph per layer, in ``named_modules`` order
        (:func:`~sparsetopo.pruning.prunable_layers`): ``kind="rolled"``, ``layer`` the module path, partitions ``<layer>.in`` (left) and
        ``<layer>`` (right), ``edge_weight_ids`` the index of each edge's weight among the
        layer's ``meta["n_weights"]`` present weights.

    References
    ----------
    .. [1] B. Pal, A. Biswas, S. Kolay, P. Mitra, B. Basu. "A Study on the Ramanujan Graph
       Property of Winning Lottery Tickets." ICML 2022.
    .. [2] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
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
    """The rolled-channel bipartite graph of every Conv2d and Linear layer.

    Channels only: left node ``ci`` is input channel ``ci``, right node ``co`` output channel
    ``co``; there is an edge ``ci -> co`` when the kernel slice ``W[co, ci]`` holds a present
    weight, weighted by the L2 norm of that slice's present weights. In a grouped convolution
    ``ci`` ranges over the group of ``co`` (depthwise: ``c -> c``). A linear layer has one edge
    ``i -> j`` per present weight ``W[j, i]``, of that (signed) weight. The input size plays no
    part.

    Parameters
    ----------
    model : torch.nn.Module
        The network; present weights as in :func:`rolled`.

    Returns
    -------
    list of LayeredGraph
        One graph per layer, in ``named_modules`` order: ``kind="rolled_channel"``, ``layer``
        the module path, partitions ``<layer>.in`` (``C_in`` nodes) and ``<layer>``
        (``C_out`` nodes).

    References
    ----------
    .. [1] A. Prabhu, G. Varma, A. Namboodiri. "Deep Expander Networks: Efficient Deep Networks
       from Graph Theory." ECCV 2018.
    .. [2] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
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
