"""Tests of the study analysis: feature sets, splits, ranking, metrics, SHAP, fit_study."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import xgboost
from scipy.stats import kendalltau
from sklearn.metrics import mean_absolute_error, r2_score

from sparsetopo.study import fit as fit_module
from sparsetopo.study.features_sets import FEATURE_SETS, feature_columns, resolve_feature_sets
from sparsetopo.study.fit import (
    COMPARISON_COLUMNS,
    IMPORTANCE_COLUMNS,
    PREDICTION_COLUMNS,
    fit_study,
    grouped_fold_ids,
    leave_one_method_out_splits,
    predict,
    regression_metrics,
    shap_values,
)
from sparsetopo.study.ranking import ranking_cases, summarize_ranking, top1_hit

METHODS = ["snip", "grasp", "synflow", "er"]


def synthetic_runs(
    models=("conv6", "resnet20"),
    methods=METHODS,
    sparsities=(0.8, 0.9, 0.98),
    seeds=(0, 1),
    with_dense=True,
    seed=0,
) -> pd.DataFrame:
    """Runs whose drop is a known function of ``mge.x``; ``rolled.z`` is pure noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for model in models:
        for method, sparsity in itertools.product(methods, sparsities):
            level = rng.normal()  # configuration-level signal shared by the seeds
            for s in seeds:
                x = level + 0.05 * rng.normal()
                rows.append(
                    {
                        "run_id": f"{model}/digits/{method}/{sparsity}/{s}",
                        "model": model,
                        "dataset": "digits",
                        "method": method,
                        "sparsity": sparsity,
                        "seed": s,
                        "mge.x": x,
                        "mge.unused": rng.normal(),
                        "rolled.z": rng.normal(),
                        "rolled_channel.w": rng.normal(),
                        "density.global": 1 - sparsity,
                        "accuracy_drop": 0.2 * x**2 + x + 0.02 * rng.normal(),
                    }
                )
        if with_dense:
            for s in seeds:
                rows.append(
                    {
                        "run_id": f"{model}/digits/dense/0/{s}",
                        "model": model,
                        "dataset": "digits",
                        "method": "dense",
                        "sparsity": 0.0,
                        "seed": s,
                        "mge.x": 0.0,
                        "mge.unused": 0.0,
                        "rolled.z": 0.0,
                        "rolled_channel.w": 0.0,
                        "density.global": 1.0,
                        "accuracy_drop": 0.0,
                    }
                )
    frame = pd.DataFrame(rows)
    frame["accuracy"] = 0.9 - frame["accuracy_drop"]
    frame["dense_accuracy"] = 0.9
    return frame


# ---------------------------------------------------------------------------------- sets
def test_feature_sets_select_exact_prefixes():
    columns = [
        "mge.a",
        "rolled.b",
        "rolled_channel.c",
        "density.conv1",
        "density.global",
        "ramanujan.d",
        "accuracy",
        "sparsity",
    ]
    assert feature_columns(columns, FEATURE_SETS["rolled"]) == ["rolled.b"]
    assert feature_columns(columns, FEATURE_SETS["rolled_channel"]) == ["rolled_channel.c"]
    assert feature_columns(columns, FEATURE_SETS["mge+density"]) == [
        "density.conv1",
        "density.global",
        "mge.a",
    ]
    assert list(resolve_feature_sets()) == [
        "density",
        "ramanujan",
        "rolled",
        "rolled_channel",
        "mge",
        "mge+density",
    ]
    with pytest.raises(ValueError, match="unknown feature set.*supported"):
        resolve_feature_sets(["mge", "topology"])


# ---------------------------------------------------------------------------------- splits
def test_grouped_folds_keep_configurations_together():
    runs = synthetic_runs(with_dense=False)
    folds = grouped_fold_ids(runs, n_folds=5, seed=3)
    config = ["model", "dataset", "method", "sparsity"]
    per_config = runs.assign(fold=folds).groupby(config)["fold"].nunique()
    assert (per_config == 1).all()  # no configuration split across folds
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    configs_per_fold = runs.assign(fold=folds).drop_duplicates(config)["fold"].value_counts()
    assert configs_per_fold.max() - configs_per_fold.min() <= 1
    # independent of the row order, dependent on the seed
    shuffled = runs.sample(frac=1.0, random_state=1)
    refolded = pd.Series(grouped_fold_ids(shuffled, 5, seed=3), index=shuffled.index)
    assert (refolded.sort_index().to_numpy() == folds).all()
    assert not np.array_equal(grouped_fold_ids(runs, 5, seed=4), folds)


