"""Every topometric at once: the registry of the metrics, ``topometrics``, and their tables.

The definitions are in ``docs/metrics.md`` and in each metric's own module: ``degree``,
``neighbourhood``, ``motifs``, ``connectivity``, ``spectral``, ``paths``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from sparsetopo.encoding.graph import LayeredGraph
from sparsetopo.io import show_progress

from ._view import GraphView
from .bottlenecks import path_bottlenecks
from .connectivity import (
    connected_components,
    cut_edges,
    cut_nodes,
    k_core,
    mean_component_size,
)
from .degree import (
    disconnected_nodes,
    edges,
    nodes,
    removable_in_edges,
    removable_out_edges,
    sink_nodes,
    source_nodes,
    strength,
)
from .motifs import motifs
from .neighbourhood import one_hop, two_hop
from .paths import alive_edges, effective_density, log10_path_norm, log10_paths
from .spectral import _operators, spectra, spectral_gap, spectral_radius

if TYPE_CHECKING:  # the table functions import pandas when called: 0.5 s off every ``analyze``
    import pandas as pd

METRIC_DESCRIPTIONS: dict[str, str] = {
    "nodes": "number of nodes",
    "edges": "number of edges",
    "sink_nodes": "nodes outside the output with incoming but no outgoing edges (dead ends)",
    "source_nodes": "nodes outside the input with outgoing but no incoming edges (no input)",
    "disconnected_nodes": "nodes with no edge at all",
    "removable_out_edges": "edges that end in a sink node",
    "removable_in_edges": "edges that leave a source node",
    "one_hop": "mean number of nodes within 1 out-step of a node, itself included",
    "two_hop": "mean number of nodes within 2 out-steps of a node, itself included",
    "motifs": "estimated number of connected 4-node subgraphs (RAND-ESU sample, seeded)",
    "strength": "mean over nodes of the summed |w| of incident edges",
    "k_core": "mean coreness (largest k with the node in the k-core, degree = in + out)",
    "cut_edges": "bridges: edges whose removal disconnects the undirected graph",
    "cut_nodes": "articulation points: nodes whose removal disconnects the undirected graph",
    "connected_components": "weakly connected components, isolated nodes included",
    "mean_component_size": "nodes / connected_components",
    "spectral_gap": "on S=|A|+|A|^T: largest minus third largest eigenvalue magnitude",
    "spectral_radius": "largest eigenvalue of the Laplacian diag(S 1) - S",
    "effective_density": "fraction of present weights with an edge on an input->output path",
    "alive_edges": "edges on some input->output path",
    "log10_paths": "log10 of the number of input->output paths",
    "log10_path_norm": "log10 of 1^T |W_L|...|W_1| 1 (sum over paths of the product of |w|)",
}

#: The 16 topometrics of the paper (every key but ``nodes``, ``edges`` and the path metrics).
PAPER_METRICS = (
    "sink_nodes",
    "source_nodes",
    "disconnected_nodes",
    "removable_out_edges",
    "removable_in_edges",
    "one_hop",
    "two_hop",
    "motifs",
    "strength",
    "k_core",
    "cut_edges",
    "cut_nodes",
    "connected_components",
    "mean_component_size",
    "spectral_gap",
    "spectral_radius",
)
#: Beyond the paper: metrics of the input->output paths.
PATH_METRICS = ("effective_density", "alive_edges", "log10_paths", "log10_path_norm")

#: Columns divided by ``nodes`` / by ``edges`` in ``topometrics_table(..., normalise="paper")``
#: (the published tables: ``1-hop_nei * edges == 1 + edges/nodes`` on every row).
PAPER_PER_NODE = ("sink_nodes", "source_nodes", "disconnected_nodes", "mean_component_size")
PAPER_PER_EDGE = (
    "removable_out_edges",
    "removable_in_edges",
    "cut_edges",
    "cut_nodes",
    "one_hop",
    "two_hop",
    "strength",
    "k_core",
)


#: Every topometric, in the order ``topometrics`` returns them, with its function.
METRICS: dict[str, Callable] = {
    "nodes": nodes,
    "edges": edges,
    "sink_nodes": sink_nodes,
    "source_nodes": source_nodes,
    "disconnected_nodes": disconnected_nodes,
    "removable_out_edges": removable_out_edges,
    "removable_in_edges": removable_in_edges,
    "one_hop": one_hop,
    "two_hop": two_hop,
    "motifs": motifs,
    "strength": strength,
    "k_core": k_core,
    "cut_edges": cut_edges,
    "cut_nodes": cut_nodes,
    "connected_components": connected_components,
    "mean_component_size": mean_component_size,
    "spectral_gap": spectral_gap,
    "spectral_radius": spectral_radius,
    "effective_density": effective_density,
    "alive_edges": alive_edges,
    "log10_paths": log10_paths,
    "log10_path_norm": log10_path_norm,
}
#: The metrics that take a ``seed``.
_SEEDED = ("motifs", "spectral_gap", "spectral_radius")


def topometrics(
    graph: LayeredGraph,
    seed: int = 0,
    progress: bool = False,
    timings: dict[str, float] | None = None,
    keys: Iterable[str] | None = None,
) -> dict[str, float]:
    """Every topometric of a layered graph (or only some), as defined in ``docs/metrics.md``.

    The metrics share one ``GraphView`` (degrees, the undirected graph, the depth-first search,
    the path sweeps are computed once). When both spectra are wanted they are computed on a
    second thread next to the other metrics, their two iterative solvers (for graphs too large
    for dense spectra) in lockstep.

    Parameters
    ----------
    graph : LayeredGraph
    seed : int, default 0
        Draws the motif sample and the start vectors of the iterative spectral solvers.
    progress : bool, default False
        Show a progress bar over the metrics.
    timings : dict, optional
        Receives the seconds spent per metric (its key) and per structure shared by several
        metrics (``build:undirected``, ``build:dfs``, ``build:coreness``, ``build:paths``,
        ``build:spectra``, ...; not counted in the metric that first needed it).
    keys : iterable of str, optional
        Compute only these keys (default: every key of ``METRICS``).

    Returns
    -------
    dict[str, float]
        The keys of ``METRICS`` (or ``keys``) in that order; counts as ``int``.

    Raises
    ------
    ValueError
        An unknown key, or a graph that is not layered (an edge into its own or an earlier
        partition).
    TypeError
        ``graph`` is not a ``LayeredGraph``.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    wanted = list(METRICS)
    if keys is not None:
        keys = set(keys)
        unknown = sorted(keys - set(METRICS))
        if unknown:
            raise ValueError(f"unknown topometric(s) {unknown}; supported: {', '.join(METRICS)}")
        wanted = [k for k in METRICS if k in keys]
    v = GraphView(graph)
    out: dict[str, float] = {}
    with _spectra_alongside(v, seed, wanted, timings) as spectra_done:
        rest = [k for k in wanted if k not in _SPECTRA or spectra_done is None]
        for key in tqdm(rest, desc="topometrics", disable=not show_progress(progress),
                        leave=False):
            built = sum(v.timings.values())
            t = time.perf_counter()
            fn = METRICS[key]
            value = fn(v, seed=seed) if key in _SEEDED else fn(v)
            out[key] = float(value) if isinstance(value, float) else int(value)
            if timings is not None:
                timings[key] = time.perf_counter() - t - (sum(v.timings.values()) - built)
    if spectra_done is not None:
        out.update(zip(_SPECTRA, spectra_done.result(), strict=True))
        if timings is not None:
            timings.update(dict.fromkeys(_SPECTRA, 0.0))
    if timings is not None:
        timings.update({f"build:{k}": t for k, t in v.timings.items()})
    return {k: out[k] for k in wanted}


