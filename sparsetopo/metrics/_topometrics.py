"""Topometrics of a ``LayeredGraph`` (SPEC 4).

One small function per metric, its docstring the SPEC definition. Every function takes a
``LayeredGraph`` or a ``GraphView`` (the graph plus lazily computed arrays that several metrics
share: degrees, the undirected adjacency, one DFS, the path sweeps); ``topometrics`` builds one
view and evaluates all metrics on it. Conventions: ``in(v)``, ``out(v)`` are in/out degrees,
``I``, ``O`` the input and output partitions, ``|w|`` the absolute edge weight. Graph traversals
run as compiled kernels on the CSR arrays (see ``_csr_kernels`` for why not igraph).
"""

from __future__ import annotations

import math
import mmap
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING

import numba
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from threadpoolctl import ThreadpoolController, threadpool_limits
from tqdm.auto import tqdm

from sparsetopo._memory import release_freed_memory
from sparsetopo.encoding.graph import LayeredGraph
from sparsetopo.io import show_progress

from . import _csr_kernels as K
from ._lanczos import (
    LanczosNoConvergence,
    extreme_eigenvalue_steps,
    extreme_eigenvalues,
    largest_eigenvalue,
    largest_eigenvalue_steps,
)

if TYPE_CHECKING:  # the table functions import pandas when called: 0.5 s off every ``analyze``
    import pandas as pd

# numba's OpenMP layer spin-waits: on a busy 2-core machine a 7 ms kernel took 80 ms. The
# portable work-queue layer does not (it only needs kernels launched from one thread at a time).
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

#: Spectral operators with at most this many nodes get exact dense spectra
#: (``numpy.linalg.eigvalsh``). The size that counts is the operator's: the nodes with at least
#: one edge (isolated nodes only add zero eigenvalues), never the graph's node count.
DENSE_SPECTRUM_MAX = 1500
#: ARPACK (``eigsh``) only runs on operators larger than this, whatever ``dense_max`` says:
#: it needs ``k < N`` (``k >= N`` warns, then raises for a ``LinearOperator``) and is no faster
#: than a dense ``eigvalsh`` on a few dozen rows.
ARPACK_MIN_SIZE = 32
#: ARPACK relative residual tolerance for the sparse spectra: it bounds the relative error of
#: each eigenvalue by 1e-6 (measured errors on zoo MGEs: below 1e-12). Looser is faster (1e-5:
#: 0.6x the Lanczos steps on ResNet-50 @224) but lets ARPACK settle on the wrong member of a
#: near-degenerate pair (seen on a 66-node graph: 2e-3 error in the gap).
ARPACK_TOL = 1e-6
#: Path sums are rescaled whenever a partition's largest value leaves [1e-150, 1e150].
_RESCALE = 1e150

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

#: The 16 topometrics of the paper (SPEC 4 table without ``nodes`` and ``edges``).
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
#: Beyond the paper: metrics of the input->output paths (SPEC 4).
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


