"""Unrolled bipartite graph encoding (SPEC 3.4): one input-aware BGE per conv/linear layer."""

from __future__ import annotations

import math

from torch import nn

from ..errors import TracingError, UnsupportedModelError
from ..tracing import LayerDAG, trace, traced
from .graph import LayeredGraph, Partition, from_edges
from .layers import layer_edge_count, layer_edges


def unrolled(model: nn.Module, input_shape) -> list[LayeredGraph]:
    """Per conv/linear layer (topological order), the BGE whose left side is the layer's input
    activation (``C_in x H x W``; padding is not a node) and right side its output activation:
    for every present ``W[co, ci, ky, kx]`` and output position ``(oy, ox)`` whose input
    position ``(oy*s - p + ky*d, ox*s - p + kx*d)`` is inside the input, an edge
    ``(ci, iy, ix) -> (co, oy, ox)`` of weight ``W[co, ci, ky, kx]``. With ``B`` the signed
    biadjacency (out x in), ``B @ x.ravel() == conv2d(x, W_eff, bias=None, ...).ravel()``.
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
    """Total nodes (both sides of every layer) and edges of ``unrolled(model, input_shape)``,
    counted from masks and shapes without building the graphs (``dag``: the model's trace on
    ``input_shape``, if the caller has it)."""
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
