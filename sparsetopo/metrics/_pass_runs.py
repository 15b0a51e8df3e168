"""Passes of a ``Program`` (``_pass_program``): the MGE's node values computed partition by
partition with the network's own operations, in float64, never its edges.

A *forward pass* gives every partition the sum over its MGE in-edges of (edge factor) x
(source node value), the factor being 1 (``which="mask"``: the 0/1 masks as weights) or
``|w|`` (``"abs"``). Several samples ride in one batch, each of a kind:

- ``prop``: the input partition holds ones and values propagate: the number of input->node
  paths (or their summed ``|w|`` products). Each partition is rescaled to a maximum of 1 when
  it leaves [1e-150, 1e150] and its log10 scale carried, so nothing overflows;
- ``reach``: the same, clipped to 0/1 after every partition: reachable from the input;
- ``local``: every source node holds 1 and nothing propagates: the in-degree of every node (or
  its summed ``|w|``).

A *backward pass* runs the adjoints (transposed convolutions, transposed pooling) from the
output partition: ``reach`` gives the nodes that reach the output, ``local`` the out-degrees.
The *symmetric product* applies ``|A| + |A|^T`` to given node values, each edge forward into
its destination and transposed into its source, nothing propagated: one product of the
spectral solvers. The *alive pass* counts the edges whose ends are both on input->output paths (one product per
job, weighted by the backward indicator) and the present weights that have such an edge (the
weight gradient of that product: a weight lies on an alive edge where it is positive).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input, conv2d_weight

from ._pass_program import Job, Program

#: A partition is rescaled to a maximum of 1 when its largest value leaves [1/_RESCALE, _RESCALE].
_RESCALE = 1e150


class Runner:
    """Runs the passes of ``program`` on ``device`` (torch, float64); ``step`` is called once
    per partition of every pass (progress)."""

    def __init__(self, program: Program, device: torch.device, step: Callable[[], None]):
        self.program = program
        self.device = device
        self.step = step
        self.shapes = [tuple(p.shape) for p in program.partitions]
        self._pools = {}
        self._last_read = self._last_reads()

    # --- tensors --------------------------------------------------------------------------

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device, torch.float64)

    def weight(self, job: Job, which: str) -> torch.Tensor:
        w = job.mask if which == "mask" else np.abs(job.weight)
        t = self._tensor(w)
        return t.reshape(t.shape[0], -1) if job.kind == "linear" else t

    def _pool(self, vid: int) -> tuple[torch.Tensor, torch.Tensor]:
        if vid not in self._pools:
            py, px = self.program.recipes[vid].pool
            self._pools[vid] = (self._tensor(py), self._tensor(px))
        return self._pools[vid]

    def _last_reads(self) -> list[int]:
        """For every partition, the last partition whose jobs read it (itself if none)."""
        last = list(range(len(self.shapes)))
        for job in self.program.jobs:
            for p in self.program.reads(job.src):
                last[p] = max(last[p], job.dst)
        for pair in self.program.pairs:
            last[pair.src] = max(last[pair.src], pair.dst)
        return last

    # --- values ---------------------------------------------------------------------------

    def value(self, vid: int, parts: list, exps: list, cache: dict):
        """``(tensor, log10 scale per sample)`` of value ``vid`` from the partition tensors."""
        if vid in cache:
            return cache[vid]
        r = self.program.recipes[vid]
        if r.kind == "part":
            x, e = parts[r.part], exps[r.part]
        elif r.kind == "pool":
            x, e = self.value(r.inputs[0], parts, exps, cache)
            py, px = self._pool(vid)
            x = torch.matmul(torch.matmul(py, x), px.T)
        elif r.kind == "reshape":
            x, e = self.value(r.inputs[0], parts, exps, cache)
        else:  # cat
            xs = [self.value(v, parts, exps, cache) for v in r.inputs]
            e = torch.stack([s for _, s in xs]).max(dim=0).values
            x = torch.cat([_scaled(t, s - e) for t, s in xs], dim=1)
        out = (x.reshape(x.shape[0], *r.shape), e)
        cache[vid] = out
        return out

    def push(self, vid: int, g: torch.Tensor, acc: list) -> None:
        """Add the adjoint of value ``vid``'s recipe applied to ``g`` into the partitions'
        accumulators."""
        r = self.program.recipes[vid]
        b = g.shape[0]
        if r.kind == "part":
            g = g.reshape(b, *self.shapes[r.part])
            acc[r.part] = g if acc[r.part] is None else acc[r.part] + g
        elif r.kind == "pool":
            py, px = self._pool(vid)
            c = self.program.recipes[r.inputs[0]].shape[0]
            g = g.reshape(b, c, py.shape[0], px.shape[0])
            self.push(r.inputs[0], torch.matmul(torch.matmul(py.T, g), px), acc)
        elif r.kind == "reshape":
            self.push(r.inputs[0], g.reshape(b, *self.program.recipes[r.inputs[0]].shape), acc)
        else:
            sizes = [self.program.recipes[v].shape[0] for v in r.inputs]
            for v, part in zip(r.inputs, torch.split(g, sizes, dim=1), strict=True):
                self.push(v, part, acc)

    # --- one job --------------------------------------------------------------------------

    def _padded(self, job: Job, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """The input as the convolution reads it: padded here when the padding is not the same
        on both sides, else the symmetric padding to pass on."""
        pt, pb, pl, pr = job.pads
        if pt == pb and pl == pr:
            return x, (pt, pl)
        return F.pad(x, (pl, pr, pt, pb)), (0, 0)

    def apply(self, job: Job, x: torch.Tensor, which: str) -> torch.Tensor:
        """The job's edges applied to a batch of its value (B x value shape)."""
        if job.kind == "identity":
            return x.reshape(x.shape[0], *self.shapes[job.dst])
        w = self.weight(job, which)
        if job.kind == "linear":
            return torch.matmul(x.reshape(x.shape[0], -1), w.T)
        m = job.op.module
        xp, pad = self._padded(job, x)
        return F.conv2d(xp, w, None, m.stride, pad, m.dilation, m.groups)

    def adjoint(self, job: Job, g: torch.Tensor, which: str) -> torch.Tensor:
        """The job's edges transposed, applied to a batch of destination values."""
        b = g.shape[0]
        in_shape = self.program.recipes[job.src].shape
        if job.kind == "identity":
            return g.reshape(b, *in_shape)
        w = self.weight(job, which)
        if job.kind == "linear":
            return torch.matmul(g.reshape(b, -1), w).reshape(b, *in_shape)
        m = job.op.module
        pt, pb, pl, pr = job.pads
        sym = pt == pb and pl == pr
        size = (b, in_shape[0], in_shape[1] + (0 if sym else pt + pb),
                in_shape[2] + (0 if sym else pl + pr))
        gx = conv2d_input(size, w, g.reshape(b, *self.shapes[job.dst]), m.stride,
                          (pt, pl) if sym else 0, m.dilation, m.groups)
        return gx if sym else gx[:, :, pt:pt + in_shape[1], pl:pl + in_shape[2]]

    def weight_grad(self, job: Job, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``d (g . job(x)) / d weight``: per weight, the sum over its unrolled edges of
        source value x destination value (weight-shaped)."""
        b = g.shape[0]
        if job.kind == "linear":
            return torch.matmul(g.reshape(b, -1).T, x.reshape(b, -1)).reshape(job.mask.shape)
        m = job.op.module
        xp, pad = self._padded(job, x)
        return conv2d_weight(xp, job.mask.shape, g.reshape(b, *self.shapes[job.dst]), m.stride,
                             pad, m.dilation, m.groups)

    def _into(self, dst: int, parts: list, exps: list, which: str):
        """Every MGE edge into ``dst`` applied to the current partition tensors: the summed
        contributions (B x partition shape) and their log10 scale per sample."""
        cache: dict = {}
        shape = self.shapes[dst]
        got = []
        for job in self.program.jobs_into(dst):
            x, e = self.value(job.src, parts, exps, cache)
            got.append((self.apply(job, x, which).reshape(x.shape[0], *shape), e))
        for pair in self.program.pairs_into(dst):
            x = parts[pair.src]
            y = pair.apply(x.reshape(x.shape[0], *pair.src_view), which)
            got.append((y.reshape(x.shape[0], *shape), exps[pair.src]))
        e = torch.stack([s for _, s in got]).max(dim=0).values
        y = got[0][0].clone()  # never a view of a partition tensor: it is changed in place
        y = _scaled(y, got[0][1] - e)
        for t, s in got[1:]:
            y += _scaled(t, s - e)
        return y, e

    # --- passes ---------------------------------------------------------------------------

    def forward(self, which: str, kinds: tuple[str, ...]) -> dict:
        """A forward pass with one sample per kind (``prop``, ``reach``, ``local``). Returns
        ``log10`` (of the output sum of the ``prop`` sample), ``reach`` (bool array per
        partition) and ``local`` (int64 or float64 array per partition)."""
        n, b = len(self.shapes), len(kinds)
        out_index = self.program.output
        parts: list = [None] * n
        exps: list = [None] * n
        parts[0] = torch.ones((b, *self.shapes[0]), dtype=torch.float64, device=self.device)
        exps[0] = torch.zeros(b, dtype=torch.float64)
        res: dict = {"reach": [None] * n, "local": [None] * n, "log10": -math.inf}
        if "reach" in kinds:
            res["reach"][0] = np.ones(self.shapes[0], dtype=bool)
        if "local" in kinds:
            res["local"][0] = np.zeros(self.shapes[0])
        if out_index == 0:
            res["log10"] = math.log10(math.prod(self.shapes[0]))
        self.step()
        for dst in range(1, n):
            y, e = self._into(dst, parts, exps, which)
            for i, kind in enumerate(kinds):
                if kind == "prop":
                    top = float(y[i].max())
                    if top > _RESCALE or 0.0 < top < 1.0 / _RESCALE:
                        y[i] /= top
                        e[i] += math.log10(top)
                    if dst == out_index:
                        total = float(y[i].sum())
                        res["log10"] = math.log10(total) + float(e[i]) if total > 0 else -math.inf
                elif kind == "reach":
                    r = y[i] > 0.5
                    res["reach"][dst] = r.cpu().numpy()
                    y[i] = r
                else:
                    res["local"][dst] = _counts(y[i], which)
                    y[i] = 1.0
            parts[dst], exps[dst] = y, e
            for p in range(dst + 1):
                if self._last_read[p] == dst:
                    parts[p] = None
            self.step()
        return res

    def backward(self, kinds: tuple[str, ...]) -> dict:
        """An adjoint pass from the output partition with one sample per kind: ``reach`` (bool
        array per partition: reaches the output) and ``local`` (out-degrees)."""
        n, b = len(self.shapes), len(kinds)
        acc: list = [None] * n
        res: dict = {"reach": [None] * n, "local": [None] * n}
        for dst in reversed(range(n)):
            g = acc[dst]
            acc[dst] = None
            if g is None:
                g = torch.zeros((b, *self.shapes[dst]), dtype=torch.float64, device=self.device)
            else:
                g = g.clone()  # it may be a view of a processed partition's: changed in place
            for i, kind in enumerate(kinds):
                if kind == "reach":
                    r = g[i] > 0.5
                    if dst == self.program.output:
                        r = torch.ones_like(r)
                    res["reach"][dst] = r.cpu().numpy()
                    g[i] = r
                else:
                    res["local"][dst] = _counts(g[i], "mask")
                    g[i] = 1.0
            if dst:
                for job in self.program.jobs_into(dst):
                    self.push(job.src, self.adjoint(job, g, "mask"), acc)
                for pair in self.program.pairs_into(dst):
                    gx = pair.adjoint(g.reshape(b, *pair.dst_view), "mask")
                    self.push_part(pair.src, gx, acc)
            self.step()
        return res

    def symmetric(self, parts: list) -> list:
        """``(|A| + |A|^T) x`` for node values ``parts`` (one B x partition tensor each): every
        edge's ``|w|`` applied forward into its destination and transposed into its source,
        nothing propagated (the products of the spectral solvers)."""
        n, b = len(self.shapes), parts[0].shape[0]
        exps = [torch.zeros(b, dtype=torch.float64)] * n
        out: list = [None] * n
        for dst in range(1, n):
            y, _ = self._into(dst, parts, exps, "abs")
            self.push_part(dst, y, out)
            g = parts[dst]
            for job in self.program.jobs_into(dst):
                self.push(job.src, self.adjoint(job, g, "abs"), out)
            for pair in self.program.pairs_into(dst):
                self.push_part(pair.src, pair.adjoint(g.reshape(b, *pair.dst_view), "abs"), out)
            self.step()
        return [torch.zeros_like(x) if y is None else y for x, y in zip(parts, out, strict=True)]

    def push_part(self, part: int, g: torch.Tensor, acc: list) -> None:
        g = g.reshape(g.shape[0], *self.shapes[part])
        acc[part] = g if acc[part] is None else acc[part] + g

    def alive(self, fwd: list, bwd: list) -> tuple[int, dict[str, int]]:
        """``(alive edges, present weights with an alive edge per layer)`` from the forward and
        backward indicators (bool arrays per partition); a layer with no alive weight may be
        missing."""
        n = len(self.shapes)
        parts: list = [None] * n
        exps = [torch.zeros(1, dtype=torch.float64)] * n
        edges = 0
        weights: dict[str, int] = {}
        for dst in range(n):
            if dst and bwd[dst].any():
                jobs = [j for j in self.program.jobs if j.dst == dst]
                pairs = self.program.pairs_into(dst)
                read = set().union(*(self.program.reads(j.src) for j in jobs))
                for p in read | {pair.src for pair in pairs}:
                    if parts[p] is None:
                        parts[p] = self._tensor(fwd[p])[None]
                g = self._tensor(bwd[dst])[None]
                cache: dict = {}
                for job in jobs:
                    x, _ = self.value(job.src, parts, exps, cache)
                    if not job.merged:
                        edges += _integer((self.apply(job, x, "mask").reshape(g.shape) * g).sum())
                    if job.kind != "identity":
                        grad = self.weight_grad(job, x, g)
                        used = int(((grad > 0.5).cpu().numpy() & job.mask).sum())
                        weights[job.name] = weights.get(job.name, 0) + used
                for pair in pairs:
                    x = parts[pair.src].reshape(1, *pair.src_view)
                    edges += _integer((pair.apply(x, "mask").reshape(g.shape) * g).sum())
            for p in range(dst + 1):
                if self._last_read[p] == dst:
                    parts[p] = None
            self.step()
        return edges, weights


def _scaled(t: torch.Tensor, log10_factor: torch.Tensor) -> torch.Tensor:
    """``t`` times ``10 ** log10_factor`` per sample (the first dimension)."""
    if not bool((log10_factor != 0).any()):
        return t
    f = torch.pow(10.0, log10_factor).to(t.device, t.dtype)
    return t * f.reshape(-1, *([1] * (t.dim() - 1)))


def _counts(t: torch.Tensor, which: str) -> np.ndarray:
    """A local sample as numpy: whole numbers (degrees) when the factors are 0/1."""
    a = t.cpu().numpy()
    if which != "mask":
        return a.astype(np.float64, copy=True)
    return np.rint(a).astype(np.int32 if a.size == 0 or a.max() < 2**31 - 1 else np.int64)


def _integer(t: torch.Tensor) -> int:
    return int(round(float(t)))
