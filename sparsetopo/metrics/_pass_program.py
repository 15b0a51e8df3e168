"""The program that the path passes run: a traced network read as its MGE, without edges.

A network traced into a ``LayerDAG`` becomes

- the MGE's *partitions* (the network input, then every conv/linear output that is not a
  shortcut, in topological order; the same rules as the encoder's, from
  :func:`sparsetopo.encoding.residual_roles`);
- a *recipe* for every activation value in terms of partitions: a partition itself (conv/linear
  outputs, the input, residual adds, which are their main operand's nodes), a sum pool of a
  value (pooled elements are not nodes: each stands for the nodes of its window, so a pass
  through the MGE adds them up), a reshape or a channel concatenation of values;
- one *job* per set of MGE edges: a layer's unrolled edges from the value it reads into its
  partition (a shortcut's into the main operand's partition), or an identity skip.

A job can be run by the network's own operation on the value tensors (``conv2d`` / ``linear``
with the mask or ``|w|`` as weights) only when no (u, v) pair of the MGE is produced twice:
the MGE merges duplicate pairs into one edge with the summed weight. ``merge_groups`` finds the
(source partition, destination partition) pairs where that happens (overlapping pooling
windows read by a kernel larger than one, a conv shortcut or an identity skip that meets the
main path's conv on the same pair, a tensor concatenated with itself) and builds their merged
operators (``_merged_pairs``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from sparsetopo.encoding import Partition, residual_roles
from sparsetopo.encoding.layers import adaptive_pairs_1d, conv_geometry, layer_arrays, pool_pairs_1d
from sparsetopo.errors import EncodingError, TracingError, UnsupportedModelError
from sparsetopo.tracing import LayerDAG, Op, traced

from ._merged_pairs import MergedPair, Term, merged_pair, needs_merging


@dataclass(frozen=True)
class Block:
    """Channels of a value that come from one partition: the partition's elements seen as
    ``view = (C, H, W)``, its rows and columns summed by ``ry`` (value rows x view rows) and
    ``rx`` (value columns x view columns) multiplicity matrices (identities when unpooled)."""

    part: int
    view: tuple[int, int, int]
    ry: np.ndarray
    rx: np.ndarray


@dataclass
class Recipe:
    """How an activation value is computed from partitions (batch dimension dropped)."""

    kind: str  # part, pool, reshape, cat
    shape: tuple[int, ...]
    inputs: tuple[int, ...] = ()
    part: int = -1
    pool: tuple[np.ndarray, np.ndarray] | None = None  # (Py, Px): out x in 0/1 matrices
    simple: bool = True  # no pooling on the way: every element is one node
    blocks: tuple[Block, ...] | None = None  # None: a reshape whose structure is unknown
    struct: tuple[int, int, int] | None = None  # the value seen as C x H x W
    where: str = ""  # the op that made it (for messages)


@dataclass
class Job:
    """One set of MGE edges into partition ``dst``: a conv/linear layer's unrolled edges from
    value ``src`` (``op`` set) or an identity skip from value ``src``."""

    kind: str  # conv, linear, identity
    src: int
    dst: int
    op: Op | None = None
    weight: np.ndarray | None = None  # effective weight (float32, as the MGE stores it)
    mask: np.ndarray | None = None  # presence
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right
    merged: bool = False  # run as part of a merged pair, not by its own operation

    @property
    def name(self) -> str:
        return self.op.name if self.op is not None else "identity skip"


@dataclass
class Program:
    partitions: list[Partition]
    recipes: dict[int, Recipe]
    jobs: list[Job]
    output: int  # index of the output partition
    n_weights: int
    pairs: list[MergedPair] = field(default_factory=list)

    @property
    def n_nodes(self) -> int:
        return self.partitions[-1].stop

    def jobs_into(self, dst: int) -> list[Job]:
        return [j for j in self.jobs if j.dst == dst and not j.merged]

    def pairs_into(self, dst: int) -> list[MergedPair]:
        return [p for p in self.pairs if p.dst == dst]

    def view(self, part: int) -> tuple[int, int, int]:
        return _view(self.partitions[part].shape)

    def reads(self, vid: int) -> set[int]:
        """Partitions the value ``vid`` is computed from."""
        r = self.recipes[vid]
        if r.kind == "part":
            return {r.part}
        return set().union(*(self.reads(v) for v in r.inputs))


def _view(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return tuple(shape) if len(shape) == 3 else (math.prod(shape), 1, 1)


def _eye_block(part: int, shape: tuple[int, ...]) -> Block:
    c, h, w = _view(shape)
    return Block(part, (c, h, w), np.eye(h, dtype=np.int64), np.eye(w, dtype=np.int64))


def _pool_matrices(params: dict, in_shape, out_shape) -> tuple[np.ndarray, np.ndarray]:
    """0/1 matrices ``Py`` (out rows x in rows), ``Px``: input row ``r`` lies in the window of
    output row ``o`` (padding excluded), the MGE's pooling windows (``encoding.layers``)."""
    _, h, w = in_shape
    ho, wo = out_shape[1:] if len(out_shape) == 3 else (1, 1)
    if params["mode"] == "adaptive":
        pairs = adaptive_pairs_1d(h, ho), adaptive_pairs_1d(w, wo)
    else:
        (kh, kw), (sh, sw) = params["kernel"], params["stride"]
        (ph, pw), (dh, dw) = params["padding"], params["dilation"]
        pairs = pool_pairs_1d(h, ho, kh, sh, ph, dh), pool_pairs_1d(w, wo, kw, sw, pw, dw)
    mats = []
    for (o, i), n_out, n_in in zip(pairs, (ho, wo), (h, w), strict=True):
        m = np.zeros((n_out, n_in), dtype=np.int64)
        np.add.at(m, (o, i), 1)
        mats.append(m)
    return mats[0], mats[1]


