"""The MGE's edges between two partitions where duplicate (u, v) pairs merge, without edges.

Every kind of edge set the MGE has (a convolution's or a linear layer's unrolled edges, an
identity skip), read through sum-pooling windows, is *separable*: with ``S`` the source
partition seen as ``C_S x H_S x W_S`` and ``D`` the destination as ``C_D x H_D x W_D``, the
operator is

    M[(o, y, x), (c, r, s)] = sum over taps (k, l) of  W[o, c, k, l] * Ay[k, y, r] * Ax[l, x, s]

where ``Ay[k, y, r]`` counts how often source row ``r`` reaches destination row ``y`` through
kernel row ``k`` (the kernel's row geometry composed with the pooling windows' multiplicities)
and ``Ax`` likewise for columns. Two weights merge on a pair exactly when ``Ay[:, y, r]`` or
``Ax[:, x, s]`` has more than one count, or when two edge sets (a shortcut and the main path's
convolution, an identity skip and a convolution) meet on the same pair.

Group the (y, r) pairs by their count vector ``a = Ay[:, y, r]`` (its *pattern*, over every
edge set of the pair of partitions together; a handful of patterns: the interior and the
borders) and the (x, s) pairs likewise. Inside one pattern pair (p, q) every merged edge has
the weight ``E[p, q, o, c] = sum over edge sets of a_p^T W[o, c] b_q`` and exists exactly when
``a_p^T mask[o, c] b_q > 0``; the operator is then

    y = sum over (p, q) of  E[p, q] (channels) applied to  Sy_p X Sx_q^T

with ``Sy_p`` (``H_D x H_S``) the 0/1 matrix of the row pairs of pattern p. Time
``O(P Q C_D C_S H_D W_D + P C_S H_D H_S W_S)`` per product, memory ``O(P Q C_D C_S)``: nothing
proportional to the edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


def _tap_rows(n_in: int, n_out: int, k: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """``rows[t, o, i] = 1`` when kernel tap ``t`` of output position ``o`` reads input ``i``
    (``i = o * stride - pad + t * dil`` inside ``[0, n_in)``)."""
    o = np.arange(n_out)[None, :]
    i = o * stride - pad + np.arange(k)[:, None] * dil  # (k, n_out)
    rows = np.zeros((k, n_out, n_in), dtype=np.int64)
    t, oo = np.nonzero((i >= 0) & (i < n_in))
    rows[t, oo, i[t, oo]] = 1
    return rows


@dataclass
class Term:
    """One edge set of a job restricted to one source partition: the job's weights over the
    value channels ``c0 .. c0 + C_S`` (the block of the partition), ``ay`` (taps x H_D x H_S)
    and ``ax`` (taps x W_D x W_S) the tap multiplicities."""

    job: int
    src: int
    c0: int
    channels: int
    ay: np.ndarray
    ax: np.ndarray
    value_struct: tuple[int, int, int]

    @classmethod
    def of(cls, job_index: int, job, part: int, view, ry: np.ndarray, rx: np.ndarray, c0: int,
           struct, dst_view) -> Term:
        _, hv, wv = struct
        if job.kind == "conv":
            m = job.op.module
            kh, kw = m.kernel_size
            pt, _, pl, _ = job.pads
            rows_y = _tap_rows(hv, dst_view[1], kh, m.stride[0], pt, m.dilation[0])
            rows_x = _tap_rows(wv, dst_view[2], kw, m.stride[1], pl, m.dilation[1])
        elif job.kind == "linear" or (dst_view[1:] == (1, 1) and (hv, wv) != (1, 1)):
            # a kernel over the whole (flattened) value: a linear layer, or an identity skip
            # onto a vector partition
            rows_y = np.eye(hv, dtype=np.int64)[:, None, :]
            rows_x = np.eye(wv, dtype=np.int64)[:, None, :]
        else:  # identity skip onto a C x H x W partition: a 1x1 kernel
            rows_y = np.eye(hv, dtype=np.int64)[None]
            rows_x = np.eye(wv, dtype=np.int64)[None]
        return cls(job_index, part, c0, view[0], rows_y @ ry, rows_x @ rx, tuple(struct))

    def dense(self, job, which: str, dst_channels: int) -> np.ndarray:
        """The job's weights (``which`` = ``weight`` or ``mask``) on this term's channels as a
        dense float64 ``C_D x C_S x taps_y x taps_x`` array (groups expanded)."""
        cv, hv, wv = self.value_struct
        ky, kx = self.ay.shape[0], self.ax.shape[0]
        sl = slice(self.c0, self.c0 + self.channels)
        if job.kind == "identity":
            if ky == 1 and kx == 1:  # 1x1 kernel, channel c -> channel c
                full = np.eye(dst_channels, cv)[:, :, None, None]
            else:  # flat element i -> element i
                full = np.eye(dst_channels, cv * hv * wv).reshape(dst_channels, cv, hv, wv)
            return np.ascontiguousarray(full[:, sl])
        w = (job.weight if which == "weight" else job.mask).astype(np.float64)
        if job.kind == "linear":
            return np.ascontiguousarray(w.reshape(w.shape[0], cv, hv, wv)[:, sl])
        groups = job.op.module.groups
        c_out, c_in_g = w.shape[:2]
        full = np.zeros((c_out, groups, c_in_g, ky, kx))
        co = np.arange(c_out)
        full[co, co // (c_out // groups)] = w
        return np.ascontiguousarray(full.reshape(c_out, groups * c_in_g, ky, kx)[:, sl])


def _patterns(taps: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Group the (destination, source) index pairs of one dimension by their tap-count vector
    over all terms: ``S`` (P x n_dst x n_src, 0/1) and, per term, its count vectors
    (P x taps). Pairs that no term connects are in no pattern."""
    n_dst, n_src = taps[0].shape[1:]
    keys = np.concatenate([t.reshape(t.shape[0], -1) for t in taps], axis=0).T
    used = np.flatnonzero(keys.any(axis=1))
    uniq, inv = np.unique(keys[used], axis=0, return_inverse=True)
    sel = np.zeros((len(uniq), n_dst * n_src))
    sel[inv.reshape(-1), used] = 1.0
    bounds = np.cumsum([0] + [t.shape[0] for t in taps])
    return sel.reshape(-1, n_dst, n_src), [uniq[:, a:b] for a, b in zip(bounds[:-1], bounds[1:],
                                                                         strict=True)]


