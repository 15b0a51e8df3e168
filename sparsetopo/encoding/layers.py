"""Index arithmetic of one layer: the unrolled edges of a conv/linear layer and the windows of a
pooling op, fully vectorized (no loop over weights, positions or edges).

Element indices are C-order indices into the activation tensor (batch dim dropped):
``(c * H + y) * W + x`` for a ``C x H x W`` map, ``i`` for a vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..pruning.masks import weight_and_mask


@dataclass(frozen=True)
class ConvGeometry:
    """What the unrolling of a Conv2d needs, with ``'same'``/``'valid'`` padding resolved."""

    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]  # zeros added before the first row / column
    dilation: tuple[int, int]
    groups: int


def conv_geometry(conv: nn.Conv2d, in_shape, out_shape) -> ConvGeometry:
    """The geometry of ``conv`` between activations of ``in_shape`` and ``out_shape``, its
    ``'same'``/``'valid'`` padding resolved to the zeros torch adds before the first row and
    column."""
    kh, kw = conv.kernel_size
    dil = tuple(conv.dilation)
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            pad = (0, 0)
        else:  # 'same': torch pads total = d*(k-1), the smaller half first
            pad = (dil[0] * (kh - 1) // 2, dil[1] * (kw - 1) // 2)
    else:
        pad = tuple(conv.padding)
    return ConvGeometry(tuple(in_shape), tuple(out_shape), (kh, kw), tuple(conv.stride), pad,
                        dil, conv.groups)


def _valid_offsets(n_in: int, n_out: int, k: int, stride: int, pad: int, dil: int):
    """For each kernel offset ``t`` the output positions ``o`` whose input ``o*s - p + t*d`` lies
    inside ``[0, n_in)``. Returns padded tables ``out_pos[t, j]``, ``in_pos[t, j]`` (valid
    entries first) and the counts ``n[t]``."""
    o = np.arange(n_out, dtype=np.int64)
    i = o[None, :] * stride - pad + np.arange(k, dtype=np.int64)[:, None] * dil  # (k, n_out)
    valid = (i >= 0) & (i < n_in)
    order = np.argsort(~valid, axis=1, kind="stable")
    out_pos = np.take_along_axis(np.broadcast_to(o, i.shape), order, axis=1)
    in_pos = np.take_along_axis(i, order, axis=1)
    return out_pos, in_pos, valid.sum(axis=1)


def conv_edge_counts(g: ConvGeometry) -> np.ndarray:
    """``counts[ky, kx]`` = number of output positions a weight at kernel offset
    ``(ky, kx)`` is applied to (i.e. its number of unrolled edges)."""
    ci, h, w = g.in_shape
    _, ho, wo = g.out_shape
    ny = _valid_offsets(h, ho, g.kernel[0], g.stride[0], g.padding[0], g.dilation[0])[2]
    nx = _valid_offsets(w, wo, g.kernel[1], g.stride[1], g.padding[1], g.dilation[1])[2]
    return np.outer(ny, nx)


@dataclass
class LayerEdges:
    """Unrolled edges of one layer: ``src``/``dst`` element indices into its input/output
    activation, ``weight`` and ``weight_index`` (index of the present weight in the layer's
    ``np.flatnonzero(mask)`` order)."""

    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    weight_index: np.ndarray
    n_present: int


def _ragged_arange(counts: np.ndarray):
    """``owner`` and ``local`` index of every item when item ``j`` repeats ``counts[j]`` times."""
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    starts = np.cumsum(counts) - counts
    local = np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
    return owner, local


def conv_edges(weight: np.ndarray, mask: np.ndarray, g: ConvGeometry) -> LayerEdges:
    """Unrolled BGE of a Conv2d (``docs/encodings.md``): for every present ``W[co, ci, ky, kx]`` and output
    position ``(oy, ox)`` with ``iy = oy*s - p + ky*d`` and ``ix = ox*s - p + kx*d`` inside the
    input, an edge ``(ci, iy, ix) -> (co, oy, ox)`` of weight ``W[co, ci, ky, kx]``; ``ci`` runs
    over the group of ``co``.

    All weights at one kernel offset ``(ky, kx)`` see the same block of valid positions, so the
    edges of that offset are one broadcast sum ``channel base + position``; the only Python loop
    is over the ``kh * kw`` kernel offsets.
    """
    c_out, c_in_g, kh, kw = weight.shape
    c_in, h, w = g.in_shape
    _, ho, wo = g.out_shape
    flat = np.flatnonzero(mask.reshape(-1))
    co, cil, ky, kx = np.unravel_index(flat, mask.shape)
    ci = (co // (c_out // g.groups)) * c_in_g + cil
    oy_t, iy_t, ny = _valid_offsets(h, ho, kh, g.stride[0], g.padding[0], g.dilation[0])
    ox_t, ix_t, nx = _valid_offsets(w, wo, kw, g.stride[1], g.padding[1], g.dilation[1])
    offset = (ky * kw + kx).astype(np.int32)
    order = np.argsort(offset, kind="stable")  # weights grouped by kernel offset
    per_offset = np.bincount(offset, minlength=kh * kw)
    n_pos = np.outer(ny, nx).reshape(-1)
    n_edges = int((per_offset * n_pos).sum())
    idx = np.int32 if max(c_in * h * w, c_out * ho * wo) < 2**31 - 1 else np.int64
    src = np.empty(n_edges, dtype=idx)
    dst = np.empty(n_edges, dtype=idx)
    owner = np.empty(n_edges, dtype=np.int32)
    src_base = (ci * (h * w)).astype(idx)
    dst_base = (co * (ho * wo)).astype(idx)
    pos = start = 0
    for k in np.flatnonzero(per_offset):
        y, x = divmod(int(k), kw)
        sel = order[start:start + per_offset[k]]
        start += per_offset[k]
        m = int(n_pos[k])
        if m == 0:
            continue
        in_pos = (iy_t[y, :ny[y], None] * w + ix_t[x, None, :nx[x]]).reshape(-1).astype(idx)
        out_pos = (oy_t[y, :ny[y], None] * wo + ox_t[x, None, :nx[x]]).reshape(-1).astype(idx)
        n = len(sel) * m
        np.add(src_base[sel, None], in_pos[None, :], out=src[pos:pos + n].reshape(-1, m))
        np.add(dst_base[sel, None], out_pos[None, :], out=dst[pos:pos + n].reshape(-1, m))
        owner[pos:pos + n].reshape(-1, m)[:] = sel[:, None]
        pos += n
    wvals = weight.reshape(-1)[flat].astype(np.float32)
    return LayerEdges(src, dst, wvals[owner], owner, len(flat))


def linear_edges(weight: np.ndarray, mask: np.ndarray) -> LayerEdges:
    """Unrolled BGE of a Linear layer: one edge ``i -> j`` per present ``W[j, i]``."""
    flat = np.flatnonzero(mask.reshape(-1))
    j, i = np.unravel_index(flat, mask.shape)
    return LayerEdges(i.astype(np.int32), j.astype(np.int32),
                      weight.reshape(-1)[flat].astype(np.float32),
                      np.arange(len(flat), dtype=np.int32), len(flat))


def layer_arrays(module: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Effective weight (float32 numpy, as stored on the edges) and presence mask of a
    conv/linear module: ``weight_and_mask`` computed in numpy when the weight is a float32 or
    float64 CPU tensor (torch's element-wise ops go through its OpenMP pool, whose wake-ups cost
    milliseconds per layer on a loaded 2-core machine), in torch otherwise."""
    masked = hasattr(module, "weight_mask")
    w = module.weight_orig if masked else module.weight
    if w.device.type != "cpu" or w.dtype not in (torch.float32, torch.float64):
        w, m = weight_and_mask(module)
        return w.to(torch.float32).cpu().numpy(), m.cpu().numpy()
    w = w.detach().numpy()
    if masked:
        mask = module.weight_mask.detach().cpu().numpy() != 0
        w = w * mask
    else:
        mask = w != 0
    return w.astype(np.float32, copy=False), mask


