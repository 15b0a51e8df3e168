"""Input->output paths: which edges and weights lie on one, how many paths there are, and the
sum over paths of the product of their weights.

A path here is a directed path from a node of the input partition ``I`` to a node of the output
partition ``O``. Node ids of a ``LayeredGraph`` are a topological order (every edge goes from a
lower to a higher partition), so one forward sweep from ``I`` and one backward sweep to ``O``,
partition by partition, give reachability, path counts and path sums exactly.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from sparsetopo.encoding.graph import LayeredGraph

from ._jit import kernel
from ._view import GraphView, as_view

__all__ = ["alive_edges", "effective_density", "log10_path_norm", "log10_paths"]

#: The forward sums are rescaled whenever a partition's largest value leaves [1e-150, 1e150].
_RESCALE = 1e150


class PathSweeps(NamedTuple):
    """What the two sweeps of :func:`path_sweeps` give."""

    forward: np.ndarray  #: mask of the nodes reachable from ``I`` (``I`` included)
    backward: np.ndarray  #: mask of the nodes that reach ``O`` (``O`` included)
    log10_paths: float  #: log10 of the number of paths (-inf: none)
    log10_path_norm: float  #: log10 of the sum over paths of the product of ``|w|``


def path_sweeps(g: LayeredGraph | GraphView) -> PathSweeps:
    """Forward sweep from ``I`` (reachability, path counts and ``|w|`` path sums, partition by
    partition, rescaled against overflow and underflow) and backward sweep to ``O``; cached on
    the view.

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    PathSweeps

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024 (the graph
       whose paths these are).
    """
    return as_view(g).cached("paths", _sweep)


def _sweep(v: GraphView) -> PathSweeps:
    a, g = v.adjacency, v.graph
    i_idx, o_idx = g.input_index, g.output_index
    reach = v.partition_mask(i_idx)
    count = reach.astype(np.float64)
    norm = count.copy()
    exponent = {"count": 0.0, "norm": 0.0}  # log10 of the factors divided out
    for p in range(i_idx, o_idx + 1):
        part = g.partitions[p]
        for arr, which in ((count, "count"), (norm, "norm")):
            top = float(arr[part.offset : part.stop].max()) if part.size else 0.0
            if top > _RESCALE or 0.0 < top < 1.0 / _RESCALE:
                arr[part.offset :] /= top
                exponent[which] += math.log10(top)
        if p == o_idx:
            break
        _forward_push(a.indptr, a.indices, a.data, part.offset, part.stop, reach, count, norm)
    out = g.output_partition
    total_count = float(count[out.offset : out.stop].sum())
    total_norm = float(norm[out.offset : out.stop].sum())
    return PathSweeps(
        forward=reach,
        backward=_backward_reach(a.indptr, a.indices, v.partition_mask(o_idx)),
        log10_paths=math.log10(total_count) + exponent["count"] if total_count > 0 else -math.inf,
        log10_path_norm=(math.log10(total_norm) + exponent["norm"] if total_norm > 0
                         else -math.inf),
    )


def alive_edges(g: LayeredGraph | GraphView) -> int:
    """Number of alive edges: edges ``(u, v)`` on some input->output path, i.e. ``u`` is
    reachable from ``I`` (or in ``I``) and ``O`` is reachable from ``v`` (or ``v`` in ``O``).

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    int

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024 (the graph
       whose paths these are).
    """
    v = as_view(g)
    a, sweeps = v.adjacency, path_sweeps(v)
    return int(_alive_edge_count(a.indptr, a.indices, sweeps.forward, sweeps.backward))


def effective_density(
    g: LayeredGraph | GraphView,
    edge_weight_ids: np.ndarray | None = None,
    n_weights: int | None = None,
) -> float:
    """Effective density: the fraction of the network's present weights that have at least one
    unrolled edge on some input->output path (see :func:`alive_edges`).

    Parameters
    ----------
    g : LayeredGraph or GraphView
    edge_weight_ids : numpy.ndarray, optional
        For every edge (aligned with ``adjacency.data``), the index of the present weight that
        created it, -1 for an edge of no weight (identity skips). Default: the graph's
        ``edge_weight_ids``. Without ids, the result is the edge fraction
        ``alive_edges / edges``.
    n_weights : int, optional
        Number of present weights. Default: ``graph.meta["n_weights"]``, else the largest id
        plus one.

    Returns
    -------
    float
        NaN when there is no weight (or, without ids, no edge).

    Raises
    ------
    ValueError
        ``edge_weight_ids`` has not one entry per edge, or holds an id ``>= n_weights``.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024 (the graph
       whose paths these are).
    """
    v = as_view(g)
    ids = edge_weight_ids if edge_weight_ids is not None else v.graph.edge_weight_ids
    if ids is None:
        return alive_edges(v) / v.m if v.m else math.nan
    ids = np.asarray(ids)
    if ids.shape != (v.m,):
        raise ValueError(f"edge_weight_ids has shape {ids.shape}, the graph has {v.m} edges")
    if v.edge_order is not None:
        ids = ids[v.edge_order]
    if n_weights is None:
        n_weights = v.graph.meta.get("n_weights")
    if n_weights is None:
        n_weights = int(ids.max()) + 1 if ids.size else 0
    if n_weights == 0:
        return math.nan
    if ids.size and int(ids.max()) >= n_weights:
        raise ValueError(f"edge_weight_ids go up to {int(ids.max())}, n_weights is {n_weights}")
    used = np.zeros(n_weights, bool)
    a, sweeps = v.adjacency, path_sweeps(v)
    _mark_alive_weights(a.indptr, a.indices, sweeps.forward, sweeps.backward, ids, used)
    return float(used.sum()) / n_weights


def log10_paths(g: LayeredGraph | GraphView) -> float:
    """log10 of the number of directed paths from a node of ``I`` to a node of ``O``.

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    float
        ``-inf`` when there is no such path.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024 (the graph
       whose paths these are).
    """
    return path_sweeps(g).log10_paths


def log10_path_norm(g: LayeredGraph | GraphView) -> float:
    """log10 of ``1^T |W_L| ... |W_1| 1``: the sum over input->output paths of the product of
    ``|w|`` along the path, i.e. SynFlow's objective [2]_ evaluated on the graph.

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    float
        ``-inf`` when there is no path (or every path has a zero weight).

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024 (the graph
       whose paths these are).
    .. [2] H. Tanaka, D. Kunin, D. L. K. Yamins, S. Ganguli, "Pruning Neural Networks without
       Any Data by Iteratively Conserving Synaptic Flow", NeurIPS, 2020.
    """
    return path_sweeps(g).log10_path_norm


@kernel
def _forward_push(indptr, indices, data, lo, hi, reach, count, norm):
    """Push reachability, path counts and ``|w|``-weighted path sums from rows ``lo..hi-1``."""
    for u in range(lo, hi):
        if reach[u]:
            cu = count[u]
            nu = norm[u]
            for e in range(indptr[u], indptr[u + 1]):
                v = indices[e]
                reach[v] = True
                count[v] += cu
                norm[v] += nu * abs(np.float64(data[e]))


@kernel
def _backward_reach(indptr, indices, target):
    """``co[u]``: ``u`` is a target or some out-neighbour of ``u`` is (ids topological)."""
    n = indptr.size - 1
    co = target.copy()
    for u in range(n - 1, -1, -1):
        if not co[u]:
            for e in range(indptr[u], indptr[u + 1]):
                if co[indices[e]]:
                    co[u] = True
                    break
    return co


@kernel
def _mark_alive_weights(indptr, indices, fwd, co, ids, used):
    """``used[ids[e]] = True`` for every alive edge ``e`` with ``ids[e] >= 0``."""
    for u in range(indptr.size - 1):
        if fwd[u]:
            for e in range(indptr[u], indptr[u + 1]):
                if co[indices[e]] and ids[e] >= 0:
                    used[ids[e]] = True


@kernel
def _alive_edge_count(indptr, indices, fwd, co):
    """Number of edges ``(u, v)`` with ``fwd[u]`` and ``co[v]``."""
    total = 0
    for u in range(indptr.size - 1):
        if fwd[u]:
            for e in range(indptr[u], indptr[u + 1]):
                if co[indices[e]]:
                    total += 1
    return total
