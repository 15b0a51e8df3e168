"""Tests of ``sparsetopo.study.fit.fit_study`` (SPEC 6) end to end on synthetic runs tables:
output files, the comparison recomputed from predictions.csv with sklearn and scipy, the verdict
against global sparsity, the training parts, saved regressors, reproducibility, bad input."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import xgboost
from scipy import stats
from scipy.stats import kendalltau
from sklearn.metrics import mean_absolute_error, r2_score

from sparsetopo.study import fit as fit_module
from sparsetopo.study import predictor
from sparsetopo.study.feature_sets import with_effective_sparsity
from sparsetopo.study.fit import (
    COMPARISON_COLUMNS,
    IMPORTANCE_COLUMNS,
    PREDICTION_COLUMNS,
    fit_study,
    variance_decomposition,
)
from sparsetopo.study.vocabulary import PROTOCOLS

METHODS = ["snip", "grasp", "synflow", "er"]
CONFIG = ["model", "dataset", "method", "sparsity"]
NO_WIN = "no feature set beats global sparsity alone"


def synthetic_runs(models=("conv6", "resnet20"), methods=METHODS, sparsities=(0.8, 0.9, 0.98),
                   seeds=(0, 1), with_dense=True, noise_only=False, seed=0) -> pd.DataFrame:
    """Runs whose drop is a known function of ``mge.spectral_gap`` (a configuration-level
    signal shared by the seeds); ``mge.motifs`` is noise. ``noise_only``: the drop is
    independent of every feature."""
    rng = np.random.default_rng(seed)
    rows = []
    for model in models:
        for method, sparsity in itertools.product(methods, sparsities):
            level = rng.normal()
            for s in seeds:
                x = level + 0.05 * rng.normal()
                drop = rng.normal() if noise_only else 0.2 * x**2 + x + 0.02 * rng.normal()
                rows.append({"run_id": f"{model}/digits/{method}/{sparsity}/{s}", "model": model,
                             "dataset": "digits", "method": method, "sparsity": sparsity,
                             "seed": s, "mge.spectral_gap": x, "mge.motifs": rng.normal(),
                             "accuracy_drop": drop})
        if with_dense:
            for s in seeds:
                rows.append({"run_id": f"{model}/digits/dense/0/{s}", "model": model,
                             "dataset": "digits", "method": "dense", "sparsity": 0.0, "seed": s,
                             "mge.spectral_gap": 0.0, "mge.motifs": 0.0, "accuracy_drop": 0.0})
    frame = pd.DataFrame(rows)
    frame["accuracy"] = 0.9 - frame["accuracy_drop"]
    return frame


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit")
    runs = synthetic_runs()
    runs.loc[3, "mge.motifs"] = np.inf  # read as missing, with a note
    result = fit_study(runs, out, feature_sets=["mge", "ramanujan"], n_trials=2, jobs=1,
                       progress=False, seed=0)
    return runs, result, out


SECTIONS = {"sparsity": "## Does topology beat global sparsity alone?",
            "density": "## Does topology beat layer densities?",
            "effective_sparsity": "## Does topology beat effective sparsity?"}


def _verdicts(summary: str, baseline: str = "sparsity") -> list[str]:
    """The verdict lines of summary.md against ``baseline``, one per protocol, in report
    order."""
    section = summary.split(SECTIONS[baseline] + "\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines()
             if any(line.startswith(f"- **{p}**:") for p in PROTOCOLS)]
    assert len(lines) == len(PROTOCOLS), summary
    return lines


def _pair(frame, set_name, protocol, model, dataset="digits"):
    return frame[(frame["feature_set"] == set_name) & (frame["protocol"] == protocol)
                 & (frame["model"] == model) & (frame["dataset"] == dataset)]


# ---------------------------------------------------------------------------------- files
def test_output_files(fitted):
    _, result, out = fitted
    for name in ("comparison.csv", "importance.csv", "predictions.csv", "summary.md",
                 "models/index.json"):
        assert (out / name).is_file(), name
    assert list(pd.read_csv(out / "comparison.csv").columns) == COMPARISON_COLUMNS
    assert list(pd.read_csv(out / "importance.csv").columns) == IMPORTANCE_COLUMNS
    assert list(pd.read_csv(out / "predictions.csv").columns) == PREDICTION_COLUMNS
    assert (out / "summary.md").read_text() == result.summary
    index = json.loads((out / "models" / "index.json").read_text())
    entries = index["regressors"]
    assert {(e["model"], e["dataset"], e["feature_set"]) for e in entries} == {
        (m, "digits", s) for m in ("conv6", "resnet20") for s in ("sparsity", "mge")}
    for entry in entries:
        with open(out / "models" / entry["file"]) as handle:
            assert "learner" in json.load(handle)  # XGBoost JSON
    assert len(list((out / "models").glob("*.json"))) == len(entries) + 1
    assert not list(out.rglob("*.tmp"))


def test_skipped_set_is_noted(fitted):
    _, result, _ = fitted
    assert "ramanujan" not in set(result.comparison["feature_set"])
    assert any("ramanujan skipped" in note for note in result.notes), result.notes
    assert "ramanujan skipped" in result.summary
    assert "4 dense run(s)" in " ".join(result.notes)
    assert "conv6 / digits, mge: 1 infinite value(s) treated as missing." in result.notes


def test_comparison_rows(fitted):
    runs, result, out = fitted
    comparison = pd.read_csv(out / "comparison.csv")
    keys = list(comparison[["feature_set", "protocol", "model", "dataset"]].itertuples(
        index=False, name=None))
    assert len(keys) == len(set(keys))
    expected = {(s, p, m, d) for s in ("sparsity", "mge") for p in PROTOCOLS
                for m, d in (("conv6", "digits"), ("resnet20", "digits"), ("mean", "mean"))}
    assert set(keys) == expected
    pruned = runs[runs["method"] != "dense"]
    pair_rows = comparison[comparison["model"] != "mean"]
    assert (pair_rows["n"] == len(pruned) // 2).all()
    assert (comparison.loc[comparison["model"] == "mean", "n"] == len(pruned)).all()
    base = comparison[comparison["feature_set"] == "sparsity"]
    assert (base["gain_over_sparsity"] == 0).all() and (base["gain_spread"] == 0).all()
    assert not base["beats_sparsity"].any()


def test_every_set_scored_on_the_runs_of_the_baseline(fitted):
    runs, _, out = fitted
    predictions = pd.read_csv(out / "predictions.csv")
    pruned_ids = set(runs.loc[runs["method"] != "dense", "run_id"])
    assert "dense" not in set(predictions["method"])
    for protocol in PROTOCOLS:
        of = predictions[predictions["protocol"] == protocol]
        base = of[of["feature_set"] == "sparsity"]
        assert base["run_id"].is_unique and set(base["run_id"]) == pruned_ids
        for name, part in of.groupby("feature_set"):
            assert part["run_id"].is_unique, name
            assert set(part["run_id"]) == set(base["run_id"]), name
            folds = part.set_index("run_id")["fold"].sort_index()
            assert folds.equals(base.set_index("run_id")["fold"].sort_index())  # same folds
    lomo = predictions[predictions["protocol"] == "leave-one-method-out"]
    assert (lomo["fold"] == lomo["method"]).all()
    measured = runs.set_index("run_id").loc[predictions["run_id"], "accuracy_drop"]
    np.testing.assert_allclose(predictions["measured"], measured)


def _hand_contributions(part, base):
    """K (SSE_base,k - SSE_set,k) / SS for every outer fold of one pair."""
    y = part["measured"].to_numpy()
    ss = np.sum((y - y.mean()) ** 2)
    folds = part["fold"].to_numpy()
    names = sorted(set(folds))
    err_set = (y - part["predicted"].to_numpy()) ** 2
    err_base = (y - base["predicted"].to_numpy()) ** 2
    return np.array([len(names) * (err_base[folds == f].sum() - err_set[folds == f].sum()) / ss
                     for f in names])


def _hand_ranking(part):
    means = part.groupby(["sparsity", "method"])[["measured", "predicted"]].mean()
    taus, hits = [], []
    for _, case in means.groupby(level=0):
        taus.append(kendalltau(case["measured"], case["predicted"]).statistic)
        first = case["predicted"] == case["predicted"].min()  # ties: random tie-break
        hits.append(float((case["measured"][first] == case["measured"].min()).mean()))
    return np.array(taus), np.array(hits)


def test_comparison_recomputed_from_predictions(fitted):
    _, _, out = fitted
    comparison = pd.read_csv(out / "comparison.csv")
    predictions = pd.read_csv(out / "predictions.csv")
    for protocol in PROTOCOLS:
        for name in ("sparsity", "mge"):
            rows, contributions = [], []
            for model in ("conv6", "resnet20"):
                part = _pair(predictions, name, protocol, model).sort_values("run_id")
                base = _pair(predictions, "sparsity", protocol, model).sort_values("run_id")
                assert list(part["run_id"]) == list(base["run_id"])
                row = _pair(comparison, name, protocol, model).iloc[0]
                y, p = part["measured"], part["predicted"]
                assert row["n"] == len(part)
                assert row["r2"] == pytest.approx(r2_score(y, p), abs=1e-9)
                assert row["mae"] == pytest.approx(mean_absolute_error(y, p), abs=1e-9)
                gain = r2_score(y, p) - r2_score(base["measured"], base["predicted"])
                assert row["gain_over_sparsity"] == pytest.approx(gain, abs=1e-9)
                c = _hand_contributions(part, base)
                assert c.mean() == pytest.approx(gain, abs=1e-9)
                if name == "mge":
                    assert row["gain_spread"] == pytest.approx(np.std(c, ddof=1), abs=1e-9)
                    assert bool(row["beats_sparsity"]) == (gain > np.std(c, ddof=1))
                taus, hits = _hand_ranking(part)
                assert row["kendall_tau"] == pytest.approx(np.nanmean(taus), abs=1e-9)
                assert row["top1_hit"] == pytest.approx(hits.mean(), abs=1e-9)
                assert row["ranking_cases"] == 3
                assert row["tau_undefined"] == int(np.isnan(taus).sum())
                null = _pair(comparison, "sparsity", protocol, model).iloc[0]
                assert row["null_kendall_tau"] == pytest.approx(null["kendall_tau"], nan_ok=True)
                assert row["null_top1_hit"] == pytest.approx(null["top1_hit"])
                rows.append(row)
                contributions.append(c)
            mean = _pair(comparison, name, protocol, "mean", "mean").iloc[0]
            pairs = pd.DataFrame(rows)
            assert mean["r2"] == pytest.approx(pairs["r2"].mean(), abs=1e-12)
            assert mean["mae"] == pytest.approx(pairs["mae"].mean(), abs=1e-12)
            assert mean["gain_over_sparsity"] == pytest.approx(
                pairs["gain_over_sparsity"].mean(), abs=1e-12)
            if name == "mge":
                spread = np.std(np.concatenate(contributions), ddof=1)
                assert mean["gain_spread"] == pytest.approx(spread, abs=1e-9)
            assert mean["ranking_cases"] == 6


def test_signal_set_beats_sparsity_and_the_verdict_says_so(fitted):
    _, result, out = fitted
    comparison = pd.read_csv(out / "comparison.csv")
    head = comparison[(comparison["model"] == "mean") & (comparison["feature_set"] == "mge")]
    assert head["beats_sparsity"].all()
    assert (head["r2"] > 0.7).all()
    summary = (out / "summary.md").read_text()
    assert NO_WIN not in summary
    verdicts = _verdicts(summary)
    for protocol, line in zip(PROTOCOLS, verdicts, strict=True):
        assert line.startswith(f"- **{protocol}**: `mge` (+"), line
        assert "beat(s) global sparsity alone" in line
    overall = result.importance[(result.importance["scope"] == "overall")
                                & (result.importance["feature_set"] == "mge")]
    assert overall.sort_values("mean_abs_shap")["feature"].iloc[-1] == "mge.spectral_gap"


def test_saved_regressors_reproduce_importance(fitted):
    runs, result, out = fitted
    index = json.loads((out / "models" / "index.json").read_text())
    pruned = runs[runs["method"] != "dense"]
    contribs = []
    for entry in index["regressors"]:
        if entry["feature_set"] != "mge":
            continue
        assert entry["features"] == ["mge.motifs", "mge.spectral_gap"]
        assert entry["n_train"] == 24 and entry["target"] == "accuracy_drop"
        assert entry["methods_seen"] == sorted(METHODS)
        assert entry["sparsity_range"] == [0.8, 0.98]
        assert set(entry["cv"]) == set(PROTOCOLS)
        row = _pair(result.comparison, "mge", "grouped", entry["model"]).iloc[0]
        assert entry["cv"]["grouped"]["r2"] == pytest.approx(row["r2"])
        pair = pruned[pruned["model"] == entry["model"]]
        x = pair[entry["features"]].to_numpy(np.float64, copy=True)
        x[~np.isfinite(x)] = np.nan  # the fit reads infinite values as missing
        model = predictor.load_model(out / "models" / entry["file"])
        predicted = predictor.predict(model, x)
        assert predicted.shape == (len(pair),) and np.isfinite(predicted).all()
        values = model.predict(xgboost.DMatrix(x, missing=np.nan), pred_contribs=True)
        np.testing.assert_allclose(values.sum(axis=1), predicted, atol=1e-4)
        contribs.append(pd.DataFrame(np.abs(values[:, :-1]), columns=entry["features"]).assign(
            sparsity=pair["sparsity"].to_numpy()))
    table = pd.concat(contribs, ignore_index=True)
    importance = result.importance[result.importance["feature_set"] == "mge"]
    overall = importance[importance["scope"] == "overall"].set_index("feature")["mean_abs_shap"]
    for feature in ("mge.motifs", "mge.spectral_gap"):
        assert overall[feature] == pytest.approx(table[feature].mean(), rel=1e-4, abs=1e-6)
    per_sparsity = importance[importance["scope"] == "sparsity"]
    assert sorted(per_sparsity["scope_value"].astype(str).unique()) == ["0.8", "0.9", "0.98"]
    at = per_sparsity[(per_sparsity["scope_value"].astype(str) == "0.9")
                      & (per_sparsity["feature"] == "mge.spectral_gap")]["mean_abs_shap"]
    assert float(at.iloc[0]) == pytest.approx(
        table.loc[table["sparsity"] == 0.9, "mge.spectral_gap"].mean(), rel=1e-4, abs=1e-6)


# ---------------------------------------------------------------------------------- noise
def test_noise_only_table_beats_nothing(tmp_path):
    runs = synthetic_runs(models=("conv6",), seeds=(0, 1, 2), noise_only=True, seed=1)
    result = fit_study(runs, tmp_path, feature_sets=["mge"], n_trials=1, jobs=1,
                       progress=False)
    verdicts = _verdicts(result.summary)
    for protocol, line in zip(PROTOCOLS, verdicts, strict=True):
        assert line.startswith(f"- **{protocol}**: {NO_WIN}"), line
    assert not result.comparison["beats_sparsity"].any()


# ---------------------------------------------------------------------------------- training
def test_outer_training_part_never_contains_the_test_runs(monkeypatch, tmp_path):
    runs = synthetic_runs(models=("conv6",), methods=["snip", "grasp", "er", "rigl"],
                          sparsities=(0.8, 0.98), with_dense=False)
    calls = []
    original = fit_module._outer_task

    def recording(x, y, train, test, inner, *args):
        calls.append((x, train, test, inner))
        return original(x, y, train, test, inner, *args)

    monkeypatch.setattr(fit_module, "_outer_task", recording)
    fit_study(runs, tmp_path, feature_sets=["mge"], folds=3, n_trials=1, jobs=1,
              progress=False)
    # protocols x sets: random 3 + grouped 3 + lomo 4 + loco 3 folds, for sparsity and mge
    assert len(calls) == 2 * (3 + 3 + 4 + 3)
    by_motifs = {v: i for i, v in enumerate(runs["mge.motifs"])}
    mge_calls = [c for c in calls if c[0].shape[1] == 2]
    assert len(mge_calls) == 13
    protocols = (["random"] * 3 + ["grouped"] * 3 + ["leave-one-method-out"] * 4
                 + ["leave-one-category-out"] * 3)
    category = {"snip": "pai-data", "grasp": "pai-data", "er": "pai-data-free", "rigl": "dst"}
    for protocol, (x, train, test, inner) in zip(protocols, mge_calls, strict=True):
        # rows of x identified by their (unique) noise feature, column 0 (mge.motifs)
        rows_train = runs.iloc[[by_motifs[v] for v in x[train, 0]]]
        rows_test = runs.iloc[[by_motifs[v] for v in x[test, 0]]]
        assert not set(rows_train["run_id"]) & set(rows_test["run_id"])
        assert len(rows_train) + len(rows_test) == len(runs)
        configs_test = set(rows_test[CONFIG].itertuples(index=False, name=None))
        configs_train = set(rows_train[CONFIG].itertuples(index=False, name=None))
        if protocol == "grouped":
            assert not configs_train & configs_test
        if protocol == "leave-one-method-out":
            (held,) = set(rows_test["method"])
            assert held not in set(rows_train["method"])
            assert len(inner) == 3
            for itr, ite in inner:
                assert max(itr.max(), ite.max()) < len(train)  # positions into the part
                assert held not in set(rows_train.iloc[itr]["method"])
                assert len(set(rows_train.iloc[ite]["method"])) == 1
                assert not set(rows_train.iloc[ite]["method"]) & set(
                    rows_train.iloc[itr]["method"])
        if protocol == "leave-one-category-out":
            (held,) = set(rows_test["method"].map(category))
            trained = rows_train["method"].map(category)
            assert held not in set(trained)
            assert set(rows_test["method"]) == {m for m, c in category.items() if c == held}
            # inner folds leave one of the two other categories out
            assert len(inner) == 2
            for itr, ite in inner:
                assert len(set(trained.iloc[ite])) == 1
                assert not set(trained.iloc[ite]) & set(trained.iloc[itr])
        if protocol == "grouped":
            assert inner
            for itr, ite in inner:
                a = set(rows_train.iloc[itr][CONFIG].itertuples(index=False, name=None))
                b = set(rows_train.iloc[ite][CONFIG].itertuples(index=False, name=None))
                assert not a & b
    # each protocol tests every run once
    for start, stop in ((0, 3), (3, 6), (6, 10), (10, 13)):
        tested = np.concatenate([c[2] for c in mge_calls[start:stop]])
        assert sorted(tested) == list(range(len(runs)))


def test_pooled_fit_gets_architecture_one_hot(tmp_path):
    runs = synthetic_runs(methods=["snip", "grasp", "er"], sparsities=(0.8, 0.98))
    result = fit_study(runs, tmp_path, feature_sets=["mge"], protocols=["random"], folds=3,
                       n_trials=1, jobs=1, pooled=True, progress=False)
    index = json.loads((tmp_path / "models" / "index.json").read_text())
    assert index["config"]["pooled"] is True
    assert len(index["regressors"]) == 2
    for entry in index["regressors"]:
        assert entry["model"] == "pooled"
        assert {"arch.model=conv6", "arch.model=resnet20", "arch.dataset=digits"} <= set(
            entry["features"]), entry["features"]
        assert entry["models_seen"] == ["conv6", "resnet20"]
    sparsity_entry = next(e for e in index["regressors"] if e["feature_set"] == "sparsity")
    assert sparsity_entry["features"][0] == "sparsity"
    assert set(result.comparison["protocol"]) == {"random"}
    assert set(result.comparison["model"]) == {"conv6", "resnet20", "mean"}
    assert "pooled" in result.summary


def test_monotone_set_for_an_accuracy_target(tmp_path):
    """``/monotone``: the accuracy can only fall as the sparsity grows (SPEC 6 direction +1 of
    the drop, so -1 of the accuracy), whatever the other features."""
    runs = synthetic_runs(models=("conv6",), sparsities=(0.5, 0.7, 0.8, 0.9, 0.98),
                          with_dense=False)
    runs["accuracy"] = 0.9 - runs["accuracy_drop"] + 0.3 * np.sin(30 * runs["sparsity"])
    fit_study(runs, tmp_path, target="accuracy", feature_sets=["mge+sparsity/monotone"],
              protocols=["random"], folds=2, n_trials=1, jobs=1, progress=False)
    index = json.loads((tmp_path / "models" / "index.json").read_text())
    entry = next(e for e in index["regressors"] if e["feature_set"] == "mge+sparsity/monotone")
    assert entry["features"] == ["mge.motifs", "mge.spectral_gap", "sparsity"]
    assert entry["monotone"] == [0, 0, -1]
    assert "/" not in entry["file"] and (tmp_path / "models" / entry["file"]).is_file()
    model = predictor.load_model(tmp_path / "models" / entry["file"])
    grid = np.linspace(0.4, 1.0, 61)
    for _, run in runs.iloc[::7].iterrows():
        x = np.column_stack([np.full_like(grid, run["mge.motifs"]),
                             np.full_like(grid, run["mge.spectral_gap"]), grid])
        assert (np.diff(predictor.predict(model, x)) <= 1e-9).all()
    free = next(e for e in index["regressors"] if e["feature_set"] == "sparsity")
    assert free["monotone"] is None


# ---------------------------------------------------------------------------------- repro
def test_results_identical_for_jobs_and_repeated_seed(tmp_path):
    runs = synthetic_runs(models=("conv6",), methods=["snip", "grasp", "er"],
                          sparsities=(0.8, 0.98))
    for name, jobs in (("a", 1), ("b", 1), ("c", 2)):
        fit_study(runs, tmp_path / name, feature_sets=["mge"], folds=3, n_trials=2, seed=7,
                  jobs=jobs, progress=False)
    for file in ("comparison.csv", "importance.csv", "predictions.csv", "summary.md",
                 "models/index.json"):
        a = (tmp_path / "a" / file).read_text()
        assert a == (tmp_path / "b" / file).read_text(), file
        assert a == (tmp_path / "c" / file).read_text(), file
    other = fit_study(runs, tmp_path / "d", feature_sets=["mge"], folds=3, n_trials=2, seed=8,
                      jobs=1, progress=False)
    assert not other.predictions.equals(pd.read_csv(tmp_path / "a" / "predictions.csv"))


# ---------------------------------------------------------------------------------- variance
def test_variance_decomposition_by_hand():
    frame = pd.DataFrame({
        "model": ["a"] * 5 + ["b"] * 4,
        "dataset": "d",
        "method": ["snip", "snip", "er", "er", "er", "snip", "snip", "er", "er"],
        "sparsity": [0.9, 0.9, 0.9, 0.9, 0.8, 0.9, 0.9, 0.9, 0.9],
        "drop": [1.0, 3.0, 4.0, 6.0, 10.0, 0.5, 0.7, 0.1, 0.2],
    })
    table = variance_decomposition(frame, "drop").set_index("model")
    a, b = table.loc["a"], table.loc["b"]
    # a: configurations (snip, .9) = [1, 3], (er, .9) = [4, 6], (er, .8) = [10]
    assert a["configurations"] == 3
    assert a["between"] == pytest.approx(np.var([2.0, 5.0, 10.0], ddof=1))
    assert a["within"] == pytest.approx(np.mean([np.var([1, 3], ddof=1), np.var([4, 6], ddof=1)]))
    assert a["ratio"] == pytest.approx(a["between"] / a["within"])
    assert b["between"] == pytest.approx(np.var([0.6, 0.15], ddof=1))
    assert b["within"] == pytest.approx(np.mean([np.var([0.5, 0.7], ddof=1),
                                                 np.var([0.1, 0.2], ddof=1)]))


# ---------------------------------------------------------------------------------- errors
def test_bad_input(tmp_path):
    runs = synthetic_runs(models=("conv6",), methods=["snip", "er"], sparsities=(0.9,))
    out = tmp_path / "out"
    cases = [
        (dict(runs=runs.drop(columns="accuracy_drop")), r"lacks column\(s\) \['accuracy_drop'\]"),
        (dict(runs=runs.drop(columns=["method", "seed"])), r"lacks column\(s\) \['method', 'seed'\]"),
        (dict(runs=runs.assign(accuracy_drop=np.nan)),
         "no pruned run with a value of accuracy_drop.*needs a successful dense run"),
        (dict(runs=runs[runs["method"] == "dense"]), "no pruned run"),
        (dict(runs=runs[runs["method"].isin(["snip", "dense"])]),
         r"at least 2 pruning methods, got 1: \['snip'\]"),
        (dict(folds=1), "folds must be >= 2, got 1"),
        (dict(n_trials=0), "n_trials must be >= 1, got 0"),
        (dict(protocols=["random", "loo"]), "unknown protocol 'loo'"),
        (dict(protocols=[]), "no protocol given"),
        (dict(feature_sets=["nope"]), r"unknown feature set\(s\) \['nope'\]"),
        (dict(runs=runs.assign(**{"mge.spectral_gap": "high"}), feature_sets=["mge"]),
         "feature columns must be numeric"),
    ]
    for kwargs, message in cases:
        frame = kwargs.pop("runs", runs)
        kwargs = {"n_trials": 1, "jobs": 1, "progress": False, **kwargs}
        with pytest.raises(ValueError, match=message):
            fit_study(frame, out, **kwargs)
    assert not out.exists()  # nothing written on bad input


# ---------------------------------------------------------------------------------- baselines
def baseline_runs(signal: str, seed: int = 0) -> pd.DataFrame:
    """Runs with layer densities, an effective density and a topology feature; the drop is
    driven by layer 1's density (``signal="density"``) or by ``mge.spectral_gap``, drawn per
    configuration independently of the densities (``"topology"``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for method, sparsity in itertools.product(METHODS, (0.5, 0.7, 0.8, 0.9, 0.98)):
        d1, d2 = rng.uniform(0.02, 0.4, size=2)
        alive, level = rng.uniform(0.5, 1.0), rng.normal()
        for s in (0, 1, 2):
            gap = level + 0.05 * rng.normal()
            drop = (2.0 * d1 + 0.01 * rng.normal() if signal == "density"
                    else 0.2 * gap**2 + gap + 0.02 * rng.normal())
            rows.append({"run_id": f"conv6/{method}/{sparsity}/{s}", "model": "conv6",
                         "dataset": "digits", "method": method, "sparsity": sparsity,
                         "seed": s, "density.global": (d1 + d2) / 2, "density.l1": d1,
                         "density.l2": d2, "paths.effective_density": alive,
                         "mge.spectral_gap": gap, "mge.motifs": rng.normal(),
                         "accuracy_drop": drop})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def baseline_fits(tmp_path_factory):
    out = {}
    for signal in ("density", "topology"):
        folder = tmp_path_factory.mktemp(signal)
        out[signal] = (fit_study(baseline_runs(signal), folder, feature_sets=["mge"],
                                 n_trials=1, jobs=1, progress=False), folder)
    return out


def test_effective_sparsity_is_derived_and_fitted(baseline_fits):
    """``effective_sparsity`` = 1 - density.global * paths.effective_density (1 - sparsity
    standing in for a missing density.global), fitted as a one-number baseline."""
    runs = baseline_runs("density")
    derived = with_effective_sparsity(runs)
    np.testing.assert_allclose(derived["effective_sparsity"],
                               1 - runs["density.global"] * runs["paths.effective_density"])
    no_density = with_effective_sparsity(runs.drop(columns="density.global"))
    np.testing.assert_allclose(no_density["effective_sparsity"],
                               1 - (1 - runs["sparsity"]) * runs["paths.effective_density"])
    assert "effective_sparsity" not in with_effective_sparsity(
        runs.drop(columns="paths.effective_density")).columns
    result, folder = baseline_fits["density"]
    index = json.loads((folder / "models" / "index.json").read_text())
    assert [e["feature_set"] for e in index["regressors"]] == [
        "sparsity", "density", "effective_sparsity", "mge"]
    assert index["regressors"][2]["features"] == ["effective_sparsity"]
    assert set(result.comparison["feature_set"]) == {"sparsity", "density",
                                                     "effective_sparsity", "mge"}


def test_gains_over_every_baseline_recomputed_from_predictions(baseline_fits):
    """gain over density / effective sparsity = R^2(set) - R^2(baseline) on the same folds,
    spread = SD of K (SSE_base,k - SSE_set,k) / SS, interval = the scipy t-interval of those
    contributions; the old sparsity columns keep their meaning, with an interval too."""
    _, folder = baseline_fits["topology"]
    comparison = pd.read_csv(folder / "comparison.csv")
    predictions = pd.read_csv(folder / "predictions.csv")
    assert list(comparison.columns) == COMPARISON_COLUMNS
    for baseline, prefix, folds_column in (
            ("sparsity", "gain_over_sparsity", "folds_better"),
            ("density", "gain_over_density", "folds_better_than_density"),
            ("effective_sparsity", "gain_over_effective_sparsity",
             "folds_better_than_effective_sparsity")):
        spread_column = "gain_spread" if baseline == "sparsity" else f"{prefix}_spread"
        for protocol in PROTOCOLS:
            part = _pair(predictions, "mge", protocol, "conv6").sort_values("run_id")
            base = _pair(predictions, baseline, protocol, "conv6").sort_values("run_id")
            assert list(part["fold"]) == list(base["fold"])
            c = _hand_contributions(part, base)
            gain = (r2_score(part["measured"], part["predicted"])
                    - r2_score(base["measured"], base["predicted"]))
            low, high = stats.t.interval(0.95, len(c) - 1, loc=c.mean(),
                                         scale=np.std(c, ddof=1) / np.sqrt(len(c)))
            for model in ("conv6", "mean"):
                row = _pair(comparison, "mge", protocol, model,
                            "digits" if model == "conv6" else "mean").iloc[0]
                assert row[prefix] == pytest.approx(gain, abs=1e-9)
                assert row[spread_column] == pytest.approx(np.std(c, ddof=1), abs=1e-9)
                assert row[f"{prefix}_ci_low"] == pytest.approx(low, abs=1e-9)
                assert row[f"{prefix}_ci_high"] == pytest.approx(high, abs=1e-9)
                assert row[folds_column] == pytest.approx(np.mean(c > 0))
                assert bool(row[f"beats_{baseline}"]) == (gain > np.std(c, ddof=1))
            own = _pair(comparison, baseline, protocol, "conv6").iloc[0]
            assert own[prefix] == 0 and not own[f"beats_{baseline}"]


def test_layer_density_world_nothing_beats_density(baseline_fits):
    """The drop is a function of layer 1's density: density beats global sparsity, and no set
    beats density; the summary says both, with the criterion."""
    result, _ = baseline_fits["density"]
    head = result.comparison[result.comparison["model"] == "mean"].set_index(
        ["feature_set", "protocol"])
    for protocol in PROTOCOLS:
        assert head.loc[("density", protocol), "beats_sparsity"]
        assert not head.xs(protocol, level="protocol")["beats_density"].any()
    for line in _verdicts(result.summary, "density"):
        assert "no feature set beats layer densities" in line, line
    for line in _verdicts(result.summary, "sparsity"):
        assert "`density` (+" in line and "beat(s) global sparsity alone" in line, line
        assert "95% CI [" in line
    assert "a set beats a baseline only when its gain exceeds that spread" in result.summary
    assert "Student-t interval" in result.summary


def test_topology_world_beats_density_and_effective_sparsity(baseline_fits):
    """The drop is a function of a topology feature independent of the densities: mge beats
    layer densities and effective sparsity under grouped and leave-one-method-out, and the
    summary says so."""
    result, _ = baseline_fits["topology"]
    head = result.comparison[(result.comparison["model"] == "mean")
                             & (result.comparison["feature_set"] == "mge")].set_index("protocol")
    for protocol in ("grouped", "leave-one-method-out"):
        assert head.loc[protocol, "beats_density"]
        assert head.loc[protocol, "beats_effective_sparsity"]
    for baseline, label in (("density", "layer densities"),
                            ("effective_sparsity", "effective sparsity")):
        lines = dict(zip(PROTOCOLS, _verdicts(result.summary, baseline), strict=True))
        for protocol in ("grouped", "leave-one-method-out"):
            assert lines[protocol].startswith(f"- **{protocol}**: `mge` (+"), lines[protocol]
            assert f"beat(s) {label}" in lines[protocol]


def test_a_baseline_without_values_is_reported_as_missing(fitted):
    """The synthetic runs of the module fixture have no densities: no gain over density, and
    the summary says why instead of a verdict."""
    _, result, _ = fitted
    assert result.comparison["gain_over_density"].isna().all()
    assert not result.comparison["beats_density"].any()
    for line in _verdicts(result.summary, "density"):
        assert "no comparison with layer densities" in line, line


def test_leave_one_category_out_leaves_the_other_protocols_unchanged(tmp_path):
    """Adding the protocol changes no prediction of the others (same folds, same tuning),
    and its folds each hold out one category: PaI methods predict DST ones."""
    runs = synthetic_runs(models=("conv6",), methods=["snip", "er", "rigl", "set"],
                          sparsities=(0.8, 0.98), with_dense=False)
    before = fit_study(runs, tmp_path / "a", feature_sets=["mge"], n_trials=1, jobs=1,
                       progress=False, save_models=False,
                       protocols=("random", "grouped", "leave-one-method-out"))
    after = fit_study(runs, tmp_path / "b", feature_sets=["mge"], n_trials=1, jobs=1,
                      progress=False, save_models=False)
    old = after.predictions[after.predictions["protocol"] != "leave-one-category-out"]
    pd.testing.assert_frame_equal(old.reset_index(drop=True), before.predictions)
    loco = after.predictions[after.predictions["protocol"] == "leave-one-category-out"]
    held = loco.groupby("fold")["method"].agg(set).to_dict()
    assert held == {"dst": {"rigl", "set"}, "pai-data": {"snip"}, "pai-data-free": {"er"}}
    assert sorted(loco.loc[loco["feature_set"] == "mge", "run_id"]) == sorted(runs["run_id"])
    rows = after.comparison[after.comparison["protocol"] == "leave-one-category-out"]
    assert set(rows["feature_set"]) >= {"sparsity", "mge"}
    assert "**leave-one-category-out**" in after.summary
    one_category = fit_study(runs[runs["method"].isin(["rigl", "set"])], tmp_path / "c",
                             feature_sets=["mge"], n_trials=1, jobs=1, progress=False,
                             save_models=False)
    assert "leave-one-category-out" not in set(one_category.comparison["protocol"])
    assert any("leave-one-category-out skipped (leave-one-category-out needs at least 2 "
               "method categories" in note for note in one_category.notes)


def test_separability_is_written_and_summarised(fitted):
    from sparsetopo.study.separability import SEPARABILITY_COLUMNS

    _, result, out = fitted
    table = pd.read_csv(out / "separability.csv")
    assert list(table.columns) == SEPARABILITY_COLUMNS
    assert set(table["target"]) == {"method", "category"}  # snip, grasp | synflow, er
    # sets with values only (the synthetic runs have no ramanujan or density column)
    assert set(table["feature_set"]) == {"sparsity", "mge"}
    assert "## Can topology tell methods and categories apart?" in result.summary
    pd.testing.assert_frame_equal(table, result.separability, check_dtype=False)
