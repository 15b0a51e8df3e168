"""Scores of out-of-fold predictions (``docs/study.md``, *Scores and verdicts*): R^2 and MAE
(``sklearn.metrics``), and the gain of a feature set over a baseline under the same folds,
with its spread.

Gain. On the out-of-fold predictions of one (model, dataset) pair, with ``SS`` the total sum of
squares of the measured target and ``SSE_b``, ``SSE_s`` the squared errors of the baseline and
of the set, ``gain = R^2_set - R^2_baseline = (SSE_b - SSE_s) / SS``. Its spread over the K
outer folds comes from the folds' contributions ``c_k = K (SSE_b,k - SSE_s,k) / SS`` (whose
mean is the gain exactly): ``gain_spread`` is their standard deviation (ddof 1). Over several
pairs, the headline gain is the mean of the pairs' gains and its spread the standard deviation
of every fold contribution of every pair. A set *beats* the baseline when
``gain > gain_spread``.

Interval. Next to the spread, the 95% t-interval of the gain over the outer folds:
``gain -+ t_{0.975, n-1} * spread / sqrt(n)`` with ``n`` the number of fold contributions
(over pairs: of every pair). The folds share training data, so their contributions are not
independent and the interval is, if anything, too narrow (Nadeau and Bengio 2003); it is
reported, never used to loosen the verdict.

References
----------
.. [1] Nadeau, C., Bengio, Y. "Inference for the Generalization Error." Machine Learning 52
   (2003).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from sklearn.metrics import mean_absolute_error, r2_score

#: Confidence of every interval of the study.
CONFIDENCE = 0.95


def regression_scores(measured, predicted) -> tuple[float, float]:
    """Coefficient of determination and mean absolute error of predictions.

    Parameters
    ----------
    measured, predicted : array-like of float
        The target and its predictions.

    Returns
    -------
    r2 : float
        ``sklearn.metrics.r2_score``; NaN with fewer than 2 values or a constant target
        (undefined), or without values.
    mae : float
        ``sklearn.metrics.mean_absolute_error``; NaN without values.
    """
    y, p = np.asarray(measured, float), np.asarray(predicted, float)
    if len(y) == 0:
        return math.nan, math.nan
    mae = float(mean_absolute_error(y, p))
    if len(y) < 2 or np.all(y == y[0]):
        return math.nan, mae
    return float(r2_score(y, p)), mae


def fold_contributions(measured, predicted, baseline, folds) -> np.ndarray:
    """Each outer fold's contribution to the gain of a set over a baseline.

    ``c_k = K (SSE_b,k - SSE_s,k) / SS`` (module docstring); their mean is the gain.

    Parameters
    ----------
    measured : array-like of float
        The target.
    predicted : array-like of float
        Out-of-fold predictions of the set.
    baseline : array-like of float
        Out-of-fold predictions of the baseline, on the same folds.
    folds : array-like
        The outer fold of every row.

    Returns
    -------
    numpy.ndarray
        ``c_k`` in the order of ``np.unique(folds)``; empty when the target is constant (no
        R^2, no gain).
    """
    y = np.asarray(measured, float)
    err_set = (y - np.asarray(predicted, float)) ** 2
    err_base = (y - np.asarray(baseline, float)) ** 2
    ss = float(np.sum((y - y.mean()) ** 2)) if len(y) else 0.0
    if ss == 0.0:
        return np.zeros(0)
    folds = np.asarray(folds)
    names = np.unique(folds)
    k = len(names)
    return np.array([k * float(np.sum(err_base[folds == f] - err_set[folds == f])) / ss
                     for f in names])


def gain_and_spread(contributions: np.ndarray) -> tuple[float, float]:
    """``(mean, standard deviation with ddof 1)`` of fold contributions (NaN where undefined)."""
    c = np.asarray(contributions, float)
    if c.size == 0:
        return math.nan, math.nan
    return float(c.mean()), float(c.std(ddof=1)) if c.size > 1 else math.nan


def beats(gain: float, spread: float) -> bool:
    """A gain counts only when it is positive beyond its spread."""
    return bool(np.isfinite(gain) and np.isfinite(spread) and gain > spread)


def t_interval(values, center: float | None = None, confidence: float = CONFIDENCE
               ) -> tuple[float, float]:
    """Student-t interval of the mean of ``values``: ``center -+ t_{(1+confidence)/2, n-1} *
    sd / sqrt(n)`` (``sd`` with ddof 1, ``t`` by ``scipy.stats.t``); ``center`` defaults to the
    mean. ``(nan, nan)`` with fewer than 2 finite values.

    Parameters
    ----------
    values : array-like of float
        The sample (NaN values are left out).
    center : float, optional
        Where to center the interval (the reported estimate, when it is not the plain mean).
    confidence : float
        Coverage, 0.95 by default.

    Returns
    -------
    (float, float)
        Lower and upper bounds.

    References
    ----------
    .. [1] Student. "The Probable Error of a Mean." Biometrika 6 (1908).
    """
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return math.nan, math.nan
    middle = float(v.mean()) if center is None else float(center)
    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1)) * float(v.std(ddof=1)) \
        / math.sqrt(v.size)
    return middle - half, middle + half