def _pattern_sum(terms: list[Term], jobs, which: str, dst_view, py, px) -> np.ndarray:
    """``sum over terms of a_p^T W[o, c] b_q`` for every pattern pair: P x Q x C_D x C_S."""
    out = None
    for t, a, b in zip(terms, py, px, strict=True):
        w = t.dense(jobs[t.job], which, dst_view[0])
        e = np.einsum("pk,ql,ockl->pqoc", a.astype(np.float64), b.astype(np.float64), w,
                      optimize=True)
        out = e if out is None else out + e
    return out


def needs_merging(terms: list[Term], jobs, src_view, dst_view) -> bool:
    """Whether some (u, v) pair of these edge sets (all from one source partition into one
    destination) is produced more than once."""
    if len(terms) == 1 and terms[0].ay.sum(axis=0).max(initial=0) <= 1 and \
            terms[0].ax.sum(axis=0).max(initial=0) <= 1:
        return False  # each (row pair, column pair) comes from at most one tap, once
    _check_views(terms, src_view)
    _, ay = _patterns([t.ay for t in terms])
    _, ax = _patterns([t.ax for t in terms])
    if not len(ay[0]) or not len(ax[0]):
        return False
    return bool(_pattern_sum(terms, jobs, "mask", dst_view, ay, ax).max(initial=0) > 1)


def _check_views(terms: list[Term], src_view) -> None:
    for t in terms:
        if t.ay.shape[2] != src_view[1] or t.ax.shape[2] != src_view[2]:
            raise ValueError("internal: a term's source view differs from its partition's")


@dataclass
class MergedPair:
    """The merged MGE edges from partition ``src`` into partition ``dst`` (see the module
    docstring): ``sy`` (P x H_D x H_S), ``sx`` (Q x W_D x W_S), ``weight`` (P x Q x C_D x C_S:
    the merged weights, rounded to float32 as the MGE stores them) and ``exists`` (0/1)."""

    src: int
    dst: int
    src_view: tuple[int, int, int]
    dst_view: tuple[int, int, int]
    sy: np.ndarray
    sx: np.ndarray
    weight: np.ndarray
    exists: np.ndarray
    jobs: tuple[int, ...]
    _on: dict = field(default_factory=dict, repr=False)

    def nbytes(self) -> int:
        return int(self.sy.nbytes + self.sx.nbytes + self.weight.nbytes + self.exists.nbytes)

    def _tensors(self, device, which: str):
        key = (str(device), which)
        if key not in self._on:
            e = self.exists if which == "mask" else np.abs(self.weight)
            self._on[key] = tuple(torch.from_numpy(a).to(device) for a in (self.sy, self.sx, e))
        return self._on[key]

    def apply(self, x: torch.Tensor, which: str) -> torch.Tensor:
        """``M x`` for a batch ``x`` (B x C_S x H_S x W_S) with the 0/1 merged edges
        (``which="mask"``) or their ``|w|`` (``"abs"``): B x C_D x H_D x W_D."""
        sy, sx, e = self._tensors(x.device, which)
        b = x.shape[0]
        out = x.new_zeros((b, *self.dst_view))
        for p in range(sy.shape[0]):
            rows = torch.matmul(sy[p], x)  # B x C_S x H_D x W_S
            for q in range(sx.shape[0]):
                z = torch.matmul(rows, sx[q].T)  # B x C_S x H_D x W_D
                out += torch.einsum("oc,bcyx->boyx", e[p, q], z)
        return out

    def adjoint(self, g: torch.Tensor, which: str) -> torch.Tensor:
        """``M^T g`` for a batch ``g`` (B x C_D x H_D x W_D): B x C_S x H_S x W_S."""
        sy, sx, e = self._tensors(g.device, which)
        out = g.new_zeros((g.shape[0], *self.src_view))
        for p in range(sy.shape[0]):
            rows = None
            for q in range(sx.shape[0]):
                z = torch.matmul(torch.einsum("oc,boyx->bcyx", e[p, q], g), sx[q])
                rows = z if rows is None else rows + z  # B x C_S x H_D x W_S
            out += torch.matmul(sy[p].T, rows)
        return out


def merged_pair(terms: list[Term], jobs, src: int, dst: int, src_view, dst_view) -> MergedPair:
    """The merged operator of ``terms`` (every edge set of the marked jobs from ``src`` into
    ``dst``)."""
    _check_views(terms, src_view)
    sy, ay = _patterns([t.ay for t in terms])
    sx, ax = _patterns([t.ax for t in terms])
    weight = _pattern_sum(terms, jobs, "weight", dst_view, ay, ax)
    exists = _pattern_sum(terms, jobs, "mask", dst_view, ay, ax) > 0
    # the MGE stores each merged weight as a float32 sum
    weight = weight.astype(np.float32).astype(np.float64)
    return MergedPair(src, dst, tuple(src_view), tuple(dst_view), sy, sx, weight,
                      exists.astype(np.float64), tuple(sorted({t.job for t in terms})))
