"""Tests of the study's scores (SPEC 6): ``sparsetopo.study.scoring`` (R^2, MAE, gain over the
sparsity baseline and its spread) and ``sparsetopo.study.ranking`` (Kendall tau, top-1), against
sklearn, scipy and hand computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import mean_absolute_error, r2_score

from sparsetopo.study import scoring
from sparsetopo.study.ranking import RankingScore, ranking_cases, summarize_ranking, top1_hit


# ---------------------------------------------------------------------------------- R^2, MAE
def test_regression_scores_match_sklearn():
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=30), rng.normal(size=30)
    r2, mae = scoring.regression_scores(y, p)
    assert r2 == pytest.approx(r2_score(y, p), abs=1e-12)
    assert mae == pytest.approx(mean_absolute_error(y, p), abs=1e-12)
    good = y + 0.1 * rng.normal(size=30)
    assert scoring.regression_scores(y, good)[0] == pytest.approx(r2_score(y, good))
    # lists and pandas series are accepted too
    r2_list, _ = scoring.regression_scores(list(y), pd.Series(p))
    assert r2_list == pytest.approx(r2_score(y, p))


def test_regression_scores_undefined_cases():
    r2, mae = scoring.regression_scores(np.full(5, 0.3), np.arange(5.0))
    assert math.isnan(r2)  # constant target: R^2 undefined (sklearn would say 0.0)
    assert mae == pytest.approx(mean_absolute_error(np.full(5, 0.3), np.arange(5.0)))
    r2, mae = scoring.regression_scores([0.5], [0.2])
    assert math.isnan(r2) and mae == pytest.approx(0.3)
    r2, mae = scoring.regression_scores([], [])
    assert math.isnan(r2) and math.isnan(mae)


# ---------------------------------------------------------------------------------- gain
def _pooled_gain(y, p_set, p_base):
    return r2_score(y, p_set) - r2_score(y, p_base)


@pytest.mark.parametrize("sizes", [(6, 6, 6), (3, 9, 5, 2), (10, 1)])
def test_fold_contributions_mean_is_the_r2_gain(sizes):
    rng = np.random.default_rng(len(sizes))
    n = sum(sizes)
    y = rng.normal(size=n)
    p_set = y + 0.3 * rng.normal(size=n)
    p_base = rng.normal(size=n)
    folds = np.repeat([f"f{k}" for k in range(len(sizes))], sizes)
    rng.shuffle(folds)
    c = scoring.fold_contributions(y, p_set, p_base, folds)
    assert len(c) == len(sizes)
    assert c.mean() == pytest.approx(_pooled_gain(y, p_set, p_base), abs=1e-12)
    # hand formula of every fold: K * (SSE_base,k - SSE_set,k) / SS
    ss = np.sum((y - y.mean()) ** 2)
    for value, name in zip(c, sorted(set(folds)), strict=True):
        k = folds == name
        expected = len(sizes) * (np.sum((y[k] - p_base[k]) ** 2)
                                 - np.sum((y[k] - p_set[k]) ** 2)) / ss
        assert value == pytest.approx(expected, abs=1e-12)
    gain, spread = scoring.gain_and_spread(c)
    assert gain == pytest.approx(_pooled_gain(y, p_set, p_base), abs=1e-12)
    assert spread == pytest.approx(float(np.std(c, ddof=1)), abs=1e-12)


def test_fold_contributions_of_identical_predictors_are_zero_and_constant_target_empty():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 1.5, 3.5, 3.0])
    c = scoring.fold_contributions(y, p, p, [0, 0, 1, 1])
    np.testing.assert_array_equal(c, [0.0, 0.0])
    assert scoring.gain_and_spread(c) == (0.0, 0.0)
    assert not scoring.beats(*scoring.gain_and_spread(c))
    assert scoring.fold_contributions(np.ones(4), p, y, [0, 0, 1, 1]).size == 0


def test_gain_and_spread_and_beats_hand_values():
    gain, spread = scoring.gain_and_spread(np.array([0.1, 0.3, 0.5]))
    assert gain == pytest.approx(0.3) and spread == pytest.approx(0.2)  # std ddof=1
    assert scoring.beats(gain, spread)
    gain, spread = scoring.gain_and_spread(np.array([0.1, 0.5, -0.3]))
    assert gain == pytest.approx(0.1) and spread == pytest.approx(0.4)
    assert not scoring.beats(gain, spread)  # positive, but within its spread
    assert not scoring.beats(0.2, 0.2)  # strictly beyond the spread
    assert not scoring.beats(-0.5, 0.1)
    assert not scoring.beats(0.3, math.nan) and not scoring.beats(math.nan, 0.1)
    g, s = scoring.gain_and_spread(np.array([0.4]))
    assert g == pytest.approx(0.4) and math.isnan(s)
    assert all(math.isnan(v) for v in scoring.gain_and_spread(np.zeros(0)))


# ---------------------------------------------------------------------------------- ranking
def _pairs_tau(a, b):
    """Kendall tau-a by counting pairs (no ties in the hand examples)."""
    pairs = list(itertools.combinations(range(len(a)), 2))
    signs = [np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs]
    return sum(signs) / len(pairs)


def _hand_frame():
    measured = {"m0": 0.1, "m1": 0.3, "m2": 0.2, "m3": 0.4}
    predicted = {"m0": 0.15, "m1": 0.25, "m2": 0.35, "m3": 0.45}
    rows = []
    for method in measured:  # two seeds whose mean is the value above
        for delta in (-0.01, 0.01):
            rows.append({"model": "a", "dataset": "d", "sparsity": 0.9, "method": method,
                         "measured": measured[method] + delta,
                         "predicted": predicted[method] - delta})
    # a second case where the predicted first method (m1) is not the measured best (m0)
    for method, meas, pred in [("m0", 0.1, 0.2), ("m1", 0.2, 0.1), ("m3", 0.3, 0.3)]:
        rows.append({"model": "a", "dataset": "d", "sparsity": 0.98, "method": method,
                     "measured": meas, "predicted": pred})
    return pd.DataFrame(rows), measured, predicted


def test_ranking_hand_example_against_scipy_and_pair_count():
    frame, measured, predicted = _hand_frame()
    cases = ranking_cases(frame)
    assert list(cases["sparsity"]) == [0.9, 0.98]
    assert list(cases["n_methods"]) == [4, 3]
    first, second = cases.iloc[0], cases.iloc[1]
    values = list(measured.values()), list(predicted.values())
    assert first["kendall_tau"] == pytest.approx(kendalltau(*values).statistic)
    assert first["kendall_tau"] == pytest.approx(_pairs_tau(*values)) == pytest.approx(4 / 6)
    assert second["kendall_tau"] == pytest.approx(
        kendalltau([0.1, 0.2, 0.3], [0.2, 0.1, 0.3]).statistic) == pytest.approx(1 / 3)
    assert first["top1_hit"] == 1.0 and second["top1_hit"] == 0.0
    score = summarize_ranking(cases)
    assert score == RankingScore(pytest.approx((4 / 6 + 1 / 3) / 2), 0.5, 2, 0)
    # accuracy target: higher is better; in the second case m3 is then best and predicted first
    flipped = ranking_cases(frame, lower_is_better=False)
    assert flipped.iloc[1]["top1_hit"] == 1.0 and flipped.iloc[0]["top1_hit"] == 1.0
    assert flipped.iloc[1]["kendall_tau"] == pytest.approx(1 / 3)


def test_top1_ties_count_as_random_tie_break():
    assert top1_hit(np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.5, 0.9]),
                    lower_is_better=True) == 0.5
    assert top1_hit(np.array([0.1, 0.1, 0.3]), np.array([0.5, 0.5, 0.9]),
                    lower_is_better=True) == 1.0
    assert top1_hit(np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.5, 0.5]),
                    lower_is_better=False) == pytest.approx(1 / 3)


def test_sparsity_only_predictor_gives_undefined_tau():
    """A predictor that sees only the sparsity predicts one value for every method at one
    sparsity: the predicted order is constant, tau is undefined there (counted, not averaged)."""
    rng = np.random.default_rng(0)
    rows = []
    for sparsity, method, _seed in itertools.product((0.8, 0.9, 0.98), ("a", "b", "c"), (0, 1)):
        rows.append({"model": "m", "dataset": "d", "sparsity": sparsity, "method": method,
                     "measured": sparsity + rng.normal(), "predicted": 2 * sparsity})
    frame = pd.DataFrame(rows)
    # one case where the predictor does tell methods apart
    extra = frame["sparsity"] == 0.98
    frame.loc[extra, "predicted"] += frame.loc[extra, "method"].map({"a": 0.0, "b": 0.1, "c": 0.2})
    cases = ranking_cases(frame)
    assert cases["kendall_tau"].isna().tolist() == [True, True, False]
    score = summarize_ranking(cases)
    assert score.n_undefined == 2 and score.n_cases == 3
    means = frame[extra].groupby("method")[["measured", "predicted"]].mean()
    assert score.kendall_tau == pytest.approx(
        kendalltau(means["measured"], means["predicted"]).statistic)
    # constant predictions: every tied method is "predicted first", so top-1 = 1/3 there
    assert cases["top1_hit"].iloc[0] == pytest.approx(1 / 3)
    constant = summarize_ranking(ranking_cases(frame[~extra]))
    assert constant.n_undefined == 2 and math.isnan(constant.kendall_tau)


def test_ranking_needs_two_methods():
    frame = pd.DataFrame({"model": "a", "dataset": "d", "sparsity": [0.9, 0.9],
                          "method": "snip", "measured": [0.1, 0.2], "predicted": [0.1, 0.2]})
    with pytest.raises(ValueError, match=r"ranking needs at least 2 pruning methods, got 1"):
        ranking_cases(frame)
    split = pd.DataFrame({"model": "a", "dataset": "d", "sparsity": [0.8, 0.9],
                          "method": ["snip", "er"], "measured": [0.1, 0.2],
                          "predicted": [0.1, 0.2]})
    with pytest.raises(ValueError, match="at most 1 in every case"):
        ranking_cases(split)
    with pytest.raises(ValueError, match=r"columns \['predicted'\]"):
        ranking_cases(split.drop(columns="predicted"))
    assert summarize_ranking(pd.DataFrame()).n_cases == 0
