"""Predict the accuracy drop of sparse networks from their topology (SPEC section 6).

For each feature set (:mod:`sparsetopo.study.features_sets`) an XGBoost regressor predicts the
target (``accuracy_drop`` by default) of every pruned run, out of fold, under two protocols:

- ``grouped``: K-fold cross-validation (default 5) whose folds are unions of configurations
  (model, dataset, method, sparsity), so all seeds of one configuration are in the same fold;
- ``leave-one-method-out``: each pruning method is predicted by a model trained on the other
  methods only.

Hyper-parameters are tuned by Optuna (TPE, seeded) with an inner grouped K-fold (3 folds) on the
training part of each outer split only, so the held-out runs never influence the tuning. One
regressor is fitted on all (model, dataset) pairs together ("pooled"); R^2 and MAE are then
reported on the out-of-fold predictions of each (model, dataset) and of all runs. Features are
exactly the columns of the set: neither the model, the dataset nor the sparsity is added.
Missing values (NaN, and infinities, which are read as NaN) are left to XGBoost's missing-value
handling. Models are trained with ``xgboost.train`` (the model ``XGBRegressor`` would fit, with
each inner fold's data matrix built once for all trials) on 1 thread by default.

Importance: ``shap.TreeExplainer`` (exact TreeSHAP, equal to XGBoost's ``pred_contribs``) on a
regressor fitted to all runs of the set with the same inner tuning; mean |SHAP| per feature,
overall, per sparsity and per model.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import xgboost as xgb
from tqdm.auto import tqdm

from sparsetopo.io import write_text as write_atomic
from sparsetopo.study.features_sets import FeatureSetsArg, feature_columns, resolve_feature_sets
from sparsetopo.study.ranking import check_methods, ranking_cases, summarize_ranking

GROUP_COLUMNS: tuple[str, ...] = ("model", "dataset", "method", "sparsity")
PROTOCOLS: tuple[str, ...] = ("grouped", "leave-one-method-out")
INNER_FOLDS = 3
# First Optuna trial: a conventional configuration, so that even a handful of trials includes it.
DEFAULT_PARAMS: dict[str, float | int] = {
    "n_estimators": 200,
    "max_depth": 4,
    "learning_rate": 0.1,
    "subsample": 1.0,
    "colsample_bytree": 1.0,
    "min_child_weight": 1.0,
    "reg_lambda": 1.0,
}
COMPARISON_COLUMNS = [
    "feature_set",
    "protocol",
    "model",
    "dataset",
    "n",
    "r2",
    "mae",
    "kendall_tau",
    "top1_hit",
]
IMPORTANCE_COLUMNS = ["feature_set", "feature", "scope", "scope_value", "mean_abs_shap"]
PREDICTION_COLUMNS = [
    "feature_set",
    "protocol",
    "run_id",
    "model",
    "dataset",
    "method",
    "sparsity",
    "seed",
    "measured",
    "predicted",
]
_ID_COLUMNS = ["run_id", "model", "dataset", "method", "sparsity", "seed"]


@dataclass
class FitResult:
    """Tables written by :func:`fit_study` (the same content as the files in ``out_dir``)."""

    out_dir: Path
    comparison: pd.DataFrame
    importance: pd.DataFrame
    predictions: pd.DataFrame
    summary: str
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------- splits
def group_ids(runs: pd.DataFrame, by: Sequence[str] = GROUP_COLUMNS) -> np.ndarray:
    """Integer id per row of its configuration ``by``; ids follow the sorted configurations."""
    keys = runs[list(by)].astype(str).agg("\x1f".join, axis=1).to_numpy()
    return np.unique(keys, return_inverse=True)[1].astype(np.int64)


def grouped_fold_ids(
    runs: pd.DataFrame, n_folds: int = 5, seed: int = 0, by: Sequence[str] = GROUP_COLUMNS
) -> np.ndarray:
    """Fold index (0..K-1) of every row, with K = min(n_folds, number of configurations).

    Configurations (distinct values of ``by``) are shuffled by ``numpy.random.default_rng(seed)``
    and dealt round-robin to the folds, so every row of one configuration (all its seeds) gets
    the same fold and fold sizes differ by at most one configuration. The result depends only
    on the set of configurations and the seed, not on the row order.
    """
    if n_folds < 2:
        raise ValueError(f"folds must be >= 2, got {n_folds}")
    ids = group_ids(runs, by)
    n_groups = int(ids.max()) + 1 if len(ids) else 0
    if n_groups < 2:
        raise ValueError(
            f"grouped cross-validation needs at least 2 configurations ({', '.join(by)}), "
            f"got {n_groups}"
        )
    k = min(n_folds, n_groups)
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    fold_of_group[np.random.default_rng(seed).permutation(n_groups)] = np.arange(n_groups) % k
    return fold_of_group[ids]


def grouped_splits(
    runs: pd.DataFrame, n_folds: int = 5, seed: int = 0
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(fold name, train row positions, test row positions)`` of the grouped K-fold."""
    folds = grouped_fold_ids(runs, n_folds, seed)
    return [
        (f"fold{k}", np.flatnonzero(folds != k), np.flatnonzero(folds == k))
        for k in range(int(folds.max()) + 1)
    ]


