"""Out-neighbourhood sizes: the mean number of nodes within one and two directed out-steps."""

from __future__ import annotations

import math

import numpy as np

from sparsetopo.encoding.graph import LayeredGraph

from ._jit import at, kernel
from ._view import BaseView, as_view

__all__ = ["one_hop", "two_hop"]


def one_hop(g: LayeredGraph | BaseView) -> float:
    """Mean size of the 1-hop out-neighbourhood: the mean over nodes ``v`` of the number of
    nodes within one directed out-step of ``v``, ``v`` included. A ``LayeredGraph`` has no loops
    and no duplicate edges, so this is ``1 + edges / nodes``.

    Parameters
    ----------
    g : LayeredGraph or GraphView

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
    return (v.n + v.m) / v.n if v.n else math.nan


def two_hop(g: LayeredGraph | BaseView) -> float:
    """Mean size of the 2-hop out-neighbourhood: the mean over nodes ``v`` of the number of
    distinct nodes within two directed out-steps of ``v``, ``v`` included (in a DAG ``v`` is
    never reached again).

    Each node's out-neighbours are held as 64-bit words of a bitset (ids relabelled so that the
    channels of one pixel are adjacent, which packs a convolution's neighbourhoods into few
    words); a node's 2-hop set is the union of its own words and its out-neighbours' words.
    A view with a ``word_budget`` (bytes, 12 per word) holds only the words of one range of
    ids at a time, as many ranges as the budget needs: the sizes of the unions add up over
    disjoint ranges of ids, so the value is the same.

    Parameters
    ----------
    g : LayeredGraph or GraphView (or a PackedView)

    Returns
    -------
    float
        NaN for a graph without nodes.

    Raises
    ------
    GraphTooLargeError
        The word rows would not fit in the memory available.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    v = as_view(g)
    if v.n == 0:
        return math.nan
    start, stop, idx = v.out_rows
    n_words = (v.n + 63) // 64 + 1
    perm = _pixel_major(v)
    wptr = np.zeros(v.n + 1, np.int64)
    per_word = np.zeros(n_words, np.int64)
    _word_counts(start, stop, idx, perm, n_words, 0, n_words, wptr[1:], per_word)
    budget = v.word_budget
    bounds = (np.array([0, n_words]) if budget is None
              else _word_range_bounds(per_word, max(budget // 12, 1)))
    ranges = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
    total = 0
    for lo, hi in ranges:
        if len(ranges) > 1:
            wptr[:] = 0
            _word_counts(start, stop, idx, perm, n_words, lo, hi, wptr[1:], per_word)
        np.cumsum(wptr, out=wptr)
        v.reserve("two_hop word rows", 12 * int(wptr[-1]))
        widx, wbits = _word_rows(start, stop, idx, perm, wptr, n_words, lo, hi)
        total += _two_hop_sum(start, stop, idx, wptr, widx, wbits, n_words)
        del widx, wbits
    return 1.0 + total / v.n


@kernel
def _word_range_bounds(per_word, max_words):
    """Bounds of consecutive ranges of word indices, each holding at most ``max_words`` row
    words (a single word index may hold more): ``[0, b1, ..., n_words]``."""
    bounds = [0]
    held = 0
    for w in range(per_word.size):
        if held > 0 and held + per_word[w] > max_words:
            bounds.append(w)
            held = 0
        held += per_word[w]
    bounds.append(per_word.size)
    return np.array(bounds)


def _pixel_major(v: BaseView) -> np.ndarray:
    """New id of every node: each ``C x H x W`` partition relabelled channel-minor (the ``C``
    channels of a pixel adjacent), other partitions unchanged."""
    perm = np.arange(v.n, dtype=np.int64)
    for p in v.partitions:
        if len(p.shape) == 3 and p.size:
            c, h, w = p.shape
            old = np.arange(p.size).reshape(c, h, w).transpose(1, 2, 0).ravel()
            perm[p.offset + old] = p.offset + np.arange(p.size)
    return perm


_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@kernel(inline="always")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return np.int64((x * _H01) >> np.uint64(56))


@kernel
def _word_counts(start, stop, idx, perm, n_words, lo, hi, counts, per_word):
    """``counts[u]``: number of distinct 64-bit words (of relabelled ids, word index in
    ``lo .. hi - 1``) that row ``u``'s out-neighbours fall into; ``per_word[w]`` += the rows
    holding word ``w``."""
    seen = np.zeros(n_words, np.bool_)
    touched = np.empty(n_words, np.int64)
    for u in range(start.size):
        k = 0
        for e in range(start[u], stop[u]):
            w = perm[at(idx, e)] >> 6
            if lo <= w < hi and not seen[w]:
                seen[w] = True
                touched[k] = w
                k += 1
        for j in range(k):
            seen[touched[j]] = False
            per_word[touched[j]] += 1
        counts[u] = k


@kernel
def _word_rows(start, stop, idx, perm, wptr, n_words, lo, hi):
    """Each row's out-neighbour set as ``(word index, 64-bit mask)`` pairs, rows at ``wptr``
    (words ``lo .. hi - 1`` only)."""
    widx = np.empty(wptr[-1], np.int32)
    wbits = np.empty(wptr[-1], np.uint64)
    acc = np.zeros(n_words, np.uint64)
    touched = np.empty(n_words, np.int64)
    for u in range(start.size):
        k = 0
        for e in range(start[u], stop[u]):
            p = perm[at(idx, e)]
            w = p >> 6
            if w < lo or w >= hi:
                continue
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


@kernel
def _two_hop_sum(start, stop, idx, wptr, widx, wbits, n_words):
    """Sum over ``v`` of ``|N1(v) U N2(v)|`` (out-steps, ``v`` excluded), by OR-ing the word
    rows of ``v`` and of its out-neighbours."""
    acc = np.zeros(n_words, np.uint64)
    touched = np.empty(n_words, np.int64)
    total = 0
    for v in range(start.size):
        k = 0
        for j in range(wptr[v], wptr[v + 1]):
            w = widx[j]
            if acc[w] == 0:
                touched[k] = w
                k += 1
            acc[w] |= wbits[j]
        for e in range(start[v], stop[v]):
            x = at(idx, e)
            for j in range(wptr[x], wptr[x + 1]):
                w = widx[j]
                if acc[w] == 0:
                    touched[k] = w
                    k += 1
                acc[w] |= wbits[j]
        for j in range(k):
            total += _popcount(acc[touched[j]])
            acc[touched[j]] = 0
    return total