def test_grouped_folds_fewer_configurations_than_folds():
    runs = synthetic_runs(
        models=("conv6",), methods=["snip", "er"], sparsities=(0.9,), with_dense=False
    )
    assert sorted(set(grouped_fold_ids(runs, n_folds=5))) == [0, 1]
    with pytest.raises(ValueError, match="at least 2 configurations"):
        grouped_fold_ids(runs[runs["method"] == "snip"], n_folds=5)
    with pytest.raises(ValueError, match="folds must be >= 2"):
        grouped_fold_ids(runs, n_folds=1)


def test_leave_one_method_out_excludes_held_out_method():
    runs = synthetic_runs(with_dense=False)
    splits = leave_one_method_out_splits(runs)
    assert [name for name, _, _ in splits] == sorted(METHODS)
    for method, train, test in splits:
        assert method not in set(runs["method"].iloc[train])
        assert set(runs["method"].iloc[test]) == {method}
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(runs)
    with pytest.raises(ValueError, match="at least 2 pruning methods"):
        leave_one_method_out_splits(runs[runs["method"] == "er"])


# ---------------------------------------------------------------------------------- ranking
def _pairs_tau(a, b):
    """Kendall tau-a by counting pairs (no ties in the hand examples)."""
    pairs = list(itertools.combinations(range(len(a)), 2))
    signs = [np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs]
    return sum(signs) / len(pairs)


def test_ranking_hand_example_against_scipy_and_pair_count():
    measured = {"m0": 0.1, "m1": 0.3, "m2": 0.2, "m3": 0.4}
    predicted = {"m0": 0.15, "m1": 0.25, "m2": 0.35, "m3": 0.45}
    rows = []
    for method in measured:  # two seeds whose mean is the value above
        for delta in (-0.01, 0.01):
            rows.append(
                {
                    "model": "a",
                    "dataset": "d",
                    "sparsity": 0.9,
                    "method": method,
                    "measured": measured[method] + delta,
                    "predicted": predicted[method] - delta,
                }
            )
    # a second case where the predicted first method (m1) is not the measured best (m0)
    for method, meas, pred in [("m0", 0.1, 0.2), ("m1", 0.2, 0.1), ("m3", 0.3, 0.3)]:
        rows.append(
            {
                "model": "a",
                "dataset": "d",
                "sparsity": 0.98,
                "method": method,
                "measured": meas,
                "predicted": pred,
            }
        )
    cases = ranking_cases(pd.DataFrame(rows))
    first, second = cases.iloc[0], cases.iloc[1]
    values = list(measured.values()), list(predicted.values())
    assert first["kendall_tau"] == pytest.approx(kendalltau(*values).statistic)
    assert first["kendall_tau"] == pytest.approx(_pairs_tau(*values)) == pytest.approx(4 / 6)
    assert first["top1_hit"] == 1.0 and second["top1_hit"] == 0.0
    assert second["kendall_tau"] == pytest.approx(1 / 3)
    score = summarize_ranking(cases)
    assert score.kendall_tau == pytest.approx((4 / 6 + 1 / 3) / 2) and score.top1_hit == 0.5
    # accuracy target: higher is better; in the second case m3 is then best and predicted first
    flipped = ranking_cases(pd.DataFrame(rows), lower_is_better=False)
    assert flipped.iloc[1]["top1_hit"] == 1.0 and flipped.iloc[0]["top1_hit"] == 1.0
    assert flipped.iloc[1]["kendall_tau"] == pytest.approx(1 / 3)


def test_top1_ties_count_as_random_tie_break():
    assert (
        top1_hit(np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.5, 0.9]), lower_is_better=True) == 0.5
    )


def test_ranking_needs_two_methods():
    frame = pd.DataFrame(
        {
            "model": "a",
            "dataset": "d",
            "sparsity": [0.9, 0.9],
            "method": "snip",
            "measured": [0.1, 0.2],
            "predicted": [0.1, 0.2],
        }
    )
    with pytest.raises(ValueError, match=r"ranking needs at least 2 pruning methods, got 1"):
        ranking_cases(frame)
    runs = synthetic_runs(methods=["snip"], with_dense=False)
    with pytest.raises(ValueError, match=r"ranking needs at least 2 pruning methods, got 1"):
        fit_study(runs, "unused", progress=False)


