"""``LayeredGraph``: the one graph type every encoding produces (SPEC 1).

A directed acyclic graph whose nodes are grouped into ordered *partitions* (the activation
tensors of a network, or the two sides of a bipartite layer graph). Node ``i`` of partition
``p`` is ``p.offset + i``, ``i`` the C-order index into ``p.shape``. The adjacency is a
scipy.sparse CSR matrix, ``n x n``, float32 signed weights, edge ``u -> v`` stored at row ``u``,
column ``v``; every edge goes from a lower partition to a higher one and duplicate pairs are
merged by summing their weights.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from math import prod

import numpy as np
import scipy.sparse as sp

from sparsetopo.errors import GraphTooLargeError, InputError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Partition:
    """A block of consecutive nodes: ``name`` (module path of the producing layer, ``input`` for
    the network input), first node ``offset`` and activation ``shape`` (C order)."""

    name: str
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(prod(self.shape))

    @property
    def stop(self) -> int:
        return self.offset + self.size


def index_dtype(n: int) -> type:
    """int32 when ``n`` fits, else int64."""
    return np.int32 if n < np.iinfo(np.int32).max else np.int64


@dataclass
class LayeredGraph:
    """Sparse layered DAG (see module docstring).

    ``input_index`` / ``output_index`` select the input and output partitions (by default the
    first and the last). ``kind`` names the encoding (``mge``, ``unrolled``, ``rolled``,
    ``rolled_channel``); ``layer`` the module path of a per-layer graph; ``meta`` is free-form
    JSON-serialisable information (e.g. build options, ``n_weights``).
    ``edge_weight_ids`` (optional, aligned with ``adjacency.data``) gives, for every edge, the
    index of the present weight that created it among the ``meta["n_weights"]`` present weights
    of the network (-1 for identity-skip edges; for a pair merged from several weights, the
    smallest index).
    """

    adjacency: sp.csr_matrix
    partitions: list[Partition]
    input_index: int = 0
    output_index: int = -1
    kind: str = "mge"
    layer: str | None = None
    meta: dict = field(default_factory=dict)
    edge_weight_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.partitions[-1].stop if self.partitions else 0
        if self.adjacency.shape != (n, n):
            raise ValueError(f"adjacency is {self.adjacency.shape}, partitions cover {n} nodes")
        if not sp.isspmatrix_csr(self.adjacency) and not isinstance(self.adjacency, sp.csr_array):
            raise TypeError("adjacency must be a scipy.sparse CSR matrix")
        if self.output_index < 0:
            self.output_index += len(self.partitions)
        if self.edge_weight_ids is not None and len(self.edge_weight_ids) != self.adjacency.nnz:
            raise ValueError("edge_weight_ids must have one entry per edge")

    @property
    def n_nodes(self) -> int:
        return int(self.adjacency.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.adjacency.nnz)

    @property
    def input_partition(self) -> Partition:
        return self.partitions[self.input_index]

    @property
    def output_partition(self) -> Partition:
        return self.partitions[self.output_index]

    @property
    def offsets(self) -> np.ndarray:
        """``offsets[p]`` = first node of partition ``p``; ``offsets[-1]`` = ``n_nodes``."""
        return np.array([p.offset for p in self.partitions] + [self.n_nodes], dtype=np.int64)

    def partition(self, name: str) -> Partition:
        for p in self.partitions:
            if p.name == name:
                return p
        raise KeyError(f"no partition named {name!r}; have {[p.name for p in self.partitions]}")

    def partition_of(self, nodes: np.ndarray) -> np.ndarray:
        """Partition index of each node id."""
        return np.searchsorted(self.offsets, np.asarray(nodes), side="right") - 1

    def nbytes(self) -> int:
        a = self.adjacency
        ids = 0 if self.edge_weight_ids is None else self.edge_weight_ids.nbytes
        return int(a.data.nbytes + a.indices.nbytes + a.indptr.nbytes + ids)

    def __repr__(self) -> str:
        return (
            f"LayeredGraph(kind={self.kind!r}, nodes={self.n_nodes:,}, edges={self.n_edges:,}, "
            f"partitions={len(self.partitions)})"
        )

    # --- export to the graph libraries --------------------------------------------------
    def _node_attributes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(partition name, index inside the partition)`` of every node, as arrays."""
        names = np.repeat(np.array([p.name for p in self.partitions], dtype=object),
                          [p.size for p in self.partitions])
        local = np.arange(self.n_nodes) - np.repeat([p.offset for p in self.partitions],
                                                     [p.size for p in self.partitions])
        return names, local

    def _check_export(self, max_edges: int | None, library: str) -> None:
        if max_edges is not None and self.n_edges > max_edges:
            raise GraphTooLargeError(
                f"the graph has {self.n_edges:,} edges, above max_edges={max_edges:,}: {library} "
                f"keeps a Python object per edge (hundreds of bytes each); pass max_edges=None "
                "to export it anyway")

    def to_networkx(self, max_edges: int | None = 5_000_000):
        """The graph as a ``networkx.DiGraph``.

        Nodes are the integers ``0 .. n_nodes - 1`` with the attributes ``partition`` (its
        name) and ``index`` (the C-order index inside the partition's activation, i.e.
        ``(c * H + y) * W + x``); every edge has the attribute ``weight``.

        Parameters
        ----------
        max_edges : int or None, optional
            Refuse graphs with more edges (networkx holds Python objects per node and edge: a
            few million edges take gigabytes). ``None``: no limit.

        Returns
        -------
        networkx.DiGraph
            The exported graph.

        Raises
        ------
        GraphTooLargeError
            The graph has more than ``max_edges`` edges.
        """
        try:
            import networkx as nx
        except ImportError:
            raise InputError("to_networkx needs networkx: pip install networkx") from None
        self._check_export(max_edges, "networkx")
        graph = nx.from_scipy_sparse_array(self.adjacency, create_using=nx.DiGraph)
        names, local = self._node_attributes()
        nx.set_node_attributes(graph, dict(enumerate(names.tolist())), "partition")
        nx.set_node_attributes(graph, dict(enumerate(local.tolist())), "index")
        return graph

    def to_igraph(self):
        """The graph as a directed ``igraph.Graph``, built in C from the CSR arrays: vertex
        attributes ``partition`` and ``index`` as in :meth:`to_networkx`, edge attribute
        ``weight``.

        Returns
        -------
        igraph.Graph
            The exported graph.
        """
        try:
            import igraph as ig
        except ImportError:
            raise InputError("to_igraph needs python-igraph: pip install igraph") from None
        a = self.adjacency
        rows = np.repeat(np.arange(self.n_nodes), np.diff(a.indptr))
        graph = ig.Graph(n=self.n_nodes, edges=np.column_stack([rows, a.indices]),
                         directed=True)
        graph.es["weight"] = a.data.astype(np.float64)
        names, local = self._node_attributes()
        graph.vs["partition"] = names.tolist()
        graph.vs["index"] = local.tolist()
        return graph

    # --- persistence: npz arrays + JSON metadata, never pickle ---------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write to ``path`` (``.npz``) atomically."""
        meta = {
            "format": FORMAT_VERSION,
            "partitions": [[p.name, p.offset, list(p.shape)] for p in self.partitions],
            "input_index": self.input_index,
            "output_index": self.output_index,
            "kind": self.kind,
            "layer": self.layer,
            "meta": self.meta,
        }
        a = self.adjacency
        path = os.fspath(path)
        tmp = f"{path}.tmp-{os.getpid()}.npz"
        arrays = dict(
            indptr=a.indptr,
            indices=a.indices,
            data=a.data,
            shape=np.array(a.shape, dtype=np.int64),
            meta=np.array(json.dumps(meta)),
        )
        if self.edge_weight_ids is not None:
            arrays["edge_weight_ids"] = self.edge_weight_ids
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LayeredGraph:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != FORMAT_VERSION:
                raise InputError(f"{path}: unsupported LayeredGraph format {meta.get('format')}")
            shape = tuple(int(s) for s in z["shape"])
            adj = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=shape)
            ids = z["edge_weight_ids"] if "edge_weight_ids" in z.files else None
        parts = [Partition(n, int(o), tuple(s)) for n, o, s in meta["partitions"]]
        return cls(
            adj,
            parts,
            input_index=meta["input_index"],
            output_index=meta["output_index"],
            kind=meta["kind"],
            layer=meta["layer"],
            meta=meta["meta"],
            edge_weight_ids=ids,
        )


