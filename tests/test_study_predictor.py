"""Tests of the study's predictor (SPEC 6): ``sparsetopo.study.predictor`` (XGBoost trees,
Optuna tuning, JSON model files) and the SHAP values of ``sparsetopo.study.fit``."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import xgboost

from sparsetopo.study import predictor
from sparsetopo.study.fit import shap_values
from sparsetopo.study.predictor import DEFAULT_PARAMS, TreeParams


def _data(n=100, p=5, seed=2, missing=0.1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    x[rng.random(x.shape) < missing] = np.nan
    y = np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) ** 2 + 0.1 * rng.normal(size=n)
    return x, y


def _regressor(**params) -> xgboost.XGBRegressor:
    return xgboost.XGBRegressor(tree_method="exact", n_jobs=1, **params)


def test_default_params_are_the_documented_ones():
    assert asdict(DEFAULT_PARAMS) == {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.05,
                                      "subsample": 0.8, "colsample_bytree": 1.0,
                                      "min_child_weight": 1.0, "reg_lambda": 1.0}


def test_train_with_default_params_is_the_xgbregressor_model():
    x, y = _data()
    ours = predictor.predict(predictor.train(x, y, DEFAULT_PARAMS, seed=0), x)
    reference = _regressor(n_estimators=300, max_depth=4, learning_rate=0.05, subsample=0.8,
                           colsample_bytree=1.0, min_child_weight=1.0, reg_lambda=1.0,
                           random_state=0)
    expected = reference.fit(x, y).predict(x)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)
    x_new, _ = _data(n=20, seed=9)
    np.testing.assert_allclose(predictor.predict(predictor.train(x, y, seed=0), x_new),
                               reference.predict(x_new), rtol=1e-6, atol=1e-6)


def test_train_with_other_params_and_seed_is_the_xgbregressor_model():
    x, y = _data(seed=4)
    params = TreeParams(n_estimators=40, max_depth=3, learning_rate=0.2, subsample=0.7,
                        colsample_bytree=0.8, min_child_weight=2.0, reg_lambda=0.5)
    ours = predictor.predict(predictor.train(x, y, params, seed=3), x)
    reference = _regressor(random_state=3, **asdict(params)).fit(x, y)
    np.testing.assert_allclose(ours, reference.predict(x), rtol=1e-6, atol=1e-6)
    other_seed = predictor.predict(predictor.train(x, y, params, seed=4), x)
    assert not np.allclose(ours, other_seed)  # subsampling follows the seed


def test_monotone_constraint_gives_non_decreasing_predictions():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(200, 1))
    y = x[:, 0] + 0.4 * np.sin(25 * x[:, 0]) + 0.3 * rng.normal(size=200)  # noisy, wiggly
    grid = np.linspace(-0.1, 1.1, 400)[:, None]
    params = TreeParams(n_estimators=100, max_depth=5, learning_rate=0.3, subsample=1.0)
    free = predictor.predict(predictor.train(x, y, params), grid)
    assert (np.diff(free) < -1e-9).any()  # unconstrained trees follow the noise
    up = predictor.predict(predictor.train(x, y, params, monotone=[1]), grid)
    assert (np.diff(up) >= -1e-9).all()
    down = predictor.predict(predictor.train(x, -y, params, monotone=[-1]), grid)
    assert (np.diff(down) <= 1e-9).all()
    # all-zero constraints = no constraint
    np.testing.assert_allclose(predictor.predict(predictor.train(x, y, params, monotone=[0]),
                                                 grid), free)


def _folds(n, k=3, seed=0):
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, k)
    return [(np.concatenate(parts[:i] + parts[i + 1:]), parts[i]) for i in range(k)]


def test_tune_without_folds_returns_defaults():
    x, y = _data(n=30)
    assert predictor.tune(x, y, [], n_trials=5) == DEFAULT_PARAMS
    model, params = predictor.fit_tuned(x, y, [], n_trials=3, seed=0)
    assert params == DEFAULT_PARAMS
    np.testing.assert_array_equal(predictor.predict(model, x),
                                  predictor.predict(predictor.train(x, y), x))
    with pytest.raises(ValueError, match="n_trials must be >= 1"):
        predictor.tune(x, y, _folds(30), n_trials=0)


def test_tune_is_deterministic_for_a_seed():
    x, y = _data(n=60)
    folds = _folds(60)
    first = predictor.tune(x, y, folds, n_trials=4, seed=1)
    again = predictor.tune(x, y, folds, n_trials=4, seed=1)
    assert first == again
    assert isinstance(first, TreeParams)
    assert 1 <= first.n_estimators <= predictor.MAX_TREES
    assert 2 <= first.max_depth <= 6 and 0.6 <= first.subsample <= 1.0
    one = predictor.tune(x, y, folds, n_trials=1, seed=1)
    # the first trial is the default configuration (its tree count found by early stopping)
    assert asdict(one) | {"n_estimators": 300} == asdict(DEFAULT_PARAMS)


def test_save_and_load_round_trip_is_json(tmp_path):
    x, y = _data(n=50)
    model = predictor.train(x, y, TreeParams(n_estimators=30), seed=0)
    path = tmp_path / "sub" / "model.json"
    predictor.save_model(model, path)
    with open(path) as handle:
        content = json.load(handle)  # XGBoost JSON, no pickle
    assert "learner" in content
    loaded = predictor.load_model(path)
    np.testing.assert_array_equal(predictor.predict(loaded, x), predictor.predict(model, x))
    assert [p.name for p in path.parent.iterdir()] == ["model.json"]  # no temporary left
    for bad in ("model.ubj", "model.pkl", "model"):
        with pytest.raises(ValueError, match=r"must end in \.json"):
            predictor.save_model(model, tmp_path / bad)
        assert not (tmp_path / bad).exists()


def test_shap_values_equal_xgboost_pred_contribs():
    x, y = _data(n=80, p=4, seed=1)
    model = predictor.train(x, y, TreeParams(n_estimators=30), seed=0)
    values = shap_values(model, x)
    contribs = model.predict(xgboost.DMatrix(x, missing=np.nan), pred_contribs=True)
    assert values.shape == (80, 4)
    np.testing.assert_allclose(values, contribs[:, :-1], atol=1e-5)
    np.testing.assert_allclose(values.sum(axis=1) + contribs[:, -1], predictor.predict(model, x),
                               atol=1e-4)
