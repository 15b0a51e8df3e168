"""``GraphView``: a validated ``LayeredGraph`` and the arrays its metrics share."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import TypeVar

import numpy as np
import psutil
import scipy.sparse as sp

from sparsetopo.encoding.graph import LayeredGraph
from sparsetopo.errors import GraphTooLargeError

from ._jit import kernel

T = TypeVar("T")


class BaseView:
    """What every view of a graph offers its metrics: ``n`` and ``m`` (nodes and edges), the
    ``partitions``, the rows of out-neighbours (``out_rows``), the undirected simple graph
    (``undirected``) and a cache of what several metrics share (``cached``)."""

    n: int
    m: int
    partitions: list
    timings: dict[str, float]
    _cache: dict[str, object]
    #: Bytes ``two_hop`` may hold in word rows at once (None: all of them).
    word_budget: int | None = None

    def cached(self, name: str, compute: Callable[[BaseView], T]) -> T:
        """``compute(self)``, computed on the first call for ``name`` and kept; its seconds go
        to ``timings[name]``, less those of the cached items it computed on the way."""
        if name not in self._cache:
            nested = sum(self.timings.values())
            t = time.perf_counter()
            value = compute(self)
            spent = time.perf_counter() - t - (sum(self.timings.values()) - nested)
            self._cache[name] = value
            self.timings[name] = self.timings.get(name, 0.0) + spent
        return self._cache[name]  # type: ignore[return-value]

    def reserve(self, what: str, n_bytes: int) -> None:
        """Refuse, before it is allocated, scratch space of ``n_bytes`` that the memory
        available now cannot hold.

        Raises
        ------
        GraphTooLargeError
            ``n_bytes`` exceeds ``psutil``'s available memory.
        """
        available = int(psutil.virtual_memory().available)
        if n_bytes > available:
            raise GraphTooLargeError(
                f"{what} would need ~{n_bytes / 2**30:.1f} GiB but only "
                f"{available / 2**30:.1f} GiB is available")

    @cached_property
    def partition_index(self) -> np.ndarray:
        """Partition index of every node (int32)."""
        sizes = [p.size for p in self.partitions]
        return np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)


class GraphView(BaseView):
    """A validated ``LayeredGraph`` with a cache of the arrays several metrics share.

    Every metric function takes a ``LayeredGraph`` or a ``GraphView``; ``topometrics`` builds
    one view and evaluates every metric on it, so that the degrees, the undirected adjacency and
    each algorithm's intermediate results (``cached``) are computed once. The view holds data
    only: the algorithms live in their own modules.

    Parameters
    ----------
    graph : LayeredGraph
        Its adjacency must be a DAG over partitions: every edge goes from a lower partition to a
        higher one. Rows that are not sorted by column are sorted on a private copy.

    Attributes
    ----------
    graph : LayeredGraph
        The graph viewed.
    adjacency : scipy.sparse.csr_matrix
        Its adjacency with rows sorted by column (the graph's own when already sorted).
    edge_order : numpy.ndarray or None
        The permutation of the graph's edges that sorted the rows (``None``: none needed).
    n, m : int
        Numbers of nodes and edges.
    timings : dict[str, float]
        Seconds spent computing each cached item, by name.

    Raises
    ------
    TypeError
        ``graph`` is not a ``LayeredGraph``.
    ValueError
        An edge goes into its own or an earlier partition, the output partition comes before the
        input partition, or the adjacency has duplicate entries.

    References
    ----------
    Hagberg, Schult, Swart (2008). Exploring network structure, dynamics, and function using
    NetworkX. Proceedings of the 7th Python in Science Conference (SciPy 2008), 11-15 (the
    graph-plus-cache design of its views).
    """

    def __init__(self, graph: LayeredGraph):
        if not isinstance(graph, LayeredGraph):
            raise TypeError(f"expected a LayeredGraph, got {type(graph).__name__}")
        self.graph = graph
        self.timings: dict[str, float] = {}
        self._cache: dict[str, object] = {}
        self.edge_order: np.ndarray | None = None
        self.adjacency = self._sorted_rows(graph.adjacency)
        self.n = graph.n_nodes
        self.m = int(self.adjacency.nnz)
        self.partitions = graph.partitions
        self._check_layered()

    def _sorted_rows(self, a: sp.csr_matrix) -> sp.csr_matrix:
        if a.has_canonical_format:
            return a
        rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
        order = np.lexsort((a.indices, rows))
        idx = a.indices[order]
        if np.any((np.diff(idx) == 0) & (np.diff(rows[order]) == 0)):
            raise ValueError("adjacency has duplicate (u, v) entries; LayeredGraph merges them")
        self.edge_order = order
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

    @cached_property
    def out_degree(self) -> np.ndarray:
        """Out-degree of every node."""
        return np.diff(self.adjacency.indptr)

    @cached_property
    def in_degree(self) -> np.ndarray:
        """In-degree of every node."""
        return np.bincount(self.adjacency.indices, minlength=self.n)

    @cached_property
    def active(self) -> np.ndarray:
        """Mask of the nodes with at least one edge."""
        return (self.out_degree > 0) | (self.in_degree > 0)

    @cached_property
    def n_active(self) -> int:
        """Number of nodes with at least one edge."""
        return int(self.active.sum())

    def partition_mask(self, index: int) -> np.ndarray:
        """Mask of the nodes of partition ``index``."""
        p = self.graph.partitions[index]
        mask = np.zeros(self.n, bool)
        mask[p.offset : p.stop] = True
        return mask

    @property
    def out_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(start, stop, indices)``: the out-neighbours of ``u`` are
        ``indices[start[u]:stop[u]]``, ascending."""
        a = self.adjacency
        return a.indptr[:-1], a.indptr[1:], a.indices

    @property
    def undirected(self) -> tuple[np.ndarray, np.ndarray]:
        """``(indptr, indices)``: CSR of the undirected simple graph, rows sorted."""
        a = self.adjacency
        return self.cached("undirected", lambda v: _symmetrize(a.indptr, a.indices, v.n))


def as_view(g: LayeredGraph | BaseView) -> BaseView:
    """``g`` itself when it is a view, else a new ``GraphView`` of it."""
    return g if isinstance(g, BaseView) else GraphView(g)


@kernel
def _symmetrize(indptr, indices, n):
    """Undirected CSR of a DAG whose ids are topological: row ``u`` = in-neighbours (ascending)
    followed by row ``u`` of the input, so rows are sorted when the input rows are."""
    deg = np.zeros(n + 1, np.int64)
    for u in range(n):
        deg[u + 1] += indptr[u + 1] - indptr[u]
        for e in range(indptr[u], indptr[u + 1]):
            deg[indices[e] + 1] += 1
    uptr = np.cumsum(deg)
    fill = uptr[:-1].copy()
    uidx = np.empty(uptr[n], indices.dtype)
    for u in range(n):
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            uidx[fill[v]] = u
            fill[v] += 1
    for u in range(n):
        s = fill[u]
        for e in range(indptr[u], indptr[u + 1]):
            uidx[s] = indices[e]
            s += 1
    return uptr, uidx
