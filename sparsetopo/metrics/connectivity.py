"""Connectivity of the undirected graph: cores, bridges, articulation points, components.

Every function here reads the graph as undirected and simple (an edge ``u -> v`` is the edge
``{u, v}``; directions are dropped). The algorithms are compiled kernels on the CSR arrays of
that graph (``GraphView.undirected``, or a ``PackedView``'s packed rows: the same kernels read
both through ``_jit.at``): converting an MGE of millions of edges into an igraph or
networkx graph costs more than every metric together; the tests check these kernels against
both libraries.
"""

from __future__ import annotations

import math

import numpy as np

from sparsetopo.encoding.graph import LayeredGraph

from ._jit import at, kernel, node_array
from ._view import BaseView, as_view

__all__ = ["connected_components", "cut_edges", "cut_nodes", "k_core", "mean_component_size"]

def k_core(g: LayeredGraph | BaseView) -> float:
    """Mean coreness. The ``k``-core is the largest subgraph whose nodes all have degree at
    least ``k`` inside it (degree = in + out); the coreness of a node is the largest ``k`` whose
    ``k``-core holds it. Computed by bucket peeling in ``O(nodes + edges)`` [2]_.

    Parameters
    ----------
    g : LayeredGraph or GraphView (or a PackedView)

    Returns
    -------
    float
        NaN for a graph without nodes.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] V. Batagelj, M. Zaversnik, "An O(m) Algorithm for Cores Decomposition of Networks",
       arXiv cs/0310049, 2003.
    """
    v = as_view(g)
    return float(coreness(v).sum()) / v.n if v.n else math.nan


def coreness(g: LayeredGraph | BaseView) -> np.ndarray:
    """The coreness of every node (see :func:`k_core`), cached on the view.

    Parameters
    ----------
    g : LayeredGraph or GraphView (or a PackedView)

    Returns
    -------
    numpy.ndarray
        One integer per node.

    References
    ----------
    .. [1] V. Batagelj, M. Zaversnik, "An O(m) Algorithm for Cores Decomposition of Networks",
       arXiv cs/0310049, 2003.
    """
    return as_view(g).cached("coreness", lambda v: _coreness(*v.undirected))


def _bridges_cuts_components(v: BaseView) -> tuple[int, int, int]:
    return v.cached("dfs", lambda v: _lowpoint_dfs(*v.undirected))


def cut_edges(g: LayeredGraph | BaseView) -> int:
    """Number of bridges: edges whose removal increases the number of connected components of
    the undirected graph. Found by one depth-first search that tracks low points [2]_.

    Parameters
    ----------
    g : LayeredGraph or GraphView (or a PackedView)

    Returns
    -------
    int

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] R. E. Tarjan, "A Note on Finding the Bridges of a Graph", Information Processing
       Letters 2(6), 1974.
    """
    return int(_bridges_cuts_components(as_view(g))[0])


def cut_nodes(g: LayeredGraph | BaseView) -> int:
    """Number of articulation points: nodes whose removal (with their edges) increases the
    number of connected components of the undirected graph. Found by the same depth-first
    search as :func:`cut_edges` [2]_.

    Parameters
    ----------
    g : LayeredGraph or GraphView (or a PackedView)

    Returns
    -------
    int

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] R. E. Tarjan, "Depth-First Search and Linear Graph Algorithms", SIAM Journal on
       Computing 1(2), 1972; "A Note on Finding the Bridges of a Graph", Information Processing
       Letters 2(6), 1974.
    """
    return int(_bridges_cuts_components(as_view(g))[1])


def connected_components(g: LayeredGraph | BaseView) -> int:
    """Number of weakly connected components (the connected components of the undirected
    graph); an isolated node is a component of its own.

    Parameters
    ----------
    g : LayeredGraph or GraphView (or a PackedView)

    Returns
    -------
    int

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    return int(_bridges_cuts_components(as_view(g))[2])


def mean_component_size(g: LayeredGraph | BaseView) -> float:
    """Mean size of the weakly connected components: ``nodes / connected_components``.

    Parameters
    ----------
    g : LayeredGraph or GraphView (or a PackedView)

    Returns
    -------
    float
        NaN for a graph without nodes.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    v = as_view(g)
    components = connected_components(v)
    return v.n / components if components else math.nan


@kernel
def _coreness(uptr, uidx):
    """Coreness of every node of an undirected CSR graph: Batagelj and Zaversnik's bucket
    peeling (nodes kept sorted by current degree in ``vert``, ``bins[d]`` the first position of
    degree ``d``, ``pos[v]`` the position of ``v``)."""
    n = uptr.size - 1
    deg = node_array(uidx, n)  # int32 for an MGE's CSR: half the memory traffic
    deg[:] = uptr[1:] - uptr[:-1]
    if n == 0:
        return deg
    md = deg.max()
    bins = np.zeros(md + 1, deg.dtype)
    for v in range(n):
        bins[deg[v]] += 1
    start = 0
    for d in range(md + 1):
        num = bins[d]
        bins[d] = start
        start += num
    pos = node_array(uidx, n)
    vert = node_array(uidx, n)
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
            u = at(uidx, e)
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


@kernel
def _lowpoint_dfs(uptr, uidx):
    """``(bridges, articulation points, connected components)`` of a simple undirected CSR
    graph by one iterative depth-first search with Tarjan's low points; isolated nodes are
    components of their own. A tree edge ``(p, u)`` is a bridge when ``low[u] > disc[p]``; a
    non-root ``p`` is an articulation point when some child has ``low[u] >= disc[p]``, the root
    when it has more than one child."""
    n = uptr.size - 1
    disc = node_array(uidx, n)  # node ids and discovery times fit the index type
    disc[:] = -1
    low = node_array(uidx, n)
    low[:] = 0
    parent = node_array(uidx, n)
    parent[:] = -1
    it = np.zeros(n, uptr.dtype)
    stack = node_array(uidx, n)
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
                w = at(uidx, it[u])
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