def from_edges(
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    partitions: list[Partition],
    weight_ids: np.ndarray | None = None,
    merge: bool = True,
    consume: bool = False,
    **kwargs,
) -> LayeredGraph:
    """Build a ``LayeredGraph`` from edge arrays; duplicate ``(src, dst)`` pairs are merged by
    summing their weights (a pair whose weights cancel stays an edge of weight 0: it exists).

    Rows are bucketed by a counting sort (scipy's COO->CSR) carrying each edge's ordinal, columns
    sorted inside rows, then duplicates are reduced with ``np.add.reduceat``: O(E) memory beyond
    the inputs, and the provenance ``weight_ids`` survives the merge (smallest id kept).
    ``merge=False`` promises that no pair repeats (the MGE planner knows when), skipping the
    duplicate scan. ``consume=True`` gives the four arrays away: each one that owns its memory
    is emptied in place (``resize(0)``) as soon as it has been used, so the build peaks at about
    28 instead of 36 bytes per edge; the caller must not use them afterwards.
    """
    def release(a) -> None:
        if consume and isinstance(a, np.ndarray) and a.flags.owndata:
            a.resize(0, refcheck=False)

    n = partitions[-1].stop if partitions else 0
    n_edges = len(src)
    idx = index_dtype(max(n, n_edges) + 1)
    if n_edges == 0:
        adj = sp.csr_matrix((n, n), dtype=np.float32)
        adj.indices = adj.indices.astype(idx)
        adj.indptr = adj.indptr.astype(idx)
        ids = None if weight_ids is None else np.zeros(0, np.int32)
        return LayeredGraph(adj, partitions, edge_weight_ids=ids, **kwargs)
    coo = sp.coo_matrix(
        (np.arange(n_edges, dtype=idx), (np.asarray(src, idx), np.asarray(dst, idx))),
        shape=(n, n),
    )
    coo.has_canonical_format = True  # keep every ordinal: duplicates are merged below
    csr = coo.tocsr()
    del coo
    release(src)
    release(dst)
    csr.sort_indices()
    order, cols, row_ptr = csr.data, csr.indices, csr.indptr
    del csr
    w_sorted = np.asarray(weight, dtype=np.float32)[order]
    release(weight)
    ids_sorted = None if weight_ids is None else np.asarray(weight_ids)[order]
    release(weight_ids)
    del order
    if merge:
        first = np.zeros(len(cols), dtype=bool)
        first[row_ptr[:-1][np.diff(row_ptr) > 0]] = True
        first[1:] |= cols[1:] != cols[:-1]
        merge = not first.all()
    if not merge:
        data, indices, indptr, ids = w_sorted, cols, row_ptr, ids_sorted
    else:
        starts = np.flatnonzero(first)
        data = np.add.reduceat(w_sorted, starts).astype(np.float32, copy=False)
        indices = cols[starts]
        row_of_start = np.searchsorted(row_ptr, starts, side="right") - 1
        kept_per_row = np.bincount(row_of_start, minlength=n)
        indptr = np.zeros(n + 1, dtype=idx)
        np.cumsum(kept_per_row, out=indptr[1:])
        ids = None if ids_sorted is None else np.minimum.reduceat(ids_sorted, starts)
    adj = sp.csr_matrix((data, indices.astype(idx, copy=False), indptr.astype(idx, copy=False)),
                        shape=(n, n))
    adj.has_sorted_indices = True
    ids = None if ids is None else ids.astype(np.int32, copy=False)
    return LayeredGraph(adj, partitions, edge_weight_ids=ids, **kwargs)
