"""Which topology predicts the accuracy drop, measured against global sparsity, layer densities
and effective sparsity (``docs/study.md``).

For every (model, dataset) pair (or, with ``pooled``, once for all pairs with the architecture
and dataset as one-hot features) and every feature set (:mod:`sparsetopo.study.vocabulary`),
an XGBoost regressor tuned by Optuna on inner folds of the training part only
(:mod:`sparsetopo.study.predictor`) predicts the target of every pruned run out of fold, under
each protocol (:mod:`sparsetopo.study.splits`: random, grouped, leave-one-method-out,
leave-one-category-out). All sets
of a pair share its rows and its folds, so every set is compared with the ``sparsity`` baseline
on the same predictions' footing (:mod:`sparsetopo.study.scoring`), and so with the other two
baselines, ``density`` and ``effective_sparsity`` (each gain with its spread and 95% t-interval
over the outer folds), and the method ranking of every set with the ranking of the sparsity
baseline (its null, :mod:`sparsetopo.study.ranking`). Under leave-one-method-out a mask control
(``snip+layer-shuffle``) is held out with its method.

With mask controls in the runs (:mod:`sparsetopo.study.paired`), the paired effect of each
method against its control, seed by seed, and how well each feature set's difference predicts
it under the grouped and leave-one-method-out protocols.

How well each feature set tells the methods apart, and their categories, at each (model,
dataset) and sparsity: :mod:`sparsetopo.study.separability`.

A final regressor per (pair, set), tuned on all its runs, gives the SHAP importances and is
saved (XGBoost JSON) with its cross-validated errors, for ``sparsetopo predict``.

Outputs (``out_dir``): ``comparison.csv`` (one row per feature set, protocol, model, dataset;
the mean over pairs as ``model = dataset = mean``), ``predictions.csv``, ``importance.csv``,
``separability.csv``, ``summary.md`` (:mod:`sparsetopo.study.summary`) and ``models/`` (``index.json`` + one JSON
model per pair and set); with mask controls also ``paired_effects.csv``,
``paired_prediction.csv`` and ``paired_predictions.csv``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from sparsetopo import data
from sparsetopo.errors import InputError
from sparsetopo.io import json_value, show_progress, write_bytes, write_text
from sparsetopo.pruning import split_method
from sparsetopo.study import paired, predictor, scoring, separability, splits
from sparsetopo.study.feature_sets import (
    FeatureSetsArg,
    feature_columns,
    is_monotone,
    resolve_feature_sets,
    with_effective_sparsity,
)
from sparsetopo.study.ranking import check_methods, ranking_cases, summarize_ranking
from sparsetopo.study.summary import render_summary
from sparsetopo.study.vocabulary import (
    BASELINE,
    BASELINES,
    DEFAULT_TRIALS,
    DENSE,
    MONOTONE_DIRECTIONS,
    PROTOCOLS,
    baseline_columns,
)

INNER_FOLDS = 3
MEAN = "mean"  # model and dataset of the headline rows
#: Per baseline (:data:`~sparsetopo.study.vocabulary.BASELINES`), the columns of its gain.
GAIN_FIELDS = ("gain", "spread", "ci_low", "ci_high", "folds_better", "beats")
COMPARISON_COLUMNS = [
    "feature_set", "protocol", "model", "dataset", "pairs", "n", "r2", "mae", "kendall_tau",
    "top1_hit",
    "ranking_cases", "tau_undefined",
    *(baseline_columns(b)[f] for b in BASELINES for f in GAIN_FIELDS),
    "null_kendall_tau", "null_top1_hit", "null_tau_undefined",
]
IMPORTANCE_COLUMNS = ["feature_set", "feature", "scope", "scope_value", "mean_abs_shap"]
PREDICTION_COLUMNS = [
    "feature_set", "protocol", "fold", "run_id", "model", "dataset", "method", "sparsity",
    "seed", "measured", "predicted",
]
_ID_COLUMNS = ["run_id", "model", "dataset", "method", "sparsity", "seed"]
_ARCH = "arch."  # one-hot columns of a pooled fit


@dataclass
class FitResult:
    """Tables written by :func:`fit_study` (the same content as the files in ``out_dir``)."""

    out_dir: Path
    comparison: pd.DataFrame
    importance: pd.DataFrame
    predictions: pd.DataFrame
    summary: str
    notes: list[str] = field(default_factory=list)
    regressors: list[dict] = field(default_factory=list)
    paired: Paired | None = None
    separability: pd.DataFrame | None = None


@dataclass
class Paired:
    """The paired effect of topology (:mod:`sparsetopo.study.paired`), for runs with mask
    controls: ``effects`` (``paired_effects.csv``), ``scores`` of the feature sets at
    predicting the difference (``paired_prediction.csv``) and their out-of-fold
    ``predictions`` (``paired_predictions.csv``)."""

    effects: pd.DataFrame
    scores: pd.DataFrame
    predictions: pd.DataFrame


@dataclass
class _Plan:
    """One feature set on one unit (a (model, dataset) pair, or everything when pooled)."""

    unit: int
    name: str
    columns: list[str]
    x: np.ndarray
    monotone: list[int] | None


# ---------------------------------------------------------------------------------- input
def _prepare_runs(runs: pd.DataFrame, target: str, notes: list[str]) -> pd.DataFrame:
    required = ["model", "dataset", "method", "sparsity", "seed", target]
    missing = [c for c in required if c not in runs.columns]
    if missing:
        raise InputError(f"runs table lacks column(s) {missing}; needed: {required} plus "
                         "feature columns (density., ramanujan., rolled., rolled_channel., "
                         "mge., paths.)")
    frame = with_effective_sparsity(runs.copy())
    if "base_method" not in frame.columns or "control" not in frame.columns:
        parts = [split_method(str(m)) for m in frame["method"]]
        frame["base_method"] = [base for base, _ in parts]
        frame["control"] = [control for _, control in parts]
    if "run_id" not in frame.columns:
        frame["run_id"] = (frame[["model", "dataset", "method", "sparsity", "seed"]]
                           .astype(str).agg("/".join, axis=1))
    for column in ("sparsity", target):
        frame[column] = pd.to_numeric(frame[column], errors="raise").astype(float)
    dense = (frame["method"].astype(str) == DENSE) | (frame["sparsity"] == 0)
    if dense.any():
        notes.append(f"{int(dense.sum())} dense run(s) (method dense or sparsity 0) excluded.")
    frame = frame[~dense]
    no_target = frame[target].isna()
    if no_target.any():
        notes.append(f"{int(no_target.sum())} run(s) without a value of {target} excluded.")
    frame = frame[~no_target].reset_index(drop=True)
    if frame.empty:
        hint = (" (accuracy_drop needs a successful dense run of the same model, dataset and "
                "seed)" if target == "accuracy_drop" else "")
        raise InputError(f"no pruned run with a value of {target} to fit{hint}")
    check_methods(frame["method"])
    return frame


def _units(frame: pd.DataFrame, pooled: bool) -> list[pd.DataFrame]:
    if pooled:
        unit = frame.copy()
        for column in ("model", "dataset"):
            for value in sorted(unit[column].astype(str).unique()):
                unit[f"{_ARCH}{column}={value}"] = (unit[column].astype(str) == value) * 1.0
        return [unit]
    return [part.reset_index(drop=True)
            for _, part in frame.groupby(["model", "dataset"], sort=True)]


def _unit_name(unit: pd.DataFrame, pooled: bool) -> str:
    return "all pairs (pooled)" if pooled else f"{unit['model'].iloc[0]} / {unit['dataset'].iloc[0]}"


def _plans(units, sets, pooled: bool, sign: int, notes: list[str]) -> list[_Plan]:
    plans = []
    skipped: dict[str, list[str]] = {}
    for u, unit in enumerate(units):
        arch = [c for c in unit.columns if c.startswith(_ARCH)] if pooled else []
        for name, patterns in sets.items():
            columns = [c for c in feature_columns(unit.columns, patterns) if not
                       c.startswith(_ARCH)]
            try:
                features = unit[columns].apply(pd.to_numeric, errors="raise").astype(float)
            except (ValueError, TypeError) as error:
                raise InputError(f"feature columns must be numeric: {error}") from error
            infinite = int(np.isinf(features.to_numpy()).sum())
            if infinite:
                notes.append(f"{_unit_name(unit, pooled)}, {name}: {infinite} infinite "
                             "value(s) treated as missing.")
                features = features.where(np.isfinite(features))
            usable = [c for c in columns if features[c].notna().any()]
            if not usable:
                if name == BASELINE:
                    raise InputError(f"{_unit_name(unit, pooled)}: no value of the baseline "
                                     "column sparsity")
                skipped.setdefault(name, []).append(_unit_name(unit, pooled))
                continue
            x = np.hstack([features[usable].to_numpy(np.float64),
                           unit[arch].to_numpy(np.float64)]) if arch else \
                features[usable].to_numpy(np.float64)
            cols = usable + arch
            monotone = ([sign * MONOTONE_DIRECTIONS.get(c, 0) for c in cols]
                        if is_monotone(name) else None)
            plans.append(_Plan(u, name, cols, x, monotone))
    notes += [f"feature set {name} skipped where it has no value: {', '.join(where)}."
              for name, where in skipped.items()]
    return plans


# ---------------------------------------------------------------------------------- work
def _outer_task(x, y, train, test, inner, n_trials, seed, monotone) -> np.ndarray:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    model, _ = predictor.fit_tuned(x[train], y[train], inner, n_trials=n_trials, seed=seed,
                                   monotone=monotone)
    return predictor.predict(model, x[test])


def _final_task(x, y, inner, n_trials, seed, monotone):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    model, params = predictor.fit_tuned(x, y, inner, n_trials=n_trials, seed=seed,
                                        monotone=monotone)
    return bytes(model.save_raw("json")), params, shap_values(model, x)


def shap_values(model, x: np.ndarray) -> np.ndarray:
    """SHAP values (n_rows x n_features) of ``model`` on ``x`` by ``shap.TreeExplainer``
    (exact TreeSHAP; agrees with XGBoost's ``pred_contribs``)."""
    import warnings

    with warnings.catch_warnings():  # importing shap loads matplotlib (slow, deprecation noise)
        warnings.simplefilter("ignore")
        import shap

    return np.asarray(shap.TreeExplainer(model).shap_values(x), dtype=np.float64)


def _run(calls, jobs: int, progress: bool, desc: str):
    """Results of the delayed ``calls`` in order, on ``jobs`` processes."""
    bar = tqdm(total=len(calls), desc=desc, unit="model", disable=not show_progress(progress))
    try:
        if jobs == 1:
            out = []
            for fn, args, kwargs in calls:
                out.append(fn(*args, **kwargs))
                bar.update(1)
            return out
        results = Parallel(n_jobs=jobs, backend="loky", return_as="generator")(calls)
        out = []
        for result in results:
            out.append(result)
            bar.update(1)
        return out
    finally:
        bar.close()


# ---------------------------------------------------------------------------------- scores
def _versus(contributions: list[np.ndarray], gain: float | None = None) -> dict:
    """The gain over one baseline from fold contributions (of one pair, or pooled over pairs
    with ``gain`` the mean of the pairs' gains): ``GAIN_FIELDS``; NaN (and not beaten) without
    contributions."""
    c = np.concatenate(contributions) if contributions else np.zeros(0)
    mean, spread = scoring.gain_and_spread(c)
    gain = mean if gain is None else gain
    low, high = scoring.t_interval(c, center=gain)
    return {"gain": gain, "spread": spread, "ci_low": low, "ci_high": high,
            "folds_better": _positive_share(c), "beats": scoring.beats(gain, spread)}


def _named(baseline: str, values: dict) -> dict:
    names = baseline_columns(baseline)
    return {names[field]: values[field] for field in GAIN_FIELDS}


def _pair_rows(name, protocol, table, baselines, lower_is_better) -> tuple[list[dict], dict]:
    """Rows of one set under one protocol, per (model, dataset), and the fold contributions of
    its gain over each baseline: ``{baseline: {(model, dataset): c}}`` (a baseline without
    predictions for a pair is left out there)."""
    rows, contributions = [], {b: {} for b in BASELINES}
    for (model, dataset), part in table.groupby(["model", "dataset"], sort=True):
        r2, mae = scoring.regression_scores(part["measured"], part["predicted"])
        row = {"feature_set": name, "protocol": protocol, "model": model, "dataset": dataset,
               "pairs": 1, "n": len(part), "r2": r2, "mae": mae}
        for b in BASELINES:
            base = baselines[b].reindex(part.index)["predicted"]
            if base.isna().any():
                row.update(_named(b, _versus([])))
                continue
            c = scoring.fold_contributions(part["measured"], part["predicted"], base,
                                           part["fold"])
            contributions[b][(model, dataset)] = c
            row.update(_named(b, _versus([c])))
        base = baselines[BASELINE].loc[part.index]
        score, null = _ranking(part, lower_is_better), _ranking(base, lower_is_better)
        row.update(kendall_tau=score.kendall_tau, top1_hit=score.top1_hit,
                   ranking_cases=score.n_cases, tau_undefined=score.n_undefined,
                   null_kendall_tau=null.kendall_tau, null_top1_hit=null.top1_hit,
                   null_tau_undefined=null.n_undefined)
        rows.append(row)
    return rows, contributions


def _positive_share(contributions: np.ndarray) -> float:
    """Fraction of outer folds where the set's squared error is below the baseline's."""
    return float(np.mean(contributions > 0)) if len(contributions) else np.nan


def _ranking(part: pd.DataFrame, lower_is_better: bool):
    try:
        return summarize_ranking(ranking_cases(part, lower_is_better=lower_is_better))
    except ValueError:  # fewer than 2 methods at every sparsity
        return summarize_ranking(pd.DataFrame())


def _mean_row(rows: list[dict], contributions: dict) -> dict:
    """The headline row over pairs: mean scores, and per baseline the mean of the pairs'
    gains with the spread and interval of every fold contribution of every pair."""
    frame = pd.DataFrame(rows)
    out = {k: rows[0][k] for k in ("feature_set", "protocol")}
    out.update(model=MEAN, dataset=MEAN, pairs=len(frame), n=int(frame["n"].sum()))
    for key in ("r2", "mae", "kendall_tau", "top1_hit", "null_kendall_tau", "null_top1_hit"):
        values = frame[key].astype(float)
        out[key] = float(values.mean()) if values.notna().any() else np.nan
    for key in ("ranking_cases", "tau_undefined", "null_tau_undefined"):
        out[key] = int(frame[key].sum())
    for b in BASELINES:
        gains = frame[baseline_columns(b)["gain"]].astype(float)
        gain = float(gains.mean()) if gains.notna().any() else np.nan
        out.update(_named(b, _versus(list(contributions[b].values()), gain)))
    return out


def _importance_rows(name: str, contributions: list[tuple[pd.DataFrame, list[str], np.ndarray]]
                     ) -> pd.DataFrame:
    frames = [pd.DataFrame(np.abs(values), columns=cols).assign(
        _sparsity=unit["sparsity"].map(lambda s: f"{float(s):g}").to_numpy(),
        _model=unit["model"].astype(str).to_numpy())
        for unit, cols, values in contributions]
    table = pd.concat(frames, ignore_index=True)
    features = [c for c in table.columns if not c.startswith("_")]
    tables = []
    for scope, labels in (("overall", pd.Series("all", index=table.index)),
                          ("sparsity", table["_sparsity"]), ("model", table["_model"])):
        means = table[features].groupby(labels.to_numpy(), sort=True).mean()
        long = means.stack().rename("mean_abs_shap").reset_index()
        long.columns = ["scope_value", "feature", "mean_abs_shap"]
        tables.append(long.assign(scope=scope, feature_set=name))
    return pd.concat(tables, ignore_index=True)[IMPORTANCE_COLUMNS]


def variance_decomposition(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """Per (model, dataset): variance of the configuration means of ``target`` (between
    configurations) and mean variance over the seeds of one configuration (within: seed
    noise), both with ddof 1, and their ratio."""
    rows = []
    for (model, dataset), part in frame.groupby(["model", "dataset"], sort=True):
        groups = part.groupby(["method", "sparsity"])[target]
        means = groups.mean()
        within = groups.var(ddof=1).dropna()
        between = float(means.var(ddof=1)) if len(means) > 1 else np.nan
        w = float(within.mean()) if len(within) else np.nan
        rows.append({"model": model, "dataset": dataset, "configurations": len(means),
                     "between": between, "within": w,
                     "ratio": between / w if w and np.isfinite(w) and w > 0 else np.nan})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- study
def fit_study(
    runs: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    target: str = "accuracy_drop",
    feature_sets: FeatureSetsArg = None,
    protocols: Sequence[str] = PROTOCOLS,
    folds: int = 5,
    n_trials: int = DEFAULT_TRIALS,
    seed: int = 0,
    pooled: bool = False,
    jobs: int | None = None,
    progress: bool = True,
    lower_is_better: bool | None = None,
    inner_folds: int = INNER_FOLDS,
    extra_notes: Sequence[str] = (),
    caveats: Sequence[str] = (),
    save_models: bool = True,
) -> FitResult:
    """Compare feature sets at predicting ``target`` (module docstring); write the outputs.

    Dense runs (method ``dense`` or sparsity 0) and runs without a target are excluded. A set
    without any value in a unit is skipped there with a note. ``lower_is_better`` (ranking
    direction) defaults to False for target ``accuracy`` and True otherwise; ``jobs`` processes
    (default: every CPU) share the fits, each on 1 thread; the results do not depend on
    ``jobs``. ``caveats`` are stored with the saved regressors (shown by ``predict``). Same
    inputs and ``seed`` give identical files.
    """
    if folds < 2:
        raise InputError(f"folds must be >= 2, got {folds}")
    if n_trials < 1:
        raise InputError(f"n_trials must be >= 1, got {n_trials}")
    for protocol in protocols:
        splits.check_protocol(protocol)
    protocols = [p for p in PROTOCOLS if p in protocols]
    if not protocols:
        raise InputError(f"no protocol given; supported: {', '.join(PROTOCOLS)}")
    jobs = jobs or os.cpu_count() or 1
    if lower_is_better is None:
        lower_is_better = target != "accuracy"
    sets = resolve_feature_sets(feature_sets)
    notes: list[str] = list(extra_notes)
    frame = _prepare_runs(runs, target, notes)
    units = _units(frame, pooled)
    sign = 1 if lower_is_better else -1
    plans = _plans(units, sets, pooled, sign, notes)

    folds_of: dict[tuple[int, str], list] = {}
    for u, unit in enumerate(units):
        for protocol in protocols:
            try:
                outer = splits.splits(unit, protocol, folds, seed)
            except ValueError as exc:
                notes.append(f"{_unit_name(unit, pooled)}: {protocol} skipped ({exc}).")
                continue
            folds_of[(u, protocol)] = [
                (name, tr, te, splits.inner_splits(unit.iloc[tr], protocol, inner_folds, seed))
                for name, tr, te in outer]

    calls, keys = [], []
    for i, plan in enumerate(plans):
        y = units[plan.unit][target].to_numpy(np.float64)
        for protocol in protocols:
            for fold, tr, te, inner in folds_of.get((plan.unit, protocol), []):
                calls.append(delayed(_outer_task)(plan.x, y, tr, te, inner, n_trials, seed,
                                                  plan.monotone))
                keys.append(("outer", i, protocol, fold, te))
        inner = splits.inner_splits(units[plan.unit], "grouped", inner_folds, seed)
        calls.append(delayed(_final_task)(plan.x, y, inner, n_trials, seed, plan.monotone))
        keys.append(("final", i, None, None, None))
    results = _run(calls, jobs, progress, "fit")

    predictions, finals = [], {}
    for key, result in zip(keys, results, strict=True):
        kind, i, protocol, fold, te = key
        plan = plans[i]
        unit = units[plan.unit]
        if kind == "final":
            finals[i] = result
            continue
        table = unit.iloc[te][_ID_COLUMNS].assign(
            feature_set=plan.name, protocol=protocol, fold=fold,
            measured=unit[target].to_numpy(np.float64)[te], predicted=result)
        predictions.append(table[PREDICTION_COLUMNS])
    predictions_df = pd.concat(predictions, ignore_index=True)

    comparison = _comparison(predictions_df, sets, protocols, lower_is_better)
    importance = pd.concat(
        [_importance_rows(name, [(units[plans[i].unit], plans[i].columns, finals[i][2])
                                 for i in range(len(plans)) if plans[i].name == name])
         for name in dict.fromkeys(p.name for p in plans)], ignore_index=True)
    config = {"target": target, "lower_is_better": lower_is_better, "folds": folds,
              "n_trials": n_trials, "inner_folds": inner_folds, "seed": seed, "pooled": pooled,
              "protocols": protocols}
    variance = variance_decomposition(frame, target)
    paired_result = None
    if paired.has_controls(frame):
        paired_result = _paired(frame, target, lower_is_better, sets, protocols, folds,
                                n_trials, seed, pooled, jobs, progress, inner_folds, notes)
    separable = separability.separability(frame, sets, folds=folds, seed=seed, notes=notes,
                                          jobs=jobs, progress=progress)
    summary = render_summary(frame, comparison, importance, variance, notes, config,
                             paired_result, separable)

    out = Path(out_dir)
    regressors = _regressor_index(plans, units, finals, comparison, pooled, target)
    write_text(out / "comparison.csv", comparison.to_csv(index=False))
    write_text(out / "importance.csv", importance.to_csv(index=False))
    write_text(out / "predictions.csv", predictions_df.to_csv(index=False))
    write_text(out / "separability.csv", separable.to_csv(index=False))
    if paired_result is not None:
        write_text(out / "paired_effects.csv", paired_result.effects.to_csv(index=False))
        write_text(out / "paired_prediction.csv", paired_result.scores.to_csv(index=False))
        write_text(out / "paired_predictions.csv",
                   paired_result.predictions.to_csv(index=False))
    if save_models:
        _save_regressors(out / "models", regressors, finals, config, caveats)
    write_text(out / "summary.md", summary)
    return FitResult(out, comparison, importance, predictions_df, summary, notes, regressors,
                     paired_result, separable)


#: Protocols of the paired prediction (the random one would put the seeds of a configuration
#: on both sides).
PAIRED_PROTOCOLS = ("grouped", "leave-one-method-out")
_PAIRED_ID_COLUMNS = ["run_id", "model", "dataset", "method", "base_method", "control",
                      "sparsity", "seed"]


def _paired(frame, target, lower_is_better, sets, protocols, folds, n_trials, seed, pooled,
            jobs, progress, inner_folds, notes) -> Paired:
    """Paired effects of the control runs in ``frame``, and out-of-fold predictions of the
    paired difference from the difference of each feature set (method minus control; the
    ``sparsity`` set gets the level of sparsity, whose difference is 0), scored against 0."""
    value, sign = ("accuracy", 1.0) if "accuracy" in frame.columns and \
        frame["accuracy"].notna().any() else (target, -1.0 if lower_is_better else 1.0)
    free = {name: patterns for name, patterns in sets.items() if not is_monotone(name)}
    used = sorted({c for patterns in free.values()
                   for c in feature_columns(frame.columns, patterns)})
    differences = paired.paired_differences(frame, value, sign, used, notes)
    effects = paired.paired_effects(differences)
    empty = Paired(effects, pd.DataFrame(columns=paired.PREDICTION_COLUMNS),
                   pd.DataFrame(columns=[*_PAIRED_ID_COLUMNS, *PREDICTION_COLUMNS[:3],
                                         "measured", "predicted"]))
    chosen = [p for p in PAIRED_PROTOCOLS if p in protocols]
    if differences.empty or not chosen:
        return empty
    local: list[str] = []
    units = _units(differences, pooled)
    plans = _plans(units, free, pooled, 1, local)
    notes += [f"paired prediction: {note}" for note in local]
    calls, keys = [], []
    for u, unit in enumerate(units):
        y = unit[paired.DIFFERENCE].to_numpy(np.float64)
        for protocol in chosen:
            try:
                outer = splits.splits(unit, protocol, folds, seed)
            except ValueError as exc:
                notes.append(f"paired prediction, {_unit_name(unit, pooled)}: {protocol} "
                             f"skipped ({exc}).")
                continue
            for fold, tr, te in outer:
                inner = splits.inner_splits(unit.iloc[tr], protocol, inner_folds, seed)
                for plan in (p for p in plans if p.unit == u):
                    calls.append(delayed(_outer_task)(plan.x, y, tr, te, inner, n_trials, seed,
                                                      None))
                    keys.append((plan, protocol, fold, te))
    if not calls:
        return empty
    results = _run(calls, jobs, progress, "paired fit")
    tables = []
    for (plan, protocol, fold, te), result in zip(keys, results, strict=True):
        unit = units[plan.unit]
        tables.append(unit.iloc[te][_PAIRED_ID_COLUMNS].assign(
            feature_set=plan.name, protocol=protocol, fold=fold,
            measured=unit[paired.DIFFERENCE].to_numpy(np.float64)[te], predicted=result))
    predictions = pd.concat(tables, ignore_index=True)
    return Paired(effects, paired.prediction_scores(predictions), predictions)



def _comparison(predictions: pd.DataFrame, sets, protocols, lower_is_better) -> pd.DataFrame:
    rows = []
    for protocol in protocols:
        of = predictions[predictions["protocol"] == protocol]
        baselines = {b: of[of["feature_set"] == b].set_index("run_id") for b in BASELINES}
        if baselines[BASELINE].empty:
            continue
        for name in sets:
            table = of[of["feature_set"] == name]
            if table.empty:
                continue
            table = table.set_index("run_id", drop=False)
            pair_rows, contributions = _pair_rows(name, protocol, table, baselines,
                                                  lower_is_better)
            rows += pair_rows
            rows.append(_mean_row(pair_rows, contributions))
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


# ---------------------------------------------------------------------------------- models
def _regressor_index(plans, units, finals, comparison, pooled, target) -> list[dict]:
    entries = []
    for i, plan in enumerate(plans):
        unit = units[plan.unit]
        model = "pooled" if pooled else str(unit["model"].iloc[0])
        dataset = "pooled" if pooled else str(unit["dataset"].iloc[0])
        rows = comparison[(comparison["feature_set"] == plan.name)
                          & (comparison["model"] == (MEAN if pooled else model))
                          & (comparison["dataset"] == (MEAN if pooled else dataset))]
        cv = {r.protocol: {"r2": json_value(float(r.r2)), "mae": json_value(float(r.mae))}
              for r in rows.itertuples()}
        image_size = _image_sizes(unit)
        entries.append({
            "model": model, "dataset": dataset, "feature_set": plan.name,
            "file": f"{model}__{dataset}__{plan.name.replace('/', '_')}.json",
            "features": plan.columns, "monotone": plan.monotone,
            "params": asdict(finals[i][1]), "n_train": len(unit), "target": target,
            "models_seen": sorted(unit["model"].astype(str).unique()),
            "datasets_seen": sorted(unit["dataset"].astype(str).unique()),
            "image_sizes_seen": image_size,
            "sparsity_range": [float(unit["sparsity"].min()), float(unit["sparsity"].max())],
            "methods_seen": sorted(unit["method"].astype(str).unique()),
            "identity_skips_seen": sorted({bool(v) for v in unit["identity_skips"].dropna()})
            if "identity_skips" in unit.columns else [],
            "run_settings": _run_settings(unit),
            "cv": cv,
        })
    return entries


def _image_sizes(unit: pd.DataFrame) -> list[int]:
    """Input sizes the pair's networks were encoded at (``image_size`` 0 = the dataset's)."""
    if "image_size" not in unit.columns:
        return []
    sizes = set()
    for dataset, size in unit[["dataset", "image_size"]].drop_duplicates().itertuples(
            index=False):
        if pd.isna(size):
            continue
        known = str(dataset) in data.DATASETS
        sizes.add(int(size) or (data.dataset_info(str(dataset)).image_size if known else 0))
    return sorted(s for s in sizes if s)


#: Columns of a runs table that decide how a network of the study was pruned and measured.
RUN_SETTINGS = ("batch_size", "train_subset", "test_subset", "image_size", "identity_skips",
                "epochs", "lr")


def _run_settings(unit: pd.DataFrame) -> dict:
    """The study settings of a pair's runs (the first run's; they are the same for a pair),
    for ``predict`` to rebuild a network exactly as the study pruned it."""
    out = {}
    for column in RUN_SETTINGS:
        if column in unit.columns and unit[column].notna().any():
            value = unit[column].dropna().iloc[0]
            out[column] = value.item() if hasattr(value, "item") else value
    return out


def _save_regressors(folder: Path, regressors, finals, config, caveats) -> None:
    for i, entry in enumerate(regressors):
        path = folder / entry["file"]
        write_bytes(path, finals[i][0])
    index = {"format": "sparsetopo-regressors", "version": 1, "config": config,
             "caveats": list(caveats), "regressors": regressors}
    write_text(folder / "index.json", json.dumps(index, indent=2, sort_keys=True) + "\n")
