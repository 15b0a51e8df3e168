"""The decorator of the metrics' compiled kernels."""

from __future__ import annotations

from collections.abc import Callable

import numba as nb


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
