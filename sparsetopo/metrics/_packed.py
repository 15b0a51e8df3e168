"""The MGE as a packed undirected graph: built from the network chunk by chunk, node ids in the
fewest whole bytes.

The structural topometrics that walk the graph (cores, bridges, articulation points,
components, two-hop neighbourhoods, motifs) need only its undirected simple adjacency: no
weights, no weight ids. Stored as a CSR whose ids take ``b`` bytes each (3 for fewer than 2**24
nodes), that is ``2 b`` bytes per edge instead of the MGE's 12 plus the 8 of its undirected
copy, so ImageNet's ResNet-50 at 224x224 with 2.9 billion edges fits in 17 GB. Row ``u`` holds
its in-neighbours then its out-neighbours, both ascending: as the MGE's ids are topological,
the row is sorted and its out-neighbours are its tail.

The rows are filled without ever holding the edge list: the in-neighbours of a few channels of
one partition at a time (``encoding.target_chunks``), sorted and deduplicated (the MGE merges
a pair reached twice), then every in-row is transposed into the out-rows in place. The row
lengths come first, from the degrees (``network_paths.network_degrees``: passes of the
network); every row filled is checked against them.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from tqdm.auto import tqdm

from sparsetopo.encoding import TargetChunks
from sparsetopo.io import show_progress

from ._jit import at, kernel
from ._view import BaseView

#: Bytes per edge of a chunk while its rows are sorted (int64 source and target ids, the
#: layer's own int32/int64 edge arrays, weights and weight positions, the sort's copy).
CHUNK_BYTES_PER_EDGE = 72


def id_bytes(n_nodes: int) -> int:
    """The fewest whole bytes that hold every node id ``0 .. n_nodes - 1``."""
    b = 1
    while n_nodes - 1 >= 256**b:
        b += 1
    return b


def packed_bytes(n_nodes: int, n_edges: int) -> int:
    """Bytes of the packed undirected graph: two ids per edge, row pointers and in-degrees."""
    return 2 * n_edges * id_bytes(n_nodes) + 16 * (n_nodes + 1)


class PackedView(BaseView):
    """The undirected simple graph of an MGE, packed: what the structural metrics (``k_core``,
    ``cut_edges``, ``cut_nodes``, ``connected_components``, ``mean_component_size``,
    ``two_hop``, ``motifs``) read, in place of a ``GraphView``.

    Parameters
    ----------
    uptr : numpy.ndarray
        int64 row pointers (``n + 1``).
    ids : numpy.ndarray
        ``uint8`` of shape ``(uptr[-1], b)``: the neighbours' ids, ``b`` bytes little-endian.
    in_degree : numpy.ndarray
        In-degree of every node: row ``u``'s first ``in_degree[u]`` entries are its
        in-neighbours.
    partitions : list of Partition
        The MGE's partitions.
    """

    def __init__(self, uptr: np.ndarray, ids: np.ndarray, in_degree: np.ndarray,
                 partitions: list):
        self.uptr, self.ids, self.in_degree = uptr, ids, in_degree
        self.partitions = list(partitions)
        self.n = len(uptr) - 1
        self.m = int(uptr[-1]) // 2
        self.timings: dict[str, float] = {}
        self._cache: dict[str, object] = {}

    @property
    def undirected(self) -> tuple[np.ndarray, np.ndarray]:
        """``(indptr, ids)``: the packed CSR, rows sorted."""
        return self.uptr, self.ids

    @cached_property
    def out_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(start, stop, ids)``: the out-neighbours are each row's tail."""
        return self.uptr[:-1] + self.in_degree, self.uptr[1:], self.ids


def packed_undirected(chunks: TargetChunks, in_degree: np.ndarray, out_degree: np.ndarray,
                      progress: bool = False) -> PackedView:
    """The packed undirected graph of the MGE whose edges ``chunks`` plans.

    Parameters
    ----------
    chunks : TargetChunks
        ``encoding.target_chunks`` of the network.
    in_degree, out_degree : numpy.ndarray
        Every node's in- and out-degree in the MGE (merged pairs counted once).

    Returns
    -------
    PackedView

    Raises
    ------
    RuntimeError
        A row's neighbours disagree with its degree (a bug, not bad input).
    """
    n = chunks.n_nodes
    uptr = np.zeros(n + 1, np.int64)
    np.cumsum(in_degree + out_degree, out=uptr[1:])
    ids = np.empty((int(uptr[-1]), id_bytes(n)), np.uint8)
    in_degree = np.ascontiguousarray(in_degree, dtype=np.int64)
    with tqdm(total=len(chunks), desc="packed MGE", unit="chunk",
              disable=not show_progress(progress), leave=False) as bar:
        for lo, hi, src, dst in chunks:
            bad = _fill_in_rows(uptr, ids, in_degree, lo, hi, src, dst)
            del src, dst
            if bad >= 0:
                raise RuntimeError(f"internal: node {bad} has {in_degree[bad]} in-neighbours by "
                                   "its degree but not in the MGE's edges")
            bar.update()
    bad = _transpose_in_rows(uptr, ids, in_degree)
    if bad >= 0:
        raise RuntimeError(f"internal: node {bad}'s out-neighbours disagree with its out-degree")
    return PackedView(uptr, ids, in_degree, chunks.partitions)


@kernel(inline="always")
def _put(ids, k, v):
    for j in range(ids.shape[1]):
        ids[k, j] = (v >> np.int64(8 * j)) & 255


@kernel
def _fill_in_rows(uptr, ids, in_degree, lo, hi, src, dst):
    """Rows ``lo .. hi - 1``' in-neighbours from the edges ``src -> dst`` into them, sorted and
    deduplicated, at the head of each row; -1, or the first node whose count disagrees."""
    m = hi - lo
    start = np.zeros(m + 1, np.int64)
    for d in dst:
        start[d - lo + 1] += 1
    for r in range(m):
        start[r + 1] += start[r]
    fill = start[:-1].copy()
    tmp = np.empty(src.size, np.int64)
    for e in range(src.size):
        r = dst[e] - lo
        tmp[fill[r]] = src[e]
        fill[r] += 1
    for r in range(m):
        row = np.sort(tmp[start[r]:start[r + 1]])
        k = uptr[lo + r]
        count = 0
        for j in range(row.size):
            if j == 0 or row[j] != row[j - 1]:
                if count == in_degree[lo + r]:
                    return lo + r
                _put(ids, k + count, row[j])
                count += 1
        if count != in_degree[lo + r]:
            return lo + r
    return -1


@kernel
def _transpose_in_rows(uptr, ids, in_degree):
    """Every row's out-neighbours after its in-neighbours: ``u``'s in-neighbour ``v`` has ``u``
    as out-neighbour; scanning ``u`` in order keeps every out-row ascending. -1, or a node
    whose out-row is not exactly filled."""
    n = uptr.size - 1
    fill = uptr[:-1] + in_degree
    for u in range(n):
        for k in range(uptr[u], uptr[u] + in_degree[u]):
            v = at(ids, k)
            if fill[v] >= uptr[v + 1]:
                return v
            _put(ids, fill[v], u)
            fill[v] += 1
    for v in range(n):
        if fill[v] != uptr[v + 1]:
            return v
    return -1
