"""Ranking of pruning methods by predicted vs measured outcome (SPEC section 6).

At each case (model, dataset, sparsity) every method is summarised by its mean over seeds, once
for the measured target and once for the predicted one. The two orders of the methods are
compared with Kendall's tau-b (``scipy.stats.kendalltau``), and the case is a top-1 hit when the
method predicted best is the method measured best. "Best" is the lowest accuracy drop, or the
highest accuracy when the target is the accuracy itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

CASE_COLUMNS: tuple[str, ...] = ("model", "dataset", "sparsity")


@dataclass(frozen=True)
class RankingScore:
    """Mean Kendall tau and top-1 hit rate over the cases that have at least 2 methods."""

    kendall_tau: float
    top1_hit: float
    n_cases: int


def check_methods(methods: Sequence[str] | pd.Series) -> None:
    """Raise ``ValueError`` unless at least 2 distinct pruning methods are present."""
    distinct = sorted({str(m) for m in methods})
    if len(distinct) < 2:
        raise ValueError(
            f"ranking needs at least 2 pruning methods, got {len(distinct)}: {distinct}"
        )


def top1_hit(measured: np.ndarray, predicted: np.ndarray, *, lower_is_better: bool) -> float:
    """Probability that the method ranked first by ``predicted`` is a best method by ``measured``.

    With no ties this is 1.0 or 0.0. Ties are broken uniformly at random, so the value is the
    fraction of the methods tied for the predicted first place that are also tied for the
    measured first place.
    """
    sign = 1.0 if lower_is_better else -1.0
    meas, pred = sign * np.asarray(measured, float), sign * np.asarray(predicted, float)
    predicted_first = pred == pred.min()
    measured_best = meas == meas.min()
    return float(np.mean(measured_best[predicted_first]))


def ranking_cases(
    frame: pd.DataFrame,
    *,
    measured: str = "measured",
    predicted: str = "predicted",
    method: str = "method",
    case_by: Sequence[str] = CASE_COLUMNS,
    lower_is_better: bool = True,
) -> pd.DataFrame:
    """One row per case: ``case_by`` columns, ``n_methods``, ``kendall_tau``, ``top1_hit``.

    ``kendall_tau`` = tau-b between the per-method means (over seeds) of ``measured`` and of
    ``predicted``; it is NaN when one of them is constant. Cases with fewer than 2 methods cannot
    be ranked and are left out. Raises ``ValueError`` when the frame has fewer than 2 methods or
    no case with 2 methods.
    """
    missing = [c for c in (measured, predicted, method, *case_by) if c not in frame.columns]
    if missing:
        raise ValueError(f"ranking needs columns {missing}, which the table lacks")
    check_methods(frame[method])
    means = frame.groupby([*case_by, method], sort=True)[[measured, predicted]].mean()
    rows = []
    for case, per_method in means.groupby(level=list(range(len(case_by))), sort=True):
        if len(per_method) < 2:
            continue
        meas = per_method[measured].to_numpy(float)
        pred = per_method[predicted].to_numpy(float)
        tau = kendalltau(meas, pred).statistic
        case_values = case if isinstance(case, tuple) else (case,)
        rows.append(
            {
                **dict(zip(case_by, case_values, strict=True)),
                "n_methods": len(per_method),
                "kendall_tau": float(tau),
                "top1_hit": top1_hit(meas, pred, lower_is_better=lower_is_better),
            }
        )
    if not rows:
        raise ValueError(
            "ranking needs at least 2 pruning methods at the same "
            f"({', '.join(case_by)}), got at most 1 in every case"
        )
    return pd.DataFrame(rows)


def summarize_ranking(cases: pd.DataFrame) -> RankingScore:
    """Mean ``kendall_tau`` (NaN cases skipped) and mean ``top1_hit`` over ``cases``."""
    if cases.empty:
        return RankingScore(float("nan"), float("nan"), 0)
    taus = cases["kendall_tau"].to_numpy(float)
    tau = float(np.nanmean(taus)) if np.isfinite(taus).any() else float("nan")
    return RankingScore(tau, float(cases["top1_hit"].mean()), len(cases))
