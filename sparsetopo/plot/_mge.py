"""Picture of a multipartite graph encoding (MGE), fast enough for millions of edges.

Layout: partition ``p`` is the column at ``x = p`` (left to right, topological order). Inside a
column, node ``i`` (C-order index into the activation ``C x H x W``) sits in the block of its
channel ``c = i // (H*W)``, at its pixel position ``i % (H*W)`` inside the block; blocks are
stacked top to bottom with small gaps and every column spans the full height. A 1-D partition
(a linear layer's output) is a single block.

Edges are not drawn one by one: each segment is sampled at points along its length and the
points are counted into an accumulation image (one compiled numba pass); a pixel's opacity grows with
the log of its count (``composite``). Skip edges (``partition(dst) - partition(src) > 1``) get
their own image and colour. Nodes are drawn as a short strip at each column, dark where nodes
have edges, light where all of them are isolated. Plain numpy beat datashader here (same
picture, a third of its CPU time, no extra dependency); the point counting moved from numpy
broadcasts to a numba loop when the picture was 1.8 of the main job's 11 seconds.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numba as nb
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from sparsetopo.encoding.graph import LayeredGraph
from sparsetopo.errors import InputError
from sparsetopo.io import show_progress
from sparsetopo.plot import _annotations as annotations
from sparsetopo.plot._common import save_rgb_png

EDGE_RGB = np.array([0.16, 0.25, 0.42])  # dark slate blue
SKIP_RGB = np.array([0.90, 0.38, 0.0])  # orange: distinguishable, also for colour-blind readers
NODE_RGB = np.array([0.0, 0.0, 0.0])
ISOLATED_RGB = np.array([0.78, 0.78, 0.78])
POINT_BUDGET = 80_000_000  # segment sample points over the whole picture (time bound)
EDGE_BLOCK = 1_000_000  # edges rasterised together (memory bound: ~20 bytes each)
CHANNEL_GAP = 0.25  # gap between channel blocks, as a fraction of a block's height
MAX_GAPPED_CHANNELS = 128  # more channels than this: no gaps (they would be < 1 px)
AXES_LEFT, AXES_WIDTH = 0.035, 0.95  # figure fractions
TITLE_PT, LEGEND_PT, LABEL_PT, YLABEL_PT = 10, 7, 6, 7  # points
NOTE_GREY = (77, 77, 77)  # the sampling note, under the title
TOP_PAD_PX, LINE_SPACING = 6, 1.35  # above the title; title line height in font sizes


def mge(
    graph: LayeredGraph,
    path: str | os.PathLike | None = None,
    *,
    max_edges: int | None = None,
    seed: int = 0,
    title: str | None = None,
    width: int = 1600,
    height: int = 900,
    dpi: int = 150,
    progress: bool = True,
) -> Path | Image.Image:
    """Draw a multipartite graph encoding into a PNG of exactly ``width x height`` pixels.

    Partitions are columns (left to right, in topological order), each node at its channel
    block and pixel position inside its column, edges faint lines whose darkness grows with the
    log of how many cross a pixel, skip edges (across more than one partition) in orange, nodes
    without any edge in light grey (module docstring).

    Parameters
    ----------
    graph : LayeredGraph
        The graph (``sparsetopo.encoding.multipartite``).
    path : str or path-like, optional
        PNG file, written atomically; ``None``: return the picture instead (a Pillow image,
        which a notebook shows inline).
    max_edges : int, optional
        Draw a uniform random sample of that many edges and say so on the picture ("showing N
        of M edges"); ``None``: every edge.
    seed : int
        Seed of the sample and of the sampling phases.
    title : str, optional
        First line above the picture.
    width, height : int
        Size in pixels (at least 200 x 150).
    dpi : int
        Resolution of the text (at least 10).
    progress : bool
        A progress bar while edges are drawn.

    Returns
    -------
    Path or PIL.Image.Image
        ``path``, or the picture when ``path`` is ``None``.

    Raises
    ------
    TypeError
        ``graph`` is not a ``LayeredGraph``.
    InputError
        A negative ``max_edges``, or a picture too small for its title and labels.
    """
    if not isinstance(graph, LayeredGraph):
        raise TypeError(f"graph must be a LayeredGraph, got {type(graph).__name__}")
    if max_edges is not None and max_edges < 0:
        raise InputError(f"max_edges must be >= 0 or None, got {max_edges}")
    if width < 200 or height < 150 or dpi < 10:
        raise InputError(f"picture too small: width={width}, height={height}, dpi={dpi}; "
                         "need width >= 200, height >= 150, dpi >= 10")
    src, dst = edge_endpoints(graph, max_edges, seed)
    connected = _has_edge(graph)
    lines = header_lines(graph, int(graph.n_nodes - connected.sum()), len(src), seed, title)
    labels = [_short(p.name) for p in graph.partitions]
    box = axes_box(width, height, dpi, len(lines), max(map(len, labels), default=1))
    img_w, img_h = int(round(box[2] * width)), int(round(box[3] * height))

    part_cols, node_col, node_row, node_part = node_layout(graph, img_w, img_h)
    counts, n_skip = draw_edges(src, dst, node_col, node_row, node_part, img_w, img_h,
                                progress=progress)
    rgb = composite(counts, img_w, img_h)
    paint_nodes(rgb, node_col, node_row, connected)
    left, bottom = int(round(box[0] * width)), int(round(box[1] * height))

    top = height - bottom - img_h
    image = Image.new("RGB", (width, height), "white")
    image.paste(Image.fromarray(np.clip(rgb * np.float32(255) + np.float32(0.5), 0, 255)
                                .astype(np.uint8), "RGB"), (left, top))
    del rgb
    annotations.draw_axes(image, (left, top, img_w, img_h), [left + int(c) for c in part_cols],
                          labels, "nodes (channel blocks, top to bottom)", dpi, LABEL_PT,
                          YLABEL_PT)
    line_px = TITLE_PT * LINE_SPACING / 72 * dpi
    styled = [(line, TITLE_PT, annotations.BLACK) for line in lines]
    if len(src) < graph.n_edges:  # the last line is the sampling note (header_lines)
        styled[-1] = (lines[-1], TITLE_PT - 1.5, NOTE_GREY)
    annotations.draw_lines(image, styled, dpi, top=TOP_PAD_PX, line_px=line_px)
    legend = [
        ("line", f"edge ({len(src) - n_skip:,} drawn)", annotations.rgb8(EDGE_RGB)),
        ("line", f"skip edge ({n_skip:,} drawn)", annotations.rgb8(SKIP_RGB)),
        ("square", "node with edges", annotations.rgb8(NODE_RGB)),
        ("square", "isolated node", annotations.rgb8(ISOLATED_RGB)),
    ]
    annotations.draw_legend(image, legend, dpi, LEGEND_PT, right=0.985 * width,
                            top=TOP_PAD_PX + len(lines) * line_px + 0.2 * LEGEND_PT * dpi / 72)
    return image if path is None else save_rgb_png(image, Path(path))


def header_lines(graph: LayeredGraph, isolated: int, drawn: int, seed: int,
                 title: str | None) -> list[str]:
    """Lines above the picture: the title, the graph's sizes, and the sampling note
    ("showing N of M edges") when fewer edges than the graph's are drawn."""
    lines = [title] if title else []
    lines.append(f"MGE: {graph.n_nodes:,} nodes ({isolated / max(graph.n_nodes, 1):.0%} "
                 f"isolated), {graph.n_edges:,} edges, {len(graph.partitions)} partitions")
    if drawn < graph.n_edges:
        lines.append(f"showing {drawn:,} of {graph.n_edges:,} edges (uniform sample, seed {seed})")
    return lines


def axes_box(width: int, height: int, dpi: int, title_lines: int,
             label_chars: int) -> tuple[float, float, float, float]:
    """``(left, bottom, width, height)`` of the drawing in figure fractions: below it room
    for the partition labels (``label_chars`` characters rotated 55 degrees), above it room for
    ``title_lines`` lines of title and one row of legend."""
    pt = dpi / 72  # pixels per point
    label_px = (label_chars * 0.6 * LABEL_PT * math.sin(math.radians(55)) + 12) * pt
    bottom = min(label_px / height, 0.35)
    top_px = TOP_PAD_PX + title_lines * TITLE_PT * LINE_SPACING * pt + LEGEND_PT * 2.4 * pt + 4
    height_frac = 1 - bottom - top_px / height
    if height_frac < 0.2:
        raise InputError(f"picture too small for its title and labels: height={height}, "
                         f"dpi={dpi}; use a larger height or a smaller dpi")
    return AXES_LEFT, bottom, AXES_WIDTH, height_frac


def node_layout(graph: LayeredGraph, img_w: int, img_h: int) -> tuple[np.ndarray, ...]:
    """Pixel column of every partition, then pixel column (int32), pixel row (float32) and
    partition index (int32) of every node.

    Column of partition ``p``: ``pad + p * (img_w - 1 - 2 pad) / (P - 1)``. Row: channel block
    ``c`` (height ``h = 1 / (C + gap (C - 1))`` of the column) at ``c h (1 + gap)``, plus
    ``(pos + 0.5) / (H W) * h`` inside it; scaled to ``img_h - 1``.
    """
    n_parts = len(graph.partitions)
    pad = 3
    span = max(img_w - 1 - 2 * pad, 1)
    part_cols = pad + np.round(np.arange(n_parts) * span / max(n_parts - 1, 1)).astype(np.int32)
    if n_parts == 1:
        part_cols[:] = img_w // 2
    rows = np.empty(graph.n_nodes, dtype=np.float32)
    part = np.empty(graph.n_nodes, dtype=np.int32)
    for p_index, p in enumerate(graph.partitions):
        size = p.size
        channels = int(p.shape[0]) if len(p.shape) >= 2 else 1
        block_size = size // max(channels, 1)
        gap = CHANNEL_GAP if 1 < channels <= MAX_GAPPED_CHANNELS else 0.0
        block_h = 1.0 / (channels + gap * (channels - 1))
        local = np.arange(size, dtype=np.int64)
        c, pos = np.divmod(local, max(block_size, 1))
        y = c * block_h * (1.0 + gap) + (pos + 0.5) / max(block_size, 1) * block_h
        rows[p.offset : p.stop] = y * (img_h - 1)
        part[p.offset : p.stop] = p_index
    return part_cols, part_cols[part], rows, part


def edge_endpoints(
    graph: LayeredGraph, max_edges: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Source and target node of every edge, or of ``max_edges`` edges sampled uniformly
    without replacement (``numpy.random.default_rng(seed)``)."""
    adj = graph.adjacency
    src = np.repeat(np.arange(adj.shape[0], dtype=np.int32), np.diff(adj.indptr))
    dst = np.asarray(adj.indices, dtype=np.int32)
    if max_edges is None or max_edges >= adj.nnz:
        return src, dst
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(adj.nnz, size=max_edges, replace=False, shuffle=False))
    return src[picked], dst[picked]


def draw_edges(
    src: np.ndarray,
    dst: np.ndarray,
    node_col: np.ndarray,
    node_row: np.ndarray,
    node_part: np.ndarray,
    img_w: int,
    img_h: int,
    *,
    progress: bool = False,
) -> tuple[np.ndarray, int]:
    """Accumulation images ``counts[2, img_h, img_w]`` (edges, skip edges) of the edges
    ``src -> dst`` and the number of skip edges (``partition(dst) - partition(src) > 1``).

    Edges go through :func:`rasterize_segments` in blocks of ``EDGE_BLOCK`` (memory stays
    bounded for any graph) with one sampling factor for all, ``min(1, POINT_BUDGET / sum L)``
    over the pixel lengths ``L`` of every edge (time stays bounded)."""
    counts = np.zeros((2, img_h, img_w), dtype=np.int32)  # at most POINT_BUDGET per pixel
    starts = range(0, len(src), EDGE_BLOCK)
    total = 0.0
    for start in starts:
        s, d = src[start : start + EDGE_BLOCK], dst[start : start + EDGE_BLOCK]
        dx = np.abs(node_col[d] - node_col[s]).astype(np.float32)
        total += float(np.maximum(dx, np.abs(node_row[d] - node_row[s])).sum(dtype=np.float64))
        total += len(s)
    factor = min(1.0, POINT_BUDGET / total) if total else 1.0
    n_skip = 0
    for block, start in enumerate(tqdm(starts, desc="drawing edges", unit="block",
                                       disable=not show_progress(progress), leave=False)):
        s, d = src[start : start + EDGE_BLOCK], dst[start : start + EDGE_BLOCK]
        skip = (node_part[d] - node_part[s]) > 1
        n_skip += int(skip.sum())
        rasterize_segments(node_col[s], node_row[s], node_col[d], node_row[d], skip, img_w,
                           img_h, factor=factor, seed=block, out=counts)
    return counts, n_skip


def rasterize_segments(
    x0: np.ndarray,
    y0: np.ndarray,
    x1: np.ndarray,
    y1: np.ndarray,
    layer: np.ndarray,
    img_w: int,
    img_h: int,
    *,
    point_budget: int = POINT_BUDGET,
    factor: float | None = None,
    seed: int = 0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Count sample points of segments ``(x0, y0) -> (x1, y1)`` (pixels) per pixel into
    ``counts[layer, row, col]`` (``layer`` a bool/int per segment: 0 edge, 1 skip edge).

    A segment of pixel length ``L = max(|dx|, |dy|) + 1`` gets ``n = max(2, ceil(f L))``
    points, with ``f = min(1, point_budget / sum L)`` unless ``factor`` is given: at
    ``t = k / (n - 1)`` (every pixel it crosses) when the budget allows, at ``t = (k + u) / n``
    with a random phase ``u`` per segment (``numpy.random.default_rng(seed)``: no moire
    stripes) when subsampling. The points are counted by one compiled pass
    (``_count_points``): no per-point temporary arrays. Returns the int32 counts, added into
    ``out`` (C-contiguous int32 of that shape) when given.
    """
    n_layers = 2
    if out is None:
        out = np.zeros((n_layers, img_h, img_w), dtype=np.int32)
    elif out.shape != (n_layers, img_h, img_w) or out.dtype != np.int32 or \
            not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous int32 of shape {(n_layers, img_h, img_w)}")
    if len(x0) == 0:
        return out
    # layer l is drawn into rows l*img_h .. (l+1)*img_h - 1 of one tall image; +0.5 rounds
    x0 = np.asarray(x0, np.float32) + np.float32(0.5)
    y0 = np.asarray(y0, np.float32) + np.asarray(layer, np.float32) * img_h + np.float32(0.5)
    dx = np.asarray(x1, np.float32) + np.float32(0.5) - x0
    dy = np.asarray(y1, np.float32) + np.asarray(layer, np.float32) * img_h + np.float32(0.5) - y0
    length = np.maximum(np.abs(dx), np.abs(dy)) + 1.0
    if factor is None:
        factor = min(1.0, point_budget / float(length.sum(dtype=np.float64)))
    n_points = np.maximum(np.ceil(length * factor), 2.0).astype(np.int32)
    phase = np.random.default_rng(seed).random(len(x0), dtype=np.float32)
    if n_points.sum(dtype=np.int64) >= 2**31:
        raise ValueError("too many sample points for one call; lower point_budget or split")
    _count_points(x0, y0, dx, dy, n_points, phase, factor < 1.0, img_w, out.reshape(-1))
    return out


@nb.njit(cache=True, nogil=True)
def _count_points(x0, y0, dx, dy, n_points, phase, subsample, img_w, counts):
    """``counts[row * img_w + col] += 1`` for every sample point of every segment (float32
    positions, truncated: the +0.5 of the caller rounds). The segment's values are read into
    locals once: read inside the point loop they were loaded again after every update of
    ``counts`` (which the compiler cannot prove they do not alias), three times slower."""
    for i in range(x0.size):
        n = n_points[i]
        nf, u = np.float32(n), phase[i]
        ax, bx, ay, by = dx[i], x0[i], dy[i], y0[i]
        for k in range(n):
            if subsample:
                t = (np.float32(k) + u) / nf
            else:
                t = np.float32(k) / (nf - np.float32(1))
            row = np.int64(ay * t + by)
            col = np.int64(ax * t + bx)
            counts[row * img_w + col] += 1


def composite(counts: np.ndarray, img_w: int, img_h: int) -> np.ndarray:
    """White background, then edges, then skip edges, each pixel with opacity
    ``0.9 * log(1 + count) / log(1 + q)`` (at most 0.9), ``q`` the 99th percentile of the
    counts of hit pixels of both kinds (one scale, so their darkness compares): a single line
    is faint, dense bundles are dark, and the log keeps the range between them readable."""
    rgb = np.ones((img_h, img_w, 3), dtype=np.float32)
    total = counts[0] + counts[1]
    hit = total[total > 0]
    if hit.size == 0:
        return rgb
    scale = np.float32(0.9 / np.log1p(max(float(np.percentile(hit, 99)), 2.0)))
    alpha = np.empty((img_h, img_w), dtype=np.float32)
    for plane, colour in zip(counts, (EDGE_RGB, SKIP_RGB), strict=True):
        np.log1p(plane, out=alpha)  # in place, channel by channel: no (h, w, 3) temporaries
        alpha *= scale
        np.minimum(alpha, np.float32(0.9), out=alpha)
        for channel in range(3):
            # rgb (1 - a) + c a  =  rgb - a (rgb - c)
            rgb[..., channel] -= alpha * (rgb[..., channel] - np.float32(colour[channel]))
    return rgb


def paint_nodes(rgb: np.ndarray, node_col: np.ndarray, node_row: np.ndarray,
                connected: np.ndarray) -> None:
    """Paint a 3-pixel-wide strip per partition column: each pixel row with nodes is black
    when some node there has an edge, light grey when all of them are isolated."""
    img_h, img_w, _ = rgb.shape
    row = np.clip(node_row + 0.5, 0, img_h - 1).astype(np.int64)
    cell = row * img_w + node_col
    has = np.bincount(cell, minlength=img_h * img_w) > 0
    alive = np.bincount(cell, weights=connected, minlength=img_h * img_w) > 0
    for shift in (-1, 0, 1):
        moved_has = np.roll(has.reshape(img_h, img_w), shift, axis=1)
        moved_alive = np.roll(alive.reshape(img_h, img_w), shift, axis=1)
        rgb[moved_has] = ISOLATED_RGB
        rgb[moved_alive] = NODE_RGB


def _has_edge(graph: LayeredGraph) -> np.ndarray:
    """Mask of the nodes with at least one edge (in or out)."""
    adj = graph.adjacency
    has = np.diff(adj.indptr) > 0
    has[adj.indices] = True  # buffered index cast: no int64 copy of the indices
    return has


def _short(name: str, limit: int = 22) -> str:
    """Partition name for an axis label (long module paths keep their end)."""
    return name if len(name) <= limit else "…" + name[-(limit - 1) :]
