"""The paired effect of topology: a pruning method against its mask controls, seed by seed.

A control run ``METHOD+CONTROL`` (:mod:`sparsetopo.pruning.controls`) keeps the method's layer
densities (``layer-shuffle``) or its per-channel fan-in (``fanin-shuffle``) and draws the
positions at random. With the same model, dataset, sparsity, seed and training settings, the
two runs share their initial weights and training randomness; what differs is only the
arrangement of the present weights. So the paired difference

    d = accuracy(METHOD, seed) - accuracy(METHOD+CONTROL, seed)

measures what the method's arrangement inside layers (or inside rows) is worth. Over the seeds
of a (model, dataset, method, control, sparsity), :func:`paired_effects` gives the mean of
``d``, its 95% Student-t interval and ``n``, and a verdict: the method's arrangement is better
(interval above 0), worse (below 0), no detectable difference (interval contains 0) or too few
seeds (``n < 2``, no interval).

:func:`paired_differences` also gives the difference of every feature (method minus control),
for the question whether a feature set predicts ``d``; :func:`prediction_scores` scores such
out-of-fold predictions against the constant predictor (R^2 = 0), with the spread and t-interval
of the R^2 over the outer folds.

References
----------
.. [1] Frankle, J., Dziugaite, G. K., Roy, D. M., Carbin, M. "Pruning Neural Networks at
   Initialization: Why are We Missing the Mark?" ICLR 2021.
.. [2] Vysogorets, A., Kempe, J. "Connectivity Matters: Neural Network Pruning Through the Lens
   of Effective Sparsity." JMLR 24 (2023).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sparsetopo.study import scoring
from sparsetopo.study.store import OTHER_CONFIG_COLUMNS, TRAINING_COLUMNS

#: Columns a method run and its control run share (those of them a table has).
PAIR_KEYS = ("model", "dataset", "sparsity", "seed", *TRAINING_COLUMNS, *OTHER_CONFIG_COLUMNS)
#: The paired target: accuracy of the method minus that of its control.
DIFFERENCE = "difference"
METHOD_BETTER = "method better"
CONTROL_BETTER = "control better"
NO_DIFFERENCE = "no detectable difference"
TOO_FEW_SEEDS = "too few seeds"
EFFECT_COLUMNS = ["model", "dataset", "method", "control", "sparsity", "n", "mean_difference",
                  "sd", "ci_low", "ci_high", "verdict"]
PREDICTION_COLUMNS = ["feature_set", "protocol", "model", "dataset", "pairs", "n", "r2",
                      "r2_spread", "r2_ci_low", "r2_ci_high", "folds_positive", "predicts"]


def has_controls(runs: pd.DataFrame) -> bool:
    """Whether ``runs`` holds a control run (a non-empty ``control``)."""
    return "control" in runs.columns and runs["control"].notna().any()


def paired_differences(runs: pd.DataFrame, value: str = "accuracy", sign: float = 1.0,
                       features: Sequence[str] = (), notes: list[str] | None = None
                       ) -> pd.DataFrame:
    """One row per control run that has its method's run: ``sign * (value of the method -
    value of the control)`` as ``difference``, and ``method - control`` of every feature.

    Parameters
    ----------
    runs : DataFrame
        Runs with ``method``, ``base_method``, ``control``, ``value`` and the
        :data:`PAIR_KEYS` it has (the method's run must agree on all of them).
    value : str
        The measured column (``accuracy``; or ``accuracy_drop`` with ``sign=-1``).
    sign : float
        +1 when a higher ``value`` is better, -1 otherwise: ``difference`` > 0 always means
        the method did better than its control.
    features : sequence of str
        Feature columns to difference.
    notes : list of str, optional
        Receives a line when duplicate runs are dropped.

    Returns
    -------
    DataFrame
        ``run_id`` (of the control run), ``model``, ``dataset``, ``method`` (the control's
        name, ``snip+layer-shuffle``), ``base_method``, ``control``, ``sparsity``, ``seed``,
        ``difference`` and the feature differences.
    """
    keys = [k for k in PAIR_KEYS if k in runs.columns]
    columns = list(dict.fromkeys([*keys, "run_id", "method", "base_method", "control", value,
                                  *features]))
    table = runs[columns]
    is_control = table["control"].notna()
    method_side = table[~is_control].drop(columns=["control", "method"])
    control_side = table[is_control]
    on = [*keys, "base_method"]
    for name, side in (("method", method_side), ("control", control_side)):
        dup = side.duplicated([*on, "control"] if name == "control" else on, keep="last")
        if dup.any() and notes is not None:
            notes.append(f"paired effects: {int(dup.sum())} duplicate {name} run(s) of the "
                         "same configuration and seed; the last one kept.")
    method_side = method_side.drop_duplicates(on, keep="last")
    control_side = control_side.drop_duplicates([*on, "control"], keep="last")
    merged = control_side.merge(method_side, on=on, suffixes=("_control", "_method"),
                                how="inner")
    out = merged[[*keys, "base_method", "control"]].copy()
    out.insert(0, "run_id", merged["run_id_control"].to_numpy())
    out.insert(3, "method", merged["method"].to_numpy())
    out[DIFFERENCE] = sign * (merged[f"{value}_method"].astype(float)
                              - merged[f"{value}_control"].astype(float))
    for feature in features:
        if feature in keys:  # a shared key (e.g. sparsity): its level, not a difference
            continue
        out[feature] = (merged[f"{feature}_method"].astype(float)
                        - merged[f"{feature}_control"].astype(float))
    return out.sort_values(["model", "dataset", "method", "sparsity", "seed"],
                           kind="stable").reset_index(drop=True)


def effect_verdict(n: int, low: float, high: float) -> str:
    """What an interval of the paired difference says: :data:`TOO_FEW_SEEDS` (``n < 2``),
    :data:`METHOD_BETTER` (above 0), :data:`CONTROL_BETTER` (below 0) or
    :data:`NO_DIFFERENCE`."""
    if n < 2 or not (np.isfinite(low) and np.isfinite(high)):
        return TOO_FEW_SEEDS
    if low > 0:
        return METHOD_BETTER
    if high < 0:
        return CONTROL_BETTER
    return NO_DIFFERENCE


def paired_effects(differences: pd.DataFrame) -> pd.DataFrame:
    """Per (model, dataset, method, control, sparsity): ``n`` seeds, ``mean_difference``,
    ``sd`` (ddof 1), the 95% t-interval ``ci_low``/``ci_high`` (:func:`scoring.t_interval`)
    and the :func:`effect_verdict`; columns :data:`EFFECT_COLUMNS`."""
    rows = []
    by = ["model", "dataset", "base_method", "control", "sparsity"]
    for (model, dataset, method, control, sparsity), part in differences.groupby(by, sort=True):
        d = part[DIFFERENCE].to_numpy(float)
        d = d[np.isfinite(d)]
        low, high = scoring.t_interval(d)
        rows.append({"model": model, "dataset": dataset, "method": method, "control": control,
                     "sparsity": float(sparsity), "n": len(d),
                     "mean_difference": float(d.mean()) if len(d) else np.nan,
                     "sd": float(d.std(ddof=1)) if len(d) > 1 else np.nan,
                     "ci_low": low, "ci_high": high,
                     "verdict": effect_verdict(len(d), low, high)})
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def r2_contributions(measured, predicted, folds) -> np.ndarray:
    """Per outer fold ``k`` (order of ``np.unique(folds)``), ``K * (SS_k - SSE_k) / SS``: the
    fold's share of ``R^2 = 1 - SSE / SS`` (their mean is the R^2 of all out-of-fold
    predictions), ``SS_k`` the squares of the measured values around their overall mean. Empty
    for a constant target."""
    y = np.asarray(measured, float)
    if not len(y):
        return np.zeros(0)
    return scoring.fold_contributions(y, predicted, np.full(len(y), y.mean()), folds)


def r2_row(contributions: list[np.ndarray], r2: float | None = None) -> dict:
    """``r2`` (default: the mean of the contributions), ``r2_spread`` (their SD),
    ``r2_ci_low``/``r2_ci_high`` (95% t-interval), ``folds_positive`` and ``predicts``
    (``r2 > r2_spread``: the study's criterion of a gain, against the constant predictor)."""
    c = np.concatenate(contributions) if contributions else np.zeros(0)
    mean, spread = scoring.gain_and_spread(c)
    r2 = mean if r2 is None else r2
    low, high = scoring.t_interval(c, center=r2)
    return {"r2": r2, "r2_spread": spread, "r2_ci_low": low, "r2_ci_high": high,
            "folds_positive": float(np.mean(c > 0)) if len(c) else np.nan,
            "predicts": scoring.beats(r2, spread)}


def prediction_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """:data:`PREDICTION_COLUMNS` of out-of-fold predictions of the paired difference
    (``feature_set``, ``protocol``, ``fold``, ``model``, ``dataset``, ``measured``,
    ``predicted``): per (model, dataset), then their mean (``model = dataset = mean``: mean
    R^2, spread and interval of every pair's fold contributions)."""
    rows = []
    for (name, protocol), table in predictions.groupby(["feature_set", "protocol"], sort=False):
        pair_rows, contributions = [], []
        for (model, dataset), part in table.groupby(["model", "dataset"], sort=True):
            c = r2_contributions(part["measured"], part["predicted"], part["fold"])
            r2, _ = scoring.regression_scores(part["measured"], part["predicted"])
            contributions.append(c)
            pair_rows.append({"feature_set": name, "protocol": protocol, "model": model,
                              "dataset": dataset, "pairs": 1, "n": len(part),
                              **r2_row([c], r2)})
        rows += pair_rows
        r2s = pd.Series([r["r2"] for r in pair_rows], dtype=float)
        rows.append({"feature_set": name, "protocol": protocol, "model": "mean",
                     "dataset": "mean", "pairs": len(pair_rows),
                     "n": int(sum(r["n"] for r in pair_rows)),
                     **r2_row(contributions, float(r2s.mean()) if r2s.notna().any()
                              else np.nan)})
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)
