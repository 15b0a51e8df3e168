"""Compile every compiled metric kernel once, into numba's on-disk cache.

    python -m sparsetopo.metrics._warmup

``make setup`` runs it, so that the first ``analyze`` after setup loads the kernels instead of
compiling them (compiling them all takes about 10 s, loading them a fraction of a second).
numba keeps the machine code next to the sources (``__pycache__``), or, where the package is
read-only, in the user's cache directory (``NUMBA_CACHE_DIR`` overrides both); with no writable
place at all the kernels are compiled in every process instead (``_jit.kernel``).
"""

from __future__ import annotations

import time


def warm_up() -> float:
    """Compute every metric on small graphs of each kind the toolkit builds (an MGE with and
    without identity skips, a rolled BGE: int32 indices, float32 weights; the packed undirected
    MGE), both spectra iteratively too; returns the seconds it took."""
    import torch

    from sparsetopo import encoding, models, pruning

    from ._topometrics import topometrics
    from ._view import GraphView
    from .bottlenecks import path_bottlenecks
    from .network_topology import network_topology_metrics
    from .spectral import spectral_gap, spectral_radius

    t = time.perf_counter()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = models.create("resnet20", num_classes=10)
    pruning.prune(net, "uniform", 0.9, seed=0)
    graph, with_skips = encoding.multipartite_pair(net, (3, 8, 8), identity_skips=False)
    for g in (graph, with_skips, encoding.rolled(net)[0]):
        topometrics(g)
        path_bottlenecks(g)
    network_topology_metrics(net, (3, 8, 8))  # the same kernels on packed ids
    view = GraphView(graph)  # > 1500 nodes: the iterative solvers, apart and in lockstep
    spectral_gap(view, dense_max=0)
    spectral_radius(view, dense_max=0)
    return time.perf_counter() - t


if __name__ == "__main__":
    print(f"sparsetopo: metric kernels compiled or loaded in {warm_up():.1f} s")