_SPECTRA = ("spectral_gap", "spectral_radius")


#: Bytes per node that ``topometrics`` allocates at its peak beyond the graph: the view's
#: degrees and masks (21), the 2-hop relabelling and word pointers (16) or the undirected
#: row pointers with the cores' and the depth-first search's arrays (~90), and, on the
#: spectra's thread, ARPACK's basis of 16 vectors with its work space and the products (~210).
_BYTES_PER_NODE = 330


def estimate_topometrics(n_nodes: int, n_edges: int, index_bytes: int = 4) -> int:
    """Bytes :func:`topometrics` needs at its peak beyond the graph itself, from its size.

    The largest per-edge structures are, one after the other, the 2-hop out-neighbourhoods
    held as 64-bit words (at most one 12-byte word entry per edge) and the undirected CSR
    (two indices per edge); the spectra, on their own thread, add vectors of the nodes only.

    Parameters
    ----------
    n_nodes, n_edges : int
        Nodes and edges of the graph.
    index_bytes : int, default 4
        Bytes of one CSR index of the graph (``encoding.index_dtype``).

    Returns
    -------
    int
        An upper bound of the bytes allocated beyond the graph's own arrays (measured on
        ResNet-50 at 224x224 in ``BENCHMARKS.md``).

    References
    ----------
    .. [1] Y. Saad, "Numerical Methods for Large Eigenvalue Problems", 2nd ed., SIAM, 2011
       (the memory of the Lanczos and implicitly restarted Arnoldi solvers).
    """
    per_edge = max(12, 2 * index_bytes)
    return per_edge * n_edges + _BYTES_PER_NODE * n_nodes


