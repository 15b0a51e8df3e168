"""Where the signal of a layered graph narrows or stops (beyond the paper, next to the path
metrics; definitions: ``docs/metrics.md``).

A node is *alive* when it lies on some input->output path: reachable from the input partition
``I`` (its own nodes included) and reaching the output partition ``O`` (its own nodes included).
For a partition of shape ``C x H x W`` (or ``C`` features) a *channel* is alive when one of its
nodes is. On an MGE with identity skips (whose paths are the real network's) these say how wide
the narrowest surviving layer is and whether some layer keeps no path at all: the layer collapse
that makes a pruned network untrainable (Tanaka et al. 2020).
"""

from __future__ import annotations

import math

import numpy as np

from sparsetopo.encoding.graph import LayeredGraph

from ._view import GraphView, as_view
from .paths import path_sweeps


def alive_nodes(g: LayeredGraph | GraphView) -> np.ndarray:
    """The alive nodes: those on some input->output path (reachable from ``I`` or in it, and
    reaching ``O`` or in it).

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    numpy.ndarray
        Boolean mask, one entry per node.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] H. Tanaka, D. Kunin, D. L. K. Yamins, S. Ganguli, "Pruning Neural Networks without
       Any Data by Iteratively Conserving Synaptic Flow", NeurIPS, 2020 (layer collapse).
    """
    sweeps = path_sweeps(g)
    return sweeps.forward & sweeps.backward


def alive_channels(g: LayeredGraph | GraphView) -> dict[str, tuple[int, int]]:
    """Alive channels of every partition after the input: a channel (index along the first
    axis of the partition's shape) is alive when one of its nodes is (:func:`alive_nodes`).

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    dict[str, tuple[int, int]]
        ``{partition name: (alive channels, channels)}``, partitions in graph order.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] H. Tanaka, D. Kunin, D. L. K. Yamins, S. Ganguli, "Pruning Neural Networks without
       Any Data by Iteratively Conserving Synaptic Flow", NeurIPS, 2020 (layer collapse).
    """
    v = as_view(g)
    alive = alive_nodes(v)
    out = {}
    for i, part in enumerate(v.graph.partitions):
        if i == v.graph.input_index or not part.shape:
            continue
        channels = int(part.shape[0])
        block = alive[part.offset : part.stop].reshape(channels, -1)
        out[part.name] = (int(block.any(axis=1).sum()), channels)
    return out


def path_bottlenecks(g: LayeredGraph | GraphView) -> dict[str, float]:
    """How narrow the surviving paths get, over the partitions after the input:
    ``min_alive_channels`` (the fewest alive channels of a partition),
    ``min_alive_channel_fraction`` (the smallest fraction of alive channels) and
    ``frac_layers_no_path`` (the fraction of partitions without any alive node: a layer
    collapse [2]_).

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    dict[str, float]
        NaN values for a graph with no partition after the input.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] H. Tanaka, D. Kunin, D. L. K. Yamins, S. Ganguli, "Pruning Neural Networks without
       Any Data by Iteratively Conserving Synaptic Flow", NeurIPS, 2020 (layer collapse).
    """
    return channel_bottlenecks(list(alive_channels(g).values()))


def channel_bottlenecks(counts: list[tuple[int, int]]) -> dict[str, float]:
    """:func:`path_bottlenecks` from the ``(alive channels, channels)`` of every partition after
    the input (:func:`alive_channels`' values, or ``metrics.network_alive``'s ``channels``).

    Parameters
    ----------
    counts : list of (int, int)
        Alive and total channels per partition.

    Returns
    -------
    dict[str, float]
        ``min_alive_channels``, ``min_alive_channel_fraction``, ``frac_layers_no_path``; NaN
        values when ``counts`` is empty.

    References
    ----------
    .. [1] H. Tanaka, D. Kunin, D. L. K. Yamins, S. Ganguli, "Pruning Neural Networks without
       Any Data by Iteratively Conserving Synaptic Flow", NeurIPS, 2020 (layer collapse).
    """
    if not counts:
        return dict.fromkeys(
            ("min_alive_channels", "min_alive_channel_fraction", "frac_layers_no_path"), math.nan
        )
    alive = np.array([a for a, _ in counts], dtype=np.float64)
    total = np.array([t for _, t in counts], dtype=np.float64)
    return {
        "min_alive_channels": float(alive.min()),
        "min_alive_channel_fraction": float((alive / np.maximum(total, 1)).min()),
        "frac_layers_no_path": float(np.mean(alive == 0)),
    }


def signal_cut(g: LayeredGraph | GraphView) -> str | None:
    """Name of the partition where the input's signal stops: the partition after the last one
    (in topological order) that holds a node reachable from the input.

    Parameters
    ----------
    g : LayeredGraph or GraphView

    Returns
    -------
    str or None
        ``None`` when some input->output path exists.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] H. Tanaka, D. Kunin, D. L. K. Yamins, S. Ganguli, "Pruning Neural Networks without
       Any Data by Iteratively Conserving Synaptic Flow", NeurIPS, 2020 (layer collapse).
    """
    v = as_view(g)
    forward = path_sweeps(v).forward
    parts = v.graph.partitions
    out = parts[v.graph.output_index]
    if forward[out.offset : out.stop].any():
        return None
    reached = [i for i, p in enumerate(parts) if forward[p.offset : p.stop].any()]
    last = max(reached, default=v.graph.input_index)
    return parts[min(last + 1, len(parts) - 1)].name
