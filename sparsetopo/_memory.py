"""Returning freed C-heap memory to the system (a low-level helper for the long steps)."""

from __future__ import annotations

import ctypes
import ctypes.util


def release_freed_memory() -> bool:
    """Hand the C heap's freed pages back to the OS (glibc ``malloc_trim(0)``, which walks every
    thread's arena; a no-op elsewhere); True if it ran.

    Why it matters here: a block freed on one thread stays in that thread's malloc arena, where
    only allocations from that thread can reuse it. A pruning pass frees its activations (0.25
    GB for resnet20 on a batch of 128) into the main thread's heap, and ``two_hop``'s parallel
    kernel frees its word rows into numba's worker arenas, while the metrics and the picture
    then allocate on other threads: without a trim those freed pages add to the peak (measured:
    the default ``analyze`` 0.90-0.93 -> 0.87-0.88 GB; resnet20 @0.9's topometrics -9 MB)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True