def _conv_pads(conv: nn.Conv2d, in_shape, out_shape) -> tuple[int, int, int, int]:
    """Zero rows/columns added before and after the input (``'same'`` pads the smaller half
    first, as torch does)."""
    g = conv_geometry(conv, in_shape, out_shape)
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0, 0, 0, 0)
        total = [d * (k - 1) for d, k in zip(g.dilation, g.kernel, strict=True)]
        return (g.padding[0], total[0] - g.padding[0], g.padding[1], total[1] - g.padding[1])
    return (g.padding[0], g.padding[0], g.padding[1], g.padding[1])


def _structure(recipes: dict[int, Recipe], r: Recipe) -> None:
    """Fill ``r.blocks`` and ``r.struct`` from its inputs' (left ``None`` when unknown)."""
    ins = [recipes[v] for v in r.inputs]
    if r.kind == "pool":
        src = ins[0]
        if src.blocks is None:
            return
        py, px = r.pool
        r.blocks = tuple(Block(b.part, b.view, py @ b.ry, px @ b.rx) for b in src.blocks)
        r.struct = (src.struct[0], py.shape[0], px.shape[0])
    elif r.kind == "cat":
        if any(i.blocks is None for i in ins):
            return
        r.blocks = tuple(b for i in ins for b in i.blocks)
        r.struct = (sum(i.struct[0] for i in ins), *ins[0].struct[1:])
    elif r.kind == "reshape":
        src = ins[0]
        if src.blocks is None:
            return
        if len(r.shape) == 1 or tuple(r.shape) == src.struct:  # flatten (C order) or a no-op
            r.blocks, r.struct = src.blocks, src.struct
        elif src.simple and len(src.blocks) == 1:  # a partition's elements seen another way
            r.blocks = (_eye_block(src.blocks[0].part, r.shape),)
            r.struct = _view(r.shape)


def compile_program(model: nn.Module, input_shape, identity_skips: bool,
                    dag: LayerDAG | None = None) -> Program:
    """The program of ``model`` on one input of ``input_shape``: partitions, value recipes and
    jobs by the encoder's rules (``docs/encodings.md``, in the encoder's terms), merged pairs found."""
    try:
        dag = traced(model, input_shape, dag)
    except TracingError as exc:
        raise UnsupportedModelError(str(exc)) from None
    main_of_add, shortcut_of = residual_roles(dag)
    shape = {v.id: tuple(v.shape) for v in dag.values}
    partitions = [Partition("input", 0, shape[dag.input])]
    recipes: dict[int, Recipe] = {dag.input: Recipe("part", shape[dag.input], part=0)}
    jobs: list[Job] = []
    deferred: dict[int, Op] = {}
    n_weights = 0

    def layer_job(op: Op, dst: int) -> Job:
        nonlocal n_weights
        weight, mask = layer_arrays(op.module)
        n_weights += int(mask.sum())
        kind = "conv" if isinstance(op.module, nn.Conv2d) else "linear"
        pads = (_conv_pads(op.module, shape[op.inputs[0]], shape[op.output]) if kind == "conv"
                else (0, 0, 0, 0))
        return Job(kind, op.inputs[0], dst, op, weight, mask, pads)

    for i, op in enumerate(dag.ops[1:], start=1):
        out_shape = shape[op.output]
        if op.kind in ("conv", "linear"):
            if op.output in shortcut_of:
                deferred[op.output] = op
                continue
            partitions.append(Partition(op.name, partitions[-1].stop, out_shape))
            recipes[op.output] = Recipe("part", out_shape, part=len(partitions) - 1)
            jobs.append(layer_job(op, len(partitions) - 1))
        elif op.kind == "pool":
            in_shape = shape[op.inputs[0]]
            if len(in_shape) != 3:
                raise EncodingError(f"pooling {op.name} needs a C x H x W input, got {in_shape}")
            recipes[op.output] = Recipe("pool", out_shape, op.inputs, simple=False,
                                        pool=_pool_matrices(op.params, in_shape, out_shape),
                                        where=op.name)
        elif op.kind == "reshape":
            recipes[op.output] = Recipe("reshape", out_shape, op.inputs,
                                        simple=recipes[op.inputs[0]].simple, where=op.name)
        elif op.kind == "cat":
            recipes[op.output] = Recipe("cat", out_shape, op.inputs, where=op.name,
                                        simple=all(recipes[v].simple for v in op.inputs))
        elif op.kind == "add":
            main = recipes[main_of_add[i]]
            target = _add_target(main, op)
            recipes[op.output] = Recipe("part", out_shape, part=target)
            for v in op.inputs:
                if v == main_of_add[i]:
                    continue
                if v in deferred:
                    jobs.append(layer_job(deferred.pop(v), target))
                elif identity_skips:
                    jobs.append(Job("identity", v, target))
        else:
            raise EncodingError(f"internal: unexpected op kind {op.kind}")
    for r in recipes.values():
        if r.kind == "part":
            r.blocks = (_eye_block(r.part, partitions[r.part].shape),)
            r.struct = _view(partitions[r.part].shape)
    _fill_structure(recipes)
    out = recipes[dag.output]
    if not out.simple:
        raise EncodingError(
            f"the network output at '{dag.ops[-1].name}' lands on pooled elements, which are not "
            "nodes of the MGE; supported: residual adds whose main operand is a conv/linear "
            "output or the input")
    program = Program(partitions, recipes, jobs, _first_part(recipes, dag.output), n_weights)
    _check_order(program)
    program.pairs = merge_groups(program)
    return program


