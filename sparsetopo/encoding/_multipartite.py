"""Multipartite graph encoding (MGE) and its exact size estimate (``docs/encodings.md``).

The MGE is the union of every layer's unrolled BGE, each layer's left side identified with the
nodes of the partition that produced its input:

- partitions: the network input, then one per conv/linear output in topological order, except
  a *shortcut* (a conv/linear whose output only feeds a residual ``add`` as its shorter operand);
- pooling: pooled elements are not nodes; an edge leaving a pooled element leaves from every
  element of its window instead (same weight);
- ``add``: the output elements are the nodes of the main-path operand (more conv/linear layers
  from the input; the first on a tie); a shortcut's unrolled edges go from its input partition
  straight into those nodes; identity skips add ``x[i] -> out[i]`` (weight 1) only with
  ``identity_skips=True``;
- ``cat``: the concatenated partition is the channel-wise union of its operands' nodes.

Building is planned first (partitions, node maps, one job per layer), so that node and edge
counts and the memory needed are known exactly before anything large is allocated.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import psutil
import scipy.sparse as sp
from torch import nn
from tqdm.auto import tqdm

from sparsetopo.io import show_progress

from ..errors import EncodingError, GraphTooLargeError, TracingError, UnsupportedModelError
from ..tracing import LayerDAG, Op, traced
from .graph import LayeredGraph, Partition, csr_rows, index_dtype
from .layers import (
    layer_arrays,
    layer_edge_count,
    layer_edges,
    layer_output_edge_counts,
    pool_windows,
)


@dataclass
class NodeMap:
    """Graph nodes of every element of an activation: element ``e`` is the node list
    ``nodes[indptr[e]:indptr[e+1]]`` (``indptr is None``: exactly one node, ``nodes[e]``).
    ``offset`` is set when the nodes are the contiguous range ``offset + e`` (a partition)."""

    nodes: np.ndarray
    indptr: np.ndarray | None = None
    offset: int | None = None

    @classmethod
    def partition(cls, part: Partition) -> NodeMap:
        return cls(np.arange(part.offset, part.stop, dtype=np.int64), offset=part.offset)

    @property
    def simple(self) -> bool:
        return self.indptr is None

    def multiplicity(self) -> np.ndarray:
        if self.indptr is None:
            return np.ones(len(self.nodes), dtype=np.int64)
        return np.diff(self.indptr)

    def _width(self) -> int | None:
        """The common length of every element's node list, if there is one."""
        if self.indptr is None:
            return 1
        m = np.diff(self.indptr)
        return int(m[0]) if len(m) and (m == m[0]).all() else None

    def lookup(self, elems: np.ndarray) -> np.ndarray:
        """The node of each element of a simple map."""
        return elems + self.offset if self.offset is not None else self.nodes[elems]

    def expand(self, elems: np.ndarray) -> tuple[None | int | np.ndarray, np.ndarray]:
        """Nodes of the given elements: ``(rep, nodes)``. ``rep`` is ``None`` when every element
        has exactly one node, an int ``k`` when each has ``k`` (consecutive in ``nodes``), else
        ``owner`` with ``owner[j]`` = position in ``elems`` of ``nodes[j]``."""
        if self.indptr is None:
            return None, self.lookup(elems)
        k = self._width()
        if k is not None:
            return k, self.nodes.reshape(-1, k)[elems].reshape(-1)
        counts = self.indptr[elems + 1] - self.indptr[elems]
        owner = np.repeat(np.arange(len(elems), dtype=np.int64), counts)
        starts = np.cumsum(counts) - counts
        pos = np.repeat(self.indptr[elems] - starts, counts) + np.arange(int(counts.sum()))
        return owner, self.nodes[pos]


def _concat_maps(maps: list[NodeMap]) -> NodeMap:
    if all(m.simple for m in maps):
        return NodeMap(np.concatenate([m.nodes for m in maps]))
    counts = np.concatenate([m.multiplicity() for m in maps])
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return NodeMap(np.concatenate([m.nodes for m in maps]), indptr)