def layer_edges(module: nn.Module, in_shape, out_shape, arrays=None) -> LayerEdges:
    """Unrolled edges of a conv/linear module; ``arrays`` = ``layer_arrays(module)`` if known."""
    weight, mask = layer_arrays(module) if arrays is None else arrays
    if isinstance(module, nn.Conv2d):
        return conv_edges(weight, mask, conv_geometry(module, in_shape, out_shape))
    return linear_edges(weight, mask)


def layer_edge_count(module: nn.Module, in_shape, out_shape, src_multiplicity=None,
                     mask: np.ndarray | None = None) -> int:
    """Number of unrolled edges, without building them. ``src_multiplicity`` (one entry per
    input element) multiplies every edge leaving that element (pooling contraction)."""
    return int(layer_output_edge_counts(module, in_shape, out_shape, src_multiplicity,
                                        mask).sum())


def layer_output_edge_counts(module: nn.Module, in_shape, out_shape, src_multiplicity=None,
                             mask: np.ndarray | None = None) -> np.ndarray:
    """Number of unrolled edges into each output channel (conv) or feature (linear), without
    building them; arguments as :func:`layer_edge_count`."""
    if mask is None:
        mask = weight_and_mask(module)[1].cpu().numpy()
    if isinstance(module, nn.Linear):
        if src_multiplicity is None:
            return mask.sum(axis=1, dtype=np.int64)
        return mask.astype(np.int64) @ np.asarray(src_multiplicity, dtype=np.int64)
    g = conv_geometry(module, in_shape, out_shape)
    c_out, c_in_g, kh, kw = mask.shape
    if src_multiplicity is None:
        return (mask.sum(axis=1, dtype=np.int64) * conv_edge_counts(g)).sum(axis=(1, 2))
    # S[ci, ky, kx] = sum over valid output positions of the multiplicity of the input element
    c_in, h, w = g.in_shape
    mult = np.asarray(src_multiplicity, dtype=np.int64).reshape(c_in, h, w)
    _, iy_t, ny = _valid_offsets(h, g.out_shape[1], kh, g.stride[0], g.padding[0], g.dilation[0])
    _, ix_t, nx = _valid_offsets(w, g.out_shape[2], kw, g.stride[1], g.padding[1], g.dilation[1])
    ymask = np.arange(iy_t.shape[1])[None, :] < ny[:, None]  # (kh, Ho)
    xmask = np.arange(ix_t.shape[1])[None, :] < nx[:, None]  # (kw, Wo)
    # rows[ci, ky, x] = sum over valid oy of mult[ci, iy(oy, ky), x]
    rows = (mult[:, np.clip(iy_t, 0, h - 1), :] * ymask[None, :, :, None]).sum(axis=2)
    s = (rows[:, :, np.clip(ix_t, 0, w - 1)] * xmask[None, None]).sum(axis=3)  # (ci, kh, kw)
    group_of = np.arange(c_out) // (c_out // g.groups)
    s = s.reshape(g.groups, c_in_g, kh, kw)[group_of]  # (co, ci in its group, kh, kw)
    return (mask * s).sum(axis=(1, 2, 3))


