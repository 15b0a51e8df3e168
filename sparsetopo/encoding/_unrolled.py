"""Unrolled bipartite graph encoding: one input-aware BGE per conv/linear layer
(``docs/encodings.md``)."""

from __future__ import annotations

import math

from torch import nn

from ..errors import TracingError, UnsupportedModelError
from ..tracing import LayerDAG, trace, traced
from .graph import LayeredGraph, Partition, from_edges
from .layers import layer_edge_count, layer_edges


def unrolled(model: nn.Module, input_shape) -> list[LayeredGraph]:
    r"""The unrolled bipartite graph (unrolled BGE) of every conv/linear layer, for one input
    size.

    Left nodes are the elements of the layer's input activation (``C_in x H x W``; the padding
    border is not a node), right nodes the elements of its output. For every present weight
    ``W[co, ci, ky, kx]`` and every output position ``(oy, ox)``, with
    :math:`i_y = o_y s - p + k_y d` and :math:`i_x = o_x s - p + k_x d` (stride :math:`s`,
    padding :math:`p`, dilation :math:`d`), there is an edge ``(ci, iy, ix) -> (co, oy, ox)``
    of weight ``W[co, ci, ky, kx]`` whenever ``(iy, ix)`` lies inside the input; in a grouped
    convolution ``ci`` ranges over the group of ``co``. A linear layer contributes one edge
    ``i -> j`` per present ``W[j, i]``. Hence, with :math:`B` the signed biadjacency (outputs
    by inputs), :math:`B x = \mathrm{conv2d}(x, W_{\text{eff}}, \text{bias}=\text{None})`
    for every input :math:`x`.

    Parameters
    ----------
    model : torch.nn.Module
        The network (traceable, see :func:`sparsetopo.tracing.trace`); present weights are
        those of its masks, or its non-zero weights in a layer without a mask.
    input_shape : tuple of int
        Shape of one input sample, without the batch dimension, e.g. ``(3, 32, 32)``.

    Returns
    -------
    list of LayeredGraph
        One graph per conv/linear layer, in topological order: ``kind="unrolled"``, ``layer``
        the layer's module path, the left partition named after the op that produced the
        layer's input (``input`` for the first layer), the right one after the layer;
        ``edge_weight_ids`` the index of each edge's weight among the layer's
        ``meta["n_weights"]`` present weights.

    Raises
    ------
    UnsupportedModelError
        The model cannot be traced or holds an op that cannot be encoded.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    try:
        dag = trace(model, input_shape)
    except TracingError as exc:
        raise UnsupportedModelError(str(exc)) from None
    shape = {v.id: v.shape for v in dag.values}
    producer = {op.output: op for op in dag.ops}
    graphs = []
    for op in dag.layers():
        in_shape, out_shape = shape[op.inputs[0]], shape[op.output]
        e = layer_edges(op.module, in_shape, out_shape)
        left = Partition(producer[op.inputs[0]].name, 0, tuple(in_shape))
        right = Partition(op.name, left.size, tuple(out_shape))
        graphs.append(from_edges(e.src, e.dst + left.size, e.weight, [left, right],
                                 weight_ids=e.weight_index, kind="unrolled", layer=op.name,
                                 meta={"n_weights": e.n_present}))
    return graphs


def unrolled_size(model: nn.Module, input_shape, *,
                  dag: LayerDAG | None = None) -> tuple[int, int]:
    """The size of :func:`unrolled`'s graphs, counted from masks and shapes without building
    them.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    input_shape : tuple of int
        Shape of one input sample, without the batch dimension.
    dag : LayerDAG or None, optional
        The model's trace on ``input_shape`` (:func:`sparsetopo.tracing.trace`), if the caller
        has it; else traced here.

    Returns
    -------
    (int, int)
        Total nodes (both sides of every layer's graph) and total edges of
        ``unrolled(model, input_shape)``.

    Raises
    ------
    UnsupportedModelError
        The model cannot be traced or holds an op that cannot be encoded.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    try:
        dag = traced(model, input_shape, dag)
    except TracingError as exc:
        raise UnsupportedModelError(str(exc)) from None
    shape = {v.id: v.shape for v in dag.values}
    nodes = edges = 0
    for op in dag.layers():
        in_shape, out_shape = shape[op.inputs[0]], shape[op.output]
        nodes += math.prod(in_shape) + math.prod(out_shape)
        edges += layer_edge_count(op.module, in_shape, out_shape)
    return nodes, edges
