"""Where the signal of a layered graph narrows or stops (beyond SPEC 4, next to its path
metrics).

A node is *alive* when it lies on some input->output path: reachable from the input partition
``I`` (its own nodes included) and reaching the output partition ``O`` (its own nodes included).
For a partition of shape ``C x H x W`` (or ``C`` features) a *channel* is alive when one of its
nodes is. On an MGE with identity skips (SPEC 4: the real network's paths) these say how wide
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
    """Boolean mask of the nodes on some input->output path."""
    sweeps = path_sweeps(g)
    return sweeps.forward & sweeps.backward


def alive_channels(g: LayeredGraph | GraphView) -> dict[str, tuple[int, int]]:
    """``{partition name: (alive channels, channels)}`` for every partition after the input
    (channel = first axis of the partition's shape)."""
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
    """Over the partitions after the input: ``min_alive_channels`` (fewest alive channels),
    ``min_alive_channel_fraction`` (smallest alive / all channels) and
    ``frac_layers_no_path`` (fraction of those partitions without any alive node); NaN for a
    graph with no partition after the input."""
    counts = list(alive_channels(g).values())
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
    """Name of the partition where the input's signal stops (``None`` when some input->output
    path exists): the partition after the last one, in topological order, that holds a node
    reachable from the input."""
    v = as_view(g)
    forward = path_sweeps(v).forward
    parts = v.graph.partitions
    out = parts[v.graph.output_index]
    if forward[out.offset : out.stop].any():
        return None
    reached = [i for i, p in enumerate(parts) if forward[p.offset : p.stop].any()]
    last = max(reached, default=v.graph.input_index)
    return parts[min(last + 1, len(parts) - 1)].name
