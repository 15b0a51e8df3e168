"""The structural topometrics of a network's MGE (cores, bridges, articulation points,
components, two-hop neighbourhoods, motifs) without the materialised MGE.

These walk the graph itself, so no pass of the network gives them; but they need only its
undirected simple adjacency. ``network_topology_metrics`` builds that adjacency chunk by chunk
from the network (``_packed``: node ids in the fewest bytes, 6 bytes per edge for fewer than
2**24 nodes instead of the MGE's 12 plus 8 for its undirected copy) and runs the very kernels
``topometrics`` runs on a graph, so the values are the graph's, exactly.

References
----------
Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their Topology
via Multipartite Graph Representations. Transactions on Machine Learning Research.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psutil
from torch import nn
from tqdm.auto import tqdm

from sparsetopo import encoding
from sparsetopo._memory import release_freed_memory
from sparsetopo.errors import GraphTooLargeError, InputError
from sparsetopo.io import show_progress
from sparsetopo.tracing import LayerDAG, traced

from ._packed import CHUNK_BYTES_PER_EDGE, PackedView, packed_bytes, packed_undirected
from .connectivity import connected_components, cut_edges, cut_nodes, k_core, mean_component_size
from .motifs import motifs
from .neighbourhood import two_hop
from .network_paths import estimate_network_paths, network_degrees

#: The topometrics computed on the packed undirected MGE, in ``topometrics``' order.
NETWORK_TOPOLOGY_METRICS = ("two_hop", "motifs", "k_core", "cut_edges", "cut_nodes",
                            "connected_components", "mean_component_size")

#: Bytes per node the metrics need besides the packed graph, at most: what the view keeps (in-degrees,
#: out-row starts: 8 bytes each; partition index, motif flags: 5) and the cached coreness (8)
#: while the depth-first search holds discovery, low point, parent, stack and cursor (8 each)
#: and its cut flags (1): 70, rounded up.
_SCRATCH_PER_NODE = 80


def _word_budget(graph_bytes: int) -> int:
    """Bytes ``two_hop`` may hold in word rows at once on the packed graph (more take several
    ranges of ids): a sixteenth of the graph (one 12-byte word per 32 edges), at least 64 MiB."""
    return max(1 << 26, graph_bytes // 16)


@dataclass(frozen=True)
class TopologyEstimate:
    """What :func:`network_topology_metrics` needs, known before it runs.

    Parameters
    ----------
    nodes : int
        Nodes of the MGE.
    edges : int
        Its edges (an upper bound unless ``exact``: pairs reached twice merge).
    exact : bool
        Whether ``edges`` is exact.
    graph_bytes : int
        Bytes of the packed undirected graph.
    peak_bytes : int
        Predicted peak: the largest of the degrees' passes, the build (graph, one chunk of
        edges, the transposition's cursors) and the graph with the metrics' node arrays and
        ``two_hop``'s word rows (at most a sixteenth of the graph at once).

    References
    ----------
    Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
    Topology via Multipartite Graph Representations. Transactions on Machine Learning Research.
    """

    nodes: int
    edges: int
    exact: bool
    graph_bytes: int
    peak_bytes: int

    def __str__(self) -> str:
        return (f"{self.nodes:,} nodes, {self.edges:,} edges{'' if self.exact else ' (at most)'}"
                f", packed graph {self.graph_bytes / 2**30:.2f} GiB, peak "
                f"~{self.peak_bytes / 2**30:.2f} GiB")


def _estimate(model: nn.Module, input_shape, identity_skips: bool, chunks, dag) -> TopologyEstimate:
    n, m = chunks.n_nodes, chunks.edges
    graph = packed_bytes(n, m)
    passes = estimate_network_paths(model, input_shape, identity_skips, ["sink_nodes"],
                                    device="cpu", dag=dag).peak_bytes
    degrees = 16 * n  # in- and out-degrees, held from the passes to the end of the build
    build = graph + degrees + CHUNK_BYTES_PER_EDGE * chunks.largest + 8 * n
    run = graph + _SCRATCH_PER_NODE * n + _word_budget(graph)
    return TopologyEstimate(n, m, chunks.exact, graph, max(passes, build, run))


def estimate_network_topology(model: nn.Module, input_shape, identity_skips: bool = False, *,
                              dag: LayerDAG | None = None) -> TopologyEstimate:
    """Size and peak memory of :func:`network_topology_metrics`, from the model's trace and
    masks only.

    Parameters
    ----------
    model, input_shape, identity_skips, dag
        As :func:`network_topology_metrics`.

    Returns
    -------
    TopologyEstimate

    References
    ----------
    Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
    Topology via Multipartite Graph Representations. Transactions on Machine Learning Research.
    """
    dag = traced(model, input_shape, dag)
    chunks = encoding.target_chunks(model, input_shape, identity_skips, dag=dag)
    return _estimate(model, input_shape, identity_skips, chunks, dag)


def _wanted(keys: Iterable[str] | None) -> list[str]:
    if keys is None:
        return list(NETWORK_TOPOLOGY_METRICS)
    keys = set(keys)
    unknown = sorted(keys - set(NETWORK_TOPOLOGY_METRICS))
    if unknown:
        raise InputError(f"network_topology_metrics cannot compute {unknown}; supported: "
                         f"{', '.join(NETWORK_TOPOLOGY_METRICS)}")
    return [k for k in NETWORK_TOPOLOGY_METRICS if k in keys]


def network_topology_metrics(
    model: nn.Module,
    input_shape,
    identity_skips: bool = False,
    keys: Iterable[str] | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
    force: bool = False,
    unavailable: dict[str, str] | None = None,
    timings: dict[str, float] | None = None,
    dag: LayerDAG | None = None,
) -> dict[str, float]:
    """The structural topometrics of ``multipartite(model, input_shape, identity_skips)``
    (``two_hop``, ``motifs``, ``k_core``, ``cut_edges``, ``cut_nodes``,
    ``connected_components``, ``mean_component_size``; defined as in ``topometrics``), on its
    packed undirected graph instead of the materialised MGE.

    The in- and out-degrees come first, by passes of the network
    (:func:`network_degrees`); they give every row's length, so the packed graph (node ids in
    the fewest whole bytes, each edge in both rows) is allocated once and filled one chunk of
    target channels at a time (``encoding.target_chunks``), each chunk's in-rows sorted and
    deduplicated as the MGE merges pairs, then transposed into the out-rows. The metrics then
    run the kernels ``topometrics`` runs, so every value is the graph's exactly. Memory: the
    packed graph (``2 b`` bytes per edge, ``b`` = 3 below 2**24 nodes) plus 80 bytes per node,
    and ``two_hop``'s word rows (12 bytes per 64-bit word of out-neighbours) up to a sixteenth of
    the graph at once: beyond, it takes the words of one range of ids at a time. CPU only.

    Parameters
    ----------
    model : torch.nn.Module
        A ``torch.fx``-traceable network (masks in ``torch.nn.utils.prune`` form, or zeros).
    input_shape : tuple of int
        One input without the batch dimension, e.g. ``(3, 224, 224)``.
    identity_skips : bool, default False
        Encode identity shortcuts as edges (False: the paper's MGE, as ``topometrics``' default
        in ``analyze``).
    keys : iterable of str, optional
        Compute only these; default all of ``NETWORK_TOPOLOGY_METRICS``.
    seed : int, default 0
        Draws the motif estimate's start vertices (as ``topometrics``).
    progress : bool, default False
        Progress bars over the passes, the chunks and the metrics.
    force : bool, default False
        Run even when the predicted peak exceeds the available memory.
    unavailable : dict, optional
        Filled with ``key -> reason`` for a metric left NaN because its own scratch space
        (``two_hop``'s word rows) would not fit in the memory available when it runs.
    timings : dict, optional
        Filled with the seconds of each step: ``degrees`` (the passes), ``build`` (the packed
        graph) and each metric's.
    dag : LayerDAG, optional
        The model's trace on ``input_shape``, if known.

    Returns
    -------
    dict
        Metric name -> value.

    Raises
    ------
    GraphTooLargeError
        The predicted peak exceeds the available memory (unless ``force``).
    InputError
        A key that is not one of ``NETWORK_TOPOLOGY_METRICS``.
    UnsupportedModelError, EncodingError
        A model the MGE cannot encode.

    References
    ----------
    Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
    Topology via Multipartite Graph Representations. Transactions on Machine Learning Research.

    Batagelj, Zaversnik (2003). An O(m) Algorithm for Cores Decomposition of Networks.
    arXiv cs/0310049.

    Tarjan (1972). Depth-First Search and Linear Graph Algorithms. SIAM Journal on Computing 1(2).
    """
    wanted = _wanted(keys)
    dag = traced(model, input_shape, dag)
    chunks = encoding.target_chunks(model, input_shape, identity_skips, dag=dag)
    est = _estimate(model, input_shape, identity_skips, chunks, dag)
    available = int(psutil.virtual_memory().available)
    if est.peak_bytes > available and not force:
        raise GraphTooLargeError(
            f"the packed undirected MGE and its metrics would need ~{est.peak_bytes / 2**30:.1f}"
            f" GiB ({est.edges:,} edges) but only {available / 2**30:.1f} GiB is available; use "
            "a smaller input, a higher sparsity, or force=True (--force) to try anyway")
    timings = {} if timings is None else timings
    t = time.perf_counter()
    in_deg, out_deg = network_degrees(model, input_shape, identity_skips, device="cpu",
                                      progress=progress, dag=dag)
    release_freed_memory()
    timings["degrees"] = time.perf_counter() - t
    t = time.perf_counter()
    view = packed_undirected(chunks, in_deg, out_deg, progress)
    view.word_budget = _word_budget(est.graph_bytes)
    del in_deg, out_deg
    release_freed_memory()
    timings["build"] = time.perf_counter() - t
    return _measure(view, wanted, seed, progress, unavailable, timings)


def _measure(view: PackedView, wanted: list[str], seed: int, progress: bool,
             unavailable: dict[str, str] | None, timings: dict[str, float]) -> dict[str, float]:
    funcs: dict[str, Callable[[PackedView], float]] = {
        "two_hop": two_hop, "motifs": lambda v: motifs(v, seed), "k_core": k_core,
        "cut_edges": cut_edges, "cut_nodes": cut_nodes,
        "connected_components": connected_components, "mean_component_size": mean_component_size,
    }
    out: dict[str, float] = {}
    with tqdm(wanted, desc="topology", unit="metric", disable=not show_progress(progress),
              leave=False) as bar:
        for key in bar:
            bar.set_description_str(f"topology: {key}")
            t = time.perf_counter()
            try:
                out[key] = funcs[key](view)
            except GraphTooLargeError as exc:
                out[key] = math.nan
                if unavailable is not None:
                    unavailable[key] = str(exc)
            timings[key] = time.perf_counter() - t
    return out