def path_profile(graph: LayeredGraph | GraphView) -> dict[str, float]:
    """The path metrics and path bottlenecks of a graph: what the study's ``paths`` and
    ``bottleneck`` features and ``analyze``'s paths table hold.

    The path metrics are :data:`PATH_METRICS` as :func:`topometrics` computes them
    (``effective_density``, ``alive_edges``, ``log10_paths``, ``log10_path_norm``); the
    bottlenecks those of :func:`~sparsetopo.metrics.path_bottlenecks`. Both describe the real
    network's signal paths when ``graph`` is the MGE with identity skips
    (``encoding.multipartite(..., identity_skips=True)``).

    Parameters
    ----------
    graph : LayeredGraph or GraphView
        The graph; a ``GraphView`` shares its caches with the caller.

    Returns
    -------
    dict[str, float]
        The four path metrics, then ``min_alive_channels``, ``min_alive_channel_fraction``
        and ``frac_layers_no_path``.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    view = graph if isinstance(graph, GraphView) else GraphView(graph)
    out = {k: float(METRICS[k](view)) for k in PATH_METRICS}
    out.update(path_bottlenecks(view))
    return out


@contextmanager
def _spectra_alongside(v: GraphView, seed: int, wanted: list[str],
                       timings: dict[str, float] | None) -> Iterator[Future | None]:
    """When both spectra are wanted: both computed (``spectral.spectra``) on a second thread
    while the body computes the other metrics (every kernel releases the GIL: the spectra, most
    of the work on a large graph, then share the time of the rest). Yields their future
    (``None`` when not both are wanted); its seconds go to ``timings["build:spectra"]``."""
    if not all(k in wanted for k in _SPECTRA):
        yield None
        return

    def solve() -> tuple[float, float]:
        t = time.perf_counter()
        values = spectra(v, seed=seed)  # touches no cache of the view: built below
        if timings is not None:
            timings["build:spectra"] = time.perf_counter() - t
        return values

    v.active, v.n_active, _operators(v)  # noqa: B018 (cached here, on this thread)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spectra") as pool:
        yield pool.submit(solve)


def normalise_paper(metrics: Mapping[str, float]) -> dict[str, float]:
    """Paper-normalised copy of a topometrics dict, as the paper's published tables give them:
    ``sink_nodes``, ``source_nodes``, ``disconnected_nodes`` and ``mean_component_size``
    divided by ``nodes``; ``removable_out_edges``, ``removable_in_edges``, ``cut_edges``,
    ``cut_nodes``, ``one_hop``, ``two_hop``, ``strength`` and ``k_core`` divided by ``edges``;
    the rest unchanged.

    Parameters
    ----------
    metrics : mapping of str to float
        A ``topometrics`` result (with ``nodes`` and ``edges``).

    Returns
    -------
    dict[str, float]
        NaN where the divisor is 0.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    out = dict(metrics)
    for keys, by in ((PAPER_PER_NODE, "nodes"), (PAPER_PER_EDGE, "edges")):
        d = metrics[by]
        for k in keys:
            if k in out:
                out[k] = out[k] / d if d else math.nan
    return out