# ---------------------------------------------------------------------------------- metrics
def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=30), rng.normal(size=30)
    r2, mae = regression_metrics(y, p)
    assert r2 == pytest.approx(r2_score(y, p)) and mae == pytest.approx(mean_absolute_error(y, p))
    assert np.isnan(regression_metrics(np.ones(4), p[:4])[0])


def test_train_model_is_the_xgbregressor_model():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(100, 5))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = np.nan_to_num(x[:, 0]) + 0.1 * rng.normal(size=100)
    params = {
        "n_estimators": 40,
        "max_depth": 3,
        "learning_rate": 0.2,
        "subsample": 0.7,
        "colsample_bytree": 0.8,
        "min_child_weight": 2.0,
        "reg_lambda": 0.5,
    }
    ours = predict(fit_module.train_model(x, y, params, seed=3), x)
    reference = xgboost.XGBRegressor(tree_method="hist", n_jobs=1, random_state=3, **params)
    np.testing.assert_allclose(ours, reference.fit(x, y).predict(x), rtol=1e-6)


def test_shap_values_equal_xgboost_pred_contribs():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 4))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = np.nan_to_num(x[:, 0]) ** 2 + 0.5 * np.nan_to_num(x[:, 1])
    params = {**fit_module.DEFAULT_PARAMS, "n_estimators": 30, "subsample": 0.8}
    model = fit_module.train_model(x, y, params, seed=0)
    values = shap_values(model, x)
    contribs = model.predict(xgboost.DMatrix(x, missing=np.nan), pred_contribs=True)
    np.testing.assert_allclose(values, contribs[:, :-1], atol=1e-5)
    np.testing.assert_allclose(values.sum(axis=1) + contribs[:, -1], predict(model, x), atol=1e-4)


# ---------------------------------------------------------------------------------- fit_study
@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit")
    runs = synthetic_runs()
    runs.loc[3, "mge.unused"] = np.inf  # read as missing, with a note
    result = fit_study(
        runs,
        out,
        feature_sets=["mge", "rolled", "ramanujan"],
        folds=3,
        n_trials=2,
        seed=0,
        progress=False,
    )
    return runs, result, out


def test_fit_study_signal_beats_noise(fitted):
    _, result, _ = fitted
    pooled = result.comparison[result.comparison["model"] == "all"].set_index(
        ["feature_set", "protocol"]
    )
    for protocol in ("grouped", "leave-one-method-out"):
        assert pooled.loc[("mge", protocol), "r2"] > 0.7
        assert pooled.loc[("rolled", protocol), "r2"] < 0.3
        assert pooled.loc[("mge", protocol), "mae"] < pooled.loc[("rolled", protocol), "mae"]
        assert (
            pooled.loc[("mge", protocol), "kendall_tau"]
            > pooled.loc[("rolled", protocol), "kendall_tau"]
        )
    overall = result.importance[
        (result.importance["scope"] == "overall") & (result.importance["feature_set"] == "mge")
    ]
    assert overall.sort_values("mean_abs_shap")["feature"].iloc[-1] == "mge.x"


