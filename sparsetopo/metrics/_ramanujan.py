"""Ramanujan-graph metrics of the rolled BGE of each layer (Hoang et al., ICLR 2023, "Revisiting
pruning at initialization through the lens of Ramanujan graph"; definitions: ``docs/metrics.md``).

The rolled BGE of a ``Conv2d``/``Linear`` layer is the bipartite graph whose
biadjacency ``B`` (``out x in``) is the effective weight reshaped to
``(C_out, C_in/groups*kh*kw)`` (``Linear``: ``(out, in)``): right node ``i`` = row ``i``, left
node ``j`` = column ``j``, one edge per *present* weight (mask 1; a present weight whose value
is 0 is still an edge of the unweighted graph, with weight 0 in the weighted one).

Spectra. The undirected adjacency of a bipartite graph is ``A = [[0, B], [B^T, 0]]``; its
eigenvalues are ``+s_i`` and ``-s_i`` for the singular values ``s_1 >= s_2 >= ...`` of ``B``,
plus ``|n_left - n_right|`` zeros. Sorted by magnitude, descending, the eigenvalue magnitudes
are therefore ``s_1, s_1, s_2, s_2, ...``: the *largest* eigenvalue magnitude is ``s_1`` and
the *third largest* (index 2 of the sorted magnitude list, with repetitions) is ``s_2``.
So every metric needs only the two largest singular values of an ``out x in`` matrix, never an
eigendecomposition of the ``(n_left + n_right)``-node adjacency.

Singular values are computed in float64 (``_top2_singular_values``, method by ``_route``):
from the dense Gram matrix ``B B^T`` or ``B^T B`` of the smaller side with
``numpy.linalg.eigvalsh`` (an SVD recomputes ``s_2`` when it is tiny next to ``s_1``, where the
square root of a Gram eigenvalue loses relative accuracy), or with
``scipy.sparse.linalg.svds`` (ARPACK, ``k=2``) when the smaller side exceeds ``GRAM_MAX_DIM``,
or ``SVDS_MIN_DIM`` at density below ``SVDS_MAX_DENSITY``. Measured single-threaded on the
2-core machine: dense Gram fastest up to a side of ~256 (<= 30 ms for 256 x 2304 at any
density; sparse products are 10x slower from 10% density on), ARPACK 2-5x faster than the
Gram route for sparse 512 x 4608 and 1000 x 2048 layers, and both agree to 1e-14.

BLAS runs single-threaded inside ``ramanujan`` (``_blas.one_blas_thread``): the work is many
small Gram matrices, and multi-threaded OpenBLAS measured 5-15x slower on the shared, loaded
2-core machine (an idle one can gain at most 2x from a second thread); and a fixed thread count
gives the same values whichever thread calls. Times (``er`` masks, loaded machine, torch
single-threaded): resnet20 0.03 s @0.98 / 0.2 s @0.6, conv6 0.36 s / 0.56 s, resnet50 6-8 s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds
from torch import nn
from tqdm.auto import tqdm

from sparsetopo.encoding import LayeredGraph, rolled
from sparsetopo.io import show_progress
from sparsetopo.pruning.masks import prunable_layers

from ._blas import one_blas_thread

if TYPE_CHECKING:
    import pandas as pd

MIN_DEGREE = 3  # IMDB: left-degree groups and their mean right degree
MIN_NODES = 3  # whole-layer values need more than this many non-isolated nodes
GRAM_MAX_DIM = 1024  # smaller side above this: svds
DENSE_MAX_ENTRIES = 1 << 24  # densify B (float64, 128 MiB) only up to this many entries
SVDS_MIN_DIM = 256  # smaller side above this and density below SVDS_MAX_DENSITY: svds
SVDS_MAX_DENSITY = 0.05
TINY_S2 = 1e-4  # s2 / s1 below this: the Gram route is refined by an SVD of B

COLUMNS = [
    "layer",
    "kind",
    "shape",
    "density",
    "d_left",
    "d_right",
    "mu_hat",
    "delta_r",
    "delta_r_norm",
    "weighted_spectral_gap",
    "iterative_spectral_gap",
    "iterative_delta_r_norm",
]
METRIC_COLUMNS = COLUMNS[3:]


def _route(n_rows: int, n_cols: int, nnz: int) -> str:
    """How ``_top2_singular_values`` treats an ``n_rows x n_cols`` matrix with ``nnz``
    entries: ``dense`` (dense Gram matrix of the smaller side + ``eigvalsh``), ``svds``
    (ARPACK on the sparse matrix: large and sparse, where ``eigvalsh``'s ``k^3`` dominates) or
    ``sparse_gram`` (Gram matrix by a sparse product: fewer than 3 rows or columns, too many
    entries to densify)."""
    k = min(n_rows, n_cols)
    large = n_rows * n_cols > DENSE_MAX_ENTRIES or k > GRAM_MAX_DIM
    if k >= 3 and (large or (k > SVDS_MIN_DIM and nnz < SVDS_MAX_DENSITY * n_rows * n_cols)):
        return "svds"
    return "sparse_gram" if large else "dense"


def _top2_dense(dense: np.ndarray) -> tuple[float, float]:
    """``(s_1, s_2)`` of a dense matrix: eigenvalues of the Gram matrix of the smaller side."""
    n_rows, n_cols = dense.shape
    gram = dense @ dense.T if n_rows <= n_cols else dense.T @ dense
    eig = np.linalg.eigvalsh(gram)[::-1][:2]
    s = np.sqrt(np.clip(eig, 0.0, None))
    if len(s) < 2:
        return float(s[0]), 0.0
    if s[1] < TINY_S2 * s[0]:
        # sqrt of a Gram eigenvalue has absolute error ~ sqrt(eps) * s_1: recompute by SVD.
        s = np.linalg.svd(dense, compute_uv=False)[:2]
    return float(s[0]), float(s[1])


def _top2_singular_values(b: sp.spmatrix | np.ndarray) -> tuple[float, float]:
    """``(s_1, s_2)``, the two largest singular values of ``b`` (``s_2 = 0`` when ``b`` has
    fewer than two rows or columns), i.e. the largest and the third largest eigenvalue
    magnitudes of ``[[0, b], [b^T, 0]]`` (module docstring). Float64 throughout; the method
    is chosen by ``_route`` (a dense ``b`` is taken as already routed to ``dense``)."""
    n_rows, n_cols = b.shape
    k = min(n_rows, n_cols)
    if isinstance(b, np.ndarray):
        return _top2_dense(b.astype(np.float64, copy=False)) if k else (0.0, 0.0)
    if k == 0 or b.nnz == 0:
        return 0.0, 0.0
    b = b.astype(np.float64)
    route = _route(n_rows, n_cols, b.nnz)
    if route == "dense":
        return _top2_dense(b.toarray())
    if route == "sparse_gram":
        gram = (b @ b.T if n_rows <= n_cols else b.T @ b).toarray()
        eig = np.sqrt(np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None))
        return float(eig[0]), float(eig[1]) if k > 1 else 0.0
    v0 = np.random.default_rng(0).standard_normal(k)  # deterministic ARPACK start
    s = np.sort(svds(b, k=2, v0=v0, return_singular_vectors=False))[::-1]
    return float(s[0]), float(s[1])


def _bound(d_left: float, d_right: float) -> float:
    """Ramanujan bound ``sqrt(dL - 1) + sqrt(dR - 1)``."""
    return math.sqrt(d_left - 1.0) + math.sqrt(d_right - 1.0)


def _gap_and_delta(pattern, weighted, d_left: float, d_right: float):
    """``(mu_hat, delta_r, delta_r_norm, weighted_spectral_gap)`` of one bipartite graph given
    its 0/1 and ``|w|`` biadjacencies (dense or sparse)."""
    _, mu_hat = _top2_singular_values(pattern)
    w1, w2 = _top2_singular_values(weighted)
    bound = _bound(d_left, d_right)
    delta_r = bound - mu_hat
    return mu_hat, delta_r, delta_r / bound if bound > 0 else math.nan, w1 - w2


def _group_biadjacency(rows: np.ndarray, values: np.ndarray, n_rows: int, d: int):
    """Biadjacency (dense if routed so, else CSC) of ``len(rows) // d`` columns that hold ``d``
    entries each, ``rows`` / ``values`` in CSC order."""
    n_cols = len(rows) // d
    if _route(n_rows, n_cols, len(rows)) == "dense":
        out = np.zeros((n_rows, n_cols))
        out[rows, np.repeat(np.arange(n_cols), d)] = values
        return out
    indptr = np.arange(n_cols + 1, dtype=np.int64) * d
    data = np.full(rows.shape, values, dtype=np.float64) if np.ndim(values) == 0 else values
    return sp.csc_matrix((data, rows, indptr), shape=(n_rows, n_cols))


def _iterative(weighted: sp.csc_matrix) -> tuple[float, float]:
    """``(iterative_spectral_gap, iterative_delta_r_norm)`` (IMDB, Hoang et al. 2023) of the
    ``|w|``-weighted biadjacency ``weighted`` (every stored entry an edge).

    Left nodes are grouped by degree; for each degree ``d >= 3`` the subgraph of those left
    nodes and all right nodes (zero-degree right nodes then removed; its mean degrees are
    ``dL = d`` and ``dR = edges / right nodes kept``) gets the ``|w|``-weighted spectral gap
    (``s_1 - s_2`` of ``|B_sub|``, the weighted variant of the paper's iterative mean) and the
    unweighted ``delta_r_norm``. Groups with ``dR < 3`` are skipped (as the public code does);
    the two metrics are the plain means over the remaining groups, NaN when none remains.
    """
    n_rows = weighted.shape[0]
    degree = np.diff(weighted.indptr)
    order = np.argsort(degree, kind="stable")
    grouped = weighted[:, order]  # columns sorted by degree: each group is a column range
    ptr, rows, values = grouped.indptr, grouped.indices, grouped.data
    degrees, starts, counts = np.unique(degree[order], return_index=True, return_counts=True)
    gaps, norms = [], []
    for d, start, count in zip(degrees, starts, counts, strict=True):
        if d < MIN_DEGREE:
            continue
        lo, hi = ptr[start], ptr[start + count]
        n_right = int(np.count_nonzero(np.bincount(rows[lo:hi], minlength=n_rows)))
        d_right = (hi - lo) / n_right
        if d_right < MIN_DEGREE:
            continue
        pattern = _group_biadjacency(rows[lo:hi], np.float64(1.0), n_rows, int(d))
        absw = _group_biadjacency(rows[lo:hi], values[lo:hi], n_rows, int(d))
        _, _, norm, gap = _gap_and_delta(pattern, absw, float(d), d_right)
        gaps.append(gap)
        norms.append(norm)
    if not gaps:
        return math.nan, math.nan
    return float(np.mean(gaps)), float(np.mean(norms))


def layer_ramanujan(biadjacency: sp.spmatrix) -> dict[str, float]:
    """Ramanujan metrics of one rolled BGE given its ``out x in`` biadjacency.

    On the undirected graph with zero-degree nodes removed, ``dL`` / ``dR`` are the mean
    left / right degrees (``edges / nodes`` of each side, both >= 1). Whenever that graph has
    more than 3 nodes (:data:`MIN_NODES`), whatever its degrees (as the paper's public code):

    - ``mu_hat``: third largest eigenvalue magnitude of the unweighted adjacency (``= s_2`` of
      the 0/1 biadjacency, see the module docstring);
    - ``delta_r = sqrt(dL-1) + sqrt(dR-1) - mu_hat``, ``delta_r_norm = delta_r /
      (sqrt(dL-1) + sqrt(dR-1))`` (``>= 0``: the layer graph is Ramanujan; NaN when the bound
      is 0, i.e. ``dL = dR = 1``);
    - ``weighted_spectral_gap``: largest minus third largest eigenvalue magnitude of the
      ``|w|``-weighted adjacency (``= s_1 - s_2`` of ``|B|``).

    ``iterative_spectral_gap``, ``iterative_delta_r_norm`` (IMDB): see ``_iterative``; no
    whole-layer gate applies to them. ``density`` = edges / (rows * columns); ``d_left`` /
    ``d_right`` are reported whenever the graph has an edge. Everything else is NaN.

    Parameters
    ----------
    biadjacency : scipy.sparse matrix
        ``out x in``; every stored entry is an edge (explicit zeros included), its value the
        weight ``w``.

    Returns
    -------
    dict[str, float]
        The keys ``METRIC_COLUMNS``.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] D. N. M. Hoang, S. Liu, R. Marculescu, Z. Wang, "Revisiting Pruning at
       Initialization through the Lens of Ramanujan Graph", ICLR, 2023.
    .. [3] B. Pal, A. Biswas, S. Kolay, P. Mitra, B. Basu, "A Study on the Ramanujan Graph
       Property of Winning Lottery Tickets", ICML, 2022.
    """
    b = sp.csr_matrix(biadjacency, dtype=np.float64, copy=True)
    b.sum_duplicates()  # keeps explicit zeros: they are present weights
    b.data = np.abs(b.data)
    n_rows, n_cols = b.shape
    n_edges = b.nnz
    out = dict.fromkeys(METRIC_COLUMNS[1:], math.nan)
    out["density"] = n_edges / (n_rows * n_cols) if n_rows * n_cols else math.nan
    if n_edges == 0:
        return out
    row_keep = np.flatnonzero(np.diff(b.indptr))
    col_keep = np.flatnonzero(np.bincount(b.indices, minlength=n_cols))
    d_left, d_right = n_edges / len(col_keep), n_edges / len(row_keep)
    out["d_left"], out["d_right"] = d_left, d_right
    weighted = b[row_keep][:, col_keep]
    if len(row_keep) + len(col_keep) > MIN_NODES:
        pattern = weighted.copy()
        pattern.data = np.ones(pattern.nnz)
        mu_hat, delta_r, delta_r_norm, gap = _gap_and_delta(pattern, weighted, d_left, d_right)
        out.update(mu_hat=mu_hat, delta_r=delta_r, delta_r_norm=delta_r_norm)
        out["weighted_spectral_gap"] = gap
    it_gap, it_norm = _iterative(weighted.tocsc())
    out["iterative_spectral_gap"], out["iterative_delta_r_norm"] = it_gap, it_norm
    return out


def ramanujan(model: nn.Module, progress: bool = False,
              as_frame: bool = True) -> pd.DataFrame | list[dict]:
    """Ramanujan metrics of the rolled BGE (``encoding.rolled``) of every ``Conv2d`` /
    ``Linear`` layer, as ``docs/metrics.md`` defines them (after Hoang et al. [2]_, as the
    paper's public code computes them [1]_).

    The graph of a layer is bipartite, its biadjacency ``B`` the weight reshaped to ``C_out x
    (C_in / groups * kh * kw)``, one edge per present weight, read as undirected with its
    zero-degree nodes removed; ``d_left``, ``d_right`` are its mean degrees. ``mu_hat`` is the
    third largest eigenvalue magnitude of its unweighted adjacency, ``delta_r = sqrt(d_left -
    1) + sqrt(d_right - 1) - mu_hat`` (``>= 0``: the layer is Ramanujan) and ``delta_r_norm``
    that over the bound; ``weighted_spectral_gap`` is the largest minus the third largest
    eigenvalue magnitude of the ``|w|``-weighted adjacency; the iterative versions average
    these over the subgraphs of the left nodes of each degree ``d >= 3``.

    One row per layer in ``prunable_layers`` order, columns ``layer`` (module path), ``kind``
    (``Conv2d`` / ``Linear``), ``shape`` (weight shape), ``density`` (present / total
    weights), ``d_left``, ``d_right``, ``mu_hat``, ``delta_r``, ``delta_r_norm``,
    ``weighted_spectral_gap``, ``iterative_spectral_gap``, ``iterative_delta_r_norm`` (see
    ``layer_ramanujan``; NaN where undefined). Present weights are those of the mask, or the
    non-zero weights of an unmasked layer.

    Parameters
    ----------
    model : torch.nn.Module
        A network with at least one ``Conv2d`` or ``Linear`` layer, masked or not.
    progress : bool, default False
        Show a progress bar over the layers.
    as_frame : bool, default True
        ``False``: the same rows as a list of dicts (keys ``COLUMNS``, in that order), without
        importing pandas.

    Returns
    -------
    pandas.DataFrame or list of dict

    Raises
    ------
    TypeError
        ``model`` is not a ``torch.nn.Module``.
    ValueError
        The model has no ``Conv2d`` or ``Linear`` layer, or a layer has NaN or inf weights.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] D. N. M. Hoang, S. Liu, R. Marculescu, Z. Wang, "Revisiting Pruning at
       Initialization through the Lens of Ramanujan Graph", ICLR, 2023.
    .. [3] B. Pal, A. Biswas, S. Kolay, P. Mitra, B. Basu, "A Study on the Ramanujan Graph
       Property of Winning Lottery Tickets", ICML, 2022.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"ramanujan expects a torch.nn.Module, got {type(model).__name__}")
    layers = prunable_layers(model)
    if not layers:
        raise ValueError("the model has no Conv2d or Linear layer: nothing to measure")
    rows = []
    graphs = rolled(model)
    # Many small Gram matrices: threads cost more than they save (module docstring).
    with one_blas_thread():
        pairs = zip(layers, graphs, strict=True)
        for (name, module), graph in tqdm(pairs, total=len(layers), desc="ramanujan",
                                          unit="layer", disable=not show_progress(progress)):
            biadjacency = bge_biadjacency(graph)
            if not np.isfinite(biadjacency.data).all():
                raise ValueError(f"layer {name!r} has NaN or inf weights")
            shape = tuple(module.weight.shape)
            row = {"layer": name, "kind": type(module).__name__, "shape": shape}
            row |= layer_ramanujan(biadjacency)
            rows.append({c: row.get(c, math.nan) for c in COLUMNS})
    if not as_frame:
        return rows
    import pandas as pd  # only here: importing pandas is 0.5 s of an ``analyze``, which needs no frame

    return pd.DataFrame(rows, columns=COLUMNS)


def bge_biadjacency(graph: LayeredGraph) -> sp.csr_matrix:
    """The biadjacency of a bipartite ``LayeredGraph`` (left partition first, as
    ``encoding.rolled`` builds it), explicit zero-weight edges kept.

    Parameters
    ----------
    graph : LayeredGraph

    Returns
    -------
    scipy.sparse.csr_matrix
        ``right x left``.
    """
    n_left = graph.partitions[0].size
    return sp.csr_matrix(graph.adjacency[:n_left, n_left:].T)


def ramanujan_summary(table: pd.DataFrame | Sequence[dict]) -> dict[str, float]:
    """Per-network aggregates of a ``ramanujan`` table: for every metric column the mean over
    the layers where it is defined (NaN if defined nowhere), plus ``frac_ramanujan`` = fraction
    of layers with ``delta_r >= 0`` among those where ``delta_r`` is defined (NaN if none),
    ``n_layers``, ``n_defined`` (layers with a defined ``delta_r``) and ``n_defined_iterative``
    (layers with a defined ``iterative_delta_r_norm``).

    Parameters
    ----------
    table : pandas.DataFrame or sequence of dict
        What ``ramanujan`` returned (either form).

    Returns
    -------
    dict[str, float]

    Raises
    ------
    ValueError
        The table lacks some of the ``METRIC_COLUMNS``.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] D. N. M. Hoang, S. Liu, R. Marculescu, Z. Wang, "Revisiting Pruning at
       Initialization through the Lens of Ramanujan Graph", ICLR, 2023.
    .. [3] B. Pal, A. Biswas, S. Kolay, P. Mitra, B. Basu, "A Study on the Ramanujan Graph
       Property of Winning Lottery Tickets", ICML, 2022.
    """
    columns = _metric_columns(table)
    out: dict[str, float] = {}
    for column in METRIC_COLUMNS:
        values = columns[column]
        defined = values[~np.isnan(values)]
        out[column] = float(defined.mean()) if defined.size else math.nan
    delta_r = columns["delta_r"]
    defined = delta_r[~np.isnan(delta_r)]
    out["frac_ramanujan"] = float(np.mean(defined >= 0)) if defined.size else math.nan
    out["n_layers"] = float(len(delta_r))
    out["n_defined"] = float(defined.size)
    out["n_defined_iterative"] = float(np.count_nonzero(~np.isnan(columns["iterative_delta_r_norm"])))
    return out


def _metric_columns(table: pd.DataFrame | Sequence[dict]) -> dict[str, np.ndarray]:
    """The float64 values of every ``METRIC_COLUMNS`` column of a ``ramanujan`` table (None
    read as NaN); ValueError naming the columns the table lacks."""
    if isinstance(table, Sequence):
        lacking = {c for row in table for c in METRIC_COLUMNS if c not in row}
        missing = [c for c in METRIC_COLUMNS if c in lacking]
    else:
        missing = [c for c in METRIC_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"not a ramanujan() table: missing columns {missing}")
    if isinstance(table, Sequence):
        return {c: np.array([row[c] for row in table], dtype=np.float64).reshape(-1)
                for c in METRIC_COLUMNS}
    return {c: table[c].to_numpy(dtype=np.float64) for c in METRIC_COLUMNS}
