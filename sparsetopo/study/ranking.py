"""Ranking of pruning methods by predicted vs measured outcome (``docs/study.md``, *Scores and
verdicts*).

At each case (model, dataset, sparsity) every method is summarised by its mean over seeds, once
for the measured target and once for the predicted one. The two orders of the methods are
compared with Kendall's tau-b (``scipy.stats.kendalltau``), and the case is a top-1 hit when the
method predicted best is the method measured best. "Best" is the lowest accuracy drop, or the
highest accuracy when the target is the accuracy itself.

References
----------
Kendall, M. G. (1938). A New Measure of Rank Correlation. Biometrika 30.

Kendall, M. G. (1945). The Treatment of Ties in Ranking Problems. Biometrika 33 (tau-b).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from sparsetopo.errors import InputError
from sparsetopo.study.vocabulary import DENSE, FEATURE_SETS, PROTOCOLS

CASE_COLUMNS: tuple[str, ...] = ("model", "dataset", "sparsity")


@dataclass(frozen=True)
class RankingScore:
    """How well predictions rank the methods, over the cases that have at least 2 methods.

    Parameters
    ----------
    kendall_tau : float
        Mean Kendall tau-b over the cases where it is defined.
    top1_hit : float
        Mean top-1 hit rate.
    n_cases : int
        Cases ranked.
    n_undefined : int
        Cases whose tau is undefined (a constant predicted or measured order, e.g. a predictor
        that sees only the sparsity).
    """

    kendall_tau: float
    top1_hit: float
    n_cases: int
    n_undefined: int = 0


def check_methods(methods: Sequence[str] | pd.Series) -> None:
    """Raise ``InputError`` unless at least 2 distinct pruning methods are present."""
    distinct = sorted({str(m) for m in methods})
    if len(distinct) < 2:
        raise InputError(
            f"ranking needs at least 2 pruning methods, got {len(distinct)}: {distinct}"
        )


def top1_hit(measured: np.ndarray, predicted: np.ndarray, *, lower_is_better: bool) -> float:
    """Probability that the method ranked first by ``predicted`` is a best method by ``measured``.

    With no ties this is 1.0 or 0.0. Ties are broken uniformly at random, so the value is the
    fraction of the methods tied for the predicted first place that are also tied for the
    measured first place.

    Parameters
    ----------
    measured, predicted : array-like of float
        One value per method, in the same order.
    lower_is_better : bool
        The best method has the lowest value (an accuracy drop), else the highest.

    Returns
    -------
    float
        In [0, 1].
    """
    sign = 1.0 if lower_is_better else -1.0
    meas, pred = sign * np.asarray(measured, float), sign * np.asarray(predicted, float)
    predicted_first = pred == pred.min()
    measured_best = meas == meas.min()
    return float(np.mean(measured_best[predicted_first]))


def kendall_tau(measured, predicted) -> float:
    """Kendall's tau-b between two orders of the same methods.

    Parameters
    ----------
    measured, predicted : array-like of float
        One value per method, in the same order.

    Returns
    -------
    float
        ``scipy.stats.kendalltau``'s tau-b in [-1, 1]; NaN with fewer than 2 methods or a
        constant order (undefined).

    References
    ----------
    Kendall, M. G. (1945). The Treatment of Ties in Ranking Problems. *Biometrika* 33.
    """
    a, b = np.asarray(measured, float), np.asarray(predicted, float)
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(kendalltau(a, b).statistic)


def ranking_cases(
    frame: pd.DataFrame,
    *,
    measured: str = "measured",
    predicted: str = "predicted",
    method: str = "method",
    case_by: Sequence[str] = CASE_COLUMNS,
    lower_is_better: bool = True,
) -> pd.DataFrame:
    """Rank correlation of predicted and measured outcomes at every case.

    ``kendall_tau`` is the tau-b between the per-method means (over seeds) of ``measured`` and
    of ``predicted`` (NaN when one of them is constant), ``top1_hit`` :func:`top1_hit` of those
    means. Cases with fewer than 2 methods cannot be ranked and are left out.

    Parameters
    ----------
    frame : pandas.DataFrame
        Out-of-fold predictions, one row per run.
    measured, predicted, method : str
        Column names.
    case_by : sequence of str
        Columns that define a case (default: model, dataset, sparsity).
    lower_is_better : bool
        The best method has the lowest value (an accuracy drop).

    Returns
    -------
    pandas.DataFrame
        One row per case: the ``case_by`` columns, ``n_methods``, ``kendall_tau``,
        ``top1_hit``.

    Raises
    ------
    InputError
        A missing column, fewer than 2 methods, or no case with 2 methods.
    """
    missing = [c for c in (measured, predicted, method, *case_by) if c not in frame.columns]
    if missing:
        raise InputError(f"ranking needs columns {missing}, which the table lacks")
    check_methods(frame[method])
    means = frame.groupby([*case_by, method], sort=True)[[measured, predicted]].mean()
    rows = []
    for case, per_method in means.groupby(level=list(range(len(case_by))), sort=True):
        if len(per_method) < 2:
            continue
        meas = per_method[measured].to_numpy(float)
        pred = per_method[predicted].to_numpy(float)
        tau = kendall_tau(meas, pred)
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
        raise InputError(
            "ranking needs at least 2 pruning methods at the same "
            f"({', '.join(case_by)}), got at most 1 in every case"
        )
    return pd.DataFrame(rows)


def summarize_ranking(cases: pd.DataFrame) -> RankingScore:
    """The mean of the per-case scores.

    Parameters
    ----------
    cases : pandas.DataFrame
        :func:`ranking_cases`.

    Returns
    -------
    RankingScore
        Mean ``kendall_tau`` (NaN cases skipped and counted) and mean ``top1_hit``.
    """
    if cases.empty:
        return RankingScore(float("nan"), float("nan"), 0, 0)
    taus = cases["kendall_tau"].to_numpy(float)
    tau = float(np.nanmean(taus)) if np.isfinite(taus).any() else float("nan")
    return RankingScore(tau, float(cases["top1_hit"].mean()), len(cases),
                        int((~np.isfinite(taus)).sum()))


def method_ranks(
    df: pd.DataFrame, *, feature_set: str | None = None, protocol: str | None = None
) -> pd.DataFrame:
    """Pruning methods ranked at each (model, dataset, sparsity) by mean accuracy drop.

    The mean is over seeds; rank 1 is the smallest drop, and ties share the lowest rank.

    Parameters
    ----------
    df : pandas.DataFrame
        A runs table (``accuracy_drop``; dense runs and runs not ``ok`` are left out) or a
        predictions table (``measured``, ``predicted``).
    feature_set : str, optional
        Predictions only: the set whose predictions rank; default ``mge`` when present, else
        the first in order.
    protocol : str, optional
        Predictions only: default ``leave-one-method-out`` when present, else the first.

    Returns
    -------
    pandas.DataFrame
        Columns model, dataset, sparsity, method, n_seeds, measured_drop, measured_std,
        measured_rank, and for predictions predicted_drop, predicted_rank. ``attrs`` records
        the feature set and protocol used.

    Raises
    ------
    InputError
        A missing column, or no prediction for the set and protocol.
    """
    case = ["model", "dataset", "sparsity"]
    if "predicted" in df.columns:
        _require(df, [*case, "method", "feature_set", "protocol", "measured", "predicted"],
                 "predictions table")
        feature_set = feature_set or _default(df["feature_set"], "mge", tuple(FEATURE_SETS))
        protocol = protocol or _default(df["protocol"], "leave-one-method-out", PROTOCOLS)
        frame = df[(df["feature_set"] == feature_set) & (df["protocol"] == protocol)]
        if frame.empty:
            raise InputError(f"no prediction for feature_set={feature_set!r}, "
                             f"protocol={protocol!r}; have {sorted(df['feature_set'].unique())}"
                             f" x {sorted(df['protocol'].unique())}")
        columns = {"measured": "measured_drop", "predicted": "predicted_drop"}
    else:
        _require(df, [*case, "method", "accuracy_drop"], "runs table")
        frame = df[df["status"] == "ok"] if "status" in df.columns else df
        frame = frame[frame["method"] != DENSE]
        columns = {"accuracy_drop": "measured_drop"}
    frame = frame.dropna(subset=list(columns)[:1])
    group = frame.groupby([*case, "method"], sort=True)
    first = list(columns)[0]
    table = group[first].agg(n_seeds="count", measured_std="std").reset_index()
    for src, name in columns.items():
        table[name] = group[src].mean().to_numpy(float)
    for name in columns.values():
        rank_name = name.replace("_drop", "_rank")
        table[rank_name] = table.groupby(case)[name].rank(method="min").astype("Int64")
    order = ["model", "dataset", "sparsity", "method", "n_seeds", "measured_drop",
             "measured_std", "measured_rank"]
    if "predicted_drop" in table.columns:
        order += ["predicted_drop", "predicted_rank"]
    table = table[order].sort_values([*case, "measured_rank", "method"]).reset_index(drop=True)
    table.attrs.update(feature_set=feature_set, protocol=protocol)
    return table


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what} lacks column(s) {missing}")


def _default(values: pd.Series, wanted: str, preferred: tuple[str, ...]) -> str:
    present = {str(v) for v in values.unique()}
    if wanted in present:
        return wanted
    ordered = [p for p in preferred if p in present] + sorted(present - set(preferred))
    return ordered[0]
