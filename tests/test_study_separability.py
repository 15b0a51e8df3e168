"""How well feature sets tell methods and categories apart (``study.separability``), on
synthetic runs whose answer is known by construction: one set identifies the category
(shared by the methods of a category), one identifies the method, one is noise, and global
sparsity is constant at a case."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from sparsetopo.study.feature_sets import resolve_feature_sets
from sparsetopo.study.separability import (
    SEPARABILITY_COLUMNS,
    case_splits,
    classify,
    separability,
)
from sparsetopo.study.vocabulary import RAMANUJAN_KEYS

METHODS = {"uniform": "pai-data-free", "er": "pai-data-free", "snip": "pai-data",
           "grasp": "pai-data", "rigl": "dst", "set": "dst"}
CATEGORY_INDEX = {"pai-data-free": 0, "pai-data": 1, "dst": 2}
SETS = resolve_feature_sets(["paths", "ramanujan", "mge"])  # + sparsity, density, eff. sparsity


def synthetic_runs(seeds=(0, 1, 2), sparsities=(0.9, 0.98), seed=0) -> pd.DataFrame:
    """``paths.*``: the category (+ small noise); ``ramanujan.*``: one indicator column per
    method (+ small noise); ``mge.motifs`` and ``density.*``: noise; ``sparsity``: the level."""
    rng = np.random.default_rng(seed)
    rows = []
    for model, sparsity, (method, category), s in itertools.product(
            ("conv6", "resnet20"), sparsities, METHODS.items(), seeds):
        row = {"model": model, "dataset": "digits", "method": method, "sparsity": sparsity,
               "seed": s, "accuracy_drop": rng.normal(),
               "paths.log10_paths": CATEGORY_INDEX[category] + 0.05 * rng.normal(),
               "paths.effective_density": 0.5 * CATEGORY_INDEX[category] + 0.05 * rng.normal(),
               "mge.motifs": rng.normal(), "density.conv1": rng.normal(),
               "density.global": 1 - sparsity + 1e-3 * rng.normal()}
        for key, m in zip(RAMANUJAN_KEYS, METHODS, strict=False):
            row[f"ramanujan.{key}"] = float(m == method) + 0.05 * rng.normal()
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table():
    notes: list[str] = []
    out = separability(synthetic_runs(), SETS, folds=5, seed=0, notes=notes)
    return out, notes


def _mean(table, target, split, name) -> pd.Series:
    row = table[(table["model"] == "mean") & (table["target"] == target)
                & (table["split"] == split) & (table["feature_set"] == name)]
    assert len(row) == 1, (target, split, name)
    return row.iloc[0]


def test_columns_and_cases(table):
    out, _ = table
    assert list(out.columns) == SEPARABILITY_COLUMNS
    cases = out[out["model"] != "mean"]
    # 2 models x 2 sparsities; method: seed split; category: seed and method splits
    assert set(map(tuple, cases[["target", "split"]].drop_duplicates().to_numpy())) == {
        ("method", "seed"), ("category", "seed"), ("category", "method")}
    assert (cases.groupby(["target", "split", "feature_set"]).size() == 4).all()
    seed_rows = cases[cases["split"] == "seed"]
    assert (seed_rows["n"] == 18).all() and (seed_rows["folds"] == 3).all()
    assert (cases.loc[cases["target"] == "method", "classes"] == 6).all()
    assert (cases.loc[cases["target"] == "category", "classes"] == 3).all()
    np.testing.assert_allclose(cases["chance"], 1 / cases["classes"])
    method_split = cases[cases["split"] == "method"]
    assert (method_split["folds"] == 6).all()  # one per held-out method


def test_known_answers(table):
    out, _ = table
    # the category signal identifies the category, with seeds or whole methods held out
    assert _mean(out, "category", "seed", "paths")["balanced_accuracy"] == 1.0
    assert _mean(out, "category", "method", "paths")["balanced_accuracy"] == 1.0
    # method indicators identify the method...
    assert _mean(out, "method", "seed", "ramanujan")["balanced_accuracy"] == 1.0
    # ... but say nothing of the category of a method never seen
    assert _mean(out, "category", "method", "ramanujan")["balanced_accuracy"] < 0.6
    # the category signal cannot tell the two methods of a category apart: about 1/2
    assert 0.3 < _mean(out, "method", "seed", "paths")["balanced_accuracy"] < 0.7
    # noise: near chance
    for target, split in (("method", "seed"), ("category", "seed"), ("category", "method")):
        noise = _mean(out, target, split, "mge")
        assert noise["balanced_accuracy"] < noise["chance"] + 0.2
    # a constant feature (the sparsity at one case) predicts one label: exactly chance
    cases = out[(out["model"] != "mean") & (out["feature_set"] == "sparsity")]
    np.testing.assert_allclose(cases["balanced_accuracy"], cases["chance"])


def test_gains_are_taken_case_by_case(table):
    out, _ = table
    cases = out[out["model"] != "mean"]
    key = ["target", "split", "model", "dataset", "sparsity"]
    for reference in ("sparsity", "density"):
        ref = cases[cases["feature_set"] == reference].set_index(key)["balanced_accuracy"]
        expected = cases["balanced_accuracy"].to_numpy() - ref.loc[
            pd.MultiIndex.from_frame(cases[key])].to_numpy()
        np.testing.assert_allclose(cases[f"gain_over_{reference}"], expected)
    np.testing.assert_allclose(cases["gain_over_chance"],
                               cases["balanced_accuracy"] - cases["chance"])
    mean = _mean(out, "category", "seed", "paths")
    part = cases[(cases["target"] == "category") & (cases["split"] == "seed")
                 & (cases["feature_set"] == "paths")]
    assert mean["cases"] == 4
    assert mean["balanced_accuracy"] == pytest.approx(part["balanced_accuracy"].mean())
    assert mean["cases_above_density"] == pytest.approx((part["gain_over_density"] > 0).mean())


def test_balanced_accuracy_by_hand():
    """One case, recomputed: leave one seed out, the classifier, then the mean recall over
    labels written out."""
    runs = synthetic_runs(seeds=(0, 1), sparsities=(0.9,))
    case = runs[runs["model"] == "conv6"].reset_index(drop=True)
    out = separability(case, resolve_feature_sets(["paths"]), folds=5)
    got = out[(out["model"] == "conv6") & (out["target"] == "method")
              & (out["feature_set"] == "paths")]["balanced_accuracy"].item()
    x = case[["paths.effective_density", "paths.log10_paths"]].to_numpy()
    y = case["method"].to_numpy()
    predicted = np.empty(len(y), dtype=object)
    for held in (0, 1):
        test = case["seed"].to_numpy() == held
        predicted[test] = classify(x[~test], y[~test], x[test])
    recalls = [np.mean(predicted[y == label] == label) for label in np.unique(y)]
    assert got == pytest.approx(np.mean(recalls))


def test_splits_of_one_seed_and_of_methods():
    runs = synthetic_runs(seeds=(0, 1, 2), sparsities=(0.9,))
    case = runs[runs["model"] == "conv6"].reset_index(drop=True)
    one_seed = case[case["seed"] == 0].reset_index(drop=True)
    y = one_seed["method"].to_numpy()
    assert case_splits(one_seed, y, "method", 5, 0) == []  # one run per method: no split
    doubled = pd.concat([one_seed, one_seed.assign(run="b")], ignore_index=True)
    [(split, rows, folds)] = case_splits(doubled, doubled["method"].to_numpy(), "method", 5, 0)
    assert split == "stratified" and len(folds) == 2 and len(rows) == 12
    # more seeds than folds: grouped K-fold, each seed in one test fold
    many = pd.concat([case.assign(seed=case["seed"] + 3 * k) for k in range(3)],
                     ignore_index=True)
    [(split, _, folds)] = case_splits(many, many["method"].to_numpy(), "method", 4, 0)
    assert split == "seed" and len(folds) == 4
    for _, test in folds:
        held = set(many["seed"].to_numpy()[test])
        assert not held & set(many["seed"].to_numpy()[np.setdiff1d(np.arange(len(many)),
                                                                      test)])
    # the category, methods held out: only categories with >= 2 methods; controls go with
    # their method
    lone = case[case["method"] != "set"].copy()
    lone["base_method"] = lone["method"]
    control = lone[lone["method"] == "snip"].assign(method="snip+layer-shuffle")
    lone = pd.concat([lone, control], ignore_index=True)
    y = np.array([METHODS[m.split("+")[0]] for m in lone["method"]])
    splits = dict((s, (r, f)) for s, r, f in case_splits(lone, y, "category", 5, 0))
    rows, folds = splits["method"]
    assert set(y[rows]) == {"pai-data-free", "pai-data"}  # dst has one method left: out
    held = [set(lone["base_method"].to_numpy()[rows][test]) for _, test in folds]
    assert sorted(map(sorted, held)) == [["er"], ["grasp"], ["snip"], ["uniform"]]


def test_categories_unknown_or_single_are_skipped_with_a_note():
    runs = synthetic_runs(seeds=(0, 1), sparsities=(0.9,))
    notes: list[str] = []
    out = separability(runs.assign(method=runs["method"] + "x"), SETS, notes=notes)
    assert set(out["target"]) == {"method"}
    assert any("separability of categories skipped" in n for n in notes)
    notes = []
    pai = runs[runs["method"].isin(["uniform", "er"])]
    out = separability(pai, SETS, notes=notes)
    assert set(out["target"]) == {"method"}
    assert any("fewer than 2 categories" in n for n in notes)