def _pooled_map(src: NodeMap, out_elem: np.ndarray, in_elem: np.ndarray, n_out: int) -> NodeMap:
    """Node lists of pooled elements: the node lists of their window elements, concatenated.

    Applying the MGE's pooling rule (an edge leaving a pooled element leaves from every element
    of its window instead) once per pooling op, a node inside two overlapping inner windows of
    one outer window appears twice: its two parallel edges to a consumer are later merged by
    summing, exactly as a sum-pooling forward pass would count it."""
    owner, nodes = src.expand(in_elem)
    elem = out_elem if owner is None else out_elem[owner]
    order = np.lexsort((nodes, elem))
    elem, nodes = elem[order], nodes[order]
    indptr = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(np.bincount(elem, minlength=n_out), out=indptr[1:])
    return NodeMap(nodes, indptr)


@dataclass
class _Job:
    """Edges to emit: a layer's unrolled edges (``op`` set) or an identity skip."""

    src: NodeMap
    dst: NodeMap
    n_edges: int
    op: Op | None = None
    in_shape: tuple = ()
    out_shape: tuple = ()
    weight_offset: int = 0
    arrays: tuple | None = None  # (effective weight, mask) as numpy


@dataclass
class _Plan:
    partitions: list[Partition]
    jobs: list[_Job]
    output_index: int
    n_weights: int
    may_merge: bool
    meta: dict = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        return self.partitions[-1].stop

    @property
    def n_edges(self) -> int:
        return sum(j.n_edges for j in self.jobs)


def _depths(dag: LayerDAG) -> dict[int, int]:
    """Number of conv/linear layers on the longest path from the input to each value."""
    depth = {dag.input: 0}
    for op in dag.ops[1:]:
        d = max(depth[v] for v in op.inputs)
        depth[op.output] = d + 1 if op.kind in ("conv", "linear") else d
    return depth


def _main_operand(op: Op, depth: dict[int, int]) -> int:
    best = op.inputs[0]
    for v in op.inputs[1:]:
        if depth[v] > depth[best]:
            best = v
    return best


def residual_roles(dag: LayerDAG) -> tuple[dict[int, int], dict[int, int]]:
    """The roles of the operands of every residual ``add`` in the MGE.

    Returns ``(main_of_add, shortcut_of)``: ``main_of_add[i]`` is the main-path operand (value
    id) of the add op ``dag.ops[i]``: the operand with more conv/linear layers on its longest
    path from the network input, the first one on a tie; its nodes are the add's output nodes.
    ``shortcut_of[v] = i`` when value ``v`` is a *shortcut*: the output of a conv/linear op whose
    only consumer is add ``i`` (once), that is not the add's main operand nor the network
    output. A shortcut has no partition of its own: its unrolled edges go straight into the
    main operand's nodes.

    Parameters
    ----------
    dag : LayerDAG
        The traced network (``sparsetopo.tracing.trace``).

    Returns
    -------
    main_of_add : dict[int, int]
        Op index of every residual add -> value id of its main-path operand.
    shortcut_of : dict[int, int]
        Value id of every shortcut -> op index of the add it feeds.

    References
    ----------
    Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
    Topology via Multipartite Graph Representations. Transactions on Machine Learning Research.
    """
    depth = _depths(dag)
    consumers = dag.consumers()
    producer = {op.output: op for op in dag.ops}
    main_of_add = {i: _main_operand(op, depth) for i, op in enumerate(dag.ops) if op.kind == "add"}
    shortcut_of: dict[int, int] = {}  # shortcut op output value -> add op index
    for i, main in main_of_add.items():
        for v in dag.ops[i].inputs:
            p = producer[v]
            if (v != main and p.kind in ("conv", "linear") and consumers[v] == [i]
                    and v != dag.output and dag.ops[i].inputs.count(v) == 1):
                shortcut_of[v] = i
    return main_of_add, shortcut_of


