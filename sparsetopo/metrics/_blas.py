"""BLAS held to one thread while metrics run LAPACK / BLAS routines, safely from many threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_holders = 0
_limit = None


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # scans the loaded libraries: once per process


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the body with BLAS limited to one thread.

    Why: the metrics' BLAS and LAPACK work is many small or memory-bound calls (dense spectra
    of small graphs, ARPACK's vector updates, the Ramanujan metrics' Gram matrices), where
    threads cost more than they save on a shared machine; and a BLAS reduction sums in an
    order that depends on the number of threads, so a fixed count makes every value the same
    whichever thread computes it. The limit is process-wide (``threadpoolctl``): it is set
    when the first caller enters and the previous setting restored when the last one leaves,
    so that concurrent callers never undo each other's limit."""
    global _holders, _limit
    with _lock:
        if _holders == 0:
            _limit = _controller().limit(limits=1, user_api="blas")
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                _limit.restore_original_limits()
                _limit = None
