"""The decorator of the metrics' compiled kernels, and the helpers that let one kernel read
plain and packed index arrays."""

from __future__ import annotations

from collections.abc import Callable

import numba as nb
import numpy as np
from numba.extending import overload


def kernel(fn: Callable | None = None, **options) -> Callable:
    """``numba.njit(nogil=True, cache=True, **options)``: a serial kernel that releases the GIL
    (so that several threads may run kernels at once) and whose machine code numba keeps on disk
    (``make setup`` compiles them all once: ``python -m sparsetopo.metrics._warmup``).

    Where numba finds no writable cache location (a read-only install without a writable home
    or ``NUMBA_CACHE_DIR``), the kernel is compiled on first use in every process instead: numba
    would otherwise raise at import."""

    def decorate(f: Callable) -> Callable:
        try:
            return nb.njit(nogil=True, cache=True, **options)(f)
        except RuntimeError as err:  # "cannot cache function ...: no locator available"
            if "cache" not in str(err):
                raise
            return nb.njit(nogil=True, **options)(f)

    return decorate(fn) if fn is not None else decorate


def at(idx, k):
    """Entry ``k`` of an index array, for the kernels: ``idx[k]`` of a 1-D integer array, or
    node id ``k`` of a *packed* array (``uint8`` of shape ``(n, b)``: the id's ``b`` low bytes,
    little-endian; see ``_packed_view``), so that one kernel reads both."""
    if idx.ndim == 1:
        return int(idx[k])
    return int.from_bytes(bytes(idx[k]), "little")


@overload(at)
def _at(idx, k):
    if idx.ndim == 1:
        return lambda idx, k: idx[k]

    def packed(idx, k):
        v = np.int64(0)
        for j in range(idx.shape[1]):
            v |= np.int64(idx[k, j]) << np.int64(8 * j)
        return v

    return packed


def node_array(idx, n):
    """An uninitialised array of ``n`` node ids: ``idx``'s type for a plain index array, int64
    for a packed one."""
    return np.empty(n, idx.dtype if idx.ndim == 1 else np.int64)


@overload(node_array)
def _node_array(idx, n):
    if idx.ndim == 1:
        return lambda idx, n: np.empty(n, idx.dtype)
    return lambda idx, n: np.empty(n, np.int64)


def first_after(idx, lo, hi, v):
    """The first position in ``lo .. hi - 1`` of the ascending ids ``idx`` holding an id
    greater than ``v`` (``hi`` if none), for plain and packed index arrays."""
    ids = [at(idx, k) for k in range(lo, hi)]
    return lo + int(np.searchsorted(ids, v, side="right"))


@overload(first_after)
def _first_after(idx, lo, hi, v):
    if idx.ndim == 1:
        return lambda idx, lo, hi, v: lo + np.searchsorted(idx[lo:hi], v, side="right")

    def packed(idx, lo, hi, v):
        while lo < hi:
            mid = (lo + hi) >> 1
            if at(idx, mid) <= v:
                lo = mid + 1
            else:
                hi = mid
        return lo

    return packed