class GraphView:
    """A validated ``LayeredGraph`` with cached derived arrays shared by the metrics.

    ``timings`` records the seconds spent building each cached array (name -> s).
    The adjacency must be a DAG over partitions (every edge goes from a lower partition to a
    higher one); rows are sorted on a private copy when they are not.
    """

    def __init__(self, graph: LayeredGraph):
        if not isinstance(graph, LayeredGraph):
            raise TypeError(f"expected a LayeredGraph, got {type(graph).__name__}")
        self.graph = graph
        self.timings: dict[str, float] = {}
        self._order: np.ndarray | None = None  # edge permutation applied by canonicalisation
        self.adjacency = self._canonical(graph.adjacency)
        self.n = graph.n_nodes
        self.m = int(self.adjacency.nnz)
        self._check_layered()

    def _canonical(self, a: sp.csr_matrix) -> sp.csr_matrix:
        if a.has_canonical_format:
            return a
        rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
        order = np.lexsort((a.indices, rows))
        idx = a.indices[order]
        if np.any((np.diff(idx) == 0) & (np.diff(rows[order]) == 0)):
            raise ValueError("adjacency has duplicate (u, v) entries; LayeredGraph merges them")
        self._order = order
        return sp.csr_matrix((a.data[order], idx, a.indptr), shape=a.shape)

    def _check_layered(self) -> None:
        a = self.adjacency
        for p in self.graph.partitions:
            seg = a.indices[a.indptr[p.offset] : a.indptr[p.stop]]
            if seg.size and int(seg.min()) < p.stop:
                raise ValueError(
                    f"partition {p.name!r} has an edge into itself or an earlier partition; "
                    "topometrics need every edge to go from a lower to a higher partition"
                )
        if self.graph.output_index < self.graph.input_index:
            raise ValueError("the output partition comes before the input partition")

    def _timed(self, name: str, fn: Callable):
        t = time.perf_counter()
        out = fn()
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t
        return out

    @property
    def n_chunks(self) -> int:
        return 4 * numba.get_num_threads()

    @cached_property
    def out_degree(self) -> np.ndarray:
        return np.diff(self.adjacency.indptr)

    @cached_property
    def in_degree(self) -> np.ndarray:
        return K.in_degree(self.adjacency.indices, self.n)

    @cached_property
    def partition_index(self) -> np.ndarray:
        """Partition index of every node (int32)."""
        sizes = [p.size for p in self.graph.partitions]
        return np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)

    def partition_mask(self, index: int) -> np.ndarray:
        p = self.graph.partitions[index]
        mask = np.zeros(self.n, bool)
        mask[p.offset : p.stop] = True
        return mask

    @cached_property
    def undirected(self) -> tuple[np.ndarray, np.ndarray]:
        """Row-sorted CSR (indptr, indices) of the undirected simple graph."""
        a = self.adjacency
        return self._timed("undirected", lambda: K.symmetrize(a.indptr, a.indices, self.n))

    @cached_property
    def dfs(self) -> tuple[int, int, int]:
        """(bridges, articulation points, components) of the undirected graph."""
        uptr, uidx = self.undirected
        return self._timed("dfs", lambda: K.bridges_articulation_components(uptr, uidx))

    @cached_property
    def coreness(self) -> np.ndarray:
        uptr, uidx = self.undirected
        return self._timed("coreness", lambda: K.coreness(uptr, uidx))

    @cached_property
    def motif_flags(self) -> np.ndarray:
        """Nodes with an incident edge that skips a partition (``K.long_edge_nodes``: every
        triangle has two of them; the motif count needs them)."""
        a = self.adjacency
        return self._timed("motif_flags", lambda: K.long_edge_nodes(a.indptr, a.indices,
                                                                    self.partition_index))

    @cached_property
    def active(self) -> np.ndarray:
        """Boolean mask of the nodes with at least one edge (the spectral operators' nodes)."""
        return (self.out_degree > 0) | (self.in_degree > 0)

    @cached_property
    def n_active(self) -> int:
        """Number of nodes with at least one edge (= ``spectral_operators.size``)."""
        return int(self.active.sum())

    @cached_property
    def spectral_operators(self) -> _SymOperators:
        return self._timed("spectral_operators", lambda: _SymOperators(self))

    @cached_property
    def paths(self) -> dict:
        return self._timed("paths", self._path_sweeps)

    def _path_sweeps(self) -> dict:
        """Forward sweep from I (reachability, path counts, |w| path sums, partition by
        partition with rescaling against over/underflow), backward sweep to O."""
        a, g = self.adjacency, self.graph
        i_idx, o_idx = g.input_index, g.output_index
        reach = self.partition_mask(i_idx)
        count = reach.astype(np.float64)
        norm = count.copy()
        exp_count = exp_norm = 0.0
        for p in range(i_idx, o_idx + 1):
            part = g.partitions[p]
            lo, hi = part.offset, part.stop
            for arr, which in ((count, "count"), (norm, "norm")):
                top = float(arr[lo:hi].max()) if hi > lo else 0.0
                if top > _RESCALE or 0.0 < top < 1.0 / _RESCALE:
                    arr[lo:] /= top
                    if which == "count":
                        exp_count += math.log10(top)
                    else:
                        exp_norm += math.log10(top)
            if p == o_idx:
                break
            K.forward_push(a.indptr, a.indices, a.data, lo, hi, reach, count, norm)
        out = g.output_partition
        co = K.backward_reach(a.indptr, a.indices, self.partition_mask(o_idx))
        total_count = float(count[out.offset : out.stop].sum())
        total_norm = float(norm[out.offset : out.stop].sum())
        return {
            "forward": reach,
            "backward": co,
            "log10_paths": math.log10(total_count) + exp_count if total_count > 0 else -math.inf,
            "log10_path_norm": math.log10(total_norm) + exp_norm if total_norm > 0 else -math.inf,
        }

    def node_permutation(self) -> np.ndarray:
        """Relabelling that makes each C x H x W partition channel-minor (pixel-major), so the
        out-neighbourhoods of convolution-like layers fall into few 64-bit words."""
        perm = np.arange(self.n, dtype=np.int64)
        for p in self.graph.partitions:
            if len(p.shape) == 3 and p.size:
                c, h, w = p.shape
                old = np.arange(p.size).reshape(c, h, w).transpose(1, 2, 0).ravel()
                perm[p.offset + old] = p.offset + np.arange(p.size)
        return perm


def _view(g: LayeredGraph | GraphView) -> GraphView:
    return g if isinstance(g, GraphView) else GraphView(g)


def _mean(total: float, n: int) -> float:
    return total / n if n else math.nan


# --- counts and degrees --------------------------------------------------------------------


def nodes(g: LayeredGraph | GraphView) -> int:
    """Number of nodes."""
    return _view(g).n


def edges(g: LayeredGraph | GraphView) -> int:
    """Number of edges."""
    return _view(g).m


def _sinks(v: GraphView) -> np.ndarray:
    return (v.out_degree == 0) & (v.in_degree > 0) & ~v.partition_mask(v.graph.output_index)


def _sources(v: GraphView) -> np.ndarray:
    return (v.in_degree == 0) & (v.out_degree > 0) & ~v.partition_mask(v.graph.input_index)


def sink_nodes(g: LayeredGraph | GraphView) -> int:
    """Nodes ``v`` not in ``O`` with ``out(v) = 0`` and ``in(v) > 0``."""
    return int(_sinks(_view(g)).sum())


def source_nodes(g: LayeredGraph | GraphView) -> int:
    """Nodes ``v`` not in ``I`` with ``in(v) = 0`` and ``out(v) > 0``."""
    return int(_sources(_view(g)).sum())


def disconnected_nodes(g: LayeredGraph | GraphView) -> int:
    """Nodes with ``in(v) = out(v) = 0``, in any partition."""
    v = _view(g)
    return int(((v.in_degree == 0) & (v.out_degree == 0)).sum())


def removable_out_edges(g: LayeredGraph | GraphView) -> int:
    """Sum of ``in(v)`` over sink nodes (edges ending in a dead end)."""
    v = _view(g)
    return int(v.in_degree[_sinks(v)].sum())


def removable_in_edges(g: LayeredGraph | GraphView) -> int:
    """Sum of ``out(v)`` over source nodes (edges carrying no input)."""
    v = _view(g)
    return int(v.out_degree[_sources(v)].sum())


def one_hop(g: LayeredGraph | GraphView) -> float:
    """Mean over v of the number of nodes within 1 directed out-step, v included
    (= 1 + out(v): a LayeredGraph has no loops and no duplicate edges)."""
    v = _view(g)
    return _mean(v.n + v.m, v.n)


