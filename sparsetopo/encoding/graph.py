"""``LayeredGraph``: the one graph type every encoding produces (``docs/encodings.md``).

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
    """A block of consecutive nodes of a :class:`LayeredGraph`: the elements of one activation
    tensor (or one side of a bipartite layer graph).

    Its nodes are ``offset .. offset + size - 1``; node ``offset + i`` is the element of C-order
    index ``i`` of ``shape``, i.e. element ``(c, y, x)`` of a ``C x H x W`` activation is node
    ``offset + (c * H + y) * W + x``.

    Parameters
    ----------
    name : str
        The module path of the layer that produces the activation (``layer1.0.conv2``),
        ``input`` for the network input; ``<layer>.in`` for the left side of a rolled graph.
    offset : int
        Its first node.
    shape : tuple of int
        Shape of the activation, batch dimension dropped (``(C, H, W)`` or ``(n,)``).

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """

    name: str
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of nodes: the product of :attr:`shape`."""
        return int(prod(self.shape))

    @property
    def stop(self) -> int:
        """One past the last node: ``offset + size``."""
        return self.offset + self.size


def index_dtype(n: int) -> type:
    """The index type for ``n``: int32 when ``n`` fits, else int64."""
    return np.int32 if n < np.iinfo(np.int32).max else np.int64


@dataclass
class LayeredGraph:
    """A sparse directed acyclic graph whose nodes are split into ordered partitions: what every
    encoding produces.

    The adjacency is a SciPy CSR matrix, ``n x n`` with ``n`` the nodes of all partitions,
    float32 signed weights, the edge ``u -> v`` at row ``u``, column ``v``. Every edge goes from
    a lower partition to a higher one, and a pair ``(u, v)`` appears at most once (parallel
    contributions are merged by summing their weights; a pair whose weights cancel stays an
    edge of weight 0). Definitions in ``docs/encodings.md``.

    Parameters
    ----------
    adjacency : scipy.sparse.csr_matrix
        The ``n x n`` weighted adjacency, ``n = partitions[-1].stop``.
    partitions : list of Partition
        The node blocks, in order, covering ``0 .. n - 1`` without gaps.
    input_index : int, default 0
        Index of the network input's partition.
    output_index : int, default -1
        Index of the network output's partition (negative counts from the end; stored as a
        non-negative index).
    kind : str, default "mge"
        The encoding: ``mge``, ``unrolled``, ``rolled`` or ``rolled_channel``.
    layer : str or None, optional
        The module path of the layer of a per-layer graph; ``None`` for the MGE.
    meta : dict, optional
        Free-form JSON-serialisable information: build options (``identity_skips``,
        ``input_shape``), ``n_weights`` (present weights of the network or layer),
        ``identity_edges``.
    edge_weight_ids : numpy.ndarray or None, optional
        Aligned with ``adjacency.data``: for every edge, the index of the present weight that
        created it among the ``meta["n_weights"]`` present weights (layers in topological
        order, each layer's weights in ``flatnonzero(mask)`` order; -1 for an identity-skip
        edge; the smallest index for a pair merged from several weights).

    Raises
    ------
    ValueError
        The adjacency's shape does not match the partitions, or ``edge_weight_ids`` has not one
        entry per edge.
    TypeError
        The adjacency is not in CSR format.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
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
        """Number of nodes."""
        return int(self.adjacency.shape[0])

    @property
    def n_edges(self) -> int:
        """Number of edges (stored pairs, weight-0 edges included)."""
        return int(self.adjacency.nnz)

    @property
    def input_partition(self) -> Partition:
        """The network input's partition."""
        return self.partitions[self.input_index]

    @property
    def output_partition(self) -> Partition:
        """The network output's partition."""
        return self.partitions[self.output_index]

    @property
    def offsets(self) -> np.ndarray:
        """First node of every partition, then ``n_nodes``: ``offsets[p]`` is the first node of
        partition ``p`` and ``offsets[-1] == n_nodes`` (int64)."""
        return np.array([p.offset for p in self.partitions] + [self.n_nodes], dtype=np.int64)

    def partition(self, name: str) -> Partition:
        """The partition called ``name``.

        Parameters
        ----------
        name : str
            A partition's name (a module path, or ``input``).

        Returns
        -------
        Partition
            The first partition of that name.

        Raises
        ------
        KeyError
            No partition has that name (the message lists the names).
        """
        for p in self.partitions:
            if p.name == name:
                return p
        raise KeyError(f"no partition named {name!r}; have {[p.name for p in self.partitions]}")

    def partition_of(self, nodes: np.ndarray) -> np.ndarray:
        """The partition of each node.

        Parameters
        ----------
        nodes : array_like of int
            Node ids.

        Returns
        -------
        numpy.ndarray
            Index in :attr:`partitions` of the partition holding each node.
        """
        return np.searchsorted(self.offsets, np.asarray(nodes), side="right") - 1

    def nbytes(self) -> int:
        """Bytes held by the CSR arrays (data, indices, indptr) and ``edge_weight_ids``."""
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
        """Write the graph to ``path`` as an ``.npz`` file (arrays and JSON metadata, no pickle),
        atomically: the file is complete or absent.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (replaced if it exists).
        """
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
        """Read a graph written by :meth:`save` (``allow_pickle=False``).

        Parameters
        ----------
        path : str or os.PathLike
            An ``.npz`` file written by :meth:`save`.

        Returns
        -------
        LayeredGraph
            The graph as it was saved.

        Raises
        ------
        InputError
            The file's format version is not this toolkit's.
        """
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
    """Build a :class:`LayeredGraph` from edge arrays, merging parallel edges.

    Every ``(src[i], dst[i])`` is an edge of weight ``weight[i]``; a pair that occurs several
    times becomes one edge whose weight is the sum of theirs (a pair whose weights cancel stays
    an edge of weight 0: it exists), as the MGE merges parallel contributions.

    Rows are bucketed by a counting sort (SciPy's COO to CSR) carrying each edge's ordinal,
    columns sorted inside rows, then duplicates are reduced with ``np.add.reduceat``: O(E)
    memory beyond the inputs, and the provenance ``weight_ids`` survives the merge (smallest id
    kept).

    Parameters
    ----------
    src, dst : numpy.ndarray of int
        Source and target node of every edge.
    weight : numpy.ndarray
        Weight of every edge (stored as float32).
    partitions : list of Partition
        The node blocks; the graph has ``partitions[-1].stop`` nodes.
    weight_ids : numpy.ndarray of int or None, optional
        Provenance of every edge (see :class:`LayeredGraph`'s ``edge_weight_ids``).
    merge : bool, default True
        ``False`` promises that no pair repeats (the MGE planner knows when), skipping the
        duplicate scan.
    consume : bool, default False
        Give the four arrays away: each one that owns its memory is emptied in place
        (``resize(0)``) as soon as it has been used, so the build peaks at about 28 instead of
        36 bytes per edge; the caller must not use them afterwards.
    **kwargs
        The other fields of :class:`LayeredGraph` (``input_index``, ``output_index``,
        ``kind``, ``layer``, ``meta``).

    Returns
    -------
    LayeredGraph
        The graph, its CSR indices sorted inside each row.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    .. [2] P. Virtanen et al. "SciPy 1.0: Fundamental Algorithms for Scientific Computing in
       Python." Nature Methods 17, 2020 (the CSR format).
    """
    n = partitions[-1].stop if partitions else 0
    idx = index_dtype(max(n, len(src)) + 1)
    indptr, indices, data, ids = csr_rows(src, dst, weight, n, weight_ids, merge, consume, idx)
    adj = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    adj.has_sorted_indices = True
    return LayeredGraph(adj, partitions, edge_weight_ids=ids, **kwargs)