def test_fit_study_files_and_tables(fitted):
    runs, result, out = fitted
    comparison = pd.read_csv(out / "comparison.csv")
    assert list(comparison.columns) == COMPARISON_COLUMNS
    assert list(pd.read_csv(out / "importance.csv").columns) == IMPORTANCE_COLUMNS
    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == PREDICTION_COLUMNS
    assert "ramanujan" not in set(comparison["feature_set"])  # no column: skipped with a note
    assert any("ramanujan skipped" in note for note in result.notes)
    assert "feature set mge: 1 infinite value(s) treated as missing." in result.notes
    assert "ramanujan skipped" in (out / "summary.md").read_text()
    summary = (out / "summary.md").read_text()
    assert "## Best feature set per protocol" in summary and "mge" in summary
    assert set(comparison["protocol"]) == {"grouped", "leave-one-method-out"}
    pairs = set(zip(comparison["model"], comparison["dataset"], strict=True))
    assert pairs == {("conv6", "digits"), ("resnet20", "digits"), ("all", "all")}
    pruned = runs[runs["method"] != "dense"]
    assert "dense" not in set(predictions["method"])
    assert set(comparison["n"]) == {len(pruned), len(pruned) // 2}
    scopes = pd.read_csv(out / "importance.csv").groupby("scope")["scope_value"].unique()
    assert sorted(scopes["sparsity"].astype(str)) == ["0.8", "0.9", "0.98"]
    assert sorted(scopes["model"]) == ["conv6", "resnet20"]

    # every comparison row recomputed from predictions.csv with sklearn and scipy
    for row in comparison.itertuples():
        part = predictions[
            (predictions["feature_set"] == row.feature_set)
            & (predictions["protocol"] == row.protocol)
        ]
        if row.model != "all":
            part = part[(part["model"] == row.model) & (part["dataset"] == row.dataset)]
        assert row.n == len(part)
        assert row.r2 == pytest.approx(r2_score(part["measured"], part["predicted"]))
        assert row.mae == pytest.approx(mean_absolute_error(part["measured"], part["predicted"]))
        means = part.groupby(["model", "dataset", "sparsity", "method"])[
            ["measured", "predicted"]
        ].mean()
        taus, hits = [], []
        for _, case in means.groupby(level=[0, 1, 2]):
            taus.append(kendalltau(case["measured"], case["predicted"]).statistic)
            first = case["predicted"] == case["predicted"].min()  # ties: random tie-break
            hits.append(float((case["measured"][first] == case["measured"].min()).mean()))
        assert row.kendall_tau == pytest.approx(np.nanmean(taus))
        assert row.top1_hit == pytest.approx(np.mean(hits))


def test_fit_study_trains_without_the_held_out_runs(monkeypatch, tmp_path):
    runs = synthetic_runs(
        models=("conv6",), methods=["snip", "grasp", "er"], sparsities=(0.8, 0.98), with_dense=False
    )
    calls = []
    original = fit_module.fit_tuned

    def recording(x, y, part, **kwargs):
        calls.append(part.copy())
        return original(x, y, part, **kwargs)

    monkeypatch.setattr(fit_module, "fit_tuned", recording)
    fit_study(runs, tmp_path, feature_sets=["mge"], folds=2, n_trials=1, progress=False)
    assert len(calls) == 2 + 3 + 1  # grouped folds, held-out methods, final SHAP model
    folds = grouped_fold_ids(runs, 2, seed=0)
    config = ["model", "dataset", "method", "sparsity"]
    for k, part in enumerate(calls[:2]):
        test_configs = runs[folds == k][config].drop_duplicates()
        assert part.merge(test_configs, on=config).empty  # tuned and fitted without the fold
        assert len(part) == int((folds != k).sum())
    for method, part in zip(["er", "grasp", "snip"], calls[2:5], strict=True):
        assert set(part["method"]) == {"er", "grasp", "snip"} - {method}
    assert len(calls[5]) == len(runs)


def test_fit_study_reproducible(tmp_path):
    runs = synthetic_runs(
        models=("conv6",), methods=["snip", "grasp", "er"], sparsities=(0.8, 0.98)
    )
    for name in ("a", "b"):
        fit_study(
            runs, tmp_path / name, feature_sets=["mge"], folds=2, n_trials=2, seed=7, progress=False
        )
    for file in ("comparison.csv", "importance.csv", "predictions.csv", "summary.md"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    assert not list(tmp_path.glob("*/*.tmp"))


def test_fit_study_bad_input(tmp_path):
    runs = synthetic_runs(models=("conv6",), methods=["snip", "er"], sparsities=(0.9,))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['accuracy_drop'\]"):
        fit_study(runs.drop(columns="accuracy_drop"), tmp_path, progress=False)
    with pytest.raises(ValueError, match="unknown feature set"):
        fit_study(runs, tmp_path, feature_sets=["nope"], progress=False)
    with pytest.raises(ValueError, match="folds must be >= 2"):
        fit_study(runs, tmp_path, folds=1, progress=False)
    with pytest.raises(ValueError, match="n_trials must be >= 1"):
        fit_study(runs, tmp_path, n_trials=0, progress=False)
    with pytest.raises(ValueError, match="no feature set has usable columns"):
        fit_study(runs, tmp_path, feature_sets=["ramanujan"], progress=False)
    with pytest.raises(ValueError, match="needs a successful dense run"):
        fit_study(runs.assign(accuracy_drop=np.nan), tmp_path, progress=False)
    with pytest.raises(ValueError, match="no pruned run"):
        fit_study(runs[runs["method"] == "dense"], tmp_path, progress=False)
    with pytest.raises(ValueError, match="must be numeric"):
        fit_study(runs.assign(**{"mge.x": "high"}), tmp_path, feature_sets=["mge"], progress=False)
    assert not list(tmp_path.iterdir())  # nothing written on bad input
