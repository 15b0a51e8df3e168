"""The study's predictor: XGBoost regression trees whose hyper-parameters Optuna tunes on inner
folds of the training data only (``docs/study.md``, *Predictor*).

Model: XGBoost with ``tree_method="exact"`` (a (model, dataset) pair has about a hundred
networks: exact greedy splits cost less per tree than histograms there, measured 0.58 against
0.69 ms per tree on 84 rows x 60 features), squared error, NaN = missing, 1 thread, seeded; it
is the model ``XGBRegressor(tree_method="exact", **params)`` would fit. Optional monotone constraints
(:data:`sparsetopo.study.vocabulary.MONOTONE_DIRECTIONS`).

Tuning (:func:`tune`): Optuna's TPE sampler, seeded, over a compact space (depth, learning
rate, row and column subsampling, minimum child weight, L2); the first trial is
:data:`DEFAULT_PARAMS` (300 trees, depth 4, learning rate 0.05, subsample 0.8). The number of
trees is not searched: each inner fold adds up to :data:`MAX_TREES` trees, scores its
validation part every :data:`CHECK_EVERY` trees and stops after :data:`EARLY_STOPPING` trees
without improvement; a trial scores the mean best validation MSE, and the tuned model gets the
mean of the folds' best tree counts. Training the
final model on the whole training part then costs one fit.

References
----------
Chen, T., Guestrin, C. (2016). XGBoost: A Scalable Tree Boosting System. KDD.

Akiba, T., Sano, S., Yanase, T., Ohta, T., Koyama, M. (2019). Optuna: A Next-generation
Hyperparameter Optimization Framework. KDD.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import optuna
import xgboost as xgb

from sparsetopo.errors import FitError, InputError
from sparsetopo.io import atomic_path

MAX_TREES = 200
EARLY_STOPPING = 20
CHECK_EVERY = 5


@dataclass(frozen=True)
class TreeParams:
    """Hyper-parameters of the regressor, in ``XGBRegressor`` names.

    Parameters
    ----------
    n_estimators : int
        Trees.
    max_depth : int
        Depth of a tree.
    learning_rate : float
        Shrinkage of every tree (``eta``).
    subsample : float
        Fraction of the rows each tree sees.
    colsample_bytree : float
        Fraction of the features each tree sees.
    min_child_weight : float
        Minimum hessian sum of a leaf.
    reg_lambda : float
        L2 regularisation of the leaf values.
    """

    n_estimators: int = 300
    max_depth: int = 4
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 1.0
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0

    def booster_params(self, seed: int, monotone: Sequence[int] | None = None) -> dict:
        """These hyper-parameters as ``xgboost.train`` parameters (exact greedy splits, squared
        error, one thread, ``seed``; ``monotone``: one direction -1, 0 or 1 per feature)."""
        params = {
            "tree_method": "exact",
            "objective": "reg:squarederror",
            "nthread": 1,
            "seed": seed,
            "max_depth": int(self.max_depth),
            "eta": float(self.learning_rate),
            "subsample": float(self.subsample),
            "colsample_bytree": float(self.colsample_bytree),
            "min_child_weight": float(self.min_child_weight),
            "lambda": float(self.reg_lambda),
        }
        if monotone is not None and any(monotone):
            params["monotone_constraints"] = "(" + ",".join(str(int(m)) for m in monotone) + ")"
        return params


DEFAULT_PARAMS = TreeParams()


def _matrix(x: np.ndarray, y: np.ndarray | None = None) -> xgb.DMatrix:
    return xgb.DMatrix(x, label=y, missing=np.nan, nthread=1)


def train(x: np.ndarray, y: np.ndarray, params: TreeParams = DEFAULT_PARAMS, *, seed: int = 0,
          monotone: Sequence[int] | None = None) -> xgb.Booster:
    """Fit ``params.n_estimators`` gradient-boosted trees to ``(x, y)``.

    Parameters
    ----------
    x : numpy.ndarray
        Features (NaN = missing).
    y : numpy.ndarray
        Target.
    params : TreeParams
        Hyper-parameters.
    seed : int
        Seed of the row and column subsampling.
    monotone : sequence of int, optional
        Monotone constraint of every feature (-1, 0, 1).

    Returns
    -------
    xgboost.Booster
        The fitted model.

    References
    ----------
    Chen, T., Guestrin, C. (2016). XGBoost: A Scalable Tree Boosting System. *KDD*.
    """
    return xgb.train(params.booster_params(seed, monotone), _matrix(x, y),
                     num_boost_round=int(params.n_estimators))


def predict(model: xgb.Booster, x: np.ndarray) -> np.ndarray:
    """Predictions of ``model`` on ``x`` (NaN = missing), as float64."""
    return model.predict(_matrix(x)).astype(np.float64)


def _suggest(trial: optuna.Trial) -> TreeParams:
    return TreeParams(
        n_estimators=MAX_TREES,
        max_depth=trial.suggest_int("max_depth", 2, 6),
        learning_rate=trial.suggest_float("learning_rate", 0.04, 0.3, log=True),
        subsample=trial.suggest_float("subsample", 0.6, 1.0),
        colsample_bytree=trial.suggest_float("colsample_bytree", 0.5, 1.0),
        min_child_weight=trial.suggest_float("min_child_weight", 1.0, 8.0, log=True),
        reg_lambda=trial.suggest_float("reg_lambda", 0.1, 10.0, log=True),
    )


def _fold_score(train_m: xgb.DMatrix, valid_x: np.ndarray, valid_y: np.ndarray,
                params: TreeParams, seed: int, monotone) -> tuple[float, int]:
    """(validation MSE at the best checkpoint, its number of trees): trees are added one at a
    time and scored every :data:`CHECK_EVERY`; training stops after :data:`EARLY_STOPPING`
    trees without improvement. (A hand loop: xgboost's callback machinery costs more than the
    trees themselves on a hundred rows.)"""
    booster = xgb.Booster(params.booster_params(seed, monotone), [train_m])
    valid = _matrix(valid_x)
    best, best_n = np.inf, CHECK_EVERY
    for i in range(MAX_TREES):
        booster.update(train_m, i)
        if (i + 1) % CHECK_EVERY:
            continue
        mse = float(np.mean((booster.predict(valid) - valid_y) ** 2))
        if mse < best:
            best, best_n = mse, i + 1
        elif i + 1 - best_n >= EARLY_STOPPING:
            break
    return best, best_n


def tune(x: np.ndarray, y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]], *,
         n_trials: int, seed: int = 0, monotone: Sequence[int] | None = None) -> TreeParams:
    """Hyper-parameters minimising the mean validation MSE over inner folds (Optuna's TPE).

    Parameters
    ----------
    x : numpy.ndarray
        Features, rows x features (NaN = missing).
    y : numpy.ndarray
        Target.
    folds : sequence of (numpy.ndarray, numpy.ndarray)
        ``(train, validation)`` positions into ``x``.
    n_trials : int
        Optuna trials, the first :data:`DEFAULT_PARAMS`.
    seed : int
        Seed of the sampler and of the trees.
    monotone : sequence of int, optional
        Monotone constraint of every feature (-1, 0, 1).

    Returns
    -------
    TreeParams
        The best trial's, with the mean of the folds' best tree counts;
        :data:`DEFAULT_PARAMS` when there is no fold to validate on.

    Raises
    ------
    InputError
        ``n_trials`` below 1.

    References
    ----------
    Akiba, T., Sano, S., Yanase, T., Ohta, T., Koyama, M. (2019). Optuna: A Next-generation
    Hyperparameter Optimization Framework. *KDD*.
    """
    if n_trials < 1:
        raise InputError(f"n_trials must be >= 1, got {n_trials}")
    if not folds:
        return DEFAULT_PARAMS
    data = [(_matrix(x[tr], y[tr]), x[te], y[te]) for tr, te in folds]

    def objective(trial: optuna.Trial) -> float:
        params = _suggest(trial)
        scores = [_fold_score(t, vx, vy, params, seed, monotone) for t, vx, vy in data]
        trial.set_user_attr("n_estimators", int(round(np.mean([n for _, n in scores]))))
        return float(np.mean([s for s, _ in scores]))

    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    first = asdict(DEFAULT_PARAMS)
    first.pop("n_estimators")
    study.enqueue_trial(first)
    study.optimize(objective, n_trials=n_trials)
    best = study.best_trial
    return replace(_suggest(optuna.trial.FixedTrial(best.params)),
                   n_estimators=best.user_attrs["n_estimators"])


def fit_tuned(x: np.ndarray, y: np.ndarray, folds, *, n_trials: int, seed: int = 0,
              monotone: Sequence[int] | None = None) -> tuple[xgb.Booster, TreeParams]:
    """:func:`tune` on ``folds``, then one model trained on all of ``(x, y)``."""
    params = tune(x, y, folds, n_trials=n_trials, seed=seed, monotone=monotone)
    return train(x, y, params, seed=seed, monotone=monotone), params


def save_model(model: xgb.Booster, path: str | os.PathLike) -> None:
    """Write ``model`` as XGBoost JSON (no pickle; ``path`` must end in ``.json``),
    atomically."""
    if Path(path).suffix != ".json":
        raise FitError(f"{path}: a model file must end in .json (XGBoost's JSON format)")
    with atomic_path(path) as tmp:  # the temporary name keeps the .json suffix
        model.save_model(os.fspath(tmp))


def load_model(path: str | os.PathLike) -> xgb.Booster:
    """Read a model written by :func:`save_model`."""
    booster = xgb.Booster()
    booster.load_model(os.fspath(path))
    return booster


def params_json(params: TreeParams) -> str:
    return json.dumps(asdict(params), sort_keys=True)