def _plan(model: nn.Module, input_shape, identity_skips: bool,
          dag: LayerDAG | None = None) -> _Plan:
    dag = traced(model, input_shape, dag)
    shape = {v.id: v.shape for v in dag.values}
    main_of_add, shortcut_of = residual_roles(dag)

    partitions = [Partition("input", 0, tuple(shape[dag.input]))]
    maps: dict[int, NodeMap] = {dag.input: NodeMap.partition(partitions[0])}
    jobs: list[_Job] = []
    deferred: dict[int, tuple[Op, int]] = {}
    n_weights = 0
    weight_offset: dict[str, int] = {}
    arrays = {}
    for op in dag.layers():
        arrays[op.name] = layer_arrays(op.module)
        weight_offset[op.name] = n_weights
        n_weights += int(arrays[op.name][1].sum())
    for op in dag.ops[1:]:
        out_shape = shape[op.output]
        if op.kind in ("conv", "linear"):
            src = maps[op.inputs[0]]
            if op.output in shortcut_of:
                deferred[op.output] = (op, weight_offset[op.name])
                continue
            part = Partition(op.name, partitions[-1].stop, tuple(out_shape))
            partitions.append(part)
            maps[op.output] = NodeMap.partition(part)
            jobs.append(_layer_job(op, src, maps[op.output], shape, weight_offset[op.name],
                                   arrays[op.name]))
        elif op.kind == "pool":
            in_shape = shape[op.inputs[0]]
            if len(in_shape) != 3:
                raise EncodingError(f"pooling {op.name} needs a C x H x W input, got {in_shape}")
            out_elem, in_elem = pool_windows(op.params, in_shape, out_shape)
            maps[op.output] = _pooled_map(maps[op.inputs[0]], out_elem, in_elem,
                                          int(np.prod(out_shape)))
        elif op.kind == "reshape":
            maps[op.output] = maps[op.inputs[0]]
        elif op.kind == "cat":
            maps[op.output] = _concat_maps([maps[v] for v in op.inputs])
        elif op.kind == "add":
            main = main_of_add[dag.ops.index(op)]
            target = maps[main]
            maps[op.output] = target
            for v in op.inputs:
                if v == main:
                    continue
                if v in deferred:
                    sc, offset = deferred.pop(v)
                    _require_simple(target, op, "a convolutional shortcut")
                    jobs.append(_layer_job(sc, maps[sc.inputs[0]], target, shape, offset,
                                           arrays[sc.name]))
                elif identity_skips:
                    _require_simple(target, op, "an identity skip")
                    src = maps[v]
                    jobs.append(_Job(src, target, int(src.multiplicity().sum())))
        else:
            raise EncodingError(f"internal: unexpected op kind {op.kind}")
    out_map = maps[dag.output]
    _require_simple(out_map, dag.ops[-1], "the network output")
    offsets = np.array([p.offset for p in partitions])
    output_index = int(np.searchsorted(offsets, out_map.nodes[0], side="right") - 1)
    return _Plan(partitions, jobs, output_index, n_weights, _may_merge(jobs, partitions))


def _require_simple(m: NodeMap, op: Op, what: str) -> None:
    if not m.simple:
        raise EncodingError(
            f"{what} at '{op.name}' lands on pooled elements, which are not nodes of the MGE; "
            "supported: residual adds whose main operand is a conv/linear output or the input"
        )


def _layer_job(op: Op, src: NodeMap, dst: NodeMap, shape, weight_offset: int,
               arrays: tuple) -> _Job:
    in_shape, out_shape = shape[op.inputs[0]], shape[op.output]
    mult = None if src.simple else src.multiplicity()
    n = layer_edge_count(op.module, in_shape, out_shape, mult, mask=arrays[1])
    return _Job(src, dst, n, op, tuple(in_shape), tuple(out_shape), weight_offset, arrays)


def _may_merge(jobs: list[_Job], partitions: list[Partition]) -> bool:
    """Whether some (src, dst) pair can be produced twice (then merged, so the planned edge
    count is an upper bound): overlapping node sets of pooled elements, or two jobs writing
    into the same partition from the same one."""
    offsets = np.array([p.offset for p in partitions])
    seen = set()
    for j in jobs:
        if j.src.offset is None and len(np.unique(j.src.nodes)) < len(j.src.nodes):
            return True  # overlapping pooling windows, or cat of one tensor with itself
        src_parts = frozenset(np.unique(np.searchsorted(offsets, j.src.nodes, "right") - 1))
        dst_part = int(np.searchsorted(offsets, j.dst.nodes[0], "right") - 1)
        for sp_ in src_parts:
            if (sp_, dst_part) in seen:
                return True
        seen.update((sp_, dst_part) for sp_ in src_parts)
    return False


@dataclass(frozen=True)
class EncodingEstimate:
    """The size of an MGE, computed from masks and shapes without building it
    (:func:`estimate`).

    Parameters
    ----------
    nodes : int
        Nodes of the MGE (exact).
    edges : int
        Its edges: exact when ``exact``; otherwise the number of edges before parallel pairs
        are merged, an upper bound.
    exact : bool
        Whether no pair can be produced twice (then ``edges`` is exact).
    graph_bytes : int
        Bytes of the finished graph (CSR arrays and weight ids).
    peak_bytes : int
        Bytes the build needs at its peak.
    partitions : tuple of Partition
        The MGE's partitions.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """

    nodes: int
    edges: int
    exact: bool
    graph_bytes: int
    peak_bytes: int
    partitions: tuple[Partition, ...]

    def __str__(self) -> str:
        return (f"{self.nodes:,} nodes, {self.edges:,} edges{'' if self.exact else ' (at most)'}, "
                f"graph {self.graph_bytes / 2**30:.2f} GiB, build peak "
                f"~{self.peak_bytes / 2**30:.2f} GiB")


