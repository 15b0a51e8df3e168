"""``sparsetopo predict`` and ``sparsetopo rank``: the accuracy drop of masks before training,
from the regressors a fit saved (:mod:`sparsetopo.study.predict`)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sparsetopo.cli._common import err_console, one_line_errors, out_console
from sparsetopo.errors import UsageError

FitOpt = Annotated[Path, typer.Option("--fit", help="Output folder of `study fit` or "
                                                    "`study import-published`.")]
ModelOpt = Annotated[str, typer.Option("--model", help="Zoo model the regressors were fitted "
                                                       "on (or PATH.py:FACTORY).")]
DatasetOpt = Annotated[str, typer.Option("--dataset", help="Dataset the regressors were "
                                                           "fitted on.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of weights, mask and sampled "
                                                     "metrics.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Directory holding the "
                                                                    "dataset.")]
ExtrapolateOpt = Annotated[bool, typer.Option(
    "--extrapolate", help="Predict even for a network outside what the regressors saw "
    "(flagged in the output).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


def _network(fit, model: str, dataset: str, *, weights: Path | None, pruning: str | None,
             sparsity: float | None, seed: int, data_dir: Path | None):
    """``(network, input shape)`` of one candidate."""
    from sparsetopo import data, models
    from sparsetopo.analysis import check_options
    from sparsetopo.pruning.masks import load_weights
    from sparsetopo.study.predict import image_size_of, prune_as_the_study

    if (weights is None) == (pruning is None):
        raise UsageError("give either --weights FILE or --pruning METHOD with --sparsity")
    check_options(model, pruning or "uniform", sparsity or 0.0, dataset)
    info = data.dataset_info(dataset, image_size=image_size_of(fit, model, dataset) or 0)
    shape = tuple(int(v) for v in info.input_shape)
    if weights is not None:
        if models.is_factory(model):
            net = models.from_factory(model)
        else:
            net = models.create(model, num_classes=info.num_classes,
                                in_channels=info.in_channels, seed=seed, image_size=shape[1])
        load_weights(net, weights)
        return net, shape
    if sparsity is None:
        raise UsageError("--pruning needs --sparsity")
    if models.is_factory(model):
        raise UsageError("--pruning rebuilds a zoo model as the study pruned it; for your own "
                         "model give --weights")
    return prune_as_the_study(fit, model, dataset, pruning, sparsity, seed,
                              None if data_dir is None else str(data_dir))


def _predict(fit, model, dataset, network, shape, seed, extrapolate):
    from sparsetopo.study.predict import (
        identity_skips_of,
        network_features_for,
        predict_features,
    )

    features = network_features_for(fit, network, shape, model=model, dataset=dataset,
                                    seed=seed)
    rows = predict_features(fit, features, model=model, dataset=dataset, image_size=shape[1],
                            identity_skips=identity_skips_of(fit, model, dataset),
                            extrapolate=extrapolate)
    return features["sparsity"], rows


def _value_key(rows: list[dict]) -> str:
    return next(k for k in rows[0] if k.startswith("predicted_"))


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _caveats(fit) -> None:
    for caveat in fit.caveats:
        err_console.print(f"note: {caveat}", markup=False)


@one_line_errors
def predict(
    fit_dir: FitOpt,
    model: ModelOpt,
    dataset: DatasetOpt,
    weights: Annotated[Path | None, typer.Option(
        "--weights", help="Masked state_dict (torch-prune form or zeros where pruned).")] = None,
    pruning: Annotated[str | None, typer.Option("--pruning", help="Pruning method.")] = None,
    sparsity: Annotated[float | None, typer.Option("--sparsity", help="Sparsity.")] = None,
    seed: SeedOpt = 0,
    data_dir: DataDirOpt = None,
    extrapolate: ExtrapolateOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Predict a network's accuracy drop (before training) with every feature set's regressor,
    next to each one's cross-validated error."""
    from sparsetopo.study.predict import load_fit

    fit = load_fit(fit_dir)
    network, shape = _network(fit, model, dataset, weights=weights, pruning=pruning,
                              sparsity=sparsity, seed=seed, data_dir=data_dir)
    measured, rows = _predict(fit, model, dataset, network, shape, seed, extrapolate)
    key = _value_key(rows)
    if as_json:
        sys.stdout.write(json.dumps({
            "network": {"model": model, "dataset": dataset, "sparsity": measured,
                        "input_shape": list(shape), "weights": None if weights is None
                        else str(weights), "pruning": pruning, "seed": seed},
            "target": fit.target, "caveats": fit.caveats, "predictions": rows}, indent=2) + "\n")
        return
    table = Table(title=f"{model} on {dataset}, sparsity {measured:.4f}: predicted "
                  f"{key.removeprefix('predicted_')}", title_justify="left")
    for column in ("feature set", "predicted", "CV MAE (grouped)", "CV MAE (unseen method)",
                   "features"):
        table.add_column(column, justify="left" if column == "feature set" else "right")
    for row in rows:
        table.add_row(row["feature_set"], _fmt(row[key]), _fmt(row.get("cv_mae_grouped")),
                      _fmt(row.get("cv_mae_leave-one-method-out")), row["features_found"])
    out_console.print(table)
    if rows[0].get("outside"):
        err_console.print("warning: outside what the regressors saw: "
                          + "; ".join(rows[0]["outside"]), markup=False)
    _caveats(fit)