def leave_one_method_out_splits(runs: pd.DataFrame) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(method, train row positions, test row positions)``: test = the runs of ``method``,
    train = the runs of every other method. Needs at least 2 methods."""
    methods = runs["method"].astype(str).to_numpy()
    distinct = sorted(set(methods))
    if len(distinct) < 2:
        raise ValueError(
            f"leave-one-method-out needs at least 2 pruning methods, got {len(distinct)}: "
            f"{distinct}"
        )
    return [(m, np.flatnonzero(methods != m), np.flatnonzero(methods == m)) for m in distinct]


# ---------------------------------------------------------------------------------- model
def _matrix(x: np.ndarray, y: np.ndarray | None = None, n_jobs: int = 1) -> xgb.DMatrix:
    return xgb.DMatrix(x, label=y, missing=np.nan, nthread=n_jobs)


def train_model(
    x: np.ndarray | xgb.DMatrix,
    y: np.ndarray | None,
    params: dict,
    *,
    seed: int = 0,
    n_jobs: int = 1,
) -> xgb.Booster:
    """XGBoost regression trees (``tree_method="hist"``, squared error, NaN = missing) with
    ``params`` in ``XGBRegressor`` names (n_estimators, max_depth, learning_rate, subsample,
    colsample_bytree, min_child_weight, reg_lambda). It is the model ``XGBRegressor(**params)``
    fits; the native API lets the inner CV build each fold's data matrix once for all trials."""
    booster_params = {
        "tree_method": "hist",
        "objective": "reg:squarederror",
        "nthread": n_jobs,
        "seed": seed,
        "max_depth": int(params["max_depth"]),
        "eta": float(params["learning_rate"]),
        "subsample": float(params["subsample"]),
        "colsample_bytree": float(params["colsample_bytree"]),
        "min_child_weight": float(params["min_child_weight"]),
        "lambda": float(params["reg_lambda"]),
    }
    data = x if isinstance(x, xgb.DMatrix) else _matrix(x, y, n_jobs)
    return xgb.train(booster_params, data, num_boost_round=int(params["n_estimators"]))


def predict(model: xgb.Booster, x: np.ndarray) -> np.ndarray:
    """Predictions of ``model`` on ``x`` (NaN = missing), as float64."""
    return model.predict(_matrix(x, n_jobs=1)).astype(np.float64)


def _suggest(trial: optuna.Trial) -> dict:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 300, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 10.0, log=True),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }


