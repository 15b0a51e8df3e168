"""Small random ``LayeredGraph``s for oracle tests (reusable by any test module).

``random_layered_graph(seed)`` mixes everything the encodings produce: several partitions
(C x H x W or flat, some empty), consecutive-layer edges, pooling-like fan-in (a window of
sources sharing one weight per target), skip edges jumping partitions, isolated nodes, signed
weights including exact zeros, and now and then an output partition that is not the last one.
"""

from __future__ import annotations

import numpy as np

from sparsetopo.encoding.graph import LayeredGraph, Partition, from_edges


def _shapes(rng: np.random.Generator, n_parts: int, max_size: int) -> list[tuple[int, ...]]:
    shapes = []
    for p in range(n_parts):
        inner = 0 < p < n_parts - 1
        if inner and rng.random() < 0.15:
            shapes.append((0,) if rng.random() < 0.5 else (0, 2, 2))
        elif rng.random() < 0.5:
            c = int(rng.integers(1, 4))
            h = int(rng.integers(1, 3))
            w = int(rng.integers(1, max(2, max_size // (c * h)) + 1))
            shapes.append((c, h, w))
        else:
            shapes.append((int(rng.integers(1, max_size + 1)),))
    return shapes


def random_layered_graph(
    seed: int,
    max_partitions: int = 6,
    max_size: int = 12,
    density: float | None = None,
    skips: bool = True,
) -> LayeredGraph:
    """A random layered DAG; the same ``seed`` gives the same graph. ``skips=False``: edges only
    between consecutive partitions (the graph is then bipartite)."""
    rng = np.random.default_rng(seed)
    n_parts = int(rng.integers(2, max_partitions + 1))
    parts, offset = [], 0
    for p, shape in enumerate(_shapes(rng, n_parts, max_size)):
        parts.append(Partition("input" if p == 0 else f"layer{p}", offset, shape))
        offset += parts[-1].size
    dens = rng.uniform(0.1, 0.6) if density is None else density
    src, dst = [], []
    for p in range(n_parts - 1):
        a = parts[p]
        for q in range(p + 1, n_parts):
            b = parts[q]
            if a.size == 0 or b.size == 0 or (q > p + 1 and not skips):
                continue
            d = dens if q == p + 1 else dens * rng.uniform(0.0, 0.3)  # skip edges: sparser
            hit = rng.random((a.size, b.size)) < d
            u, v = np.nonzero(hit)
            src.append(a.offset + u)
            dst.append(b.offset + v)
            if q == p + 1 and a.size >= 2 and rng.random() < 0.4:  # pooling-like fan-in
                window = rng.choice(a.size, size=min(a.size, 4), replace=False)
                targets = rng.choice(b.size, size=int(rng.integers(1, b.size + 1)), replace=False)
                uu, vv = np.meshgrid(window, targets, indexing="ij")
                src.append(a.offset + uu.ravel())
                dst.append(b.offset + vv.ravel())
    src = np.concatenate(src) if src else np.zeros(0, np.int64)
    dst = np.concatenate(dst) if dst else np.zeros(0, np.int64)
    if offset and rng.random() < 0.7:  # isolate a few nodes
        lonely = rng.choice(offset, size=int(rng.integers(1, max(2, offset // 5) + 1)))
        keep = ~(np.isin(src, lonely) | np.isin(dst, lonely))
        src, dst = src[keep], dst[keep]
    weight = rng.normal(size=src.size).astype(np.float32)
    weight[rng.random(src.size) < 0.05] = 0.0
    output_index = -1
    if n_parts > 2 and rng.random() < 0.15:
        output_index = int(rng.integers(1, n_parts - 1))
    return from_edges(src, dst, weight, parts, output_index=output_index)


def chain_graph(length: int, width: int = 1, weight: float = 1.0) -> LayeredGraph:
    """``length`` partitions of ``width`` nodes, node ``i`` of each linked to node ``i`` of the
    next: ``width`` disjoint paths."""
    parts = [Partition("input" if p == 0 else f"l{p}", p * width, (width,)) for p in range(length)]
    u = np.arange((length - 1) * width)
    return from_edges(u, u + width, np.full(u.size, weight, np.float32), parts)


def bipartite_graph(
    n_left: int, n_right: int, density: float, seed: int = 0, layer: str | None = None
) -> LayeredGraph:
    """A random BGE: partitions [left, right], signed weights."""
    rng = np.random.default_rng(seed)
    u, v = np.nonzero(rng.random((n_left, n_right)) < density)
    parts = [Partition("left", 0, (n_left,)), Partition("right", n_left, (n_right,))]
    w = rng.normal(size=u.size).astype(np.float32)
    return from_edges(u, n_left + v, w, parts, kind="rolled", layer=layer)
