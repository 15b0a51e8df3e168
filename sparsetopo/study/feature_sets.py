"""Resolve feature-set names (:mod:`sparsetopo.study.vocabulary`) to the columns of a runs
table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from sparsetopo.errors import InputError
from sparsetopo.study.vocabulary import (
    BASELINES,
    EFFECTIVE_SPARSITY,
    EXTRA_FEATURE_SETS,
    FEATURE_SETS,
    MONOTONE_SUFFIX,
)

FeatureSetsArg = Sequence[str] | Mapping[str, Sequence[str]] | None


def known_sets() -> list[str]:
    """Every set name :func:`resolve_feature_sets` accepts (the sets of ``docs/study.md``
    first, then the exploratory ones, then each with ``/monotone``)."""
    names = [*FEATURE_SETS, *EXTRA_FEATURE_SETS]
    return names + [f"{n}{MONOTONE_SUFFIX}" for n in names]


def _patterns(name: str) -> tuple[str, ...] | None:
    base = name.removesuffix(MONOTONE_SUFFIX)
    return FEATURE_SETS.get(base) or EXTRA_FEATURE_SETS.get(base)


def resolve_feature_sets(feature_sets: FeatureSetsArg = None) -> dict[str, tuple[str, ...]]:
    """Feature-set names (or custom sets) as column patterns, the baselines first.

    Parameters
    ----------
    feature_sets : sequence of str, mapping or None
        ``None``: every set of ``docs/study.md`` (*Features*); a sequence of names: some of
        them or of the exploratory sets (``bottlenecks``, ``paths+bottlenecks``, ...; a name
        ending in ``/monotone`` asks for a monotone-constrained fit of that set); a mapping:
        custom sets (name -> patterns: a pattern ending in ``.`` is a prefix, any other an
        exact column).

    Returns
    -------
    dict of str to tuple of str
        ``{set name: column patterns}``, always with the baseline sets first: ``sparsity``,
        ``density`` and ``effective_sparsity``
        (:data:`~sparsetopo.study.vocabulary.BASELINES`).

    Raises
    ------
    InputError
        An unknown set name, a custom set without a pattern, or no set at all.
    """
    if feature_sets is None:
        return dict(FEATURE_SETS)
    if isinstance(feature_sets, str):
        feature_sets = [feature_sets]
    if isinstance(feature_sets, Mapping):
        resolved = {str(name): tuple(patterns) for name, patterns in feature_sets.items()}
        empty = [name for name, patterns in resolved.items() if not patterns]
        if empty:
            raise InputError(f"feature set(s) {empty} list no column")
    else:
        unknown = [name for name in feature_sets if _patterns(name) is None]
        if unknown:
            raise InputError(
                f"unknown feature set(s) {unknown}; supported: {', '.join(known_sets())}"
            )
        resolved = {name: _patterns(name) for name in dict.fromkeys(feature_sets)}
    if not resolved:
        raise InputError(f"no feature set given; supported: {', '.join(known_sets())}")
    return {**{name: FEATURE_SETS[name] for name in BASELINES}, **resolved}


def feature_columns(columns: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """Columns matching ``patterns`` (prefixes end in ``.``, the rest are exact names), sorted
    by name: a stable feature order."""
    prefixes = tuple(p for p in patterns if p.endswith("."))
    exact = {p for p in patterns if not p.endswith(".")}
    return sorted(c for c in map(str, columns) if c in exact or c.startswith(prefixes))


def is_monotone(name: str) -> bool:
    """Whether the set asks for the monotone-constrained predictor."""
    return name.endswith(MONOTONE_SUFFIX)


def effective_sparsity(density: float, effective_density: float) -> float:
    """Fraction of all prunable weights that are pruned or on no input->output path.

    ``1 - density * effective_density``. Without disconnected weights it equals the sparsity.

    Parameters
    ----------
    density : float or array-like
        Fraction of the prunable weights that are present (``density.global``).
    effective_density : float or array-like
        Fraction of the present weights with at least one unrolled edge on some input->output
        path of the MGE with identity skips (``paths.effective_density``).

    Returns
    -------
    float or array-like
        The effective sparsity.

    References
    ----------
    .. [1] Vysogorets, A., Kempe, J. "Connectivity Matters: Neural Network Pruning Through the
       Lens of Effective Sparsity." JMLR 24 (2023).
    """
    return 1.0 - density * effective_density


def with_effective_sparsity(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with the column ``effective_sparsity`` (:func:`effective_sparsity`) where it
    has ``paths.effective_density`` and no such column yet; the density is ``density.global``
    when present, else ``1 - sparsity``. Returned unchanged otherwise."""
    if EFFECTIVE_SPARSITY in runs.columns or "paths.effective_density" not in runs.columns:
        return runs
    if "density.global" in runs.columns:
        density = pd.to_numeric(runs["density.global"], errors="coerce")
    else:
        density = 1.0 - pd.to_numeric(runs["sparsity"], errors="coerce")
    alive = pd.to_numeric(runs["paths.effective_density"], errors="coerce")
    return runs.assign(**{EFFECTIVE_SPARSITY: effective_sparsity(density, alive)})
