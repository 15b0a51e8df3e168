"""The process-wide torch state the library has to touch, behind one lock.

torch keeps some state per process, not per thread: the global random generator, the number of
intra-op threads, and torch.fx's tracer, which patches ``torch.nn.Module.__call__`` for every
thread while it traces (a forward pass that another thread runs meanwhile is routed into the
trace and fails: "module is not installed as a submodule"; two traces at once fail with
"CURRENT_PATCHER is None"). The library touches this state in two places: a pruning method's
forward passes and a network's initial weights, drawn from a seed on the global generator, and
tracing a model (torch.fx, then one sample pass on a single thread). Both hold this lock, so
calls from several threads serialise there instead of racing. (Forward passes outside the
library, and training, do not take it: do not train in one thread while another traces.)
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence

import torch

_LOCK = threading.RLock()


@contextlib.contextmanager
def seeded(seed: int, devices: Sequence[int] = ()) -> Iterator[None]:
    """Run the block on the global generator seeded with ``seed`` (``torch.manual_seed``), then
    restore the generator's state (of the CPU and of the CUDA ``devices``), holding the lock
    throughout: the block's draws come from ``seed`` alone and no trace runs meanwhile.

    Parameters
    ----------
    seed : int
        The seed.
    devices : sequence of int, optional
        CUDA devices whose generator states are restored afterwards too
        (``torch.manual_seed`` seeds every device's generator).
    """
    with _LOCK, torch.random.fork_rng(devices=list(devices)):
        torch.manual_seed(int(seed))
        yield


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Hold the lock and run torch on one intra-op thread for the block, then restore the
    thread count.

    For work made of many small operations (tracing's one-sample pass, a sparse-training mask
    update): on a busy machine a second intra-op thread only stalls them. The count is process-wide, hence the lock: torch.fx's
    tracing happens under it too (it patches every thread's modules).
    """
    with _LOCK:
        threads = torch.get_num_threads()
        if threads == 1:
            yield
            return
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def idle_cores() -> int:
    """Cores not taken by other work: the CPU count less the 1-minute load average beyond one
    runnable thread (this process's own), at least 1. Where the load average is unknown
    (not Unix), the CPU count.
    """
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    return max(1, cores - round(max(0.0, load - 1.0)))


@contextlib.contextmanager
def spare_threads() -> Iterator[None]:
    """Hold the lock and run torch on at most :func:`idle_cores` intra-op threads for the block,
    then restore the thread count.

    For batch-1 work (SynFlow's passes): on an idle machine it keeps torch's threads (the
    2-core machine, resnet20 at 0.98: 2.7-3.0 s on two threads, 3.3 s on one), on a busy one it
    drops to the cores left (Conv-6 at 0.9 with another process running: 61-66 s on one thread,
    157-224 s on two). The count is process-wide, hence the lock.
    """
    with _LOCK:
        threads = torch.get_num_threads()
        wanted = min(threads, idle_cores())
        if wanted == threads:
            yield
            return
        torch.set_num_threads(wanted)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