def two_hop(g: LayeredGraph | GraphView) -> float:
    """Mean over v of the number of distinct nodes within 2 directed out-steps, v included
    (v itself is never reached again in a DAG)."""
    v = _view(g)
    if v.n == 0:
        return math.nan
    a = v.adjacency
    total = K.two_hop_sum(a.indptr, a.indices, v.node_permutation(), v.n_chunks)
    return 1.0 + total / v.n


def motif_sample(n_nodes: int, seed: int = 0) -> np.ndarray:
    """The ``floor(0.001 * nodes)`` distinct start vertices (sorted) drawn with
    ``numpy.random.default_rng(seed)``."""
    k = int(math.floor(0.001 * n_nodes))
    if k == 0:
        return np.zeros(0, np.int64)
    return np.sort(np.random.default_rng(seed).choice(n_nodes, size=k, replace=False))


def motifs(g: LayeredGraph | GraphView, seed: int = 0) -> float:
    """Estimated number of connected 4-node motifs: RAND-ESU estimate with
    ``floor(0.001 * nodes)`` sampled start vertices, i.e. igraph's
    ``motifs_randesu_estimate(size=4, cut_prob=None, sample=motif_sample(nodes, seed))``:
    ``nodes / k * sum over sampled v`` of the connected induced 4-node subgraphs whose smallest
    node id is v. Computed on the undirected simple graph (weakly connected directed 4-node
    subgraphs are exactly the connected undirected ones, so the total is the same); 0 when
    ``k = 0``."""
    v = _view(g)
    roots = motif_sample(v.n, seed)
    if roots.size == 0:
        return 0.0
    uptr, uidx = v.undirected
    counts = K.motif_root_counts(uptr, uidx, v.motif_flags, roots, min(numba.get_num_threads(), roots.size))
    return float(counts.sum()) * (v.n / roots.size)


def strength(g: LayeredGraph | GraphView) -> float:
    """Mean over v of the sum of ``|w|`` of all edges incident to v (= 2 sum |w| / nodes)."""
    v = _view(g)
    return _mean(2.0 * K.abs_sum(v.adjacency.data), v.n)


def k_core(g: LayeredGraph | GraphView) -> float:
    """Mean coreness, degree = in + out (coreness of v: the largest k such that v belongs to
    the k-core, the maximal subgraph whose nodes all have degree >= k)."""
    v = _view(g)
    return _mean(float(v.coreness.sum()), v.n)


def cut_edges(g: LayeredGraph | GraphView) -> int:
    """Number of bridges of the undirected graph."""
    return int(_view(g).dfs[0])


def cut_nodes(g: LayeredGraph | GraphView) -> int:
    """Number of articulation points of the undirected graph."""
    return int(_view(g).dfs[1])


def connected_components(g: LayeredGraph | GraphView) -> int:
    """Number of weakly connected components (isolated nodes count)."""
    return int(_view(g).dfs[2])


def mean_component_size(g: LayeredGraph | GraphView) -> float:
    """``nodes / connected_components``."""
    v = _view(g)
    return _mean(v.n, connected_components(v))


# --- spectra -------------------------------------------------------------------------------


def _abs_sym_dense(v: GraphView) -> np.ndarray:
    """Dense float64 ``S = |A| + |A|^T`` restricted to the nodes with an edge (in node order):
    ``n_active x n_active``, however many isolated nodes the graph has."""
    a = v.adjacency
    if v.n_active == v.n:
        d = np.abs(a.toarray().astype(np.float64))
    else:
        new_id = np.cumsum(v.active) - 1  # node -> row of the kept nodes (valid where active)
        rows = np.repeat(new_id, np.diff(a.indptr))
        d = np.zeros((v.n_active, v.n_active))
        d[rows, new_id[a.indices]] = np.abs(a.data.astype(np.float64))  # no duplicate pairs
    return d + d.T


def _dense_spectrum(v: GraphView, dense_max: int) -> bool:
    """Whether the spectra of ``v`` are computed densely: decided on the size of the operator
    that would be solved (nodes with an edge), never on the graph's node count."""
    return v.n_active <= max(dense_max, ARPACK_MIN_SIZE)


def _no_spectrum(v: GraphView) -> bool:
    """``S = 0`` (no edge, or only edges of weight 0): every eigenvalue is 0. ARPACK cannot
    start on a zero operator ("starting vector is zero")."""
    return v.m == 0 or not np.any(v.adjacency.data)


#: From this many nodes on, the spectra run on a copy of the graph relabelled channel-minor
#: (``GraphView.node_permutation``): ``x`` no longer fits in cache and neighbouring ids make the
#: random reads local (ResNet-50 @224: 0.50 -> 0.34 s per product).
RELABEL_MIN_NODES = 1 << 20
#: Below this fraction of nodes with an edge, the spectra run on a copy of the graph without
#: its isolated nodes (shorter vectors); above it on the graph's own CSR arrays, isolated nodes
#: included (they only add zero eigenvalues), which saves the copy (8 bytes per edge, 0.1-0.7 s
#: on conv6).
COPY_ACTIVE_FRACTION = 0.5
#: Memory the Lanczos basis of ``spectral_gap`` may use (it grows by one vector per step; 20-50
#: steps on the MGEs of the speed issue). An operator too large for ``LANCZOS_MIN_BASIS`` vectors
#: in it goes to ARPACK (16 vectors) instead.
LANCZOS_BASIS_BYTES = 256 << 20
LANCZOS_MIN_BASIS = 40


