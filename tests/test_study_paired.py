"""The paired effect of topology (method minus its mask control, same seed) on synthetic
studies whose answer is known: one where the arrangement inside layers matters by
construction (and a topology feature carries it), one where it does not (the per-seed
differences cancel exactly). Intervals recomputed with scipy, R^2 with sklearn."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import r2_score

from sparsetopo.study import paired
from sparsetopo.study.fit import fit_study

METHODS = ["snip", "grasp", "synflow", "er", "erk", "prospr"]
SPARSITIES = (0.9, 0.98, 0.995)
SEEDS = (0, 1, 2, 3)
DELTAS = (0.01, -0.01, 0.02, -0.02)  # per-seed differences of the null world: mean exactly 0


def control_runs(matters: bool, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Every method and its layer-shuffle control, 4 seeds. ``matters``: the method's accuracy
    exceeds its control's by an effect fixed per (method, sparsity), carried by the difference
    of ``paths.log10_paths``; else the per-seed differences cancel exactly and the feature
    differences are noise. The layer densities of a control are its method's. Returns the
    runs and the true effect of each (method, sparsity)."""
    rng = np.random.default_rng(seed)
    rows, effects = [], {}
    for method, sparsity in itertools.product(METHODS, SPARSITIES):
        effect = float(rng.uniform(-0.2, 0.2)) if matters else 0.0
        effects[(method, sparsity)] = effect
        d1, d2 = rng.uniform(0.02, 0.4, size=2)
        level, paths = rng.uniform(0.3, 0.9), rng.normal()
        for s, delta in zip(SEEDS, DELTAS, strict=True):
            shared = 0.03 * rng.normal()  # what the seed's weights and training do to both
            for control in (None, "layer-shuffle"):
                name = method if control is None else f"{method}+{control}"
                mine = control is None
                if matters:
                    accuracy = level + shared + effect * mine + 0.002 * rng.normal()
                    log_paths = paths + 10 * effect * mine + 0.01 * rng.normal()
                else:
                    accuracy = level + shared - delta * (not mine)
                    log_paths = paths + 0.3 * rng.normal()
                rows.append({"run_id": f"conv6/{name}/{sparsity}/{s}", "model": "conv6",
                             "dataset": "digits", "method": name, "sparsity": sparsity,
                             "seed": s, "density.global": (d1 + d2) / 2, "density.l1": d1,
                             "density.l2": d2, "paths.log10_paths": log_paths,
                             "accuracy": accuracy})
    frame = pd.DataFrame(rows)
    frame["accuracy_drop"] = 0.97 - frame["accuracy"]
    return frame, effects


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    out = {}
    for matters in (True, False):
        runs, effects = control_runs(matters)
        folder = tmp_path_factory.mktemp(f"paired-{matters}")
        result = fit_study(runs, folder, feature_sets=["paths"], n_trials=1, jobs=1,
                           progress=False)
        out[matters] = (runs, effects, result, folder)
    return out


def test_paired_effects_recomputed_by_hand(fits):
    runs, effects, result, folder = fits[True]
    table = pd.read_csv(folder / "paired_effects.csv")
    assert list(table.columns) == paired.EFFECT_COLUMNS
    assert len(table) == len(effects)
    by_name = runs.set_index(["method", "sparsity", "seed"])["accuracy"]
    for row in table.itertuples():
        assert row.control == "layer-shuffle" and row.n == len(SEEDS)
        d = np.array([by_name[(row.method, row.sparsity, s)]
                      - by_name[(f"{row.method}+layer-shuffle", row.sparsity, s)]
                      for s in SEEDS])
        low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
        assert row.mean_difference == pytest.approx(d.mean(), abs=1e-12)
        assert row.sd == pytest.approx(d.std(ddof=1), abs=1e-12)
        assert (row.ci_low, row.ci_high) == pytest.approx((low, high), abs=1e-12)
        expected = ("method better" if low > 0 else "control better" if high < 0
                    else "no detectable difference")
        assert row.verdict == expected


def test_arrangement_matters_world(fits):
    """Where the effect is large against the seed noise, the verdict has its sign; every
    interval is near the true effect; the summary says it per method and sparsity."""
    _, effects, result, _ = fits[True]
    table = result.paired.effects.set_index(["method", "sparsity"])
    for (method, sparsity), effect in effects.items():
        row = table.loc[(method, sparsity)]
        assert row["mean_difference"] == pytest.approx(effect, abs=0.01)
        if effect > 0.02:
            assert row["verdict"] == "method better"
        elif effect < -0.02:
            assert row["verdict"] == "control better"
    counts = table["verdict"].value_counts()
    assert counts["method better"] > 0 and counts["control better"] > 0
    assert "## Does the arrangement inside layers matter? (paired effects)" in result.summary
    assert f"method better: {counts['method better']}" in result.summary
    assert "| conv6 | digits | grasp | layer-shuffle | 0.980 | 4 |" in result.summary


def test_arrangement_does_not_matter_world(fits):
    _, _, result, _ = fits[False]
    effects = result.paired.effects
    assert (effects["mean_difference"].abs() < 1e-12).all()
    assert (effects["verdict"] == "no detectable difference").all()
    assert f"no detectable difference: {len(effects)}" in result.summary


