"""Tests of the cross-validation protocols of the study (SPEC 6): ``sparsetopo.study.splits``."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import KFold

from sparsetopo.study import splits

METHODS = ["snip", "grasp", "synflow", "er"]
CONFIG = ["model", "dataset", "method", "sparsity"]


def runs_table(models=("conv6", "resnet20"), methods=METHODS, sparsities=(0.8, 0.9, 0.98),
               seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = [{"model": m, "dataset": "digits", "method": meth, "sparsity": s, "seed": k}
            for m, meth, s, k in itertools.product(models, methods, sparsities, seeds)]
    # shuffled, so that configurations are not contiguous blocks of rows
    return pd.DataFrame(rows).sample(frac=1.0, random_state=3).reset_index(drop=True)


def _configs(frame: pd.DataFrame) -> set[tuple]:
    return set(frame[CONFIG].itertuples(index=False, name=None))


def _tested_once(folds, n):
    tested = np.concatenate([te for _, _, te in folds])
    assert sorted(tested.tolist()) == list(range(n))  # every row tested exactly once
    for _, tr, te in folds:
        assert len(np.intersect1d(tr, te)) == 0
        assert sorted(np.concatenate([tr, te]).tolist()) == list(range(n))


# ---------------------------------------------------------------------------------- random
def test_random_is_plain_shuffled_kfold():
    runs = runs_table()
    folds = splits.splits(runs, "random", folds=5, seed=7)
    assert len(folds) == 5
    _tested_once(folds, len(runs))
    expected = KFold(n_splits=5, shuffle=True, random_state=7).split(np.zeros((len(runs), 1)))
    for (_, tr, te), (etr, ete) in zip(folds, expected, strict=True):
        np.testing.assert_array_equal(tr, etr)
        np.testing.assert_array_equal(te, ete)
    # seeds of one configuration may be split across folds (the paper's setting)
    fold_of = np.empty(len(runs), int)
    for k, (_, _, te) in enumerate(folds):
        fold_of[te] = k
    assert (runs.assign(fold=fold_of).groupby(CONFIG)["fold"].nunique() > 1).any()
    # folds capped at the number of rows
    assert len(splits.splits(runs.iloc[:3], "random", folds=5)) == 3


# ---------------------------------------------------------------------------------- grouped
@pytest.mark.parametrize("seed", [0, 1, 5])
def test_grouped_keeps_configurations_together(seed):
    runs = runs_table()
    folds = splits.splits(runs, "grouped", folds=5, seed=seed)
    assert len(folds) == 5
    _tested_once(folds, len(runs))
    seen: dict[tuple, int] = {}
    for k, (_, _, te) in enumerate(folds):
        for config in _configs(runs.iloc[te]):
            assert seen.setdefault(config, k) == k, f"{config} in folds {seen[config]} and {k}"
    for _, tr, te in folds:
        assert not _configs(runs.iloc[tr]) & _configs(runs.iloc[te])
    # the same (method, sparsity) of another model is another configuration
    assert len(seen) == 2 * 4 * 3


def test_grouped_fewer_configurations_than_folds():
    runs = runs_table(models=("conv6",), methods=["snip", "er"], sparsities=(0.9,))
    folds = splits.splits(runs, "grouped", folds=5)
    assert len(folds) == 2
    _tested_once(folds, len(runs))
    assert [set(runs.iloc[te]["method"]) for _, _, te in folds] in (
        [{"snip"}, {"er"}], [{"er"}, {"snip"}])


# ---------------------------------------------------------------------------------- lomo
def test_leave_one_method_out_one_split_per_method():
    runs = runs_table()
    folds = splits.splits(runs, "leave-one-method-out", folds=5)
    assert sorted(name for name, _, _ in folds) == sorted(METHODS)
    _tested_once(folds, len(runs))
    for name, tr, te in folds:
        expected_test = np.flatnonzero(runs["method"].to_numpy() == name)
        np.testing.assert_array_equal(np.sort(te), expected_test)
        np.testing.assert_array_equal(np.sort(tr), np.flatnonzero(runs["method"] != name))
        assert name not in set(runs.iloc[tr]["method"])
        assert set(runs.iloc[tr]["method"]) == set(METHODS) - {name}


def test_inner_folds_of_lomo_never_see_the_held_out_method():
    runs = runs_table()
    for held_out, tr, _ in splits.splits(runs, "leave-one-method-out"):
        part = runs.iloc[tr].reset_index(drop=True)
        inner = splits.inner_splits(runs.iloc[tr], "leave-one-method-out", folds=3, seed=0)
        assert len(inner) == len(METHODS) - 1
        inner_held = []
        for itr, ite in inner:
            assert held_out not in set(part.iloc[itr]["method"])
            assert held_out not in set(part.iloc[ite]["method"])
            test_methods = set(part.iloc[ite]["method"])
            assert len(test_methods) == 1  # each inner fold holds out exactly one method
            (m,) = test_methods
            np.testing.assert_array_equal(np.sort(ite),
                                          np.flatnonzero(part["method"].to_numpy() == m))
            assert m not in set(part.iloc[itr]["method"])
            inner_held.append(m)
        assert sorted(inner_held) == sorted(set(METHODS) - {held_out})


def test_leave_one_method_out_spans_every_category_with_controls_held_with_their_method():
    runs = runs_table(methods=["snip", "er", "rigl", "set"])
    control = runs[runs["method"] == "snip"].assign(method="snip+layer-shuffle")
    runs = pd.concat([runs, control], ignore_index=True)
    runs["base_method"] = runs["method"].str.split("+").str[0]
    folds = splits.splits(runs, "leave-one-method-out")
    assert sorted(name for name, _, _ in folds) == ["er", "rigl", "set", "snip"]
    held = {name: set(runs.iloc[te]["method"]) for name, _, te in folds}
    assert held["snip"] == {"snip", "snip+layer-shuffle"}
    assert held["rigl"] == {"rigl"}
    _tested_once(folds, len(runs))


# ---------------------------------------------------------------------------------- loco
#: A hand-built expectation: the category of each method (the paper's three).
HAND_CATEGORIES = {"snip": "pai-data", "grasp": "pai-data", "er": "pai-data-free",
                   "synflow": "pai-data-free", "rigl": "dst", "itop": "dst",
                   "snip+fanin-shuffle": "pai-data"}


def loco_table() -> pd.DataFrame:
    runs = runs_table(methods=["snip", "grasp", "er", "synflow", "rigl", "itop",
                               "snip+fanin-shuffle"])
    runs["base_method"] = runs["method"].str.split("+").str[0]
    return runs


def test_leave_one_category_out_against_a_hand_built_expectation():
    runs = loco_table()
    folds = splits.splits(runs, "leave-one-category-out", folds=5)
    assert [name for name, _, _ in folds] == ["dst", "pai-data", "pai-data-free"]
    _tested_once(folds, len(runs))
    expected = runs["method"].map(HAND_CATEGORIES).to_numpy()
    for name, tr, te in folds:
        np.testing.assert_array_equal(np.sort(te), np.flatnonzero(expected == name))
        np.testing.assert_array_equal(np.sort(tr), np.flatnonzero(expected != name))
    held = {name: set(runs.iloc[te]["method"]) for name, _, te in folds}
    assert held == {"dst": {"rigl", "itop"}, "pai-data": {"snip", "grasp", "snip+fanin-shuffle"},
                    "pai-data-free": {"er", "synflow"}}
    # a stored category column is used as it is (here: one that disagrees on purpose)
    relabelled = runs.assign(category=np.where(runs["method"] == "er", "dst", expected))
    folds = splits.splits(relabelled, "leave-one-category-out")
    held = {name: set(relabelled.iloc[te]["method"]) for name, _, te in folds}
    assert held["dst"] == {"rigl", "itop", "er"} and held["pai-data-free"] == {"synflow"}


def test_inner_folds_of_loco_leave_one_category_out_too():
    runs = loco_table()
    expected = runs["method"].map(HAND_CATEGORIES)
    for held_out, tr, _ in splits.splits(runs, "leave-one-category-out"):
        part = expected.iloc[tr].reset_index(drop=True)
        inner = splits.inner_splits(runs.iloc[tr], "leave-one-category-out", folds=3)
        assert len(inner) == 2
        assert sorted(set(part.iloc[ite]).pop() for _, ite in inner) == sorted(
            set(HAND_CATEGORIES.values()) - {held_out})
        for itr, ite in inner:
            assert held_out not in set(part.iloc[itr]) | set(part.iloc[ite])
            assert len(set(part.iloc[ite])) == 1
            assert not set(part.iloc[ite]) & set(part.iloc[itr])
    # a training part of one category is not tuned
    pai = runs[runs["method"].isin(["snip", "grasp", "er"])]
    [(_, tr, _), _] = splits.splits(pai, "leave-one-category-out")
    assert splits.inner_splits(pai.iloc[tr], "leave-one-category-out") == []


def test_leave_one_category_out_needs_two_categories_and_known_methods():
    runs = loco_table()
    pai_data = runs[runs["method"].isin(["snip", "grasp"])]
    with pytest.raises(ValueError, match=r"leave-one-category-out needs at least 2 method "
                                         r"categories, got 1: \['pai-data'\]"):
        splits.splits(pai_data, "leave-one-category-out")
    with pytest.raises(ValueError, match=r"no method category for \['mine'\]"):
        splits.splits(runs.assign(method=runs["method"].replace("er", "mine")),
                      "leave-one-category-out")


def test_inner_folds_of_grouped_keep_configurations_together():
    runs = runs_table()
    for _, tr, te in splits.splits(runs, "grouped", folds=4, seed=2):
        part = runs.iloc[tr].reset_index(drop=True)
        inner = splits.inner_splits(runs.iloc[tr], "grouped", folds=3, seed=2)
        assert len(inner) == 3
        tested = np.sort(np.concatenate([ite for _, ite in inner]))
        np.testing.assert_array_equal(tested, np.arange(len(part)))
        outer_test = _configs(runs.iloc[te])
        for itr, ite in inner:
            assert not _configs(part.iloc[itr]) & _configs(part.iloc[ite])
            assert not _configs(part) & outer_test
            assert max(itr.max(), ite.max()) < len(part)  # positions into the part


def test_inner_splits_empty_when_impossible():
    runs = runs_table(models=("conv6",), methods=["snip"], sparsities=(0.9,))
    assert splits.inner_splits(runs, "leave-one-method-out") == []
    assert splits.inner_splits(runs, "grouped") == []
    assert splits.inner_splits(runs.iloc[:1], "random") == []


# ---------------------------------------------------------------------------------- errors
def test_bad_protocols_and_too_few_groups():
    runs = runs_table()
    with pytest.raises(ValueError, match=r"unknown protocol 'loo'.*random, grouped, "
                                         r"leave-one-method-out, leave-one-category-out"):
        splits.splits(runs, "loo")
    one_method = runs[runs["method"] == "snip"]
    with pytest.raises(ValueError, match=r"leave-one-method-out needs at least 2 pruning "
                                         r"methods, got 1: \['snip'\]"):
        splits.splits(one_method, "leave-one-method-out")
    one_config = one_method[(one_method["sparsity"] == 0.9) & (one_method["model"] == "conv6")]
    with pytest.raises(ValueError, match="grouped K-fold needs at least 2 configurations"):
        splits.splits(one_config, "grouped")
    with pytest.raises(ValueError, match="random K-fold needs at least 2 runs, got 1"):
        splits.splits(runs.iloc[:1], "random")


def test_inner_splits_rejects_unknown_protocol():
    """An unknown protocol is a caller's error, not a part that "cannot be split": it must not
    silently turn tuning off (``[]`` means: nothing is tuned)."""
    with pytest.raises(ValueError, match="unknown protocol 'nope'"):
        splits.inner_splits(runs_table(), "nope")