def tune_params(
    x: np.ndarray,
    y: np.ndarray,
    runs: pd.DataFrame,
    *,
    n_trials: int = 20,
    seed: int = 0,
    inner_folds: int = INNER_FOLDS,
    n_jobs: int = 1,
) -> dict:
    """Hyper-parameters minimising the mean squared error of an inner grouped K-fold on
    ``(x, y)`` (rows of ``runs``); Optuna TPE seeded by ``seed``, first trial
    :data:`DEFAULT_PARAMS`. With fewer than 2 configurations there is nothing to validate on and
    :data:`DEFAULT_PARAMS` is returned."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    ids = group_ids(runs)
    n_groups = int(ids.max()) + 1 if len(ids) else 0
    if n_groups < 2:
        return dict(DEFAULT_PARAMS)
    folds = grouped_fold_ids(runs, min(inner_folds, n_groups), seed)
    inner = [
        (_matrix(x[folds != k], y[folds != k], n_jobs), x[folds == k], y[folds == k])
        for k in range(int(folds.max()) + 1)
    ]

    def objective(trial: optuna.Trial) -> float:
        params = _suggest(trial)
        errors = [
            float(
                np.mean(
                    (
                        predict(train_model(train, None, params, seed=seed, n_jobs=n_jobs), x_test)
                        - y_test
                    )
                    ** 2
                )
            )
            for train, x_test, y_test in inner
        ]
        return float(np.mean(errors))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(DEFAULT_PARAMS)
    study.optimize(objective, n_trials=n_trials)
    return dict(study.best_params)


def fit_tuned(
    x: np.ndarray,
    y: np.ndarray,
    runs: pd.DataFrame,
    *,
    n_trials: int,
    seed: int,
    n_jobs: int,
    inner_folds: int = INNER_FOLDS,
) -> xgb.Booster:
    """:func:`tune_params` on ``(x, y)``, then a model trained on all of ``(x, y)``."""
    params = tune_params(
        x, y, runs, n_trials=n_trials, seed=seed, inner_folds=inner_folds, n_jobs=n_jobs
    )
    return train_model(x, y, params, seed=seed, n_jobs=n_jobs)


# ---------------------------------------------------------------------------------- metrics
def regression_metrics(measured: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """``(r2, mae)``: R^2 = 1 - sum((y - p)^2) / sum((y - mean y)^2) (NaN when y is constant or
    n < 2), MAE = mean |y - p|."""
    y, p = np.asarray(measured, float), np.asarray(predicted, float)
    if len(y) == 0:
        return float("nan"), float("nan")
    mae = float(np.mean(np.abs(y - p)))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if len(y) < 2 or ss_tot == 0.0:
        return float("nan"), mae
    return 1.0 - float(np.sum((y - p) ** 2)) / ss_tot, mae


def _comparison_rows(
    name: str, protocol: str, predictions: pd.DataFrame, lower_is_better: bool
) -> list[dict]:
    cases = ranking_cases(predictions, lower_is_better=lower_is_better)
    scopes = [
        (str(model), str(dataset), part)
        for (model, dataset), part in predictions.groupby(["model", "dataset"], sort=True)
    ]
    scopes.append(("all", "all", predictions))
    rows = []
    for model, dataset, part in scopes:
        r2, mae = regression_metrics(part["measured"], part["predicted"])
        in_scope = (
            cases
            if model == "all"
            else cases[
                (cases["model"].astype(str) == model) & (cases["dataset"].astype(str) == dataset)
            ]
        )
        score = summarize_ranking(in_scope)
        rows.append(
            {
                "feature_set": name,
                "protocol": protocol,
                "model": model,
                "dataset": dataset,
                "n": len(part),
                "r2": r2,
                "mae": mae,
                "kendall_tau": score.kendall_tau,
                "top1_hit": score.top1_hit,
            }
        )
    return rows


def shap_values(model: xgb.Booster, x: np.ndarray) -> np.ndarray:
    """SHAP values (n_rows x n_features) of ``model`` on ``x`` by ``shap.TreeExplainer``
    (exact TreeSHAP; agrees with XGBoost's ``pred_contribs`` for xgboost 3.2 / shap 0.51)."""
    with warnings.catch_warnings():  # importing shap loads matplotlib (slow, deprecation noise)
        warnings.simplefilter("ignore")
        import shap

    return np.asarray(shap.TreeExplainer(model).shap_values(x), dtype=np.float64)


def _importance_rows(
    name: str, features: list[str], contributions: np.ndarray, runs: pd.DataFrame
) -> pd.DataFrame:
    abs_shap = pd.DataFrame(np.abs(contributions), columns=features)
    parts = [("overall", pd.Series("all", index=abs_shap.index))]
    parts.append(
        ("sparsity", runs["sparsity"].map(lambda s: f"{float(s):g}").reset_index(drop=True))
    )
    parts.append(("model", runs["model"].astype(str).reset_index(drop=True)))
    tables = []
    for scope, labels in parts:
        means = abs_shap.groupby(labels.to_numpy(), sort=True).mean()
        long = means.stack().rename("mean_abs_shap").reset_index()
        long.columns = ["scope_value", "feature", "mean_abs_shap"]
        tables.append(long.assign(scope=scope, feature_set=name))
    return pd.concat(tables, ignore_index=True)[IMPORTANCE_COLUMNS]


# ---------------------------------------------------------------------------------- study
def _prepare_runs(runs: pd.DataFrame, target: str, notes: list[str]) -> pd.DataFrame:
    required = ["model", "dataset", "method", "sparsity", "seed", target]
    missing = [c for c in required if c not in runs.columns]
    if missing:
        raise ValueError(
            f"runs table lacks column(s) {missing}; needed: {required} plus feature columns "
            "(density., ramanujan., rolled., rolled_channel., mge.)"
        )
    frame = runs.copy()
    if "run_id" not in frame.columns:
        frame["run_id"] = (
            frame[["model", "dataset", "method", "sparsity", "seed"]]
            .astype(str)
            .agg("/".join, axis=1)
        )
    for column in ("sparsity", target):
        frame[column] = pd.to_numeric(frame[column], errors="raise").astype(float)
    dense = (frame["method"].astype(str) == "dense") | (frame["sparsity"] == 0)
    if dense.any():
        notes.append(f"{int(dense.sum())} dense run(s) (method dense or sparsity 0) excluded.")
    frame = frame[~dense]
    no_target = frame[target].isna()
    if no_target.any():
        notes.append(f"{int(no_target.sum())} run(s) without a value of {target} excluded.")
    frame = frame[~no_target].reset_index(drop=True)
    if frame.empty:
        hint = (
            " (accuracy_drop needs a successful dense run of the same model, dataset and seed)"
            if target == "accuracy_drop"
            else ""
        )
        raise ValueError(f"no pruned run with a value of {target} to fit{hint}")
    check_methods(frame["method"])
    return frame


def _feature_matrix(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    try:
        return frame[columns].apply(pd.to_numeric, errors="raise").astype(np.float64)
    except (ValueError, TypeError) as error:
        raise ValueError(f"feature columns must be numeric: {error}") from error


def _out_of_fold(
    x: np.ndarray,
    y: np.ndarray,
    runs: pd.DataFrame,
    splits,
    *,
    n_trials: int,
    seed: int,
    n_jobs: int,
    inner_folds: int,
    bar,
) -> np.ndarray:
    predicted = np.full(len(y), np.nan)
    for _, train, test in splits:
        model = fit_tuned(
            x[train],
            y[train],
            runs.iloc[train],
            n_trials=n_trials,
            seed=seed,
            n_jobs=n_jobs,
            inner_folds=inner_folds,
        )
        predicted[test] = predict(model, x[test])
        bar.update(1)
    return predicted


def fit_study(
    runs: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    target: str = "accuracy_drop",
    feature_sets: FeatureSetsArg = None,
    folds: int = 5,
    n_trials: int = 20,
    seed: int = 0,
    progress: bool = True,
    lower_is_better: bool | None = None,
    inner_folds: int = INNER_FOLDS,
    n_jobs: int = 1,
    extra_notes: Sequence[str] = (),
) -> FitResult:
    """Compare feature sets at predicting ``target``; write ``comparison.csv``,
    ``importance.csv``, ``predictions.csv`` and ``summary.md`` under ``out_dir``.

    Dense runs (method ``dense`` or sparsity 0) and runs without a target are excluded. For each
    feature set: its columns (all-NaN ones dropped), its runs (those with at least one non-NaN
    feature), out-of-fold predictions under both protocols (module docstring), R^2 / MAE and the
    method ranking (:mod:`sparsetopo.study.ranking`) per (model, dataset) and pooled
    (model = dataset = ``all``), and mean |SHAP| importances. A set without any usable column is
    skipped with a note. ``lower_is_better`` (ranking direction) defaults to False for target
    ``accuracy`` and True otherwise; ``extra_notes`` are added to the summary's notes;
    ``n_jobs`` = XGBoost threads (1 by default: on a busy machine OpenMP threads that wait for
    each other make 2 threads ~10x slower than 1 on these small tables). Same inputs and
    ``seed`` give identical files.
    """
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if lower_is_better is None:
        lower_is_better = target != "accuracy"
    sets = resolve_feature_sets(feature_sets)
    notes: list[str] = list(extra_notes)
    frame = _prepare_runs(runs, target, notes)

    plans = []
    for name, prefixes in sets.items():
        columns = feature_columns(frame.columns, prefixes)
        features = _feature_matrix(frame, columns) if columns else pd.DataFrame(index=frame.index)
        infinite = int(np.isinf(features.to_numpy()).sum())
        if infinite:
            notes.append(f"feature set {name}: {infinite} infinite value(s) treated as missing.")
            features = features.where(np.isfinite(features))
        usable = [c for c in columns if features[c].notna().any()]
        if not usable:
            notes.append(
                f"feature set {name} skipped: no column starting with {' or '.join(prefixes)} "
                "has a value."
            )
            continue
        if len(usable) < len(columns):
            notes.append(
                f"feature set {name}: {len(columns) - len(usable)} all-NaN column(s) dropped."
            )
        has_value = features[usable].notna().any(axis=1).to_numpy()
        if not has_value.all():
            notes.append(
                f"feature set {name}: {int((~has_value).sum())} run(s) without any "
                "value of the set excluded."
            )
        part = frame[has_value].reset_index(drop=True)
        x = features.loc[has_value, usable].to_numpy(np.float64)
        if group_ids(part).max() < 1:
            notes.append(f"feature set {name} skipped: fewer than 2 configurations have values.")
            continue
        protocols = {"grouped": grouped_splits(part, folds, seed)}
        if part["method"].nunique() >= 2:
            protocols["leave-one-method-out"] = leave_one_method_out_splits(part)
        else:
            notes.append(f"feature set {name}: leave-one-method-out skipped (1 method has values).")
        plans.append((name, usable, part, x, protocols))
    if not plans:
        raise ValueError(
            f"no feature set has usable columns among {list(sets)}: the runs table has no "
            "value in any column starting with "
            + ", ".join(sorted({p for prefixes in sets.values() for p in prefixes}))
        )

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    total = sum(sum(len(s) for s in p[4].values()) + 1 for p in plans)
    comparison, importance, predictions = [], [], []
    try:
        with tqdm(total=total, desc="fit", unit="model", disable=not progress) as bar:
            for name, usable, part, x, protocols in plans:
                y = part[target].to_numpy(np.float64)
                for protocol, splits in protocols.items():
                    bar.set_postfix_str(f"{name} / {protocol}")
                    predicted = _out_of_fold(
                        x,
                        y,
                        part,
                        splits,
                        n_trials=n_trials,
                        seed=seed,
                        n_jobs=n_jobs,
                        inner_folds=inner_folds,
                        bar=bar,
                    )
                    table = part[_ID_COLUMNS].assign(
                        feature_set=name, protocol=protocol, measured=y, predicted=predicted
                    )[PREDICTION_COLUMNS]
                    predictions.append(table)
                    comparison.extend(_comparison_rows(name, protocol, table, lower_is_better))
                bar.set_postfix_str(f"{name} / SHAP")
                model = fit_tuned(
                    x, y, part, n_trials=n_trials, seed=seed, n_jobs=n_jobs, inner_folds=inner_folds
                )
                contributions = shap_values(model, x)
                importance.append(_importance_rows(name, usable, contributions, part))
                bar.update(1)
    finally:
        optuna.logging.set_verbosity(verbosity)

    comparison_df = pd.DataFrame(comparison, columns=COMPARISON_COLUMNS)
    importance_df = pd.concat(importance, ignore_index=True)
    predictions_df = pd.concat(predictions, ignore_index=True)
    config = {
        "target": target,
        "lower_is_better": lower_is_better,
        "folds": folds,
        "n_trials": n_trials,
        "inner_folds": inner_folds,
        "seed": seed,
    }
    summary = render_summary(frame, comparison_df, importance_df, notes, config)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "comparison.csv", comparison_df.to_csv(index=False))
    write_atomic(out / "importance.csv", importance_df.to_csv(index=False))
    write_atomic(out / "predictions.csv", predictions_df.to_csv(index=False))
    write_atomic(out / "summary.md", summary)
    return FitResult(out, comparison_df, importance_df, predictions_df, summary, notes)


# ---------------------------------------------------------------------------------- output
def _fmt(value: object) -> str:
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table of ``frame`` (floats with 3 decimals, NaN as n/a)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines)