def _fill_structure(recipes: dict[int, Recipe]) -> None:
    """Structure of the derived values, in creation order (partition blocks are known now)."""
    for vid in sorted(recipes):
        r = recipes[vid]
        if r.kind != "part":
            r.blocks = r.struct = None
            _structure(recipes, r)


def _first_part(recipes: dict[int, Recipe], vid: int) -> int:
    r = recipes[vid]
    return r.part if r.kind == "part" else _first_part(recipes, r.inputs[0])


def _add_target(main: Recipe, op: Op) -> int:
    """The partition whose nodes are the add's output: its main operand's."""
    if not main.simple:
        raise EncodingError(
            f"a residual add at '{op.name}' lands on pooled elements, which are not nodes of the "
            "MGE; supported: residual adds whose main operand is a conv/linear output or the input")
    if main.kind != "part":
        raise UnsupportedModelError(
            f"the residual add at '{op.name}' has a reshaped or concatenated main operand; "
            "network path metrics support adds whose main operand is a conv/linear output, the "
            "input or another add (encode the MGE instead)")
    return main.part


def _check_order(program: Program) -> None:
    """Every edge must go from a lower partition to a higher one (as ``topometrics`` needs)."""
    for job in program.jobs:
        for p in program.reads(job.src):
            if p >= job.dst:
                name = program.partitions[p].name
                raise ValueError(
                    f"partition {name!r} has an edge into itself or an earlier partition; "
                    "topometrics need every edge to go from a lower to a higher partition")


def _terms(program: Program, job_index: int) -> list[Term]:
    """The job's edges split by source partition, each with its per-row and per-column
    kernel-tap multiplicities (``_merged_pairs.Term``)."""
    job = program.jobs[job_index]
    r = program.recipes[job.src]
    if r.blocks is None:
        raise UnsupportedModelError(
            f"{job.name} reads a reshape ('{r.where}') that network path metrics cannot follow "
            "(supported: flatten, reshapes of an unpooled tensor); encode the MGE instead")
    dst_view = program.view(job.dst)
    out = []
    c0 = 0
    for b in r.blocks:
        out.append(Term.of(job_index, job, b.part, b.view, b.ry, b.rx, c0, r.struct, dst_view))
        c0 += b.view[0]
    return out


def merge_groups(program: Program) -> list[MergedPair]:
    """The merged pairs of the program: for every (source, destination) partition pair where
    some (u, v) would be produced twice, the jobs that write it are marked ``merged`` and all
    their edges run through :class:`MergedPair` operators instead (grouped by pair)."""
    groups: dict[tuple[int, int], list[Term]] = {}
    for j in range(len(program.jobs)):
        for t in _terms(program, j):
            groups.setdefault((t.src, program.jobs[j].dst), []).append(t)
    merged_jobs = set()
    for (src, dst), terms in groups.items():
        if needs_merging(terms, program.jobs, program.view(src), program.view(dst)):
            merged_jobs.update(t.job for t in terms)
    for j in merged_jobs:
        program.jobs[j].merged = True
    pairs = []
    for (src, dst), terms in groups.items():
        mine = [t for t in terms if t.job in merged_jobs]
        if mine:
            pairs.append(merged_pair(mine, program.jobs, src, dst, program.view(src),
                                     program.view(dst)))
    return pairs
