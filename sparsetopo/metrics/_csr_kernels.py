"""Compiled graph kernels working directly on CSR arrays (numba).

Why not igraph: converting a CSR graph into an igraph ``Graph`` goes through a Python list of
edge pairs (the wheel is built against the limited Python API, so igraph's zero-copy buffer path
is disabled) and costs 0.4-1.2 us per edge, i.e. seconds for a ResNet-20 MGE and minutes for the
100M-edge graphs, more than every metric together. These kernels are the textbook algorithms
(Batagelj-Zaversnik coreness, Tarjan's lowpoint DFS, ESU-equivalent motif counting) on the
arrays we already have; the tests check them against igraph and networkx.

Kernels take either the undirected graph as a symmetric, row-sorted, loop-free CSR (``uptr``,
``uidx``, from ``symmetrize``) or the directed CSR of a ``LayeredGraph`` (``indptr``,
``indices``, ``data``) whose node ids are a topological order (every edge goes from a lower to
a higher id). ``parallel=True`` kernels split their work into chunks over numba's threads.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_OPTS = dict(cache=True, nogil=True)

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@nb.njit(inline="always", **_OPTS)
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return np.int64((x * _H01) >> np.uint64(56))


# --- undirected view -----------------------------------------------------------------------


@nb.njit(**_OPTS)
def in_degree(indices, n):
    """Number of entries per column (int32: an MGE's edge count fits, see ``index_dtype``)."""
    deg = np.zeros(n, indices.dtype)
    for e in range(indices.size):
        deg[indices[e]] += 1
    return deg


@nb.njit(**_OPTS)
def symmetrize(indptr, indices, n):
    """Undirected CSR of a DAG whose ids are topological: row ``u`` = in-neighbours (ascending)
    followed by row ``u`` of the input, so rows are sorted when the input rows are."""
    deg = np.zeros(n + 1, np.int64)
    for u in range(n):
        deg[u + 1] += indptr[u + 1] - indptr[u]
        for e in range(indptr[u], indptr[u + 1]):
            deg[indices[e] + 1] += 1
    uptr = np.cumsum(deg)
    fill = uptr[:-1].copy()
    uidx = np.empty(uptr[n], indices.dtype)
    for u in range(n):
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            uidx[fill[v]] = u
            fill[v] += 1
    for u in range(n):
        s = fill[u]
        for e in range(indptr[u], indptr[u + 1]):
            uidx[s] = indices[e]
            s += 1
    return uptr, uidx


@nb.njit(**_OPTS)
def abs_sum(data):
    """Sum of ``|data|`` in float64."""
    s = 0.0
    for e in range(data.size):
        s += abs(np.float64(data[e]))
    return s


@nb.njit(**_OPTS)
def long_edge_nodes(indptr, indices, part):
    """Nodes with an incident edge that skips at least one partition (``part`` = partition
    index per node). Every triangle of a layered DAG has such an edge, so at least two of its
    nodes are flagged."""
    n = indptr.size - 1
    flag = np.zeros(n, np.bool_)
    for u in range(n):
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            if part[v] - part[u] >= 2:
                flag[u] = True
                flag[v] = True
    return flag


@nb.njit(**_OPTS)
def alternates_parity(indptr, indices, part):
    """Whether every edge joins partitions of different parity (then the graph is bipartite
    with the partition parity as colouring)."""
    n = indptr.size - 1
    for u in range(n):
        for e in range(indptr[u], indptr[u + 1]):
            if (part[indices[e]] - part[u]) % 2 == 0:
                return False
    return True


@nb.njit(**_OPTS)
def coreness(uptr, uidx):
    """Coreness of every node (Batagelj & Zaversnik 2003, O(n + m) bucket peeling)."""
    n = uptr.size - 1
    deg = (uptr[1:] - uptr[:-1]).astype(uidx.dtype)  # int32 arrays: half the memory traffic
    if n == 0:
        return deg
    md = deg.max()
    bins = np.zeros(md + 1, uidx.dtype)
    for v in range(n):
        bins[deg[v]] += 1
    start = 0
    for d in range(md + 1):
        num = bins[d]
        bins[d] = start
        start += num
    pos = np.empty(n, uidx.dtype)
    vert = np.empty(n, uidx.dtype)
    for v in range(n):
        pos[v] = bins[deg[v]]
        vert[pos[v]] = v
        bins[deg[v]] += 1
    for d in range(md, 0, -1):
        bins[d] = bins[d - 1]
    bins[0] = 0
    for i in range(n):
        v = vert[i]
        for e in range(uptr[v], uptr[v + 1]):
            u = uidx[e]
            if deg[u] > deg[v]:
                du = deg[u]
                pu = pos[u]
                pw = bins[du]
                w = vert[pw]
                if u != w:
                    pos[u] = pw
                    vert[pu] = w
                    pos[w] = pu
                    vert[pw] = u
                bins[du] += 1
                deg[u] -= 1
    return deg


@nb.njit(**_OPTS)
def bridges_articulation_components(uptr, uidx):
    """(bridges, articulation points, connected components) of a simple undirected graph by one
    iterative Tarjan lowpoint DFS; isolated nodes are components of their own."""
    n = uptr.size - 1
    ix = uidx.dtype  # node ids and discovery times fit the index type (int32 for an MGE)
    disc = np.full(n, -1, ix)
    low = np.zeros(n, ix)
    parent = np.full(n, -1, ix)
    it = np.zeros(n, uptr.dtype)
    stack = np.empty(n, ix)
    is_cut = np.zeros(n, np.bool_)
    t = 0
    n_bridges = 0
    n_comp = 0
    for s in range(n):
        if disc[s] != -1:
            continue
        n_comp += 1
        disc[s] = t
        low[s] = t
        t += 1
        it[s] = uptr[s]
        top = 0
        stack[0] = s
        root_children = 0
        while top >= 0:
            u = stack[top]
            if it[u] < uptr[u + 1]:
                w = uidx[it[u]]
                it[u] += 1
                if disc[w] == -1:
                    parent[w] = u
                    disc[w] = t
                    low[w] = t
                    t += 1
                    it[w] = uptr[w]
                    top += 1
                    stack[top] = w
                    if u == s:
                        root_children += 1
                elif w != parent[u] and disc[w] < low[u]:
                    low[u] = disc[w]
            else:
                top -= 1
                p = parent[u]
                if p != -1:
                    if low[u] < low[p]:
                        low[p] = low[u]
                    if low[u] > disc[p]:
                        n_bridges += 1
                    if p != s and low[u] >= disc[p]:
                        is_cut[p] = True
        if root_children > 1:
            is_cut[s] = True
    return n_bridges, int(is_cut.sum()), n_comp


# --- two-hop neighbourhoods ----------------------------------------------------------------


@nb.njit(parallel=True, **_OPTS)
def _word_counts(indptr, indices, perm, n_words, bounds):
    """Number of distinct 64-bit words (of permuted ids) that each row's out-neighbours hit."""
    n = indptr.size - 1
    cnt = np.zeros(n + 1, np.int64)
    for c in nb.prange(bounds.size - 1):
        seen = np.zeros(n_words, np.bool_)
        touched = np.empty(n_words, np.int64)
        for u in range(bounds[c], bounds[c + 1]):
            k = 0
            for e in range(indptr[u], indptr[u + 1]):
                w = perm[indices[e]] >> 6
                if not seen[w]:
                    seen[w] = True
                    touched[k] = w
                    k += 1
            for j in range(k):
                seen[touched[j]] = False
            cnt[u + 1] = k
    return cnt


@nb.njit(parallel=True, **_OPTS)
def _word_rows(indptr, indices, perm, wptr, n_words, bounds):
    """Each row's out-neighbour set as (word index, 64-bit mask) pairs over permuted ids."""
    widx = np.empty(wptr[-1], np.int32)
    wbits = np.empty(wptr[-1], np.uint64)
    for c in nb.prange(bounds.size - 1):
        acc = np.zeros(n_words, np.uint64)
        touched = np.empty(n_words, np.int64)
        for u in range(bounds[c], bounds[c + 1]):
            k = 0
            for e in range(indptr[u], indptr[u + 1]):
                p = perm[indices[e]]
                w = p >> 6
                if acc[w] == 0:
                    touched[k] = w
                    k += 1
                acc[w] |= np.uint64(1) << np.uint64(p & 63)
            s = wptr[u]
            for j in range(k):
                widx[s + j] = touched[j]
                wbits[s + j] = acc[touched[j]]
                acc[touched[j]] = 0
    return widx, wbits


@nb.njit(parallel=True, **_OPTS)
def _two_hop_sum(indptr, indices, wptr, widx, wbits, n_words, bounds):
    """Sum over v of |N1(v) U N2(v)| (out-steps), by OR-ing the word rows of v and of its
    out-neighbours."""
    part = np.zeros(bounds.size - 1, np.int64)
    for c in nb.prange(bounds.size - 1):
        acc = np.zeros(n_words, np.uint64)
        touched = np.empty(n_words, np.int64)
        local = 0
        for v in range(bounds[c], bounds[c + 1]):
            k = 0
            for j in range(wptr[v], wptr[v + 1]):
                w = widx[j]
                if acc[w] == 0:
                    touched[k] = w
                    k += 1
                acc[w] |= wbits[j]
            for e in range(indptr[v], indptr[v + 1]):
                x = indices[e]
                for j in range(wptr[x], wptr[x + 1]):
                    w = widx[j]
                    if acc[w] == 0:
                        touched[k] = w
                        k += 1
                    acc[w] |= wbits[j]
            for j in range(k):
                local += _popcount(acc[touched[j]])
                acc[touched[j]] = 0
        part[c] = local
    return part.sum()


def two_hop_sum(indptr, indices, perm, n_chunks):
    """Sum over v of the number of distinct nodes within 1 or 2 directed out-steps of v (v
    excluded). ``perm`` relabels nodes so that typical neighbourhoods fill few 64-bit words; any
    bijection gives the same answer."""
    n = indptr.size - 1
    n_words = (n + 63) // 64 + 1
    bounds = balanced_bounds(indptr, n_chunks)
    cnt = _word_counts(indptr, indices, perm, n_words, bounds)
    wptr = np.cumsum(cnt)
    widx, wbits = _word_rows(indptr, indices, perm, wptr, n_words, bounds)
    return int(_two_hop_sum(indptr, indices, wptr, widx, wbits, n_words, bounds))


def balanced_bounds(indptr, n_chunks):
    """Row chunk boundaries with about equal edge counts."""
    n = indptr.size - 1
    if n == 0:
        return np.zeros(2, np.int64)
    targets = np.linspace(0, indptr[-1], n_chunks + 1)
    b = np.searchsorted(indptr, targets, side="left").astype(np.int64)
    b[0], b[-1] = 0, n
    return np.unique(np.clip(b, 0, n))


# --- motifs ----------------------------------------------------------------------------------


@nb.njit(**_OPTS)
def _lower(uptr, uidx, u, v):
    """First position in sorted row ``u`` holding a neighbour > ``v``."""
    return uptr[u] + np.searchsorted(uidx[uptr[u] : uptr[u + 1]], v, side="right")


@nb.njit(**_OPTS)
def _root_count(uptr, uidx, v, flag, tag, mcnt, mpos, d2):
    """Number of connected induced 4-node subgraphs whose smallest node is ``v`` (what ESU
    enumerates from root ``v``). With H the graph on nodes >= v, N = N_H(v), d = |N|,
    R(x) = N_H(x) minus N and v, D2 = union of R(x), m(z) = |N_H(z) & N|, split by how many
    of the other three nodes are neighbours of v:
    3: C(d,3); 2: (d-1) sum_x |R(x)| - sum_z C(m(z),2);
    1: sum_x C(|R(x)|,2) + sum_z m(z) deg_H(z) - sum_z m(z)^2 - 2 sum_x e(R(x)),
    e(R(x)) the edges inside R(x) = sum over edges {z,w} inside D2 of |N(z) & N(w) & N|.
    Those edges close triangles, so one of z, w is ``flag``-ged (see ``long_edge_nodes``).
    ``tag``, ``mcnt`` (zeroed, size n) and ``mpos``, ``d2`` (size n) are scratch space."""
    a = _lower(uptr, uidx, v, v)
    b = uptr[v + 1]
    d = b - a
    tag[v] = 3
    for e in range(a, b):
        tag[uidx[e]] = 1
    n_d2 = 0
    sum_r = 0
    sum_r2 = 0
    any_flag = False
    for e in range(a, b):
        x = uidx[e]
        e_in = 0
        deg_h = 0
        for f in range(_lower(uptr, uidx, x, v), uptr[x + 1]):
            w = uidx[f]
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
        tag[uidx[e]] = 0
    for i in range(n_d2):
        tag[d2[i]] = 0
        mcnt[d2[i]] = 0
    return count


@nb.njit(**_OPTS)
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
        x = uidx[e]
        for f in range(_lower(uptr, uidx, x, v), uptr[x + 1]):
            w = uidx[f]
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
            w = uidx[f]
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


@nb.njit(parallel=True, **_OPTS)
def motif_root_counts(uptr, uidx, flag, roots, n_threads):
    """``_root_count`` for every root: thread ``c`` takes roots ``c, c + n_threads, ...`` with
    one set of scratch arrays."""
    n = uptr.size - 1
    out = np.zeros(roots.size, np.int64)
    for c in nb.prange(n_threads):
        tag = np.zeros(n, np.int8)
        mcnt = np.zeros(n, uidx.dtype)
        mpos = np.zeros(n, uidx.dtype)
        d2 = np.empty(n, uidx.dtype)
        for i in range(c, roots.size, n_threads):
            out[i] = _root_count(uptr, uidx, roots[i], flag, tag, mcnt, mpos, d2)
    return out


# --- paths -------------------------------------------------------------------------------------


@nb.njit(**_OPTS)
def forward_push(indptr, indices, data, lo, hi, reach, count, norm):
    """Push reachability, path counts and |w|-weighted path sums from rows ``lo..hi-1``."""
    for u in range(lo, hi):
        if reach[u]:
            cu = count[u]
            nu = norm[u]
            for e in range(indptr[u], indptr[u + 1]):
                v = indices[e]
                reach[v] = True
                count[v] += cu
                norm[v] += nu * abs(np.float64(data[e]))


@nb.njit(**_OPTS)
def backward_reach(indptr, indices, target):
    """``co[u]``: u is a target or some out-neighbour is co-reachable (ids topological)."""
    n = indptr.size - 1
    co = target.copy()
    for u in range(n - 1, -1, -1):
        if not co[u]:
            for e in range(indptr[u], indptr[u + 1]):
                if co[indices[e]]:
                    co[u] = True
                    break
    return co


@nb.njit(**_OPTS)
def mark_alive_weights(indptr, indices, fwd, co, ids, used):
    """``used[ids[e]] = True`` for every alive edge ``e`` (``ids[e] >= 0``)."""
    n = indptr.size - 1
    for u in range(n):
        if fwd[u]:
            for e in range(indptr[u], indptr[u + 1]):
                if co[indices[e]] and ids[e] >= 0:
                    used[ids[e]] = True


@nb.njit(**_OPTS)
def alive_edge_count(indptr, indices, fwd, co):
    """Edges (u, v) with ``fwd[u]`` and ``co[v]``."""
    n = indptr.size - 1
    total = 0
    for u in range(n):
        if fwd[u]:
            for e in range(indptr[u], indptr[u + 1]):
                if co[indices[e]]:
                    total += 1
    return total


# --- spectra -----------------------------------------------------------------------------------


@nb.njit(parallel=True, **_OPTS)
def relabel_rows(indptr, indices, data, order, new_id, new_ptr, bounds):
    """CSR whose row ``r`` is row ``order[r]`` of the input with columns renamed by ``new_id``
    (``new_ptr``: its row pointers)."""
    out_idx = np.empty(new_ptr[-1], indices.dtype)
    out_data = np.empty(new_ptr[-1], data.dtype)
    for c in nb.prange(bounds.size - 1):
        for r in range(bounds[c], bounds[c + 1]):
            u = order[r]
            s = new_ptr[r]
            for e in range(indptr[u], indptr[u + 1]):
                out_idx[s] = new_id[indices[e]]
                out_data[s] = data[e]
                s += 1
    return out_idx, out_data


def product_split(indptr: np.ndarray) -> int:
    """The row that splits the edges of a CSR in two halves of about equal size: the two row
    blocks of the symmetric products (``sym_abs_matvec_into`` and its relatives)."""
    b = balanced_bounds(indptr, 2)
    return int(b[1]) if b.size > 2 else int(indptr.size - 1)


@nb.njit(**_OPTS)
def _sym_abs_rows(indptr, indices, data, x, z, lo, hi):
    """``z += (|A| + |A|^T) x`` restricted to the edges of rows ``lo .. hi - 1``, in row order."""
    for u in range(lo, hi):
        s = 0.0
        xu = x[u]
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            w = abs(np.float64(data[e]))
            s += w * x[v]
            z[v] += w * xu
        z[u] += s


@nb.njit(**_OPTS)
def _sym_abs_rows2(indptr, indices, data, q, c, lo, hi):
    """``_sym_abs_rows`` on two vectors in one pass over the edges (each bitwise its own), on
    per-node records ``q[u] = (x1[u], x2[u], ...)`` whose columns ``c, c + 1`` accumulate
    ``z1[u], z2[u]``: an edge's two reads and two updates touch one record instead of four
    separate vectors (the products are bound by these scattered accesses, not by streaming the
    edges: a third less time per pass)."""
    for u in range(lo, hi):
        s1 = 0.0
        s2 = 0.0
        xu1 = q[u, 0]
        xu2 = q[u, 1]
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            w = abs(np.float64(data[e]))
            s1 += w * q[v, 0]
            q[v, c] += w * xu1
            s2 += w * q[v, 1]
            q[v, c + 1] += w * xu2
        q[u, c] += s1
        q[u, c + 1] += s2


@nb.njit(**_OPTS)
def _records2(x1, x2, q):
    """Fill the per-node records ``q[u] = (x1[u], x2[u], 0, 0, 0, 0)``: the two vectors, then
    the sums of the first and of the second row block (``_sym_abs_rows2``; 48 bytes a node)."""
    for u in range(x1.size):
        q[u, 0] = x1[u]
        q[u, 1] = x2[u]
        for c in range(2, 6):
            q[u, c] = 0.0


@nb.njit(**_OPTS)
def _laplacian_step(y, x, diag):
    """``y = diag * x - y``: the Laplacian from the product ``y = S x``."""
    for u in range(y.size):
        y[u] = diag[u] * x[u] - y[u]


@nb.njit(**_OPTS)
def _finish2(q, x1, y1, lap1, x2, y2, lap2, diag):
    """``y = first block's sums + second block's`` for both vectors, then the Laplacian step
    where asked."""
    for u in range(y1.size):
        y1[u] = q[u, 2] + q[u, 4]
        y2[u] = q[u, 3] + q[u, 5]
    if lap1:
        _laplacian_step(y1, x1, diag)
    if lap2:
        _laplacian_step(y2, x2, diag)


@nb.njit(**_OPTS)
def _finish(y, z, x, diag, laplacian):
    """``y += z``, then the Laplacian step when ``laplacian``."""
    for u in range(y.size):
        y[u] += z[u]
    if laplacian:
        _laplacian_step(y, x, diag)


@nb.njit(**_OPTS)
def sym_abs_matvec_into(indptr, indices, data, x, y, diag, laplacian, split):
    """``y = (|A| + |A|^T) x`` (or ``diag * x - (|A| + |A|^T) x`` when ``laplacian``), float32
    weights times float64 vectors: rows ``0 .. split - 1`` accumulate into ``y``, the others
    into a second vector, then the two are added. ``sym_abs_matvec_into_parallel`` does the
    same two blocks on two threads: the same operations in the same order, so bitwise the same
    result, and the spectra can move to it (when the second core frees up) without their
    values depending on when that happened."""
    y[:] = 0.0
    z = np.zeros(y.size)
    _sym_abs_rows(indptr, indices, data, x, y, 0, split)
    _sym_abs_rows(indptr, indices, data, x, z, split, indptr.size - 1)
    _finish(y, z, x, diag, laplacian)


@nb.njit(parallel=True, **_OPTS)
def sym_abs_matvec_into_parallel(indptr, indices, data, x, y, diag, laplacian, split):
    """``sym_abs_matvec_into`` with its two row blocks on two of numba's threads."""
    y[:] = 0.0
    z = np.zeros(y.size)
    for b in nb.prange(2):
        if b == 0:
            _sym_abs_rows(indptr, indices, data, x, y, 0, split)
        else:
            _sym_abs_rows(indptr, indices, data, x, z, split, indptr.size - 1)
    _finish(y, z, x, diag, laplacian)


@nb.njit(**_OPTS)
def sym_abs_matvec2_into(indptr, indices, data, x1, y1, lap1, x2, y2, lap2, diag, split,
                         q):
    """``sym_abs_matvec_into`` on two vectors in one pass over the edges (each result bitwise
    equal to its own single product: same operations in the same order): the products are
    memory-bound, and the edges are read once instead of twice. Both row blocks work on one
    array of per-node records, each in its own pair of columns (``_sym_abs_rows2``): ``q``, a
    ``(n, 6)`` float64 scratch array that the caller allocates once per solve."""
    _records2(x1, x2, q)
    _sym_abs_rows2(indptr, indices, data, q, 2, 0, split)
    _sym_abs_rows2(indptr, indices, data, q, 4, split, indptr.size - 1)
    _finish2(q, x1, y1, lap1, x2, y2, lap2, diag)


@nb.njit(parallel=True, **_OPTS)
def sym_abs_matvec2_into_parallel(indptr, indices, data, x1, y1, lap1, x2, y2, lap2, diag,
                                  split, q):
    """``sym_abs_matvec2_into`` with its two row blocks on two of numba's threads (they write
    different columns of the records; the rows either block updates barely overlap)."""
    _records2(x1, x2, q)
    for b in nb.prange(2):
        if b == 0:
            _sym_abs_rows2(indptr, indices, data, q, 2, 0, split)
        else:
            _sym_abs_rows2(indptr, indices, data, q, 4, split, indptr.size - 1)
    _finish2(q, x1, y1, lap1, x2, y2, lap2, diag)


@nb.njit(inline="always", **_OPTS)
def _subtract_dot(r, c, y, z):
    """``r -= c y`` in place, returning ``z . r`` (the updated ``r``; ``z`` may be ``r``
    itself) as four interleaved partial sums (elements ``i mod 4``) added ``(s0 + s1) +
    (s2 + s3)``: one running sum is a chain of dependent additions, which took twice as long
    as the memory traffic. A fixed order: the same sum on every machine and thread count."""
    n = r.size
    m = n - n % 4
    s0 = s1 = s2 = s3 = 0.0
    for i in range(0, m, 4):
        r[i] -= c * y[i]
        r[i + 1] -= c * y[i + 1]
        r[i + 2] -= c * y[i + 2]
        r[i + 3] -= c * y[i + 3]
        s0 += z[i] * r[i]
        s1 += z[i + 1] * r[i + 1]
        s2 += z[i + 2] * r[i + 2]
        s3 += z[i + 3] * r[i + 3]
    for i in range(m, n):
        r[i] -= c * y[i]
        s0 += z[i] * r[i]
    return (s0 + s1) + (s2 + s3)


@nb.njit(**_OPTS)
def lanczos_three_term(r, v, v_prev, beta):
    """One Lanczos step on ``r = A v`` in place: ``r -= beta v_prev``, ``alpha = v.r``,
    ``r -= alpha v``; returns ``(alpha, |r|^2)``."""
    a = _subtract_dot(r, beta, v_prev, v)
    return a, _subtract_dot(r, a, v, r)


@nb.njit(**_OPTS)
def scale_into(r, c, out):
    """``out = c * r``."""
    for i in range(r.size):
        out[i] = c * r[i]


@nb.njit(**_OPTS)
def orthogonalize(basis, m, r, h):
    """One classical Gram-Schmidt pass of ``r`` against rows ``0..m-1`` of ``basis``:
    ``h = basis[:m] r``, ``r -= basis[:m]^T h``; returns ``|r|^2``. Blocked over the columns so
    that each block of ``r`` stays in cache while the basis rows pass over it, four rows at a
    time (four independent sums per element of ``r``, and ``r`` read and written once per four
    rows: twice as fast as one row at a time on a 22-vector basis of 191k-node vectors)."""
    n = r.size
    blk = 2048
    for i in range(m):
        h[i] = 0.0
    for s in range(0, n, blk):
        t = min(s + blk, n)
        i = 0
        while i + 4 <= m:
            a0 = a1 = a2 = a3 = 0.0
            for q in range(s, t):
                rq = r[q]
                a0 += basis[i, q] * rq
                a1 += basis[i + 1, q] * rq
                a2 += basis[i + 2, q] * rq
                a3 += basis[i + 3, q] * rq
            h[i] += a0
            h[i + 1] += a1
            h[i + 2] += a2
            h[i + 3] += a3
            i += 4
        for j in range(i, m):
            acc = 0.0
            for q in range(s, t):
                acc += basis[j, q] * r[q]
            h[j] += acc
    nrm = 0.0
    for s in range(0, n, blk):
        t = min(s + blk, n)
        i = 0
        while i + 4 <= m:
            h0, h1, h2, h3 = h[i], h[i + 1], h[i + 2], h[i + 3]
            for q in range(s, t):
                r[q] -= ((h0 * basis[i, q] + h1 * basis[i + 1, q])
                         + (h2 * basis[i + 2, q] + h3 * basis[i + 3, q]))
            i += 4
        for j in range(i, m):
            hj = h[j]
            for q in range(s, t):
                r[q] -= hj * basis[j, q]
        for q in range(s, t):
            nrm += r[q] * r[q]
    return nrm
