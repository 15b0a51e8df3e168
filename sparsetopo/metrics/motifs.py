"""Connected 4-node motifs: an estimate of their number by RAND-ESU sampling."""

from __future__ import annotations

import math

import numpy as np

from sparsetopo.encoding.graph import LayeredGraph

from ._jit import at, first_after, kernel, node_array
from ._view import BaseView, as_view

__all__ = ["motif_sample", "motifs"]


def motif_sample(n_nodes: int, seed: int = 0) -> np.ndarray:
    """The start vertices of the motif estimate: ``floor(0.001 * n_nodes)`` distinct node ids
    drawn with ``numpy.random.default_rng(seed)``, sorted.

    Parameters
    ----------
    n_nodes : int
        Number of nodes of the graph.
    seed : int, default 0

    Returns
    -------
    numpy.ndarray
        int64 node ids (empty below 1000 nodes).

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    k = int(math.floor(0.001 * n_nodes))
    if k == 0:
        return np.zeros(0, np.int64)
    return np.sort(np.random.default_rng(seed).choice(n_nodes, size=k, replace=False))


def motifs(g: LayeredGraph | BaseView, seed: int = 0) -> float:
    """Estimated number of connected 4-node motifs (connected induced subgraphs on 4 nodes).

    RAND-ESU [2]_ with the ``k = floor(0.001 * nodes)`` start vertices of
    :func:`motif_sample` and no further sampling: ``nodes / k`` times the number of connected
    induced 4-node subgraphs whose smallest node id is one of the start vertices. This is
    igraph's ``motifs_randesu_estimate(size=4, cut_prob=None, sample=motif_sample(nodes,
    seed))`` summed over motif classes. A directed 4-node subgraph is weakly connected exactly
    when its undirected version is connected, so the count runs on the undirected simple graph.
    The subgraphs of a start vertex are counted in closed form from its neighbourhood (by how
    many of the three other nodes are its neighbours) instead of being enumerated.

    Parameters
    ----------
    g : LayeredGraph or GraphView (or a PackedView)
    seed : int, default 0
        Draws the start vertices.

    Returns
    -------
    float
        0 when the graph has fewer than 1000 nodes (no start vertex).

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] S. Wernicke, "Efficient Detection of Network Motifs", IEEE/ACM Transactions on
       Computational Biology and Bioinformatics 3(4), 2006.
    """
    v = as_view(g)
    roots = motif_sample(v.n, seed)
    if roots.size == 0:
        return 0.0
    flags = v.cached("motif_flags", lambda v: _long_edge_nodes(*v.out_rows, v.partition_index))
    uptr, uidx = v.undirected
    counts = _motif_root_counts(uptr, uidx, flags, roots)
    return float(counts.sum()) * (v.n / roots.size)


@kernel
def _long_edge_nodes(start, stop, idx, part):
    """Nodes with an incident edge that skips at least one partition (``part`` = partition
    index per node). Every triangle of a layered DAG has such an edge, so at least two of its
    nodes are flagged."""
    n = start.size
    flag = np.zeros(n, np.bool_)
    for u in range(n):
        for e in range(start[u], stop[u]):
            v = at(idx, e)
            if part[v] - part[u] >= 2:
                flag[u] = True
                flag[v] = True
    return flag


@kernel
def _lower(uptr, uidx, u, v):
    """First position in sorted row ``u`` holding a neighbour > ``v``."""
    return first_after(uidx, uptr[u], uptr[u + 1], v)


@kernel
def _root_count(uptr, uidx, v, flag, tag, mcnt, mpos, d2):
    """Number of connected induced 4-node subgraphs whose smallest node is ``v`` (what ESU
    enumerates from root ``v``). With H the graph on nodes >= v, N = N_H(v), d = |N|,
    R(x) = N_H(x) minus N and v, D2 = union of R(x), m(z) = |N_H(z) & N|, split by how many
    of the other three nodes are neighbours of v:
    3: C(d,3); 2: (d-1) sum_x |R(x)| - sum_z C(m(z),2);
    1: sum_x C(|R(x)|,2) + sum_z m(z) deg_H(z) - sum_z m(z)^2 - 2 sum_x e(R(x)),
    e(R(x)) the edges inside R(x) = sum over edges {z,w} inside D2 of |N(z) & N(w) & N|.
    Those edges close triangles, so one of z, w is ``flag``-ged (see ``_long_edge_nodes``).
    ``tag``, ``mcnt`` (zeroed, size n) and ``mpos``, ``d2`` (size n) are scratch space."""
    a = _lower(uptr, uidx, v, v)
    b = uptr[v + 1]
    d = b - a
    tag[v] = 3
    for e in range(a, b):
        tag[at(uidx, e)] = 1
    n_d2 = 0
    sum_r = 0
    sum_r2 = 0
    any_flag = False
    for e in range(a, b):
        x = at(uidx, e)
        e_in = 0
        deg_h = 0
        for f in range(_lower(uptr, uidx, x, v), uptr[x + 1]):
            w = at(uidx, f)
            deg_h += 1
            t = tag[w]
            if t == 1:
                e_in += 1
            elif t != 3:
                if t == 0:
                    tag[w] = 2
                    d2[n_d2] = w
                    n_d2 += 1
                    any_flag = any_flag or flag[w]
                mcnt[w] += 1
        r = deg_h - e_in  # deg_H(x) - 1 - e_in: the edge to v is not in the scanned range
        sum_r += r
        sum_r2 += r * (r - 1) // 2
    count = d * (d - 1) * (d - 2) // 6 + (d - 1) * sum_r + sum_r2
    for i in range(n_d2):
        z = d2[i]
        m = np.int64(mcnt[z])  # scratch may be int32: keep the products in int64
        deg_hz = uptr[z + 1] - _lower(uptr, uidx, z, v)
        count += m * deg_hz - m * m - m * (m - 1) // 2
    if any_flag:
        count -= 2 * _d2_triangles(uptr, uidx, v, a, b, flag, tag, mcnt, mpos, d2, n_d2)
    tag[v] = 0
    for e in range(a, b):
        tag[at(uidx, e)] = 0
    for i in range(n_d2):
        tag[d2[i]] = 0
        mcnt[d2[i]] = 0
    return count


@kernel
def _d2_triangles(uptr, uidx, v, a, b, flag, tag, mcnt, mpos, d2, n_d2):
    """Sum over edges {z, w} inside D2 of |N(z) & N(w) & N| (see ``_root_count``), from the
    sorted lists of N-neighbours of each z in D2."""
    total_m = 0
    for i in range(n_d2):
        mpos[d2[i]] = i
        total_m += mcnt[d2[i]]
    start = np.empty(n_d2 + 1, np.int64)
    start[0] = 0
    for i in range(n_d2):
        start[i + 1] = start[i] + mcnt[d2[i]]
    fill = start[:-1].copy()
    mlist = np.empty(total_m, np.int64)
    for e in range(a, b):  # x ascending, so every list is sorted
        x = at(uidx, e)
        for f in range(_lower(uptr, uidx, x, v), uptr[x + 1]):
            w = at(uidx, f)
            if tag[w] == 2:
                i = mpos[w]
                mlist[fill[i]] = x
                fill[i] += 1
    tri = 0
    for i in range(n_d2):
        z = d2[i]
        if not flag[z]:
            continue
        for f in range(_lower(uptr, uidx, z, v), uptr[z + 1]):
            w = at(uidx, f)
            if tag[w] != 2 or (flag[w] and w < z):  # pairs of flagged nodes: once, from the smaller
                continue
            j = mpos[w]
            p, p_end = start[i], start[i + 1]
            q, q_end = start[j], start[j + 1]
            while p < p_end and q < q_end:
                if mlist[p] < mlist[q]:
                    p += 1
                elif mlist[p] > mlist[q]:
                    q += 1
                else:
                    tri += 1
                    p += 1
                    q += 1
    return tri


@kernel
def _motif_root_counts(uptr, uidx, flag, roots):
    """``_root_count`` of every root (one set of scratch arrays for all)."""
    n = uptr.size - 1
    out = np.zeros(roots.size, np.int64)
    tag = np.zeros(n, np.int8)
    mcnt = node_array(uidx, n)
    mcnt[:] = 0
    mpos = node_array(uidx, n)
    mpos[:] = 0
    d2 = node_array(uidx, n)
    for i in range(roots.size):
        out[i] = _root_count(uptr, uidx, roots[i], flag, tag, mcnt, mpos, d2)
    return out
