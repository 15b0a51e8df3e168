"""Counts and degree-based topometrics: nodes, edges, dead ends, isolated nodes, strength.

``in(v)`` and ``out(v)`` are the in- and out-degree of node ``v``; ``I`` and ``O`` the input and
output partitions of the graph (``docs/metrics.md``).
"""

from __future__ import annotations

import math

import numpy as np

from sparsetopo.encoding.graph import LayeredGraph

from ._view import GraphView, as_view

__all__ = ["disconnected_nodes", "edges", "nodes", "removable_in_edges", "removable_out_edges",
           "sink_nodes", "source_nodes", "strength"]


def nodes(g: LayeredGraph | GraphView) -> int:
    """Number of nodes.

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    int

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    return as_view(g).n


def edges(g: LayeredGraph | GraphView) -> int:
    """Number of edges.

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    int

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    return as_view(g).m


def _sinks(v: GraphView) -> np.ndarray:
    return (v.out_degree == 0) & (v.in_degree > 0) & ~v.partition_mask(v.graph.output_index)


def _sources(v: GraphView) -> np.ndarray:
    return (v.in_degree == 0) & (v.out_degree > 0) & ~v.partition_mask(v.graph.input_index)


def sink_nodes(g: LayeredGraph | GraphView) -> int:
    """Number of sink nodes: nodes ``v`` outside ``O`` with ``out(v) = 0`` and ``in(v) > 0``
    (dead ends: what reaches them goes nowhere).

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    int

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    return int(_sinks(as_view(g)).sum())


def source_nodes(g: LayeredGraph | GraphView) -> int:
    """Number of source nodes: nodes ``v`` outside ``I`` with ``in(v) = 0`` and ``out(v) > 0``
    (they send on a signal that never reaches them).

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    int

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    return int(_sources(as_view(g)).sum())


def disconnected_nodes(g: LayeredGraph | GraphView) -> int:
    """Number of nodes without any edge (``in(v) = out(v) = 0``), in any partition.

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    int

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    return int((~as_view(g).active).sum())


def removable_out_edges(g: LayeredGraph | GraphView) -> int:
    """Number of edges that end in a sink node: the sum of ``in(v)`` over the sink nodes.

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    int

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    v = as_view(g)
    return int(v.in_degree[_sinks(v)].sum())


def removable_in_edges(g: LayeredGraph | GraphView) -> int:
    """Number of edges that leave a source node: the sum of ``out(v)`` over the source nodes.

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    int

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    v = as_view(g)
    return int(v.out_degree[_sources(v)].sum())


def strength(g: LayeredGraph | GraphView) -> float:
    """Mean node strength: the mean over nodes of the summed ``|w|`` of the edges incident to
    the node, in or out (``= 2 sum |w| / nodes``).

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    float
        NaN for a graph without nodes.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    v = as_view(g)
    total = float(np.abs(v.adjacency.data).sum(dtype=np.float64))
    return 2.0 * total / v.n if v.n else math.nan