def pool_pairs_1d(n_in: int, n_out: int, k: int, stride: int, pad: int, dil: int):
    """``(o, i)`` pairs: input position ``i`` lies in the window of output position ``o``."""
    out_pos, in_pos, n = _valid_offsets(n_in, n_out, k, stride, pad, dil)
    keep = np.arange(out_pos.shape[1])[None, :] < n[:, None]
    return out_pos[keep], in_pos[keep]


def adaptive_pairs_1d(n_in: int, n_out: int):
    """Adaptive pooling windows ``[floor(o*n_in/n_out), ceil((o+1)*n_in/n_out))``."""
    o = np.arange(n_out, dtype=np.int64)
    start = (o * n_in) // n_out
    stop = -((-(o + 1) * n_in) // n_out)
    owner, local = _ragged_arange(stop - start)
    return owner.astype(np.int64), start[owner] + local


def pool_windows(params: dict, in_shape, out_shape) -> tuple[np.ndarray, np.ndarray]:
    """``(out_elem, in_elem)`` pairs of a 2-D pooling op over a ``C x H x W`` input: every
    input element of the window of each output element (padding excluded)."""
    c, h, w = in_shape
    ho, wo = out_shape[1:] if len(out_shape) == 3 else (1, 1)  # x.mean((2, 3)) gives (C,)
    if params["mode"] == "adaptive":
        oy, iy = adaptive_pairs_1d(h, ho)
        ox, ix = adaptive_pairs_1d(w, wo)
    else:
        (kh, kw), (sh, sw) = params["kernel"], params["stride"]
        (ph, pw), (dh, dw) = params["padding"], params["dilation"]
        oy, iy = pool_pairs_1d(h, ho, kh, sh, ph, dh)
        ox, ix = pool_pairs_1d(w, wo, kw, sw, pw, dw)
    out2 = (oy[:, None] * wo + ox[None, :]).reshape(-1)
    in2 = (iy[:, None] * w + ix[None, :]).reshape(-1)
    ch = np.arange(c, dtype=np.int64)[:, None]
    return (ch * (ho * wo) + out2).reshape(-1), (ch * (h * w) + in2).reshape(-1)