def render_summary(
    runs: pd.DataFrame,
    comparison: pd.DataFrame,
    importance: pd.DataFrame,
    notes: list[str],
    config: dict,
) -> str:
    """Markdown summary: data, best feature set per protocol (pooled R^2), pooled and
    per-(model, dataset) tables, ranking quality, top-5 features per set, notes."""
    direction = "lower is better" if config["lower_is_better"] else "higher is better"
    pooled = comparison[comparison["model"] == "all"]
    lines = [
        "# Study fit summary",
        "",
        f"Target: `{config['target']}` ({direction} for ranking). "
        f"{len(runs)} pruned runs; models: {', '.join(sorted(map(str, runs['model'].unique())))}; "
        f"datasets: {', '.join(sorted(map(str, runs['dataset'].unique())))}; "
        f"methods: {', '.join(sorted(map(str, runs['method'].unique())))}; "
        f"sparsities: {', '.join(f'{s:g}' for s in sorted(runs['sparsity'].unique()))}.",
        "",
        f"XGBoost regressor per feature set, fitted on all (model, dataset) pairs together; "
        f"outer {config['folds']}-fold grouped CV (all seeds of a (model, dataset, method, "
        f"sparsity) in one fold) and leave-one-method-out; Optuna TPE ({config['n_trials']} "
        f"trials, inner {config['inner_folds']}-fold grouped CV on the training part only); "
        f"seed {config['seed']}.",
        "",
        "## Best feature set per protocol (pooled R^2)",
        "",
    ]
    best = []
    for protocol, part in pooled.groupby("protocol", sort=False):
        ordered = part.sort_values("r2", ascending=False, na_position="last", kind="stable")
        top = ordered.iloc[0]
        best.append(
            {
                "protocol": protocol,
                "best feature set": top["feature_set"],
                "R^2": top["r2"],
                "MAE": top["mae"],
                "Kendall tau": top["kendall_tau"],
                "top-1 hit": top["top1_hit"],
            }
        )
    lines += [markdown_table(pd.DataFrame(best)), "", "## Pooled results", ""]
    lines += [
        markdown_table(
            pooled[["feature_set", "protocol", "n", "r2", "mae", "kendall_tau", "top1_hit"]].rename(
                columns={
                    "feature_set": "feature set",
                    "r2": "R^2",
                    "mae": "MAE",
                    "kendall_tau": "Kendall tau",
                    "top1_hit": "top-1 hit",
                }
            )
        ),
        "",
    ]
    per_pair = comparison[comparison["model"] != "all"]
    if not per_pair.empty:
        wide = per_pair.pivot_table(
            index=["model", "dataset", "feature_set"],
            columns="protocol",
            values=["r2", "mae"],
            sort=True,
        )
        wide = wide[sorted(wide.columns, key=lambda c: (c[0] != "r2", c[1]))]
        wide.columns = [f"{metric} ({protocol})" for metric, protocol in wide.columns]
        lines += ["## Per (model, dataset)", "", markdown_table(wide.reset_index()), ""]
    lines += [
        "## Ranking of pruning methods",
        "",
        "Kendall tau between methods ordered by predicted and by measured mean (over seeds) "
        "at each (model, dataset, sparsity), averaged; top-1 hit = fraction of those cases "
        "where the measured best method is predicted first (see the tables above).",
        "",
        "## Top features (mean |SHAP|, all runs)",
        "",
    ]
    overall = importance[importance["scope"] == "overall"]
    for name, part in overall.groupby("feature_set", sort=False):
        top = part.sort_values("mean_abs_shap", ascending=False, kind="stable").head(5)
        listed = ", ".join(
            f"`{f}` {v:.3g}" for f, v in zip(top["feature"], top["mean_abs_shap"], strict=True)
        )
        lines.append(f"- **{name}**: {listed}")
    if pooled["n"].nunique() > 1:
        notes = [
            *notes,
            "Feature sets cover different runs (pooled n differs: a set's runs "
            "are those with at least one value of it); compare them on the per (model, "
            "dataset) rows.",
        ]
    lines += ["", "## Notes", ""]
    lines += [f"- {note}" for note in notes] or ["- none"]
    return "\n".join(lines) + "\n"