def csr_rows(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n_rows: int,
             weight_ids: np.ndarray | None = None, merge: bool = True, consume: bool = False,
             idx: type = np.int64) -> tuple:
    """The CSR arrays of edge arrays whose sources are ``0 .. n_rows - 1``, parallel edges
    merged: ``(indptr, indices, data, ids)`` as :func:`from_edges` builds them (columns sorted
    inside each row, float32 data, int32 ids or ``None``), indices of type ``idx``.

    Parameters
    ----------
    src, dst, weight, weight_ids, merge, consume
        As :func:`from_edges`; ``src`` holds row numbers.
    n_rows : int
        Number of rows.
    idx : type, default numpy.int64
        Type of ``indptr`` and ``indices``.

    Returns
    -------
    tuple
        ``(indptr, indices, data, ids)``.

    References
    ----------
    .. [1] P. Virtanen et al. "SciPy 1.0: Fundamental Algorithms for Scientific Computing in
       Python." Nature Methods 17, 2020 (the CSR format).
    """
    def release(a) -> None:
        if consume and isinstance(a, np.ndarray) and a.flags.owndata:
            a.resize(0, refcheck=False)

    n_edges = len(src)
    if n_edges == 0:
        ids = None if weight_ids is None else np.zeros(0, np.int32)
        return np.zeros(n_rows + 1, idx), np.zeros(0, idx), np.zeros(0, np.float32), ids
    n_cols = int(dst.max()) + 1
    coo = sp.coo_matrix(
        (np.arange(n_edges, dtype=idx), (np.asarray(src, idx), np.asarray(dst, idx))),
        shape=(n_rows, n_cols),
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
        kept_per_row = np.bincount(row_of_start, minlength=n_rows)
        indptr = np.zeros(n_rows + 1, dtype=idx)
        np.cumsum(kept_per_row, out=indptr[1:])
        ids = None if ids_sorted is None else np.minimum.reduceat(ids_sorted, starts)
    ids = None if ids is None else ids.astype(np.int32, copy=False)
    return indptr.astype(idx, copy=False), indices.astype(idx, copy=False), data, ids