def _ranking_set(fit, model: str, dataset: str, rows: list[dict], chosen: str | None) -> str:
    names = [r["feature_set"] for r in rows]
    if chosen is not None:
        if chosen not in names:
            raise UsageError(f"no regressor of set {chosen!r}; the fit has {', '.join(names)}")
        return chosen
    scored = [(r.get("cv_r2_leave-one-method-out"), r["feature_set"]) for r in rows
              if r.get("cv_r2_leave-one-method-out") is not None and r[_value_key(rows)]
              is not None]
    return max(scored)[1] if scored else names[0]


def _beats_note(fit, model: str, dataset: str, name: str) -> str | None:
    path = fit.folder / "comparison.csv"
    if not path.is_file():
        return None
    import pandas as pd  # here: every command line (``analyze`` too) imports this module

    table = pd.read_csv(path)
    row = table[(table["feature_set"] == name) & (table["protocol"] == "leave-one-method-out")
                & (table["model"] == model) & (table["dataset"] == dataset)]
    if row.empty:
        return None
    r = row.iloc[0]
    verdict = "beats" if bool(r["beats_sparsity"]) else "does not beat"
    return (f"for methods never seen in training, {name} {verdict} global sparsity alone "
            f"(gain {r['gain_over_sparsity']:+.3f} ± {r['gain_spread']:.3f} in R^2; ranking "
            f"tau {r['kendall_tau']:.2f} against the sparsity null {r['null_kendall_tau']:.2f})")


@one_line_errors
def rank(
    fit_dir: FitOpt,
    model: ModelOpt,
    dataset: DatasetOpt,
    pruning: Annotated[list[str] | None, typer.Option(
        "--pruning", help="Candidate methods (several: --pruning snip grasp synflow).")] = None,
    more: Annotated[list[str] | None, typer.Argument(
        help="More candidate methods, or weights files with --weights.",
        show_default=False)] = None,
    weights: Annotated[list[Path] | None, typer.Option(
        "--weights", help="Candidate masked state_dicts (several: --weights a.pt b.pt).")] = None,
    sparsity: Annotated[float | None, typer.Option("--sparsity", help="Sparsity of the "
                                                                      "methods' masks.")] = None,
    seed: SeedOpt = 0,
    data_dir: DataDirOpt = None,
    feature_set: Annotated[str | None, typer.Option(
        "--set", help="Feature set to rank by (default: the best for unseen methods, by "
        "leave-one-method-out R^2).")] = None,
    extrapolate: ExtrapolateOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Rank candidate masks (pruning methods at one sparsity, or weights files) by predicted
    accuracy drop, before training; predictions and CV errors side by side."""
    from sparsetopo.study.predict import load_fit

    extra = list(more or [])
    methods = list(pruning or []) + (extra if pruning else [])
    files = list(weights or []) + ([Path(e) for e in extra] if weights else [])
    if bool(methods) == bool(files):
        raise UsageError("give candidate methods (--pruning A B ...) or weights files "
                         "(--weights A.pt B.pt ...), one of the two")
    if extra and not (pruning or weights):
        raise UsageError(f"unexpected argument(s) {extra}")
    fit = load_fit(fit_dir)
    candidates = []
    for label in methods or files:
        kw = ({"weights": None, "pruning": label, "sparsity": sparsity} if methods
              else {"weights": Path(label), "pruning": None, "sparsity": None})
        network, shape = _network(fit, model, dataset, seed=seed, data_dir=data_dir, **kw)
        measured, rows = _predict(fit, model, dataset, network, shape, seed, extrapolate)
        candidates.append((str(label), measured, rows))
    key = _value_key(candidates[0][2])
    name = _ranking_set(fit, model, dataset, candidates[0][2], feature_set)
    lower_better = key == "predicted_accuracy_drop"

    def score(candidate):
        value = next(r[key] for r in candidate[2] if r["feature_set"] == name)
        return (math.inf if value is None else value) * (1 if lower_better else -1)

    ordered = sorted(candidates, key=score)
    sets = [r["feature_set"] for r in candidates[0][2]]
    if as_json:
        sys.stdout.write(json.dumps({
            "ranked_by": name, "target": fit.target, "caveats": fit.caveats,
            "candidates": [{"candidate": c, "sparsity": s, "rank": i + 1, "predictions": rows}
                           for i, (c, s, rows) in enumerate(ordered)]}, indent=2) + "\n")
        return
    order = ", ".join(f"{i + 1}. {label}" for i, (label, _, _) in enumerate(ordered))
    table = Table(title=f"{model} on {dataset}: ranked by the {name} regressor "
                  f"({'lowest' if lower_better else 'highest'} predicted "
                  f"{key.removeprefix('predicted_')} first): {order}", title_justify="left")
    table.add_column("feature set")
    for label, measured, _ in ordered:
        table.add_column(f"{label} ({measured:.3f})", justify="right")
    table.add_column("CV MAE grouped", justify="right")
    table.add_column("CV MAE unseen method", justify="right")
    values = [{r["feature_set"]: r for r in rows} for _, _, rows in ordered]
    for s in sets:
        first = values[0][s]
        table.add_row(s, *[_fmt(v[s][key]) for v in values], _fmt(first.get("cv_mae_grouped")),
                      _fmt(first.get("cv_mae_leave-one-method-out")))
    out_console.print(table)
    note = _beats_note(fit, model, dataset, name)
    if note:
        out_console.print(note)
    _caveats(fit)