def topometrics_table(
    graphs: Mapping[str, LayeredGraph | Mapping[str, float]]
    | Iterable[LayeredGraph | Mapping[str, float]],
    normalise: str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """One row of topometrics per network.

    Parameters
    ----------
    graphs : mapping or iterable
        Names mapped to graphs (or to already computed ``topometrics`` dicts), or a sequence of
        them (rows named by position).
    normalise : {None, "paper"}, default None
        ``"paper"`` divides as :func:`normalise_paper` does; ``None`` keeps raw values.
    seed : int, default 0
        Passed to ``topometrics``.
    progress : bool, default False
        Show a progress bar over the networks.

    Returns
    -------
    pandas.DataFrame
        One row per network, the columns of ``METRICS``.

    Raises
    ------
    ValueError
        ``normalise`` is neither ``None`` nor ``"paper"``.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    if normalise not in (None, "paper"):
        raise ValueError(f"normalise must be None or 'paper', got {normalise!r}")
    items = list(graphs.items()) if isinstance(graphs, Mapping) else list(enumerate(graphs))
    rows = {}
    for name, g in tqdm(items, desc="networks", disable=not show_progress(progress), leave=False):
        m = topometrics(g, seed=seed) if isinstance(g, LayeredGraph) else dict(g)
        rows[name] = normalise_paper(m) if normalise == "paper" else m
    import pandas as pd

    return pd.DataFrame.from_dict(rows, orient="index", columns=list(METRICS))


def layerwise(
    graphs: Iterable[LayeredGraph], seed: int = 0, progress: bool = False
) -> pd.DataFrame:
    """Topometrics of each per-layer bipartite graph (a BGE: ``I`` is its left side, ``O`` its
    right side), one row per layer.

    Parameters
    ----------
    graphs : iterable of LayeredGraph
        One graph per layer (``encoding.rolled``, ``rolled_channel`` or ``unrolled``).
    seed : int, default 0
        Passed to ``topometrics``.
    progress : bool, default False
        Show a progress bar over the layers.

    Returns
    -------
    pandas.DataFrame
        Column ``layer`` (the graph's ``layer``, else its index), then the columns of
        ``METRICS``.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    rows = []
    graphs = list(graphs)
    for i, g in enumerate(tqdm(graphs, desc="layers", disable=not show_progress(progress),
                               leave=False)):
        rows.append({"layer": g.layer if g.layer is not None else str(i), **topometrics(g, seed)})
    import pandas as pd

    return pd.DataFrame(rows, columns=["layer", *METRICS])


def layer_mean(graphs: Iterable[LayeredGraph] | pd.DataFrame, seed: int = 0) -> dict[str, float]:
    """Per-network aggregate of layer-wise topometrics: the mean over layers of every metric.

    Parameters
    ----------
    graphs : iterable of LayeredGraph, or pandas.DataFrame
        The layers' graphs, or the table ``layerwise`` returned for them.
    seed : int, default 0
        Passed to ``topometrics``.

    Returns
    -------
    dict[str, float]
        The keys of ``METRICS``; NaN everywhere when there is no layer.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    import pandas as pd

    df = graphs if isinstance(graphs, pd.DataFrame) else layerwise(graphs, seed)
    return {k: float(df[k].mean()) if len(df) else math.nan for k in METRICS}
