"""Every topological feature of one pruned network, computed on its (initialization) weights.

Feature names carry the feature set as prefix (SPEC 6):

- ``density.global`` = present / total conv+linear weights; ``density.<layer path>`` per layer;
- ``ramanujan.<k>``: per-network layer means of the Ramanujan metrics (SPEC 5);
- ``rolled.<k>``, ``rolled_channel.<k>``: layer means of the topometrics of the rolled and
  rolled-channel BGEs (SPEC 4, last line);
- ``mge.<k>``: topometrics of the multipartite graph encoding (SPEC 4).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from sparsetopo.pruning import masks

FEATURE_SETS = ("density", "ramanujan", "rolled", "rolled_channel", "mge")


def _density(model: nn.Module) -> dict[str, float]:
    rows = masks.layer_densities(model)
    present = sum(r.present for r in rows)
    total = sum(r.total for r in rows)
    out = {"global": present / total if total else 0.0}
    out.update({r.layer: r.density for r in rows})
    return out


def _ramanujan(model: nn.Module) -> dict[str, float]:
    from sparsetopo import metrics

    return metrics.ramanujan_summary(metrics.ramanujan(model))




def timed_network_features(
    model: nn.Module,
    input_shape: tuple[int, ...],
    seed: int = 0,
    identity_skips: bool = False,
    progress: bool = False,
) -> tuple[dict[str, float], dict[str, float]]:
    """:func:`network_features` plus the seconds spent on each feature set
    (``{"density": s, ..., "mge": s}``).

    BLAS runs single-threaded here: the spectra are many small dense eigenproblems, for which
    threads bring nothing on an idle machine and cost 10x or more on a busy one (spinning
    threads; measured on the per-layer graphs of conv6)."""
    from sparsetopo import encoding, metrics

    def mge(m: nn.Module) -> dict[str, float]:
        graph = encoding.multipartite(m, tuple(input_shape), identity_skips=identity_skips)
        return metrics.topometrics(graph, seed=seed)

    steps: dict[str, Callable[[nn.Module], dict[str, float]]] = {
        "density": _density,
        "ramanujan": _ramanujan,
        "rolled": lambda m: metrics.layer_mean(encoding.rolled(m), seed=seed),
        "rolled_channel": lambda m: metrics.layer_mean(encoding.rolled_channel(m), seed=seed),
        "mge": mge,
    }
    features: dict[str, float] = {}
    timings: dict[str, float] = {}
    for name in tqdm(FEATURE_SETS, desc="features", disable=not progress, leave=False):
        start = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):
            values = steps[name](model)
        timings[name] = time.perf_counter() - start
        features.update({f"{name}.{key}": float(value) for key, value in values.items()})
    return features, timings


def network_features(
    model: nn.Module,
    input_shape: tuple[int, ...],
    seed: int = 0,
    identity_skips: bool = False,
    progress: bool = False,
) -> dict[str, float]:
    """All feature sets of ``model`` as it is now (call it on the pruned initialization).

    ``input_shape`` is ``(C, H, W)`` of one input (for the MGE), ``seed`` seeds the sampled
    metrics (motif estimate), ``identity_skips`` is the MGE option of SPEC 3.5.
    """
    return timed_network_features(model, input_shape, seed, identity_skips, progress)[0]
