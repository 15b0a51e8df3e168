"""The study's names, defined once: the dense baseline, the protocols, the feature sets.

A feature set (``docs/study.md``) is a tuple of column patterns of a runs table: a pattern ending in ``.``
is a prefix (``density.`` = every layer density and ``density.global``), any other pattern is an
exact column name (``sparsity``). Columns of a runs table:

- ``sparsity``: the global sparsity of the run (exact for the project's masks, nominal in the
  published tables);
- ``effective_sparsity``: the fraction of all weights that are pruned or on no input->output
  path, ``1 - density.global * paths.effective_density`` (derived where a table has both,
  :func:`sparsetopo.study.feature_sets.with_effective_sparsity`);
- ``density.<layer>``, ``density.global``: present / total weights;
- ``ramanujan.<key>``: layer means of the Ramanujan metrics;
- ``rolled.<key>``, ``rolled_channel.<key>``: layer means of the topometrics of the BGEs;
- ``mge.<key>``: topometrics of the MGE (paper convention: no identity skips);
- ``paths.<key>``: path metrics of the MGE with identity skips;
- ``bottleneck.<key>``: per-layer bottlenecks (beyond the paper's sets, for exploratory sets).
"""

from __future__ import annotations

from sparsetopo.metrics import PAPER_METRICS, PATH_METRICS

DENSE = "dense"
#: The protocols of the regression, in report order: random K-fold, K-fold grouped by
#: configuration, leave one method out, leave one method category out
#: (:mod:`sparsetopo.study.splits`).
PROTOCOLS = ("random", "grouped", "leave-one-method-out", "leave-one-category-out")
#: The set every other set must beat.
BASELINE = "sparsity"
#: The column (and one-number set) of the effective sparsity.
EFFECTIVE_SPARSITY = "effective_sparsity"
#: The baselines every set is compared with, on the same runs and folds: global sparsity, layer
#: densities, effective sparsity. Always fitted (where a table has their columns).
BASELINES = (BASELINE, "density", EFFECTIVE_SPARSITY)
#: How the summary names each baseline.
BASELINE_LABELS = {BASELINE: "global sparsity alone", "density": "layer densities",
                   EFFECTIVE_SPARSITY: "effective sparsity"}
#: Optuna trials per tuning (``study fit --trials``).
DEFAULT_TRIALS = 8
#: Prefixes of the feature columns, in the order a runs table lists them.
FEATURE_PREFIXES = ("density", "ramanujan", "rolled", "rolled_channel", "mge", "paths",
                    "bottleneck")

#: Dead-end counts are 0 by definition on a bipartite layer graph (its left side is the input,
#: its right side the output), and the published layer tables store other quantities under
#: these names: they are left out of the layer-wise sets.
DEAD_END_METRICS = ("sink_nodes", "source_nodes", "removable_out_edges", "removable_in_edges")
BGE_METRICS = tuple(k for k in PAPER_METRICS if k not in DEAD_END_METRICS)
#: Per-network means of the Ramanujan quantities.
RAMANUJAN_KEYS = ("density", "mu_hat", "delta_r", "delta_r_norm", "weighted_spectral_gap",
                  "iterative_spectral_gap", "iterative_delta_r_norm")
BOTTLENECK_KEYS = ("min_layer_density", "min_alive_channels", "min_alive_channel_fraction",
                   "frac_layers_no_path")


def _columns(prefix: str, keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{prefix}.{k}" for k in keys)


_SPARSITY = ("sparsity",)
_MGE = _columns("mge", PAPER_METRICS)
_PATHS = _columns("paths", PATH_METRICS)
_BOTTLENECKS = _columns("bottleneck", BOTTLENECK_KEYS)

#: The feature sets, in report order.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "sparsity": _SPARSITY,
    "density": ("density.",),
    "ramanujan": _columns("ramanujan", RAMANUJAN_KEYS),
    "rolled": _columns("rolled", BGE_METRICS),
    "rolled_channel": _columns("rolled_channel", BGE_METRICS),
    "mge": _MGE,
    "paths": _PATHS,
    "mge+sparsity": _MGE + _SPARSITY,
}
FEATURE_SETS["all"] = tuple(dict.fromkeys(p for ps in FEATURE_SETS.values() for p in ps))
# The third scalar baseline, listed with the other two; not part of ``all``, whose columns
# already determine it.
FEATURE_SETS = {**{k: v for k, v in FEATURE_SETS.items() if k in ("sparsity", "density")},
                EFFECTIVE_SPARSITY: (EFFECTIVE_SPARSITY,),
                **{k: v for k, v in FEATURE_SETS.items() if k not in ("sparsity", "density")}}

#: Sets beyond the paper's, tried on the question of an unseen pruning method (opt in by name).
EXTRA_FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "bottlenecks": _BOTTLENECKS,
    "paths+bottlenecks": _PATHS + _BOTTLENECKS,
    "paths+sparsity": _PATHS + _SPARSITY,
}

#: Every named set, in report order.
SET_ORDER = (*FEATURE_SETS, *EXTRA_FEATURE_SETS)

#: Direction in which the accuracy drop moves with a feature, for monotone-constrained fits
#: (+1: the drop grows with the feature). Features not listed are unconstrained.
MONOTONE_DIRECTIONS: dict[str, int] = {
    "sparsity": 1,
    EFFECTIVE_SPARSITY: 1,
    "density.global": -1,
    "paths.effective_density": -1,
    "paths.alive_edges": -1,
    "paths.log10_paths": -1,
    "paths.log10_path_norm": -1,
    "bottleneck.min_layer_density": -1,
    "bottleneck.min_alive_channels": -1,
    "bottleneck.min_alive_channel_fraction": -1,
    "bottleneck.frac_layers_no_path": 1,
}
#: Suffix of a set name that asks for the monotone-constrained predictor.
MONOTONE_SUFFIX = "/monotone"


def baseline_columns(baseline: str) -> dict[str, str]:
    """Names of the comparison columns of the gain over ``baseline``: ``gain``, ``spread``,
    ``ci_low``, ``ci_high``, ``folds_better``, ``beats`` (the columns over ``sparsity`` keep the
    names they had before there were other baselines)."""
    first = baseline == BASELINE
    return {
        "gain": f"gain_over_{baseline}",
        "spread": "gain_spread" if first else f"gain_over_{baseline}_spread",
        "ci_low": f"gain_over_{baseline}_ci_low",
        "ci_high": f"gain_over_{baseline}_ci_high",
        "folds_better": "folds_better" if first else f"folds_better_than_{baseline}",
        "beats": f"beats_{baseline}",
    }