class _MatrixFree(LinearOperator):
    """A symmetric operator on ``dim``-vectors given by ``apply_into(x, out)`` (a serial numba
    product: ``out = A x``), acting on the vectors supported on ``support`` (a boolean mask;
    ``None``: all). ``_eigsh`` solves it by Lanczos; ``compressed()`` is the same operator on
    the support's coordinates, for the dense and ARPACK fallbacks."""

    def __init__(self, dim: int, apply_into, support: np.ndarray | None = None):
        super().__init__(dtype=np.float64, shape=(dim, dim))
        self.apply_into = apply_into
        self.support = support

    def _matvec(self, x):
        out = np.empty(self.shape[0])
        self.apply_into(np.ascontiguousarray(x, dtype=np.float64).ravel(), out)
        return out

    def compressed(self) -> LinearOperator:
        if self.support is None:
            return self
        idx = np.flatnonzero(self.support)
        full = np.zeros(self.shape[0])

        def matvec(x):
            full[idx] = np.ravel(x)
            return self._matvec(full)[idx]

        return LinearOperator((idx.size, idx.size), dtype=np.float64, matvec=matvec)

    @property
    def support_size(self) -> int:
        return self.shape[0] if self.support is None else int(self.support.sum())


class _SymOperators:
    """Matrix-free float64 operators on ``S = |A| + |A|^T`` (float32 weights times float64
    vectors, one pass over the directed CSR per product, in two row blocks that run on two
    threads once the other task thread is idle): ``S`` itself, its Laplacian
    ``diag(S 1) - S`` and, when partition parity 2-colours the graph, ``S^2`` on one colour
    class (the Gram matrix of the biadjacency).

    Vectors are indexed by node (``dim = nodes``), isolated nodes included: they only add zero
    eigenvalues and keeping them saves a copy of the graph. The spectra run on a relabelled copy
    without isolated nodes (``dim = size``) when these are most of the graph, or channel-minor
    for locality on huge graphs (``RELABEL_MIN_NODES``). ``size`` is the number of nodes with
    an edge (the operators' nonzero part). Every operator method returns a new operator with
    its own scratch space, so two threads can each solve one."""

    def __init__(self, v: GraphView):
        a = v.adjacency
        keep = v.active
        self.size = v.n_active
        order = None
        if self.size >= RELABEL_MIN_NODES:
            order = np.argsort(v.node_permutation())  # new position -> node
            order = order[keep[order]]
        elif self.size < COPY_ACTIVE_FRACTION * v.n:
            order = np.flatnonzero(keep)
        if order is None or (order.size == v.n and np.array_equal(order, np.arange(v.n))):
            self.indptr, self.indices, self.data = a.indptr, a.indices, a.data
            self.active = keep
            nodes = None
        else:  # every dropped row is empty, so the kept rows hold every edge
            new_id = np.full(v.n, -1, a.indices.dtype)
            new_id[order] = np.arange(order.size, dtype=a.indices.dtype)
            self.indptr = np.zeros(order.size + 1, a.indptr.dtype)
            np.cumsum(v.out_degree[order], out=self.indptr[1:])
            bounds = K.balanced_bounds(self.indptr, v.n_chunks)
            self.indices, self.data = K.relabel_rows(
                a.indptr, a.indices, a.data, order, new_id, self.indptr, bounds
            )
            self.active = np.ones(order.size, bool)
            nodes = order
        self.dim = self.indptr.size - 1
        self.colour = None  # partition parity of every vector index, if it 2-colours the graph
        if K.alternates_parity(a.indptr, a.indices, v.partition_index):
            part = v.partition_index if nodes is None else v.partition_index[nodes]
            self.colour = (part % 2).astype(bool)
        self._diag = None
        self._zero = np.zeros(0)
        self.split = K.product_split(self.indptr)  # the products' two row blocks

    def _product(self, x, out, diag=None, parallel: bool = False):
        kernel = K.sym_abs_matvec_into_parallel if parallel else K.sym_abs_matvec_into
        kernel(self.indptr, self.indices, self.data, x, out,
               self._zero if diag is None else diag, diag is not None, self.split)

    def matvec(self, x: np.ndarray) -> np.ndarray:
        out = np.empty(self.dim)
        self._product(np.ascontiguousarray(x, dtype=np.float64).ravel(), out)
        return out

    @property
    def diag(self) -> np.ndarray:
        """``S 1``: the strength of every node."""
        if self._diag is None:
            self._diag = self.matvec(np.ones(self.dim))
        return self._diag

    def adjacency(self) -> _MatrixFree:
        return _MatrixFree(self.dim, self._product)

    def laplacian(self) -> _MatrixFree:
        diag = self.diag
        return _MatrixFree(self.dim, lambda x, out: self._product(x, out, diag))

    def gram_side(self) -> np.ndarray | None:
        """Mask of the smaller colour class (counting nodes with an edge), when partition
        parity 2-colours the graph and that class has more than ``ARPACK_MIN_SIZE`` such
        nodes; else ``None``."""
        if self.colour is None:
            return None
        odd = int((self.colour & self.active).sum())
        side = self.colour if odd <= self.size - odd else ~self.colour
        return side if min(odd, self.size - odd) > ARPACK_MIN_SIZE else None

    def gram(self, side: np.ndarray) -> _MatrixFree:
        """``S^2`` restricted to ``side`` (a colour class), on vectors of ``side``'s
        coordinates only: ``B^T B`` for the biadjacency ``B = S[other, side]`` (``S x`` lies on
        the other class, ``S S x`` on ``side`` again, exactly). Short vectors halve the Lanczos
        basis (memory and orthogonalization)."""
        scratch = self.gram_scratch(side)

        def apply_into(x, out):
            idx, full, tmp, res = scratch
            full[idx] = x
            self._product(full, tmp)
            self._product(tmp, res)
            np.take(res, idx, out=out)

        return _MatrixFree(scratch[0].size, apply_into)

    def gram_scratch(self, side: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(side's node indices, zeroed full vector, two full work vectors)`` for ``gram``."""
        return (np.flatnonzero(side), np.zeros(self.dim), np.empty(self.dim),
                np.empty(self.dim))

    def lanczos_maxdim(self) -> int:
        """How many basis vectors ``spectral_gap``'s Lanczos may keep (``LANCZOS_BASIS_BYTES``;
        0: too large an operator, ARPACK instead)."""
        fit = LANCZOS_BASIS_BYTES // (8 * max(self.dim, 1))
        return 0 if fit < LANCZOS_MIN_BASIS else int(min(fit, 400))


def _start_vector(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 1.5, n)


def _eigsh(op: LinearOperator, k: int, which: str, seed: int, ncv: int,
           maxdim: int = 300) -> np.ndarray:
    """``k`` eigenvalues (``which`` = "LM" or "LA") of the symmetric ``op``. A ``_MatrixFree``
    operator goes to the Lanczos solvers of ``_lanczos`` (``maxdim`` basis vectors at most;
    ``maxdim=0`` or no convergence: ARPACK); anything else, or what they leave, to ARPACK
    (``eigsh``, relative tolerance ``ARPACK_TOL``, ``ncv`` vectors). The callers only send
    operators of more than ``ARPACK_MIN_SIZE`` rows; a smaller one (where ARPACK needs
    ``k < ncv <= N`` and scipy would warn ``k >= N`` and raise) is solved densely instead."""
    support = getattr(op, "support", None)
    n = op.support_size if isinstance(op, _MatrixFree) else op.shape[0]
    if n > max(ARPACK_MIN_SIZE, k) and isinstance(op, _MatrixFree):
        v0 = _start_vector(op.shape[0], seed)
        if support is not None:
            v0 = np.where(support, v0, 0.0)
        try:
            if k == 1 and which == "LA":
                return np.array([largest_eigenvalue(op.apply_into, v0, tol=ARPACK_TOL)])
            if maxdim > 0:
                return extreme_eigenvalues(op.apply_into, v0, k, which, tol=ARPACK_TOL,
                                           maxdim=maxdim, seed=seed, support=support)
        except LanczosNoConvergence:
            pass
    if isinstance(op, _MatrixFree):
        op = op.compressed()
    if n <= max(ARPACK_MIN_SIZE, k):
        vals = np.linalg.eigvalsh(op.matmat(np.eye(n)))
        order = np.argsort(-np.abs(vals) if which == "LM" else -vals, kind="stable")
        return vals[order[:k]]
    try:  # ARPACK's BLAS calls are small and memory-bound: BLAS threads only contend
        with threadpool_limits(1, user_api="blas"):
            return eigsh(op, k=k, which=which, tol=ARPACK_TOL, v0=_start_vector(n, seed),
                         ncv=min(n, ncv), return_eigenvectors=False)
    except ArpackNoConvergence as err:
        raise RuntimeError(f"ARPACK did not converge ({which}, k={k}): {err}") from err


def _top_magnitudes_sparse(v: GraphView, seed: int) -> np.ndarray:
    """The three largest eigenvalue magnitudes of ``S``. When partition parity 2-colours the
    graph, ``S = [[0, B], [B^T, 0]]`` has eigenvalues ``+-sigma_i(B)``: the magnitudes are
    ``sigma_1, sigma_1, sigma_2``, the top two eigenvalues of the Gram matrix of B on the
    smaller side (``S^2`` there: as many products as which="LM" on S, half the Lanczos steps)."""
    ops = v.spectral_operators
    side = ops.gram_side()
    maxdim = ops.lanczos_maxdim()
    if side is not None:
        return _gram_magnitudes(_eigsh(ops.gram(side), 2, "LA", seed, ncv=16, maxdim=maxdim))
    return np.abs(_eigsh(ops.adjacency(), 3, "LM", seed, ncv=16, maxdim=maxdim))


def _gram_magnitudes(mu: np.ndarray) -> np.ndarray:
    """``sigma_1, sigma_1, sigma_2`` from the top eigenvalues ``mu`` of the Gram matrix."""
    sigma = np.sqrt(np.clip(np.sort(mu)[::-1], 0.0, None))
    sigma = np.concatenate([sigma, np.zeros(2)])
    return np.array([sigma[0], sigma[0], sigma[1]])


def _as_products(steps, laplacian: bool = False, gram: tuple | None = None):
    """The requests of a ``_lanczos`` solver generator as product requests ``(x, out,
    laplacian)`` on ``S`` (``out = S x``, or ``diag(S 1) x - S x``): one per request, or two
    when the solver runs on ``S^2`` of one colour class (``gram``: the scratch of
    ``_SymOperators.gram``, the same steps as its operator). Returns the solver's result."""
    try:
        x, out = next(steps)
        while True:
            if gram is None:
                yield x, out, laplacian
            else:
                idx, full, tmp, res = gram
                full[idx] = x
                yield full, tmp, False
                yield tmp, res, False
                np.take(res, idx, out=out)
            x, out = steps.send(None)
    except StopIteration as stop:
        return stop.value


def _unpooled_empty(shape: tuple[int, ...]) -> np.ndarray:
    """A float64 array in its own anonymous memory map: its pages go back to the system as soon
    as it is released. (``np.empty`` takes large blocks from malloc, which on a worker thread
    keeps them in that thread's arena, where the Lanczos basis allocated before cannot reuse
    them: freeing the products' scratch halfway through the spectra would not lower the peak.)"""
    n = int(np.prod(shape))
    return np.frombuffer(mmap.mmap(-1, max(8 * n, 1)), dtype=np.float64, count=n).reshape(shape)


def _shared_spectra(v: GraphView, seed: int,
                    idle: threading.Event | None = None) -> tuple[float, float]:
    """``(spectral_gap, spectral_radius)`` with their two Lanczos solvers run in lockstep,
    every step's products on ``S`` done in one pass over the CSR for both
    (``K.sym_abs_matvec2_into``): the same start vectors and the same arithmetic as
    :func:`spectral_gap` and :func:`spectral_radius` solved apart, so the same values, for
    about 60% of the memory traffic (conv6 @0.9: 61 passes instead of 109). The paired passes
    share one scratch array of per-node records (48 bytes a node, in its own memory map so that
    it goes back to the system once one solver has finished). A solver that does not converge
    is solved again apart (ARPACK)."""
    ops = v.spectral_operators
    side = ops.gram_side()
    start = _start_vector(ops.dim, seed)
    if side is not None:
        scratch = ops.gram_scratch(side)
        gap = extreme_eigenvalue_steps(_start_vector(scratch[0].size, seed), 2, "LA",
                                       tol=ARPACK_TOL, maxdim=ops.lanczos_maxdim(), seed=seed)
        gap = _as_products(gap, gram=scratch)
    else:
        gap = _as_products(extreme_eigenvalue_steps(start, 3, "LM", tol=ARPACK_TOL,
                                                    maxdim=ops.lanczos_maxdim(), seed=seed))
    radius = _as_products(largest_eigenvalue_steps(start, tol=ARPACK_TOL), laplacian=True)
    diag = ops.diag
    records = _unpooled_empty((ops.dim, 6))  # the two-vector products' scratch (K._records2)
    results: dict[int, object] = {}
    pending: dict[int, tuple] = {}
    solvers = [gap, radius]

    def advance(i: int, first: bool = False) -> None:
        try:
            pending[i] = next(solvers[i]) if first else solvers[i].send(None)
        except StopIteration as stop:
            results[i] = stop.value
            pending.pop(i, None)
        except LanczosNoConvergence:
            results[i] = None
            pending.pop(i, None)

    advance(0, True)
    advance(1, True)
    del start  # both solvers have read it (neither writes it) and dropped it
    while pending:
        ids = list(pending)
        parallel = idle is not None and idle.is_set()
        if len(ids) == 2:
            (x1, y1, l1), (x2, y2, l2) = pending[ids[0]], pending[ids[1]]
            kernel = K.sym_abs_matvec2_into_parallel if parallel else K.sym_abs_matvec2_into
            kernel(ops.indptr, ops.indices, ops.data, x1, y1, l1, x2, y2, l2, diag, ops.split,
                   records)
        else:
            records = None  # one solver left: freed while the other's basis still grows
            x, y, lap = pending[ids[0]]
            ops._product(x, y, diag if lap else None, parallel=parallel)
        for i in ids:
            advance(i)
    if results[0] is None:
        gap_value = spectral_gap(v, seed=seed)
    else:
        mags = _gram_magnitudes(results[0]) if side is not None else np.abs(results[0])
        mags = np.sort(np.concatenate([mags, np.zeros(3)]))[::-1]
        gap_value = float(mags[0] - mags[2])
    radius_value = spectral_radius(v, seed=seed) if results[1] is None else float(results[1])
    return gap_value, radius_value


def spectral_gap(
    g: LayeredGraph | GraphView, dense_max: int = DENSE_SPECTRUM_MAX, seed: int = 0
) -> float:
    """On ``S = |A| + |A|^T``: largest minus third largest eigenvalue magnitude. With fewer than
    three nodes the missing magnitudes count as 0. Exact dense eigenvalues when the operator
    (the nodes with an edge; isolated nodes only add zeros) has at most
    ``max(dense_max, ARPACK_MIN_SIZE)`` nodes, Lanczos above (``_lanczos.extreme_eigenvalues``,
    float64 vectors, ARPACK's residual test at relative tolerance ``ARPACK_TOL``; ARPACK
    itself for operators too large for its basis)."""
    v = _view(g)
    if _no_spectrum(v):
        return 0.0
    if _dense_spectrum(v, dense_max):
        mags = np.abs(np.linalg.eigvalsh(_abs_sym_dense(v)))
    else:
        mags = _top_magnitudes_sparse(v, seed)
    mags = np.sort(np.concatenate([mags, np.zeros(3)]))[::-1]
    return float(mags[0] - mags[2])


def spectral_radius(
    g: LayeredGraph | GraphView, dense_max: int = DENSE_SPECTRUM_MAX, seed: int = 0
) -> float:
    """Largest eigenvalue of the Laplacian ``diag(S 1) - S``, ``S = |A| + |A|^T`` (dense up to
    ``max(dense_max, ARPACK_MIN_SIZE)`` nodes with an edge, plain Lanczos above
    (``_lanczos.largest_eigenvalue``, ARPACK's residual test at ``ARPACK_TOL``); isolated nodes
    only add zero eigenvalues)."""
    v = _view(g)
    if _no_spectrum(v):
        return 0.0
    if _dense_spectrum(v, dense_max):
        s = _abs_sym_dense(v)
        return float(np.linalg.eigvalsh(np.diag(s.sum(axis=1)) - s)[-1])
    vals = _eigsh(v.spectral_operators.laplacian(), 1, "LA", seed, ncv=12)
    return float(vals.max())


# --- paths (beyond the paper) --------------------------------------------------------------


def alive_edges(g: LayeredGraph | GraphView) -> int:
    """Edges ``(u, v)`` on some input->output path: u reachable from ``I`` (u in ``I``
    included) and ``O`` reachable from v (v in ``O`` included)."""
    v = _view(g)
    a, pth = v.adjacency, v.paths
    return int(K.alive_edge_count(a.indptr, a.indices, pth["forward"], pth["backward"]))


def effective_density(
    g: LayeredGraph | GraphView,
    edge_weight_ids: np.ndarray | None = None,
    n_weights: int | None = None,
) -> float:
    """Fraction of present weights with at least one unrolled edge on some input->output path.

    Needs the weight that created each edge: ``edge_weight_ids`` (aligned with
    ``adjacency.data``, -1 for edges of no weight), default ``graph.edge_weight_ids`` if the
    graph has it, and the number of present weights ``n_weights``, default
    ``graph.meta["n_weights"]`` (else ``max id + 1``). Without ids it falls back to the edge
    fraction ``alive_edges / edges`` (NaN for a graph without edges)."""
    v = _view(g)
    ids = edge_weight_ids if edge_weight_ids is not None else getattr(v.graph, "edge_weight_ids",
                                                                       None)
    if ids is None:
        return _mean(float(alive_edges(v)), v.m)
    ids = np.asarray(ids)
    if ids.shape != (v.m,):
        raise ValueError(f"edge_weight_ids has shape {ids.shape}, the graph has {v.m} edges")
    if v._order is not None:
        ids = ids[v._order]
    if n_weights is None:
        n_weights = v.graph.meta.get("n_weights")
    if n_weights is None:
        n_weights = int(ids.max()) + 1 if ids.size else 0
    if n_weights == 0:
        return math.nan
    if ids.size and int(ids.max()) >= n_weights:
        raise ValueError(f"edge_weight_ids go up to {int(ids.max())}, n_weights is {n_weights}")
    used = np.zeros(n_weights, bool)
    a, pth = v.adjacency, v.paths
    K.mark_alive_weights(a.indptr, a.indices, pth["forward"], pth["backward"], ids, used)
    return float(used.sum()) / n_weights


def log10_paths(g: LayeredGraph | GraphView) -> float:
    """log10 of the number of directed paths from an ``I`` node to an ``O`` node (-inf when
    there is none)."""
    return _view(g).paths["log10_paths"]


def log10_path_norm(g: LayeredGraph | GraphView) -> float:
    """log10 of ``1^T |W_L| ... |W_1| 1``: the sum over input->output paths of the product of
    ``|w|`` along the path (SynFlow's objective on the MGE); -inf when there is no path."""
    return _view(g).paths["log10_path_norm"]


# --- tables --------------------------------------------------------------------------------

#: SPEC 4 keys in order, each with its function.
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
_SEEDED = ("motifs", "spectral_gap", "spectral_radius")


#: Shared structures each metric needs (``GraphView`` attributes), computed up front by
#: ``_precompute`` on two threads.
_NEEDS: dict[str, tuple[str, ...]] = {
    "motifs": ("undirected", "motif_flags"),
    "k_core": ("coreness",),
    "cut_edges": ("dfs",),
    "cut_nodes": ("dfs",),
    "connected_components": ("dfs",),
    "mean_component_size": ("dfs",),
    **{k: ("paths",) for k in ("effective_density", "alive_edges", "log10_paths",
                               "log10_path_norm")},
}
#: ``(structure, structures it needs)`` in the order the two threads take them (longest first).
_STRUCTURES = (("undirected", ()), ("coreness", ("undirected",)), ("dfs", ("undirected",)),
               ("paths", ()), ("motif_flags", ()))

#: The one metric with a parallel numba kernel that ``_precompute`` runs next to the spectra
#: (two_hop: 1.2 s on conv6 @0.9, otherwise computed after them while one core idles). Only one:
#: numba's work-queue layer takes parallel launches from one thread at a time.
_PARALLEL_METRIC = "two_hop"

_BLAS = None


def _blas_controller():
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()
    return _BLAS


def run_tasks(tasks: Mapping[str, tuple[Callable[[], object], tuple[str, ...]]],
              n_threads: int = 2, idle: threading.Event | None = None) -> dict[str, float]:
    """Run ``tasks`` (name -> (function, names of the tasks it needs)) on ``n_threads``
    threads (the caller's included); each thread takes the first task, in the mapping's order,
    whose needs are done. Returns the seconds each task took; the first error is raised once
    every thread has stopped. The functions must release the GIL for real work (numba
    ``nogil`` kernels, large numpy operations). numba's work-queue layer takes parallel
    launches from one thread at a time: at most one task launches parallel kernels while
    others run (``_PARALLEL_METRIC``), and a task that waits for ``idle`` (set when a thread
    finds no task left, so no other task is running) may launch them from then on."""
    cond = threading.Condition()
    pending = list(tasks)
    done: set[str] = set()
    spent: dict[str, float] = {}
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with cond:
                while True:
                    if errors or not pending:
                        if idle is not None:
                            idle.set()  # a thread is free: the task still running may use it
                        return
                    name = next((t for t in pending
                                 if all(d in done or d not in tasks for d in tasks[t][1])), None)
                    if name is not None:
                        pending.remove(name)
                        break
                    cond.wait()
            t = time.perf_counter()
            try:
                tasks[name][0]()
            except BaseException as exc:  # noqa: BLE001 (re-raised in the caller)
                with cond:
                    errors.append(exc)
                    cond.notify_all()
                return
            with cond:
                spent[name] = time.perf_counter() - t
                done.add(name)
                cond.notify_all()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(n_threads - 1)]
    for th in threads:
        th.start()
    worker()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return spent


def _precompute(v: GraphView, wanted: list[str], seed: int) -> tuple[dict, dict]:
    """The spectra, two_hop and the shared structures the ``wanted`` metrics need, on two
    threads: the spectra (serial products) next to two_hop's parallel kernel and the serial
    graph kernels (undirected CSR, DFS, coreness, path sweeps), BLAS held to one thread (its
    idle threads spin on the cores the kernels use). Returns the precomputed metric values
    and the seconds per task. When both spectra are wanted and sparse they are one task,
    ``_shared_spectra`` (its time goes to ``build:spectra``, not to either metric); once the
    other thread has nothing left, their products run on both cores (bitwise the same values:
    ``K.sym_abs_matvec_into_parallel``)."""
    for name in ("in_degree", "out_degree", "active", "partition_index"):
        getattr(v, name)  # cheap and needed by several tasks: computed once, here
    values: dict[str, float] = {}
    tasks: dict[str, tuple[Callable, tuple]] = {}
    idle = threading.Event()  # set once the other thread has no task left
    spectra = [k for k in ("spectral_gap", "spectral_radius") if k in wanted]
    sparse = not (_no_spectrum(v) or _dense_spectrum(v, DENSE_SPECTRUM_MAX))
    if sparse:
        v.spectral_operators  # noqa: B018 (built here: it may run a parallel kernel)
    if len(spectra) == 2 and sparse and v.spectral_operators.lanczos_maxdim() > 0:

        def shared() -> None:
            gap, radius = v._timed("spectra", lambda: _shared_spectra(v, seed, idle))
            values.update(spectral_gap=gap, spectral_radius=radius)

        tasks["spectra"] = (shared, ())
        spectra = []
    for key in spectra:

        def spectral(key=key):
            values[key] = float(METRICS[key](v, seed=seed))

        tasks[key] = (spectral, ())
    if _PARALLEL_METRIC in wanted:
        # right after the spectra: the other thread takes it first, while the Lanczos basis is
        # still small and before the undirected CSR exists (its word rows then add least to
        # the peak; measured: after the structures it raised wrn28_2's peak by 30 MB)

        def parallel_metric() -> None:
            values[_PARALLEL_METRIC] = METRICS[_PARALLEL_METRIC](v)
            release_freed_memory()  # its word rows, freed in numba's worker arenas

        tasks[_PARALLEL_METRIC] = (parallel_metric, ())
    needed = {s for k in wanted for s in _NEEDS.get(k, ())}
    needed |= {d for s, deps in _STRUCTURES if s in needed for d in deps}
    for name, deps in _STRUCTURES:
        if name in needed:
            tasks[name] = (lambda name=name: getattr(v, name), deps)
    if len(tasks) < 2:
        idle.set()  # no other task: the spectra have both cores from the start
        spent = run_tasks(tasks, n_threads=1)
    else:
        with _blas_controller().limit(limits=1, user_api="blas"):
            spent = run_tasks(tasks, n_threads=2, idle=idle)
    return values, spent


def topometrics(
    graph: LayeredGraph,
    seed: int = 0,
    progress: bool = False,
    timings: dict[str, float] | None = None,
    keys: Iterable[str] | None = None,
) -> dict[str, float]:
    """Every SPEC 4 topometric of ``graph`` (or only ``keys``), keys in SPEC order.

    ``seed`` draws the motif sample (and the Lanczos start vectors). ``progress`` shows a
    progress bar over the metrics. If ``timings`` is a dict it receives the seconds spent per
    metric (``metric``) and per shared structure (``build:undirected``, ``build:dfs``, ...;
    these are excluded from the metric that first needed them). The spectra, two_hop and the
    shared structures are computed first, on two threads (``_precompute``); when both spectra
    are solved iteratively they share their products and their time is ``build:spectra``."""
    wanted = list(METRICS)
    if keys is not None:
        keys = set(keys)
        unknown = sorted(keys - set(METRICS))
        if unknown:
            raise ValueError(f"unknown topometric(s) {unknown}; supported: {', '.join(METRICS)}")
        wanted = [k for k in METRICS if k in keys]
    v = GraphView(graph)
    pre, spent = _precompute(v, wanted, seed)
    out: dict[str, float] = {}
    for key in tqdm(wanted, desc="topometrics", disable=not show_progress(progress), leave=False):
        before = sum(v.timings.values())
        t = time.perf_counter()
        if key in pre:
            value = pre[key]
        else:
            fn = METRICS[key]
            value = fn(v, seed=seed) if key in _SEEDED else fn(v)
        spent_here = time.perf_counter() - t
        out[key] = float(value) if isinstance(value, float) else int(value)
        if timings is not None:
            timings[key] = spent.get(key, 0.0) + spent_here - (sum(v.timings.values()) - before)
    if timings is not None:
        timings.update({f"build:{k}": t for k, t in v.timings.items()})
    return out


def normalise_paper(metrics: Mapping[str, float]) -> dict[str, float]:
    """Paper-normalised copy: ``PAPER_PER_NODE`` keys divided by ``nodes``, ``PAPER_PER_EDGE``
    keys by ``edges`` (NaN when the divisor is 0), the rest unchanged."""
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
    """One row of topometrics per network. ``graphs`` maps names to graphs (or to already
    computed metric dicts), or is a sequence of them (rows named by position).
    ``normalise="paper"`` divides per SPEC 4 (see ``normalise_paper``); ``None`` keeps raw
    values."""
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
    """Topometrics of each per-layer bipartite graph (BGE: ``I`` = left, ``O`` = right side),
    one row per layer; column ``layer`` holds ``graph.layer`` (the module path) or the index."""
    rows = []
    graphs = list(graphs)
    for i, g in enumerate(tqdm(graphs, desc="layers", disable=not show_progress(progress), leave=False)):
        rows.append({"layer": g.layer if g.layer is not None else str(i), **topometrics(g, seed)})
    import pandas as pd

    return pd.DataFrame(rows, columns=["layer", *METRICS])


def layer_mean(graphs: Iterable[LayeredGraph] | pd.DataFrame, seed: int = 0) -> dict[str, float]:
    """Per-network aggregate of layer-wise topometrics: the mean over layers of every metric
    (``graphs`` may also be the DataFrame returned by ``layerwise``)."""
    import pandas as pd

    df = graphs if isinstance(graphs, pd.DataFrame) else layerwise(graphs, seed)
    return {k: float(df[k].mean()) if len(df) else math.nan for k in METRICS}