def _bytes(n_nodes: int, n_edges: int, largest_group: int, largest_job: int) -> tuple[int, int]:
    ib = np.dtype(index_dtype(max(n_nodes, n_edges) + 1)).itemsize
    graph = n_edges * (ib + 4 + 4) + (n_nodes + 1) * ib  # indices, weights, weight ids, indptr
    # the finished rows and row counts, then one source partition's edges at a time: its edge
    # arrays (two int64, float32, int64 ids: 28 B per edge) while its jobs are expanded (48 B
    # per edge of the job at hand), concatenated (twice 28 B), then the CSR with ordinals,
    # sorted copies and the merge's scratch (``csr_rows``: at most 52 B per edge of the group)
    transient = max(56 * largest_group, 28 * largest_group + 48 * largest_job)
    peak = graph + n_nodes * ib + transient
    return graph, peak


def _group_sizes(plan: _Plan) -> list[int]:
    """Edges leaving each partition (a job reading several partitions counts in each)."""
    sizes = [0] * len(plan.partitions)
    for job in plan.jobs:
        for k in _source_partitions(plan, job):
            sizes[int(k)] += job.n_edges
    return sizes


def _estimate_plan(plan: _Plan) -> EncodingEstimate:
    largest = max((j.n_edges for j in plan.jobs), default=0)
    graph, peak = _bytes(plan.n_nodes, plan.n_edges, max(_group_sizes(plan), default=0), largest)
    return EncodingEstimate(plan.n_nodes, plan.n_edges, not plan.may_merge, graph, peak,
                            tuple(plan.partitions))


