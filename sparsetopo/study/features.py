"""Every topological feature of one pruned network, computed on its (initialization) weights.

Feature names carry their family as prefix (:mod:`sparsetopo.study.vocabulary`; the columns
are defined in ``docs/study.md``, the metrics in ``docs/metrics.md``):

- ``density.global`` = present / total conv+linear weights; ``density.<layer path>`` per layer;
- ``ramanujan.<k>``: per-network layer means of the Ramanujan metrics of the rolled encoding
  (``metrics.ramanujan_summary``);
- ``rolled.<k>``, ``rolled_channel.<k>``: layer means of the topometrics of the rolled and
  rolled-channel BGEs (``metrics.layer_mean``);
- ``mge.<k>``: ``nodes``, ``edges`` and the 16 paper topometrics of the MGE, paper convention
  (identity shortcuts not encoded unless ``identity_skips``);
- ``paths.<k>``: the path metrics (``metrics.PATH_METRICS``) of the MGE *with* identity skips,
  the real network's signal paths;
- ``bottleneck.<k>``: the smallest layer density and, on that same graph, the narrowest alive
  layer and the fraction of layers without any path (:mod:`sparsetopo.metrics.bottlenecks`).

References
----------
Cunegatti, Farina, Bucur, Iacca (2024). Understanding Sparse Neural Networks from their
Topology via Multipartite Graph Representations. TMLR.

Pal, Biswas, Kolay, Mitra, Basu (2022). A Study on the Ramanujan Graph Property of Winning
Lottery Tickets. ICML.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from sparsetopo import encoding, metrics
from sparsetopo.io import show_progress
from sparsetopo.pruning import masks

#: Feature families in the order they are computed (and timed).
FAMILIES = ("density", "ramanujan", "rolled", "rolled_channel", "mge", "paths")
MGE_KEYS = ("nodes", "edges", *metrics.PAPER_METRICS)


def _density(model: nn.Module) -> dict[str, float]:
    rows = masks.layer_densities(model)
    present = sum(r.present for r in rows)
    total = sum(r.total for r in rows)
    out = {"global": present / total if total else 0.0}
    out.update({r.layer: r.density for r in rows})
    return out


def timed_network_features(
    model: nn.Module,
    input_shape: tuple[int, ...],
    seed: int = 0,
    identity_skips: bool = False,
    progress: bool = False,
) -> tuple[dict[str, float], dict[str, float]]:
    """:func:`network_features` plus the seconds spent on each family.

    BLAS runs single-threaded here: the spectra are many small dense eigenproblems, for which
    threads bring nothing on an idle machine and cost 10x or more on a busy one (spinning
    threads; measured on the per-layer graphs of conv6).

    Parameters
    ----------
    model, input_shape, seed, identity_skips, progress
        As in :func:`network_features`.

    Returns
    -------
    features : dict of str to float
        :func:`network_features`.
    timings : dict of str to float
        Seconds per family, ``{"density": s, ..., "paths": s}`` (:data:`FAMILIES`).
    """
    graphs: list[encoding.LayeredGraph] = []  # (as asked, with identity skips), built by mge

    def mge(m: nn.Module) -> dict[str, float]:
        graphs.extend(encoding.multipartite_pair(m, tuple(input_shape), identity_skips))
        return metrics.topometrics(graphs[0], seed=seed, keys=MGE_KEYS)

    def paths(m: nn.Module) -> dict[str, float]:
        profile = metrics.path_profile(graphs[1])
        out = {f"paths.{k}": profile[k] for k in metrics.PATH_METRICS}
        layer_densities = [r.density for r in masks.layer_densities(m)]
        out["bottleneck.min_layer_density"] = min(layer_densities)
        out.update({f"bottleneck.{k}": v for k, v in profile.items()
                    if k not in metrics.PATH_METRICS})
        return out

    steps: dict[str, Callable[[nn.Module], dict[str, float]]] = {
        "density": _density,
        "ramanujan": lambda m: metrics.ramanujan_summary(metrics.ramanujan(m)),
        "rolled": lambda m: metrics.layer_mean(encoding.rolled(m), seed=seed),
        "rolled_channel": lambda m: metrics.layer_mean(encoding.rolled_channel(m), seed=seed),
        "mge": mge,
        "paths": paths,
    }
    features: dict[str, float] = {}
    timings: dict[str, float] = {}
    for name in tqdm(FAMILIES, desc="features", disable=not show_progress(progress), leave=False):
        start = time.perf_counter()
        with threadpool_limits(limits=1, user_api="blas"):
            values = steps[name](model)
        timings[name] = time.perf_counter() - start
        if name == "paths":  # already prefixed (paths. and bottleneck.)
            features.update({key: float(value) for key, value in values.items()})
        else:
            features.update({f"{name}.{key}": float(value) for key, value in values.items()})
    return features, timings


def network_features(
    model: nn.Module,
    input_shape: tuple[int, ...],
    seed: int = 0,
    identity_skips: bool = False,
    progress: bool = False,
) -> dict[str, float]:
    """All feature families of a network as it is now (call it on the pruned initialization).

    Parameters
    ----------
    model : torch.nn.Module
        The network, masks in ``torch.nn.utils.prune`` form.
    input_shape : tuple of int
        ``(C, H, W)`` of one input (for the MGE).
    seed : int
        Seed of the sampled metrics (the motif estimate).
    identity_skips : bool
        Encode identity shortcuts in the MGE of the paper's topometrics (``mge.*``); the path
        metrics (``paths.*``) always include them.
    progress : bool
        A progress bar over the families.

    Returns
    -------
    dict of str to float
        ``<family>.<key>`` -> value, the families of the module docstring.

    References
    ----------
    Cunegatti, E., Farina, L. L., Bucur, D., Iacca, G. (2024). Understanding Sparse Neural
    Networks from their Topology via Multipartite Graph Representations. *TMLR*.
    """
    return timed_network_features(model, input_shape, seed, identity_skips, progress)[0]