def test_a_topology_feature_predicts_the_difference_only_where_it_carries_it(fits):
    """``paths`` (whose difference carries the effect) predicts the paired difference under
    grouped and leave-one-method-out; ``density`` (difference 0 by construction) does not;
    in the null world nothing does."""
    for matters in (True, False):
        _, _, result, folder = fits[matters]
        scores = pd.read_csv(folder / "paired_prediction.csv")
        assert list(scores.columns) == paired.PREDICTION_COLUMNS
        head = scores[scores["model"] == "mean"].set_index(["feature_set", "protocol"])
        assert set(head.index.get_level_values("protocol")) == {"grouped",
                                                                "leave-one-method-out"}
        for protocol in ("grouped", "leave-one-method-out"):
            assert not head.loc[("density", protocol), "predicts"]
            assert head.loc[("density", protocol), "r2"] <= 0.0
            assert bool(head.loc[("paths", protocol), "predicts"]) == matters
            if matters:
                assert head.loc[("paths", protocol), "r2"] > 0.8
            line = next(ln for ln in result.summary.splitlines()
                        if ln.startswith(f"- **{protocol}**:") and "paired difference" in ln)
            if matters:
                assert "`paths` R^2" in line and "predict(s) the paired difference" in line
            else:
                assert "no feature set predicts the paired difference" in line


def test_paired_r2_recomputed_from_predictions(fits):
    """R^2 = sklearn's on the out-of-fold predictions; its spread and interval from the fold
    contributions K (SS_k - SSE_k) / SS; held-out methods take their controls with them."""
    _, _, _, folder = fits[True]
    predictions = pd.read_csv(folder / "paired_predictions.csv")
    scores = pd.read_csv(folder / "paired_prediction.csv")
    lomo = predictions[predictions["protocol"] == "leave-one-method-out"]
    assert (lomo["fold"] == lomo["base_method"]).all()
    for (name, protocol), part in predictions.groupby(["feature_set", "protocol"]):
        y, p = part["measured"].to_numpy(), part["predicted"].to_numpy()
        folds = part["fold"].to_numpy()
        names = np.unique(folds)
        ss = np.sum((y - y.mean()) ** 2)
        c = np.array([len(names) * (np.sum((y[folds == f] - y.mean()) ** 2)
                                    - np.sum((y[folds == f] - p[folds == f]) ** 2)) / ss
                      for f in names])
        row = scores[(scores["feature_set"] == name) & (scores["protocol"] == protocol)
                     & (scores["model"] == "conv6")].iloc[0]
        assert row["r2"] == pytest.approx(r2_score(y, p), abs=1e-9)
        assert c.mean() == pytest.approx(r2_score(y, p), abs=1e-9)
        assert row["r2_spread"] == pytest.approx(np.std(c, ddof=1), abs=1e-9)
        low, high = stats.t.interval(0.95, len(c) - 1, loc=c.mean(), scale=stats.sem(c))
        assert (row["r2_ci_low"], row["r2_ci_high"]) == pytest.approx((low, high), abs=1e-9)


def test_controls_go_with_their_method_in_the_main_fit(fits):
    _, _, result, _ = fits[True]
    lomo = result.predictions[result.predictions["protocol"] == "leave-one-method-out"]
    assert set(lomo["fold"]) == set(METHODS)
    assert (lomo["fold"] == lomo["method"].str.split("+").str[0]).all()


def test_too_few_seeds_and_unpaired_runs(tmp_path):
    runs, _ = control_runs(True)
    one_seed = (runs["method"] == "snip+layer-shuffle") & (runs["sparsity"] == 0.9) \
        & (runs["seed"] > 0)
    orphan = (runs["method"] == "grasp") & (runs["sparsity"] == 0.98)  # controls unpaired
    runs = runs[~one_seed & ~orphan]
    differences = paired.paired_differences(runs.assign(
        base_method=runs["method"].str.split("+").str[0],
        control=runs["method"].str.split("+").str[1]), features=["paths.log10_paths"])
    effects = paired.paired_effects(differences).set_index(["method", "sparsity"])
    assert effects.loc[("snip", 0.9), "n"] == 1
    assert effects.loc[("snip", 0.9), "verdict"] == "too few seeds"
    assert np.isnan(effects.loc[("snip", 0.9), "ci_low"])
    assert ("grasp", 0.98) not in effects.index
    assert len(effects) == len(METHODS) * len(SPARSITIES) - 1
    assert paired.effect_verdict(1, np.nan, np.nan) == "too few seeds"


def test_a_study_without_controls_writes_no_paired_tables(tmp_path):
    runs, _ = control_runs(True)
    runs = runs[~runs["method"].str.contains("+", regex=False)]
    result = fit_study(runs, tmp_path, feature_sets=["paths"], protocols=["grouped"],
                       n_trials=1, jobs=1, progress=False, save_models=False)
    assert result.paired is None
    assert not list(tmp_path.glob("paired_*"))
    assert "paired effects" not in result.summary