def estimate(model: nn.Module, input_shape, identity_skips: bool = False, *,
             dag: LayerDAG | None = None) -> EncodingEstimate:
    """The node and edge counts of ``multipartite(model, input_shape, identity_skips)`` and the
    bytes its build needs, from masks and shapes only (nothing of the graph's size is
    allocated).

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    input_shape : tuple of int
        Shape of one input sample, without the batch dimension.
    identity_skips : bool, default False
        Count the identity-skip edges too (as :func:`multipartite`).
    dag : LayerDAG or None, optional
        The model's trace on ``input_shape`` (:func:`sparsetopo.tracing.trace`), if the caller
        has it; else traced here.

    Returns
    -------
    EncodingEstimate
        Nodes and edges (exact unless parallel pairs can merge, then an upper bound), the
        bytes of the graph and of the build's peak, the partitions.

    Raises
    ------
    UnsupportedModelError
        The model cannot be traced or holds an op that cannot be encoded.
    EncodingError
        The network cannot be encoded as an MGE (e.g. a residual add onto pooled elements).

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    try:
        return _estimate_plan(_plan(model, input_shape, identity_skips, dag))
    except TracingError as exc:
        raise UnsupportedModelError(str(exc)) from None


def memory_available() -> int:
    """Bytes of memory available now (``psutil``'s ``available``): what :func:`check_memory`
    compares an MGE's build peak with.

    Returns
    -------
    int
        The bytes available.

    References
    ----------
    .. [1] psutil documentation, ``psutil.virtual_memory``: ``available``, the memory that can
       be given to processes without the system swapping.
    """
    return int(psutil.virtual_memory().available)


def check_memory(est: EncodingEstimate, force: bool = False) -> None:
    """Refuse a build that would not fit in the memory available now.

    Parameters
    ----------
    est : EncodingEstimate
        The estimate of the graph to build (:func:`estimate`).
    force : bool, default False
        Never refuse.

    Raises
    ------
    GraphTooLargeError
        ``est.peak_bytes`` exceeds the memory available (``psutil``'s ``available``) and not
        ``force``.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    available = memory_available()
    if est.peak_bytes > available and not force:
        raise GraphTooLargeError(
            f"the MGE would need ~{est.peak_bytes / 2**30:.1f} GiB to build ({est.edges:,} "
            f"edges) but only {available / 2**30:.1f} GiB is available; use a smaller input, a "
            "higher sparsity, or force=True (--force) to try anyway"
        )


def multipartite(
    model: nn.Module,
    input_shape,
    identity_skips: bool = False,
    *,
    force: bool = False,
    progress: bool = False,
    dag: LayerDAG | None = None,
) -> LayeredGraph:
    """The multipartite graph encoding (MGE) of ``model`` for one input of ``input_shape``.

    The whole network as one layered graph whose nodes are the elements of its activations:

    - partitions: the network input, then one per conv/linear output in topological order,
      except a projection shortcut (a conv/linear whose only use is as the non-main operand
      of a residual ``add``), which has none; element-wise operations keep node identity;
    - edges: the union of every layer's unrolled bipartite graph (:func:`unrolled`), its left
      nodes identified with the nodes of the partition that produced its input;
    - pooling: pooled elements are not nodes; an edge that would leave a pooled element leaves
      instead every element of its pooling window, to the same target with the same weight
      (pairs reached through overlapping windows merge into one edge, weights summed);
    - residual ``add``: its output elements are the nodes of its main operand (the one with
      more conv/linear layers between it and the input; the first on a tie); a projection
      shortcut's unrolled edges go from its input partition straight into those nodes;
      identity shortcuts add nothing unless ``identity_skips``;
    - ``cat`` along channels: the channel-wise union of its operands' nodes.

    The full definition, and where it departs from the paper's public code, is in
    ``docs/encodings.md``. The build is planned first, so that a graph that would not fit in
    memory is refused before anything large is allocated.

    Parameters
    ----------
    model : torch.nn.Module
        The network (traceable, see :func:`sparsetopo.tracing.trace`); present weights are
        those of its masks, or its non-zero weights in a layer without a mask.
    input_shape : tuple of int
        Shape of one input sample, without the batch dimension, e.g. ``(3, 32, 32)``.
    identity_skips : bool, default False
        Add one edge ``x[i] -> out[i]`` of weight 1 per element of every identity shortcut
        (the paper's convention is without).
    force : bool, default False
        Build even when the estimate exceeds the available memory.
    progress : bool, default False
        Show a progress bar over the layers (when stderr is a terminal).
    dag : LayerDAG or None, optional
        The model's trace on ``input_shape`` (:func:`sparsetopo.tracing.trace`), if the caller
        has it; else traced here.

    Returns
    -------
    LayeredGraph
        ``kind="mge"``; ``edge_weight_ids`` gives the present weight that created each edge
        (-1 for identity-skip edges), ``meta["n_weights"]`` the present weights in all,
        ``meta["identity_edges"]`` the identity-skip edges (0: the graph is the same with or
        without ``identity_skips``), ``meta["identity_skips"]`` and ``meta["input_shape"]``
        the options.

    Raises
    ------
    UnsupportedModelError
        The model cannot be traced or holds an op that cannot be encoded.
    EncodingError
        The network cannot be encoded as an MGE (e.g. a residual add whose main operand is a
        pooled tensor).
    GraphTooLargeError
        The build would not fit in the available memory and not ``force``.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    try:
        plan = _plan(model, input_shape, identity_skips, dag)
    except TracingError as exc:
        raise UnsupportedModelError(str(exc)) from None
    return _build(plan, identity_skips, input_shape, force, progress)


def _build(plan: _Plan, identity_skips: bool, input_shape, force: bool,
           progress: bool) -> LayeredGraph:
    """The planned graph, its CSR filled one source partition at a time: only the edges
    leaving one partition are ever held as edge arrays besides the finished rows, so the build
    peaks at the graph plus the largest such group (``_bytes``), not at a multiple of every
    edge. Rows and merged weights are those of one global ``from_edges`` of all edges (the same
    edges in the same job order)."""
    est = _estimate_plan(plan)
    check_memory(est, force)
    n, n_total = plan.n_nodes, plan.n_edges
    idx = index_dtype(max(n, n_total) + 1)
    row_counts = np.zeros(n, dtype=idx)
    indices = np.empty(n_total, dtype=idx)
    data = np.empty(n_total, dtype=np.float32)
    wid = np.empty(n_total, dtype=np.int32)
    pos = 0
    bar = tqdm(total=len(plan.jobs), desc="MGE", unit="layer",
               disable=not show_progress(progress), leave=False)
    for part, chunks in _source_groups(plan, bar):
        s, d, w, ids = _concat_chunks(chunks)
        del chunks
        if s.flags.owndata and s.flags.writeable:  # a fresh array: row numbers in place
            s -= part.offset
        else:
            s = s - part.offset
        ptr, cols, vals, kept = csr_rows(s, d, w, part.size, ids,
                                         merge=plan.may_merge, consume=True, idx=idx)
        del s, d, w, ids
        m = len(cols)
        indices[pos:pos + m], data[pos:pos + m], wid[pos:pos + m] = cols, vals, kept
        row_counts[part.offset:part.stop] = np.diff(ptr)
        pos += m
        del ptr, cols, vals, kept
    bar.close()
    if pos < n_total:  # merged pairs: the arrays shrink in place
        for a in (indices, data, wid):
            a.resize(pos, refcheck=False)
    indptr = np.zeros(n + 1, dtype=idx)
    np.cumsum(row_counts, out=indptr[1:])
    del row_counts
    adj = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    adj.has_sorted_indices = True
    meta = {"identity_skips": bool(identity_skips), "input_shape": list(input_shape),
            "n_weights": plan.n_weights,
            "identity_edges": sum(j.n_edges for j in plan.jobs if j.op is None)}
    return LayeredGraph(adj, plan.partitions, kind="mge", output_index=plan.output_index,
                        meta=meta, edge_weight_ids=wid)


def _source_partitions(plan: _Plan, job: _Job) -> np.ndarray:
    """Indices of the partitions the sources of ``job`` lie in (one, except after a ``cat``)."""
    offsets = np.array([p.offset for p in plan.partitions])
    if job.src.offset is not None:
        return np.searchsorted(offsets, [job.src.offset], "right") - 1
    return np.unique(np.searchsorted(offsets, job.src.nodes, "right") - 1)


def _source_groups(plan: _Plan, bar):
    """``(partition, chunks)`` for every partition with out-edges, in node order: ``chunks``
    the edge arrays ``(job index, src, dst, weight, ids)`` of every job's edges leaving it, in
    job order. A job is built when its lowest source partition comes; its edges from later
    partitions wait for theirs."""
    first: dict[int, list[int]] = {}
    for i, job in enumerate(plan.jobs):
        first.setdefault(int(_source_partitions(plan, job)[0]), []).append(i)
    offsets = np.array([p.offset for p in plan.partitions])
    waiting: dict[int, list[tuple]] = {}
    for k, part in enumerate(plan.partitions):
        chunks = waiting.pop(k, [])
        for i in first.get(k, []):
            job = plan.jobs[i]
            s, d, w, ids = _job_edges(job)
            if len(s) != job.n_edges:
                raise EncodingError(f"internal: planned {job.n_edges} edges, built {len(s)}")
            where = np.searchsorted(offsets, s, "right") - 1
            if (where == k).all():
                chunks.append((i, s, d, w, ids))
            else:
                for q in np.unique(where):
                    sel = where == q
                    waiting.setdefault(int(q), []).append((i, s[sel], d[sel], w[sel], ids[sel]))
                chunks.extend(waiting.pop(k, []))
            del s, d, w, ids, where
            bar.update()
        if chunks:
            chunks.sort(key=lambda c: c[0])
            yield part, chunks


def _concat_chunks(chunks: list[tuple]) -> tuple:
    """The four edge arrays of ``chunks``, concatenated (the chunk's own when there is one);
    the chunks' arrays are dropped from the list as they are copied."""
    if len(chunks) == 1:
        return chunks.pop()[1:]
    parts = [np.concatenate([c[j] for c in chunks]) for j in range(1, 5)]
    chunks.clear()
    return tuple(parts)


def _without_identity_edges(graph: LayeredGraph) -> LayeredGraph:
    """The MGE without identity skips, taken from the one with them: the same partitions and
    every edge but the identity-skip ones (weight id -1). Exact only when no pair was merged
    in ``graph`` (its plan's ``may_merge`` is false): then each edge is one weight's, in the
    order a build without identity skips sorts them."""
    a = graph.adjacency
    keep = graph.edge_weight_ids >= 0
    kept_before = np.zeros(len(keep) + 1, dtype=a.indptr.dtype)  # indptr's type holds nnz
    np.cumsum(keep, out=kept_before[1:])
    adj = sp.csr_matrix((a.data[keep], a.indices[keep], kept_before[a.indptr]), shape=a.shape)
    adj.has_sorted_indices = True
    meta = {**graph.meta, "identity_skips": False, "identity_edges": 0}
    return LayeredGraph(adj, list(graph.partitions), graph.input_index, graph.output_index,
                        graph.kind, graph.layer, meta, graph.edge_weight_ids[keep])


def multipartite_pair(
    model: nn.Module,
    input_shape,
    identity_skips: bool = False,
    *,
    force: bool = False,
    progress: bool = False,
    dag: LayerDAG | None = None,
) -> tuple[LayeredGraph, LayeredGraph]:
    """The MGE asked for and the MGE with identity skips, built together.

    Path metrics describe the signal paths of the real network, and a residual network's
    identity shortcuts are such paths, so they are computed on the MGE with identity skips
    while the paper's topometrics keep its convention (none): a caller that needs both gets
    them here. When the two are the same graph (no identity shortcut, or ``identity_skips``)
    it is built once; else the graph without identity skips is the other's CSR less its
    identity-skip edges when no pair can merge (the CIFAR ResNets, WRNs and MobileNetV2 of the
    zoo; half the time of a second build), or built afresh (e.g. ResNet-18/50, whose stem pool
    overlaps).

    Parameters
    ----------
    model, input_shape, identity_skips, force, progress, dag
        As :func:`multipartite`.

    Returns
    -------
    (LayeredGraph, LayeredGraph)
        ``multipartite(model, input_shape, identity_skips)`` and ``multipartite(model,
        input_shape, True)`` (the same object when they are the same graph).

    Raises
    ------
    UnsupportedModelError, EncodingError
        As :func:`multipartite`.
    GraphTooLargeError
        The two graphs would not fit together (the second built or filtered while the first is
        held) and not ``force``.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    try:
        dag = traced(model, input_shape, dag)  # once for both
        plan = _plan(model, input_shape, True, dag)
        second = 0  # bytes the graph without identity skips needs while the first is held
        if not identity_skips and any(j.op is None for j in plan.jobs):
            second = (_estimate_plan(_plan(model, input_shape, False, dag)).peak_bytes
                      if plan.may_merge else _estimate_plan(plan).graph_bytes)
    except TracingError as exc:
        raise UnsupportedModelError(str(exc)) from None
    est = _estimate_plan(plan)
    check_memory(replace(est, peak_bytes=max(est.peak_bytes, est.graph_bytes + second)), force)
    with_skips = _build(plan, True, input_shape, force, progress)
    if identity_skips or with_skips.meta["identity_edges"] == 0:
        return with_skips, with_skips
    if not plan.may_merge:  # a filter of the CSR instead of a second build
        return _without_identity_edges(with_skips), with_skips
    return multipartite(model, input_shape, False, force=force, progress=progress,
                        dag=dag), with_skips


def _job_edges(job: _Job):
    if job.op is None:  # identity skip: element i of the operand -> element i of the output
        elems = np.arange(len(job.src.multiplicity()))
        rep, s = job.src.expand(elems)
        d, w, ids = job.dst.lookup(elems), np.ones(len(elems), np.float32), np.full(
            len(elems), -1, np.int32)
    else:
        e = layer_edges(job.op.module, job.in_shape, job.out_shape, job.arrays)
        rep, s = job.src.expand(e.src)
        d, w, ids = job.dst.lookup(e.dst), e.weight, e.weight_index + job.weight_offset
    if rep is None:
        return s, d, w, ids
    if isinstance(rep, int):
        return s, np.repeat(d, rep), np.repeat(w, rep), np.repeat(ids, rep)
    return s, d[rep], w[rep], ids[rep]


@dataclass
class TargetChunks:
    """The MGE's edges in chunks by target node, planned (see :func:`target_chunks`).

    Iterating gives ``(lo, hi, src, dst)``: int64 node ids of every edge whose target lies in
    ``lo .. hi - 1``, in no particular order, a pair reached twice (merged in the MGE) given
    twice. Chunks run over the nodes in order and cover every edge once.

    Parameters
    ----------
    plan : _Plan
        The MGE's plan (partitions, one job per layer).
    bounds : list of tuple
        ``(partition index, first channel, stop channel, edges)`` of every chunk, in node order.

    Attributes
    ----------
    n_nodes : int
        Nodes of the MGE.
    edges : int
        Edges before merging (the MGE's when ``exact``).
    exact : bool
        Whether no pair can be produced twice.
    largest : int
        Edges of the largest chunk.
    partitions : list of Partition

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """

    plan: _Plan
    bounds: list[tuple[int, int, int, int]]  # (partition, first channel, stop channel, edges)

    @property
    def n_nodes(self) -> int:
        return self.plan.n_nodes

    @property
    def edges(self) -> int:
        return self.plan.n_edges

    @property
    def exact(self) -> bool:
        return not self.plan.may_merge

    @property
    def largest(self) -> int:
        return max((b[3] for b in self.bounds), default=0)

    @property
    def partitions(self) -> list[Partition]:
        return self.plan.partitions

    def __len__(self) -> int:
        return len(self.bounds)

    def __iter__(self):
        into = _jobs_into(self.plan)
        for k, c0, c1, _ in self.bounds:
            part = self.plan.partitions[k]
            per = part.size // part.shape[0]
            parts = [_job_edges_into(job, c0, c1, per) for job in into[k]]
            src = np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False)
            dst = np.concatenate([p[1] for p in parts]).astype(np.int64, copy=False)
            yield part.offset + c0 * per, part.offset + c1 * per, src, dst


def _jobs_into(plan: _Plan) -> dict[int, list[_Job]]:
    offsets = np.array([p.offset for p in plan.partitions])
    into: dict[int, list[_Job]] = {}
    for job in plan.jobs:
        first = job.dst.offset if job.dst.offset is not None else int(job.dst.nodes[0])
        into.setdefault(int(np.searchsorted(offsets, first, "right") - 1), []).append(job)
    return into


def _channel_edges(job: _Job, n_channels: int) -> np.ndarray:
    """Edges of ``job`` into each channel (first dimension) of its target."""
    mult = job.src.multiplicity()
    if job.op is None:
        return mult.reshape(n_channels, -1).sum(axis=1)
    return layer_output_edge_counts(job.op.module, job.in_shape, job.out_shape,
                                    None if job.src.simple else mult, mask=job.arrays[1])


def _job_edges_into(job: _Job, c0: int, c1: int, per_channel: int):
    """Source and target node ids of the edges of ``job`` into channels ``c0 .. c1 - 1``."""
    if job.op is None:
        elems = np.arange(c0 * per_channel, c1 * per_channel)
        rep, s = job.src.expand(elems)
        d = job.dst.lookup(elems)
    else:
        weight, mask = job.arrays
        kept = np.zeros_like(mask)
        kept[c0:c1] = mask[c0:c1]
        e = layer_edges(job.op.module, job.in_shape, job.out_shape, (weight, kept))
        rep, s = job.src.expand(e.src)
        d = job.dst.lookup(e.dst)
    if rep is None:
        return s, d
    return s, (np.repeat(d, rep) if isinstance(rep, int) else d[rep])


def target_chunks(model: nn.Module, input_shape, identity_skips: bool = False, *,
                  max_edges: int = 1 << 23, dag: LayerDAG | None = None) -> TargetChunks:
    """The edges of ``multipartite(model, input_shape, identity_skips)`` in chunks of target
    nodes, planned from masks and shapes: each chunk holds the edges into whole channels of one
    partition, as many channels as keep it within ``max_edges`` (at least one channel). For
    structures built from the MGE's edges without holding them all (``metrics``' packed
    undirected graph).

    Parameters
    ----------
    model, input_shape, identity_skips, dag
        As :func:`multipartite`.
    max_edges : int, default 2**23
        Edges per chunk, before merging (one channel may exceed it).

    Returns
    -------
    TargetChunks

    Raises
    ------
    UnsupportedModelError, EncodingError
        As :func:`multipartite`.

    References
    ----------
    .. [1] E. Cunegatti, L. L. Farina, D. Bucur, G. Iacca. "Understanding Sparse Neural
       Networks from their Topology via Multipartite Graph Representations." TMLR 2024.
    """
    try:
        plan = _plan(model, input_shape, identity_skips, dag)
    except TracingError as exc:
        raise UnsupportedModelError(str(exc)) from None
    bounds = []
    for k, jobs in sorted(_jobs_into(plan).items()):
        n_ch = plan.partitions[k].shape[0]
        per = sum(_channel_edges(job, n_ch) for job in jobs)
        c0, total = 0, 0
        for c in range(n_ch):
            if c > c0 and total + per[c] > max_edges:
                bounds.append((k, c0, c, total))
                c0, total = c, 0
            total += int(per[c])
        bounds.append((k, c0, n_ch, total))
    return TargetChunks(plan, bounds)
